"""Helpers shared by the change-stream tests: a real repository + Redis store + syncers, and polling waits."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from store.catalog import Catalog, ProjectState, build_project_state
from store.redis.feed import Pace
from store.redis.flag_store import RedisFlagStore
from store.sql.migrate import migrate
from store.sql.postgres import PostgresRepository
from store.stream.node import FOLLOWER_PACE
from store.stream.syncer import SYNCER_PACE, Syncer, project_fingerprint

_keys = itertools.count()


def follower_pace(wait_seconds: float, backoff_cap: float) -> Pace:
    """A node follower's pace that notices news and retries sooner than the default."""
    return msgspec.structs.replace(FOLLOWER_PACE, wait_seconds=wait_seconds, backoff_cap=backoff_cap)


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until it is true; fail with a clear message after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(interval)


def flag_data(key: str | None = None, *, rollout: int = 100, active: bool = True) -> dict[str, Any]:
    """Admin input for a boolean flag without conditions (rollout 0 = off for everyone, 100 = on)."""
    return {
        "key": key or f"flag-{next(_keys)}",
        "name": "test flag",
        "active": active,
        "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]},
    }


class StreamEnv:
    """A migrated database with a repository, a Redis store, and syncers run as tasks."""

    def __init__(self, dsn: str, redis_url: str, repo: PostgresRepository, store: RedisFlagStore) -> None:
        self.dsn = dsn
        self.redis_url = redis_url
        self.repo = repo
        self.store = store
        self.tasks: list[asyncio.Task[None]] = []
        self.injected: set[str] = set()  # feed entry ids a test published itself (duplicate deliveries)

    def syncer(self, **options: Any) -> Syncer:
        """A syncer quicker to poll and to take over than the default; ``options``: ``Syncer``'s keywords and
        ``Pace``'s fields."""
        pace = {"wait_seconds": 0.5, **{k: options.pop(k) for k in Pace.__struct_fields__ if k in options}}
        options = {"lock_retry_seconds": 0.2, "reconcile_seconds": 60.0, **options}
        return Syncer(
            self.dsn, self.store, self.repo, pace=msgspec.structs.replace(SYNCER_PACE, **pace), **options
        )

    def start(self, syncer: Syncer) -> asyncio.Task[None]:
        task = asyncio.create_task(syncer.run())
        self.tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def synced(self, within: float = 5.0) -> None:
        """Wait until Redis' cursor reaches the newest change_log seq."""
        top = await self.repo.max_seq()
        await wait_until(lambda: self._cursor_at_least(top), timeout=within)

    async def _cursor_at_least(self, seq: int) -> bool:
        return (await self.store.cursor() or 0) >= seq

    async def pg_state(self) -> dict[int, Any]:
        return {p.project_id: project_fingerprint(p) for p in await self.repo.load_projects()}

    async def redis_state(self) -> dict[int, Any] | None:
        loaded = await self.store.load_all()
        if loaded is None:
            return None
        return {p.project_id: project_fingerprint(p) for p in loaded}

    async def redis_matches_pg(self) -> bool:
        return await self.redis_state() == await self.pg_state()


def catalog_flags(catalog: Catalog, project_id: int) -> dict[str, bool]:
    """Every flag of a project as the node's compiled snapshot evaluates it for one user."""
    from evaluator import Context

    state = catalog.by_id(project_id)
    if state is None:
        return {}
    return {k: d.enabled for k, d in state.snapshot.evaluate(Context(distinct_id="user-1")).items()}


async def pg_flags(repo: PostgresRepository, project_id: int) -> dict[str, bool]:
    """What the catalog should answer for a project, from PostgreSQL (rollout 100 and active = on)."""
    page = await repo.list_flags(project_id, limit=10_000)
    return {f.key: f.active and f.filters["groups"][0]["rollout_percentage"] == 100 for f in page.items}


@contextlib.asynccontextmanager
async def stream_env(
    database_url: str, redis_url: str, *, socket_timeout: float = 2.0
) -> AsyncIterator[StreamEnv]:
    await migrate(database_url)
    repo = await PostgresRepository.connect(database_url)
    store = RedisFlagStore(redis_url, socket_timeout=socket_timeout)
    env = StreamEnv(database_url, redis_url, repo, store)
    try:
        yield env
    finally:
        for task in env.tasks:
            await env.stop(task)
        await store.close()
        await repo.close()


_USERS = ("u1", "u2", "u3", "user-1")


def _answers(state: ProjectState) -> dict[tuple[str, str], tuple[bool, str | None]]:
    from evaluator import Context

    out = {}
    for user in _USERS:
        for key, d in state.snapshot.evaluate(Context(distinct_id=user)).items():
            out[(user, key)] = (d.enabled, d.variant)
    return out


async def node_matches_pg(catalog: Catalog, repo: PostgresRepository) -> bool:
    """Every project installed at PostgreSQL's version, answering like a snapshot compiled from PostgreSQL."""
    expected = await repo.load_projects()
    if {p.project_id for p in expected} != {s.project_id for s in catalog.projects()}:
        return False
    for data in expected:
        state = catalog.by_id(data.project_id)
        if state is None or state.version != data.version:
            return False
        if _answers(state) != _answers(build_project_state(data)):
            return False
    return True
