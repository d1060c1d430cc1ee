"""The change stream's data: a change read from PostgreSQL's change_log, and an entry of the Redis feed.

A ``Change`` is one change_log row: the entity as it is after the change (``payload``), its version, and the
global ``seq`` (commit order). The syncer applies changes to Redis and publishes one ``FeedEntry`` per change
to the feed the nodes follow. Every feed entry names the entry published just before it (``prev``), so a node
that sees an entry whose ``prev`` is not the last entry it read knows it missed some (the stream was trimmed
past it, or Redis lost its data) and reloads everything instead of following.

``Pace`` is how both the syncer (change_log -> Redis) and the nodes (feed -> catalog) read their stream: batch
size, how long to wait for news, and the capped, jittered exponential ``Backoff`` they reconnect with.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

if TYPE_CHECKING:
    from store.catalog import ProjectData

__all__ = ["Backoff", "Change", "FeedEntry", "FeedOp", "Pace", "ProjectSource", "raise_if_cancelling"]

EntityType = Literal["flag", "cohort", "project"]
FeedOp = Literal["upsert", "delete", "reload"]


class ProjectSource(Protocol):
    """Where whole projects are read from PostgreSQL (``PostgresRepository`` satisfies it): the syncer's full
    resync and reconciliation, and nodes starting while Redis is down."""

    async def load_projects(self) -> list[ProjectData]: ...


class Change(msgspec.Struct, frozen=True):
    """One change_log row. ``committed_at`` is the row's timestamp (epoch seconds), carried to the nodes so
    they can measure propagation lag."""

    seq: int
    project_id: int
    entity_type: EntityType
    entity_id: int
    entity_version: int
    op: Literal["upsert", "delete"]
    payload: dict[str, Any]
    committed_at: float = 0.0


class FeedEntry(msgspec.Struct, frozen=True):
    """One entry of the Redis change feed.

    ``op`` is the change's op, or ``"reload"``: the syncer rewrote a project wholesale (``project_id`` > 0:
    reload that project) or everything (``project_id`` = 0: after a full resync), and followers should reload
    rather than look for individual changes.
    """

    id: str  # Redis stream id
    prev: str  # stream id of the entry published just before this one ("0-0": the first of a new stream)
    seq: int
    project_id: int
    op: FeedOp
    entity_type: str
    entity_id: int
    version: int
    committed_at: float


class Backoff:
    """Capped exponential backoff with jitter.

    Attempt n waits a random time in [c/2, c] where c = min(cap, base·2ⁿ). The jitter spreads reconnecting
    clients apart; the lower bound keeps a retry storm from forming."""

    __slots__ = ("attempt", "base", "cap")

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Pace(msgspec.Struct, frozen=True):
    """How a reader follows a change stream: up to ``batch_size`` changes per read, at most ``wait_seconds``
    idle before it looks again (a poll, or a blocking read's limit), and after a failure it reconnects with a
    ``Backoff`` from ``backoff_base`` to ``backoff_cap`` seconds. Checked when built (``ValueError``)."""

    batch_size: int
    wait_seconds: float
    backoff_base: float
    backoff_cap: float

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.wait_seconds <= 0 or not 0 < self.backoff_base <= self.backoff_cap:
            raise ValueError("need batch_size >= 1, wait_seconds > 0 and 0 < backoff_base <= backoff_cap")

    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base, self.backoff_cap)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a client library swallowed (turned into a connection error, or lost in
    a timeout race on Python 3.11): a task asked to stop must stop, not reconnect forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
