"""RedisFlagStore against a real Redis: idempotent, version-checked applies, the feed and the cursor."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import StoreTimeout, StoreUnavailable
from store.redis.feed import Change
from store.redis.flag_store import APPLIED, CURSOR_LOST, CURSOR_MOVED, SKIPPED, RedisFlagStore
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def project_change(seq: int, pid: int = 1, version: int = 1, token: str = "phc_a") -> Change:
    payload = {
        "id": pid,
        "api_token": token,
        "secret_token_hash": "ab" * 32,
        "group_type_mapping": {"0": "company"},
        "version": version,
    }
    return Change(
        seq=seq,
        project_id=pid,
        entity_type="project",
        entity_id=pid,
        entity_version=version,
        op="upsert",
        payload=payload,
        committed_at=1.0,
    )


def flag_change(
    seq: int, flag_id: int, version: int, *, pid: int = 1, deleted: bool = False, rollout: int = 100
) -> Change:
    payload = {
        "id": flag_id,
        "team_id": pid,
        "key": f"flag-{flag_id}",
        "name": "",
        "active": True,
        "deleted": deleted,
        "version": version,
        "bucketing": "murmur3",
        "ensure_experience_continuity": False,
        "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]},
    }
    return Change(
        seq=seq,
        project_id=pid,
        entity_type="flag",
        entity_id=flag_id,
        entity_version=version,
        op="delete" if deleted else "upsert",
        payload=payload,
        committed_at=2.0,
    )


def cohort_change(
    seq: int, cohort_id: int, version: int, members: list[str] | None, *, deleted: bool = False
) -> Change:
    payload: dict[str, Any] = {
        "id": cohort_id,
        "name": "c",
        "filters": {},
        "is_static": members is not None,
        "deleted": deleted,
        "version": version,
    }
    if members is not None:
        payload["members"] = members
    return Change(
        seq=seq,
        project_id=1,
        entity_type="cohort",
        entity_id=cohort_id,
        entity_version=version,
        op="delete" if deleted else "upsert",
        payload=payload,
    )


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisFlagStore]:
    s = RedisFlagStore(redis_url)
    yield s
    await s.close()


async def test_apply_then_load_returns_the_flag(store: RedisFlagStore) -> None:
    """A project and a flag applied in order are loaded back with the project's applied seq as version."""
    assert await store.apply([project_change(1), flag_change(2, 10, 1, rollout=30)]) == [APPLIED, APPLIED]
    data = await store.load_project(1)
    assert data is not None
    assert data.version == 2
    assert data.api_token == "phc_a"
    assert data.group_type_mapping == {"0": "company"}
    assert [f["filters"]["groups"][0]["rollout_percentage"] for f in data.flags] == [30]
    assert await store.project_for_token("phc_a") == 1


async def test_replayed_change_is_skipped(store: RedisFlagStore) -> None:
    """Applying the same changes twice changes nothing the second time."""
    changes = [project_change(1), flag_change(2, 10, 1), flag_change(3, 10, 2, rollout=5)]
    assert await store.apply(changes) == [APPLIED] * 3
    before = await store.load_project(1)
    assert await store.apply(changes) == [SKIPPED] * 3
    assert await store.load_project(1) == before


async def test_older_entity_version_never_overwrites(store: RedisFlagStore) -> None:
    """A change carrying an older entity version is skipped even when its seq is new (after a rewrite)."""
    await store.apply([project_change(1), flag_change(5, 10, 3, rollout=70)])
    assert await store.apply([flag_change(6, 10, 2, rollout=1)]) == [SKIPPED]
    data = await store.load_project(1)
    assert data is not None
    assert data.flags[0]["version"] == 3
    assert data.flags[0]["filters"]["groups"][0]["rollout_percentage"] == 70


async def test_delete_is_a_tombstone(store: RedisFlagStore) -> None:
    """A deleted flag disappears from loads and a replay of its creation does not bring it back."""
    create = flag_change(2, 10, 1)
    await store.apply([project_change(1), create, flag_change(3, 10, 2, deleted=True)])
    assert await store.apply([create]) == [SKIPPED]
    data = await store.load_project(1)
    assert data is not None
    assert data.flags == []


async def test_static_cohort_members_travel_with_the_cohort(store: RedisFlagStore) -> None:
    """Static members are stored from the payload, replaced on update and dropped on delete."""
    await store.apply([project_change(1), cohort_change(2, 7, 1, ["u2", "u1"])])
    data = await store.load_project(1)
    assert data is not None
    assert data.static_members == {"7": ["u1", "u2"]}
    assert "members" not in data.cohorts[0]
    await store.apply([cohort_change(3, 7, 2, ["u3"])])
    data = await store.load_project(1)
    assert data is not None
    assert data.static_members == {"7": ["u3"]}
    await store.apply([cohort_change(4, 7, 3, ["u3"], deleted=True)])
    data = await store.load_project(1)
    assert data is not None
    assert (data.cohorts, data.static_members) == ([], {})


async def test_commit_publishes_a_chained_feed_and_moves_the_cursor(store: RedisFlagStore) -> None:
    """Committed entries form a chain (each names its predecessor) and the cursor moves once."""
    await store.reset_cursor(0)
    changes = [project_change(1), flag_change(2, 10, 1)]
    assert await store.commit(0, 2, changes) == 1
    assert await store.cursor() == 2
    entries = await store.feed_entries()
    assert [(e.op, e.seq) for e in entries] == [("reload", 0), ("upsert", 1), ("upsert", 2)]
    assert [e.prev for e in entries] == ["0-0", entries[0].id, entries[1].id]
    assert entries[2].committed_at == 2.0


