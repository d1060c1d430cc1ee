"""The node follower against real servers: admin edits reach a node's compiled catalog; Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from store.catalog import Catalog
from store.redis.flag_store import RedisFlagStore
from store.stream.node import NodeFollower
from tests.servers import RedisServer
from tests.store.streams import (
    StreamEnv,
    catalog_flags,
    flag_data,
    follower_pace,
    pg_flags,
    stream_env,
    wait_until,
)

pytestmark = pytest.mark.integration


class Node:
    """A follower with its own Redis connections and catalog, like a separate flagd process."""

    def __init__(self, env: StreamEnv) -> None:
        self.store = RedisFlagStore(env.redis_url, socket_timeout=0.5)
        self.catalog = Catalog()
        self.follower = NodeFollower(
            self.store, self.catalog, fallback=env.repo, pace=follower_pace(0.2, backoff_cap=0.3)
        )
        self.task: asyncio.Task[None] | None = None

    def run(self) -> None:
        self.task = asyncio.create_task(self.follower.run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.store.close()


@contextlib.asynccontextmanager
async def node_for(env: StreamEnv) -> AsyncIterator[Node]:
    node = Node(env)
    try:
        yield node
    finally:
        await node.close()


async def shows(node: Node, env: StreamEnv, project_id: int) -> bool:
    """The node's compiled answers equal what PostgreSQL says."""
    return catalog_flags(node.catalog, project_id) == await pg_flags(env.repo, project_id)


@pytest.fixture
async def env(database_url: str, redis_url: str) -> AsyncIterator[StreamEnv]:
    async with stream_env(database_url, redis_url) as e:
        yield e


@pytest.fixture
async def own_env(database_url: str, own_redis: RedisServer) -> AsyncIterator[StreamEnv]:
    async with stream_env(database_url, own_redis.url, socket_timeout=0.5) as e:
        yield e


async def test_an_edit_becomes_visible_in_the_node_catalog(env: StreamEnv) -> None:
    """Create, change and delete flags through the repository; the node's snapshot follows each step."""
    project = (await env.repo.create_project("p", actor="test")).project
    env.start(env.syncer())
    await env.synced()
    async with node_for(env) as node:
        assert await node.follower.start()
        node.run()
        flag = await env.repo.create_flag(project.id, flag_data("checkout"), actor="test")
        await wait_until(lambda: catalog_flags(node.catalog, project.id) == {"checkout": True})
        await env.repo.update_flag(
            project.id, flag.id, {"filters": flag_data(rollout=0)["filters"]}, actor="t"
        )
        await wait_until(lambda: catalog_flags(node.catalog, project.id) == {"checkout": False})
        await env.repo.delete_flag(project.id, flag.id, actor="test")
        await wait_until(lambda: catalog_flags(node.catalog, project.id) == {})
        status = node.follower.status
        assert (status.loaded, status.source, status.stale) == (True, "redis", False)
        assert status.version == await env.repo.max_seq()
        assert status.lag_seconds is not None
        assert 0 <= status.lag_seconds < 5
        state = node.catalog.by_token(project.api_token)
        assert state is not None
        assert state.project_id == project.id


async def test_a_gap_in_the_feed_triggers_a_full_reload(env: StreamEnv) -> None:
    """Entries trimmed away while the node was not reading are noticed, and it reloads everything."""
    project = (await env.repo.create_project("p", actor="test")).project
    env.start(env.syncer())
    await env.synced()
    async with node_for(env) as node:
        await node.follower.start()
        for i in range(5):
            await env.repo.create_flag(project.id, flag_data(f"f{i}"), actor="test")
        await env.synced()
        await env.store._redis.xtrim(env.store.feed_key, maxlen=1, approximate=False)
        node.run()
        await wait_until(lambda: shows(node, env, project.id))
        assert len(catalog_flags(node.catalog, project.id)) == 5


async def test_node_started_while_redis_is_down_serves_from_postgres(
    own_env: StreamEnv, own_redis: RedisServer
) -> None:
    """With Redis stopped a node loads from PostgreSQL, and switches to Redis once it is back and synced."""
    project = (await own_env.repo.create_project("p", actor="test")).project
    await own_env.repo.create_flag(project.id, flag_data("on"), actor="test")
    own_redis.stop()
    async with node_for(own_env) as node:
        assert await node.follower.start()
        assert catalog_flags(node.catalog, project.id) == {"on": True}
        status = node.follower.status
        assert (status.source, status.stale) == ("postgres", True)
        assert status.last_error is not None
        node.run()
        own_redis.start()
        own_env.start(own_env.syncer(backoff_cap=0.3))
        await wait_until(lambda: node.follower.status.source == "redis", timeout=8)
        await own_env.repo.create_flag(project.id, flag_data("later"), actor="test")
        await wait_until(lambda: shows(node, own_env, project.id))
        assert not node.follower.status.stale


