"""Person store backends for tests: the session Redis, a session Redis Cluster (3 shards) and a SQLite file,
behind one small runner."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from store.persons import PersonStore, StoreSettings
from store.persons.ingest import Event, ingest
from store.persons.redis import RedisPersonStore
from store.persons.sqlite import SqlitePersonStore
from tests.redis_topology import Cluster, redis_cluster
from tests.servers import RedisServer

T = TypeVar("T")
RETENTION = 400 * 86400
_projects = itertools.count(1)


def new_project() -> int:
    """A project id no other example used (so examples share one server without flushing)."""
    return next(_projects)


class Backend:
    """Opens a fresh store client per ``run`` (each example runs in its own event loop)."""

    def __init__(self, kind: str, where: str) -> None:
        self.kind = kind
        self.where = where

    async def open(self, settings: StoreSettings | None = None) -> PersonStore:
        if self.kind in ("redis", "cluster"):
            return RedisPersonStore(self.where, settings=settings)
        return await SqlitePersonStore.open(self.where, settings)

    def run(self, body: Callable[[Any], Awaitable[T]], settings: StoreSettings | None = None) -> T:
        async def main() -> T:
            store = await self.open(settings)
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())


async def feed(
    store: PersonStore,
    project_id: int,
    events: Sequence[dict[str, Any]],
    *,
    now: int,
    retention: int = RETENTION,
    counters: dict[str, Any] | None = None,
) -> None:
    """Ingest ``events`` as one batch and apply them at ``now``."""
    ingested = ingest(
        msgspec.convert(events, list[Event]),
        [f"batch[{i}]" for i in range(len(events))],
        counters or {},
        now_ms=now * 1000,
        oldest_ms=(now - retention) * 1000,
        max_distinct_id_chars=200,
        max_value_chars=10_000,
        max_person_properties=1000,
    )
    await store.apply(project_id, ingested.steps, now=now, retention=retention)


@pytest.fixture(scope="session")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("persons") / "flagd.persons.db"


@pytest.fixture(scope="session")
def person_cluster() -> Iterator[Cluster]:
    """A throwaway 3-shard Redis Cluster (no replicas) for the whole session."""
    with redis_cluster(3, 0) as cluster:
        yield cluster


@pytest.fixture(params=["redis", "cluster", "sqlite"])
def backend(request: pytest.FixtureRequest, redis_srv: RedisServer, sqlite_path: Path) -> Iterator[Backend]:
    """Each person store backend in turn (real Redis, real Redis Cluster, real SQLite file)."""
    if request.param == "redis":
        yield Backend("redis", redis_srv.url)
    elif request.param == "cluster":
        yield Backend("cluster", request.getfixturevalue("person_cluster").url)
    else:
        yield Backend("sqlite", str(sqlite_path))