async def test_commit_refuses_a_moved_or_lost_cursor(store: RedisFlagStore) -> None:
    """A stale expected cursor or a vanished cursor publishes nothing and leaves the cursor alone."""
    assert await store.commit(0, 1, [project_change(1)]) == CURSOR_LOST
    assert await store.feed_entries() == []
    await store.reset_cursor(5)
    assert await store.commit(3, 6, [flag_change(6, 10, 1)]) == CURSOR_MOVED
    assert await store.cursor() == 5
    assert len(await store.feed_entries()) == 1


async def test_load_all_refuses_an_unsynced_redis(store: RedisFlagStore) -> None:
    """Without a cursor load_all says "not synced" (None) rather than "no projects"."""
    await store.apply([project_change(1)])
    assert await store.load_all() is None
    await store.reset_cursor(1)
    loaded = await store.load_all()
    assert loaded is not None
    assert [p.project_id for p in loaded] == [1]


async def test_replace_project_rewrites_but_never_goes_back(store: RedisFlagStore) -> None:
    """replace_project drops what PostgreSQL no longer has, and refuses data older than what is stored."""
    await store.apply([project_change(1), flag_change(2, 10, 1), flag_change(3, 11, 1)])
    data = await store.load_project(1)
    assert data is not None
    healed = data.__class__(
        **{**{f: getattr(data, f) for f in data.__struct_fields__}, "flags": data.flags[:1], "version": 3}
    )
    assert await store.replace_project(healed)
    assert await store.load_project(1) == healed
    older = healed.__class__(
        **{**{f: getattr(healed, f) for f in healed.__struct_fields__}, "version": 2, "flags": []}
    )
    assert not await store.replace_project(older)
    assert await store.load_project(1) == healed


async def test_feed_read_blocks_until_an_entry_arrives(store: RedisFlagStore) -> None:
    """read_feed returns entries after the given id, and an empty list when none came within the block."""
    await store.reset_cursor(0)
    tail = await store.feed_tail()
    assert await store.read_feed(tail, block_ms=50) == []
    await store.commit(0, 1, [project_change(1)])
    entries = await store.read_feed(tail, block_ms=50)
    assert [(e.seq, e.prev) for e in entries] == [(1, tail)]


async def test_unreachable_redis_raises_store_unavailable() -> None:
    """Talking to a closed port raises StoreUnavailable, not a redis-py exception."""
    s = RedisFlagStore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await s.load_all()
    finally:
        await s.close()


edits = st.lists(st.tuples(st.integers(1, 3), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, seed=st.integers(0, 2**32))
async def test_any_delivery_order_converges_to_the_in_order_state(
    store: RedisFlagStore, edits: list[tuple[int, bool]], seed: int
) -> None:
    """Delivering changes reordered and duplicated ends in the state of delivering them once, in order,
    as long as each is eventually delivered after its predecessors (the syncer's guarantee)."""
    await store._redis.flushall()
    versions: dict[int, int] = {}
    changes = [project_change(1)]
    for seq, (flag_id, delete) in enumerate(edits, start=2):
        versions[flag_id] = versions.get(flag_id, 0) + 1
        changes.append(flag_change(seq, flag_id, versions[flag_id], deleted=delete))
    await store.apply(changes)
    expected = await store.load_project(1)
    await store._redis.flushall()
    rng = random.Random(seed)
    # Replays of already-delivered prefixes, shuffled, interleaved with the in-order stream.
    for n in range(1, len(changes) + 1):
        replay = [c for c in changes[:n] if rng.random() < 0.5]
        rng.shuffle(replay)
        await store.apply([*replay, changes[n - 1]])
    assert await store.load_project(1) == expected


async def test_a_stalled_redis_raises_store_timeout(own_redis: RedisServer) -> None:
    """A Redis that accepts connections but never answers raises StoreTimeout within the socket timeout."""
    s = RedisFlagStore(own_redis.url, socket_timeout=0.3)
    try:
        await s.ping()
        own_redis.pause()
        try:
            with pytest.raises(StoreTimeout):
                await s.load_all()
        finally:
            own_redis.resume()
    finally:
        await s.close()


async def test_property_matching_version_travels_with_the_project(store: RedisFlagStore) -> None:
    """A project's property matching version survives both ways into Redis: a project change and a full
    replace; a project without one reads as 1."""
    await store.apply([project_change(1)])
    data = await store.load_project(1)
    assert data is not None
    assert data.property_matching_version == 1
    change = project_change(2, version=2)
    change = Change(**{**{f: getattr(change, f) for f in change.__struct_fields__},
                       "payload": {**change.payload, "property_matching_version": 2}})  # fmt: skip
    await store.apply([change])
    data = await store.load_project(1)
    assert data is not None
    assert data.property_matching_version == 2
    replaced = data.__class__(
        **{
            **{f: getattr(data, f) for f in data.__struct_fields__},
            "version": 3,
            "property_matching_version": 1,
        }
    )
    assert await store.replace_project(replaced)
    assert await store.load_project(1) == replaced