async def test_node_that_loses_redis_keeps_its_snapshot_and_recovers(
    own_env: StreamEnv, own_redis: RedisServer
) -> None:
    """Redis dies: the node keeps answering from its snapshot and says it is stale; Redis comes back
    empty: the syncer rebuilds it and the node catches up with edits made meanwhile."""
    project = (await own_env.repo.create_project("p", actor="test")).project
    own_env.start(own_env.syncer(backoff_cap=0.3))
    await own_env.synced()
    async with node_for(own_env) as node:
        await node.follower.start()
        node.run()
        flag = await own_env.repo.create_flag(project.id, flag_data("kept"), actor="test")
        await wait_until(lambda: catalog_flags(node.catalog, project.id) == {"kept": True})
        own_redis.stop()
        await wait_until(lambda: node.follower.status.stale, timeout=5)
        assert node.follower.status.source == "stale"
        assert catalog_flags(node.catalog, project.id) == {"kept": True}
        await own_env.repo.update_flag(
            project.id, flag.id, {"filters": flag_data(rollout=0)["filters"]}, actor="test"
        )
        # The follower keeps retrying Redis (two more failed attempts after the edit) and keeps serving.
        attempts = node.follower._backoff.attempt
        await wait_until(lambda: node.follower._backoff.attempt >= attempts + 2, timeout=15)
        assert catalog_flags(node.catalog, project.id) == {"kept": True}
        own_redis.start()
        await wait_until(lambda: catalog_flags(node.catalog, project.id) == {"kept": False}, timeout=10)
        status = node.follower.status
        assert (status.source, status.stale) == ("redis", False)


async def test_node_does_not_trust_an_unsynced_redis(env: StreamEnv) -> None:
    """A reachable but never-synced Redis is not mistaken for "no projects": the node loads from PostgreSQL,
    then switches to Redis once the syncer has filled it."""
    project = (await env.repo.create_project("p", actor="test")).project
    await env.repo.create_flag(project.id, flag_data("from-pg"), actor="test")
    async with node_for(env) as node:
        assert await node.follower.start()
        assert node.follower.status.source == "postgres"
        assert catalog_flags(node.catalog, project.id) == {"from-pg": True}
        # Count the follower's looks at Redis (the real store answers; the count only observes).
        looks: list[object] = []
        load_all = node.follower._store.load_all

        async def counted_load_all() -> Any:
            result = await load_all()
            looks.append(result)
            return result

        node.follower._store.load_all = counted_load_all  # type: ignore[method-assign]
        node.run()
        await wait_until(lambda: len(looks) >= 1)
        assert looks[0] is None  # Redis answered "never synced"
        assert catalog_flags(node.catalog, project.id) == {"from-pg": True}
        env.start(env.syncer())
        await wait_until(lambda: node.follower.status.source == "redis")
        assert catalog_flags(node.catalog, project.id) == {"from-pg": True}
        assert not node.follower.status.stale


async def test_applied_changes_equal_a_full_reload_from_redis(env: StreamEnv) -> None:
    """After flag, static cohort and project writes, the node's data (each change applied from the changed
    entity alone) equals a full load of the project from Redis; an unchanged member set is reused."""
    project = (await env.repo.create_project("p", actor="test")).project
    pid = project.id
    env.start(env.syncer())
    await env.synced()
    async with node_for(env) as node:
        assert await node.follower.start()
        node.run()
        repo = env.repo
        members = [f"u{i}" for i in range(3000)]
        cohort = await repo.create_cohort(
            pid, {"name": "vip", "is_static": True, "members": members}, actor="t"
        )
        first = await repo.create_flag(pid, flag_data("a"), actor="t")
        await repo.update_flag(pid, first.id, {"active": False}, actor="t")
        await repo.create_flag(pid, flag_data("b"), actor="t")
        await repo.update_project(pid, actor="t", group_type_mapping={"0": "org"})
        await repo.update_cohort(pid, cohort.id, {"members": members[:10]}, actor="t")
        await caught_up(node, env, pid)
        before_flag = node.catalog.by_id(pid)
        await repo.delete_flag(pid, first.id, actor="t")
        await caught_up(node, env, pid)
        state = node.catalog.by_id(pid)
        assert state is not None
        assert state.data is not None
        reloaded = await node.store.load_project(pid)
        assert reloaded is not None
        assert state.data.version == reloaded.version
        assert sorted(state.data.flags, key=lambda f: f["id"]) == reloaded.flags
        assert sorted(state.data.cohorts, key=lambda c: c["id"]) == reloaded.cohorts
        assert state.data.static_members == reloaded.static_members
        assert state.data.group_type_mapping == reloaded.group_type_mapping == {"0": "org"}
        assert before_flag is not None
        assert state.static[str(cohort.id)] is before_flag.static[str(cohort.id)]  # a flag write kept it


async def caught_up(node: Node, env: StreamEnv, project_id: int) -> None:
    """Wait until the node has installed the project's newest change."""
    await env.synced()
    top = await env.repo.max_seq()
    await wait_until(lambda: (s := node.catalog.by_id(project_id)) is not None and s.version >= top)
