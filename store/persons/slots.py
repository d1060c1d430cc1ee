"""Script calls grouped per Cluster slot, and Redis errors as the store's errors.

On a single Redis a person store call is one script over every key it needs; on a Redis Cluster a script may
only touch keys of one slot, so a call becomes one script per slot (``ReadCall``, ``WriteCall``), sent in one
pipeline by ``per_slot``: a round trip and a connection per shard. (Sending the scripts concurrently instead
would open a connection per script, and redis-py's cluster client then reconnects under load.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.commands.core import AsyncScript

from evaluator.behaviour import BehaviourQuery
from store.errors import StoreTimeout, StoreUnavailable
from store.persons.windows import counter_token, firsts
from store.servers.connections import AnyRedis

__all__ = ["ReadCall", "WriteCall", "failure", "per_slot", "text", "translated"]


def failure(what: str, exc: Exception) -> Exception:
    """A Redis error as the store's error (others pass through)."""
    if isinstance(exc, redis_errors.TimeoutError | TimeoutError):
        return StoreTimeout(f"Redis timed out during {what}")
    if isinstance(exc, redis_errors.RedisError | OSError):
        return StoreUnavailable(f"Redis failed during {what}: {exc}")
    return exc


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except (redis_errors.RedisError, OSError) as exc:
        raise failure(what, exc) from exc


async def per_slot(
    client: AnyRedis, script: AsyncScript, calls: list[tuple[list[str], list[Any]]]
) -> list[Any]:
    """``script`` once per (keys, args) call: one call as it is; several (one per slot, on a Cluster) in one
    pipeline, a round trip and a connection per shard (calls sent concurrently would open a connection
    each). A call that failed answers its exception; if all failed, the first is raised."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await script(keys=keys, args=args, client=client)]
    answers: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        # redis-py blocks pipe.evalsha on a Cluster (it cannot retry NOSCRIPT there): done here, and only
        # the calls that met NOSCRIPT are sent again (a WRITE that ran must not run twice).
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                keys, args = calls[i]
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            for i, answer in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                answers[i] = answer
        todo = [i for i in todo if isinstance(answers[i], redis_errors.NoScriptError)]
        if not todo or attempt:
            break
        await client.script_load(script.script)  # to every primary
    errors = [a for a in answers if isinstance(a, Exception)]
    if errors and len(errors) == len(answers):
        raise errors[0]
    return answers


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _plan(query: BehaviourQuery, now: int) -> tuple[str | int, ...]:
    return (counter_token(query.counter), *firsts(query, now))


class ReadCall:
    """One ``READ`` script call: person hashes (with the distinct count plans they need) and group hashes."""

    __slots__ = ("answer", "groups", "index_of", "persons", "plans", "wanted")

    def __init__(self) -> None:
        self.persons: list[str] = []
        self.groups: list[str] = []
        # Distinct (query, now) plans, sent once: concurrent checks of one project ask the same queries.
        self.plans: list[tuple[str | int, ...]] = []
        self.index_of: dict[tuple[str, int], int] = {}
        self.wanted: list[list[int]] = []  # per person: its queries' plan indexes
        self.answer: Any = None

    def add_person(self, key: str, queries: Sequence[BehaviourQuery], now: int) -> int:
        indexes = []
        for q in queries:
            at = self.index_of.get((q.key, now))
            if at is None:
                at = self.index_of[(q.key, now)] = len(self.plans)
                self.plans.append(_plan(q, now))
            indexes.append(at)
        self.persons.append(key)
        self.wanted.append(indexes)
        return len(self.persons) - 1


class WriteCall:
    """One ``WRITE`` script call: its keys, the entries (persons and groups) and whose each entry is."""

    __slots__ = ("entries", "keys", "owners")

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.entries: list[Any] = []
        self.owners: list[str | None] = []
