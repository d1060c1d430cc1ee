"""The syncer against real PostgreSQL and Redis: real edits -> change_log -> syncer -> Redis and its feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from store.stream.syncer import SYNCER_LOCK
from tests.store.streams import StreamEnv, flag_data, stream_env, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def env(database_url: str, redis_url: str) -> AsyncIterator[StreamEnv]:
    async with stream_env(database_url, redis_url) as e:
        yield e


async def change_seqs(env: StreamEnv) -> list[int]:
    conn = await asyncpg.connect(env.dsn)
    try:
        return [r["seq"] for r in await conn.fetch("SELECT seq FROM change_log ORDER BY seq")]
    finally:
        await conn.close()


async def published_seqs(env: StreamEnv) -> list[int]:
    return [e.seq for e in await env.store.feed_entries() if e.op != "reload"]


async def expected_seqs(env: StreamEnv) -> list[int]:
    """change_log seqs the feed must carry: those after the last full resync (which covered the rest)."""
    resyncs = [e.seq for e in await env.store.feed_entries() if e.op == "reload" and e.project_id == 0]
    start = resyncs[-1] if resyncs else 0
    return [s for s in await change_seqs(env) if s > start]


async def lock_holder(env: StreamEnv) -> int | None:
    conn = await asyncpg.connect(env.dsn)
    try:
        return await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            SYNCER_LOCK,
        )
    finally:
        await conn.close()


async def edit_many(env: StreamEnv, project_id: int, n: int) -> None:
    flags = [await env.repo.create_flag(project_id, flag_data(), actor="test") for _ in range(3)]
    for i in range(n):
        flag = flags[i % 3]
        flag = await env.repo.update_flag(
            project_id, flag.id, {"filters": flag_data(rollout=i % 101)["filters"]}, actor="test"
        )
        flags[i % 3] = flag


async def test_edits_reach_redis_and_the_feed_in_commit_order(env: StreamEnv) -> None:
    """Every committed change lands in Redis, and the feed carries each seq once, in order."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer()
    env.start(syncer)
    await wait_until(lambda: syncer.active)
    await edit_many(env, project.id, 10)
    await env.synced()
    assert await env.redis_matches_pg()
    assert await published_seqs(env) == await expected_seqs(env)
    assert await env.store.project_for_token(project.api_token) == project.id


async def test_nothing_is_applied_twice_or_skipped(env: StreamEnv) -> None:
    """A restarted syncer resumes at its cursor: no change is re-applied or re-published, none is missed."""
    project = (await env.repo.create_project("p", actor="test")).project
    first = env.syncer(batch_size=7)
    task = env.start(first)
    await env.synced()  # the first start resyncs from PostgreSQL; count the changes after that
    await edit_many(env, project.id, 20)
    await env.synced()
    total = len(await expected_seqs(env))
    assert (first.stats.applied, first.stats.skipped) == (total, 0)
    await env.stop(task)
    await edit_many(env, project.id, 5)
    second = env.syncer(batch_size=7)
    env.start(second)
    await env.synced()
    assert (second.stats.applied, second.stats.skipped) == (len(await expected_seqs(env)) - total, 0)
    assert await published_seqs(env) == await expected_seqs(env)
    assert await env.redis_matches_pg()


