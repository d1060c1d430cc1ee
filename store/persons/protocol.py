"""``PersonStore``: what event intake and flag checks need from a person store (Redis or embedded SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from store.persons.model import PersonView, ReadRequest, Step

__all__ = ["PersonStore", "SeenPerson", "StoreSettings"]


class StoreSettings(msgspec.Struct, frozen=True):
    """How long things live, and the per-person bound (read once from ``flagd.settings``)."""

    person_ttl_seconds: int = 90 * 86400
    dedupe_seconds: int = 24 * 3600  # how long an event uuid is remembered (SDK retries count once)
    max_person_properties: int = 1000


class SeenPerson(msgspec.Struct, frozen=True):
    distinct_id: str
    last_seen: int  # epoch seconds
    properties: dict[str, Any]


class PersonStore(Protocol):
    """Persons, groups and behaviour counts. Every method raises ``StoreUnavailable`` when the store fails."""

    async def apply(self, project_id: int, steps: Sequence[Step], *, now: int, retention: int) -> None:
        """Apply ``steps`` in order; on return every change is visible to ``read`` on any node.

        ``now`` is the ingest time (epoch seconds); ``retention`` how long the coarsest count buckets live.
        Raises ``PersonLimitExceeded`` (nothing of that write step applied) when a person would exceed the
        property limit.
        """
        ...

    async def read(
        self, request: ReadRequest, *, now: int, retention: int, deadline: float | None = None
    ) -> PersonView:
        """Stored properties, the requested groups' properties and the requested counts, as of ``now``.

        ``deadline`` (a ``loop.time()``) is when the caller stops waiting: a store that goes to the network
        gives up then (``StoreTimeout``) instead of keeping the server busy for nobody."""
        ...

    async def seen_persons(self, project_id: int, since_seconds: int, limit: int) -> list[SeenPerson]:
        """Persons written in the last ``since_seconds``, newest first (at most ``limit``), and properties."""
        ...

    async def track(self, project_id: int, counters: Sequence[str], now: int) -> dict[str, int]:
        """When each counter was first tracked (epoch seconds), recording ``now`` for new ones."""
        ...

    async def close(self) -> None: ...
