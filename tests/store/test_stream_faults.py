"""Random edit sequences with faults injected between them (syncer restart, LISTEN connection killed, Redis
flushed, changes delivered twice): Redis and a node's catalog always end equal to PostgreSQL, and the feed
carries every change once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.catalog import Catalog
from store.redis.feed import Change
from store.redis.flag_store import SKIPPED, RedisFlagStore
from store.stream.node import NodeFollower
from store.stream.syncer import SYNCER_LOCK
from tests.store.streams import StreamEnv, flag_data, follower_pace, node_matches_pg, stream_env, wait_until

pytestmark = pytest.mark.integration

USERS = ["u1", "u2", "u3"]

edit = st.one_of(
    st.tuples(st.just("create"), st.sampled_from([0, 30, 100])),
    st.tuples(st.just("update"), st.integers(0, 9), st.sampled_from([0, 50, 100])),
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.tuples(st.just("cohort"), st.lists(st.sampled_from(USERS), unique=True)),
    st.tuples(st.just("members"), st.lists(st.sampled_from(USERS), unique=True)),
    st.tuples(st.just("cohort_flag")),
)
fault = st.sampled_from([("restart_syncer",), ("drop_listen",), ("flush_redis",), ("duplicate",)])
scripts = st.lists(st.one_of(edit, edit, fault), min_size=1, max_size=12)


class Run:
    """One example: a fresh project, a running syncer and node, and the entities created so far."""

    def __init__(self, env: StreamEnv, project_id: int) -> None:
        self.env = env
        self.project_id = project_id
        self.flags: list[Any] = []
        self.cohorts: list[Any] = []
        self.syncer_task = env.start(env.syncer(wait_seconds=0.2, lock_retry_seconds=0.1, backoff_cap=0.2))

    async def apply(self, step: tuple[Any, ...]) -> None:
        repo, pid, kind = self.env.repo, self.project_id, step[0]
        live = [f for f in self.flags if not f.deleted]
        if kind == "create":
            self.flags.append(await repo.create_flag(pid, flag_data(rollout=step[1]), actor="t"))
        elif kind == "update" and live:
            flag = live[step[1] % len(live)]
            new = await repo.update_flag(
                pid, flag.id, {"filters": flag_data(rollout=step[2])["filters"]}, actor="t"
            )
            self.flags[self.flags.index(flag)] = new
        elif kind == "delete" and live:
            flag = live[step[1] % len(live)]
            self.flags[self.flags.index(flag)] = await repo.delete_flag(pid, flag.id, actor="t")
        elif kind == "cohort":
            data = {"name": "static", "is_static": True, "members": step[1]}
            self.cohorts.append(await repo.create_cohort(pid, data, actor="t"))
        elif kind == "members" and self.cohorts:
            await repo.update_cohort(pid, self.cohorts[-1].id, {"members": step[1]}, actor="t")
        elif kind == "cohort_flag" and self.cohorts:
            prop = {"key": "id", "type": "cohort", "value": self.cohorts[-1].id}
            data = flag_data()
            data["filters"] = {"groups": [{"properties": [prop], "rollout_percentage": 100}]}
            self.flags.append(await repo.create_flag(pid, data, actor="t"))
        elif kind == "restart_syncer":
            await self.env.stop(self.syncer_task)
            self.syncer_task = self.env.start(self.env.syncer(wait_seconds=0.2, lock_retry_seconds=0.1))
        elif kind == "drop_listen":
            await terminate_lock_holder(self.env)
        elif kind == "flush_redis":
            await self.env.store._redis.flushall()
        elif kind == "duplicate":
            await self.deliver_twice()

    async def deliver_twice(self) -> None:
        """Re-deliver changes the syncer has already committed: to Redis (must be skipped) and to the feed
        (the node must ignore them)."""
        cursor = await self.env.store.cursor()
        if not cursor:
            return
        rows = [r for r in await self.env.repo.changes_since(0, 10_000) if r.seq <= cursor][-3:]
        changes = [
            Change(
                seq=r.seq,
                project_id=r.project_id,
                entity_type=r.entity_type,
                entity_id=r.entity_id,
                entity_version=r.entity_version,
                op=r.op,
                payload=r.payload,
            )
            for r in rows
        ]
        assert await self.env.store.apply(changes) == [SKIPPED] * len(changes)
        for c in changes:
            entry_id = await self.env.store._publish_one(
                keys=[self.env.store.feed_key],
                args=[
                    self.env.store.feed_maxlen,
                    c.seq,
                    c.project_id,
                    c.op,
                    c.entity_type,
                    c.entity_id,
                    c.entity_version,
                    0,
                ],
            )
            self.env.injected.add(entry_id.decode())


async def terminate_lock_holder(env: StreamEnv) -> None:
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            SYNCER_LOCK,
        )
    finally:
        await conn.close()


async def feed_seqs(env: StreamEnv, injected: set[str]) -> tuple[list[int], list[int]]:
    """(published, expected): since the last full resync the feed must carry each later change_log seq
    exactly once, in order."""
    entries = [e for e in await env.store.feed_entries() if e.id not in injected]
    resyncs = [i for i, e in enumerate(entries) if e.op == "reload" and e.project_id == 0]
    start = resyncs[-1] if resyncs else -1
    since = entries[start].seq if resyncs else 0
    published = [e.seq for e in entries[start + 1 :] if e.op != "reload"]
    expected = [r.seq for r in await env.repo.changes_since(since, 100_000)]
    return published, expected


@pytest.fixture
async def shared(database_url: str, redis_url: str) -> Any:
    async with stream_env(database_url, redis_url) as env:
        yield env


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=scripts)
async def test_random_edits_and_faults_converge(shared: StreamEnv, script: list[tuple[Any, ...]]) -> None:
    """Whatever the edits and faults, Redis and the node end equal to PostgreSQL, with no change lost or
    published twice."""
    env = shared
    project = (await env.repo.create_project("p", actor="t")).project
    run = Run(env, project.id)
    node_store = RedisFlagStore(env.redis_url, socket_timeout=0.5)
    catalog = Catalog()
    follower = NodeFollower(node_store, catalog, fallback=env.repo, pace=follower_pace(0.1, backoff_cap=0.2))
    await follower.start()
    node_task = asyncio.create_task(follower.run())
    try:
        for step in script:
            await run.apply(step)
        await env.synced(within=10)
        await wait_until(env.redis_matches_pg, timeout=10)
        await wait_until(lambda: node_matches_pg(catalog, env.repo), timeout=10)
        published, expected = await feed_seqs(env, env.injected)
        assert published == expected
    finally:
        node_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node_task
        await node_store.close()
        await env.stop(run.syncer_task)
        env.tasks.clear()