async def test_a_syncer_killed_between_apply_and_commit_loses_nothing(env: StreamEnv) -> None:
    """Changes applied to Redis by a syncer that died before committing are published by the next one."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer()
    task = env.start(syncer)
    await env.synced()
    await env.stop(task)
    cursor = await env.store.cursor()
    assert cursor is not None
    await edit_many(env, project.id, 6)
    # The dead syncer's half-done batch: applied, never committed.
    rows = await env.repo.changes_since(cursor, 1000)
    from store.redis.feed import Change

    await env.store.apply(
        [
            Change(
                seq=r.seq,
                project_id=r.project_id,
                entity_type=r.entity_type,
                entity_id=r.entity_id,
                entity_version=r.entity_version,
                op=r.op,
                payload=r.payload,
            )
            for r in rows[:4]
        ]
    )
    successor = env.syncer()
    env.start(successor)
    await env.synced()
    assert (successor.stats.applied, successor.stats.skipped) == (len(rows) - 4, 4)
    assert await published_seqs(env) == await expected_seqs(env)
    assert await env.redis_matches_pg()


async def test_syncer_cancelled_mid_stream_and_restarted(env: StreamEnv) -> None:
    """Cancelling the syncer while edits stream in and starting another loses and duplicates nothing."""
    project = (await env.repo.create_project("p", actor="test")).project
    task = env.start(env.syncer(batch_size=2))
    editing = asyncio.create_task(edit_many(env, project.id, 30))
    await wait_until(lambda: env.store.cursor(), timeout=5)
    await env.stop(task)
    await editing
    env.start(env.syncer(batch_size=2))
    await env.synced()
    assert await published_seqs(env) == await expected_seqs(env)
    assert await env.redis_matches_pg()


async def test_dropped_listen_connection_reconnects_and_catches_up(env: StreamEnv) -> None:
    """Terminating the syncer's LISTEN/lock connection: it reconnects, retakes the lock and catches up."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer()
    env.start(syncer)
    await env.synced()
    pid = await lock_holder(env)
    assert pid is not None
    conn = await asyncpg.connect(env.dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()
    await env.repo.create_flag(project.id, flag_data("after-drop"), actor="test")
    await env.synced(within=8)
    assert await env.redis_matches_pg()
    await wait_until(lambda: syncer.active)
    new_pid = await lock_holder(env)
    assert new_pid not in (None, pid)
    assert syncer.last_error is not None


async def test_only_one_syncer_applies_and_a_standby_takes_over(env: StreamEnv) -> None:
    """With two syncers one is active and one standby; stopping the active one hands over within seconds."""
    project = (await env.repo.create_project("p", actor="test")).project
    first, second = env.syncer(), env.syncer()
    first_task = env.start(first)
    await wait_until(lambda: first.active)
    env.start(second)
    await wait_until(lambda: second.role == "standby")
    await edit_many(env, project.id, 5)
    await env.synced()
    assert second.stats.applied == 0
    assert not second.active
    await env.stop(first_task)
    await wait_until(lambda: second.active, timeout=5)
    await env.repo.create_flag(project.id, flag_data("after-failover"), actor="test")
    await env.synced()
    assert second.stats.applied == 1
    assert await published_seqs(env) == await expected_seqs(env)
    assert await env.redis_matches_pg()


async def test_flushed_redis_is_rebuilt_from_postgres(env: StreamEnv) -> None:
    """After FLUSHALL the cursor is gone: the syncer resyncs everything and tells nodes to reload."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer(wait_seconds=0.2)
    env.start(syncer)
    await edit_many(env, project.id, 5)
    await env.synced()
    await env.store._redis.flushall()
    await wait_until(env.redis_matches_pg, timeout=5)
    assert syncer.stats.resyncs >= 2  # the first start (empty Redis) and the flush
    assert [e.op for e in await env.store.feed_entries()] == ["reload"]


async def test_reconciliation_heals_drift(env: StreamEnv) -> None:
    """A flag missing from Redis (the cursor intact) is restored by the periodic reconciliation."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer(reconcile_seconds=0.3)
    env.start(syncer)
    await edit_many(env, project.id, 3)
    await env.synced()
    _, _, flags_key, _, _ = env.store.project_keys(project.id)
    victim = (await env.repo.list_flags(project.id)).items[0]
    await env.store._redis.hdel(flags_key, str(victim.id))
    assert not await env.redis_matches_pg()
    await wait_until(env.redis_matches_pg, timeout=5)
    assert syncer.stats.healed == 1
    reloads = [e for e in await env.store.feed_entries() if e.op == "reload"]
    assert [e.project_id for e in reloads][-1] == project.id


async def test_a_lost_notify_is_caught_by_the_poll(env: StreamEnv) -> None:
    """With NOTIFY silenced the syncer still applies new changes, from its periodic catch-up."""
    project = (await env.repo.create_project("p", actor="test")).project
    syncer = env.syncer(wait_seconds=0.3)
    env.start(syncer)
    await env.synced()
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute("ALTER TABLE change_log DISABLE TRIGGER change_log_notify")
        await env.repo.create_flag(project.id, flag_data("unannounced"), actor="test")
        await env.synced(within=3)
    finally:
        await conn.execute("ALTER TABLE change_log ENABLE TRIGGER change_log_notify")
        await conn.close()
    assert await env.redis_matches_pg()


async def test_sync_once_respects_the_lock(env: StreamEnv) -> None:
    """sync_once does nothing while another syncer holds the lock, and catches up fully once it is free."""
    project = (await env.repo.create_project("p", actor="test")).project
    await env.repo.create_flag(project.id, flag_data(), actor="test")
    holder = await asyncpg.connect(env.dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", SYNCER_LOCK)
        assert not await env.syncer().sync_once()
        assert await env.store.cursor() is None
    finally:
        await holder.close()
    assert await env.syncer().sync_once()
    assert await env.redis_matches_pg()
