"""Redis specifics of the person store: key layout and TTLs, bucket expiry, coalesced reads, merge chains."""

from __future__ import annotations

import asyncio

import redis

from store.persons import PersonView, ReadRequest, StoreSettings
from store.persons.redis import RedisPersonStore
from tests.servers import RedisServer
from tests.store.persons.conftest import Backend, feed, new_project
from tests.store.persons.strategies import NOW, event, pageviews


def test_person_keys_are_hash_tagged_per_person_and_expire_after_the_ttl(redis_srv: RedisServer) -> None:
    """A person's hash and dedupe set share the tag {p<project>:<id>} and expire after the person TTL."""
    project = new_project()

    async def body(store: RedisPersonStore) -> None:
        await feed(store, project, [event("$pageview", "u", {"$set": {"a": 1}}, uuid="e1")], now=NOW)

    Backend("redis", redis_srv.url).run(body, StoreSettings(person_ttl_seconds=5 * 86400))
    client = redis.Redis.from_url(redis_srv.url)
    try:
        assert 4 * 86400 < client.ttl(f"flagd:P{{p{project}:u}}") <= 5 * 86400
        assert 0 < client.ttl(f"flagd:U{{p{project}:u}}") <= 86400
    finally:
        client.close()


def test_a_dedupe_set_always_has_a_ttl(redis_srv: RedisServer) -> None:
    """Every way a person's dedupe set comes into being leaves it expiring: a first uuid after writes
    without one, a uuid within minutes of the last roll-up, and a uuid after the roll-up emptied the set."""
    project = new_project()
    client = redis.Redis.from_url(redis_srv.url)
    dedupe_key = f"flagd:U{{p{project}:u}}"

    async def body(store: RedisPersonStore) -> list[int]:
        ttls = []
        await feed(store, project, [event("$pageview", "u")], now=NOW)  # rolls up; no uuid, no set
        await feed(store, project, [event("$pageview", "u", uuid="e1")], now=NOW + 10)
        ttls.append(client.ttl(dedupe_key))
        later = NOW + 3 * 3600  # past the dedupe period: the roll-up empties (deletes) the set
        await feed(store, project, [event("$pageview", "u", at=later)], now=later)
        ttls.append(client.exists(dedupe_key))
        await feed(store, project, [event("$pageview", "u", uuid="e2", at=later)], now=later + 10)
        ttls.append(client.ttl(dedupe_key))
        return ttls

    try:
        first, exists, again = Backend("redis", redis_srv.url).run(body, StoreSettings(dedupe_seconds=3600))
    finally:
        client.close()
    assert 0 < first <= 3600
    assert exists == 0
    assert 0 < again <= 3600


def test_old_buckets_are_deleted_once_past_their_retention(redis_srv: RedisServer) -> None:
    """A bucket older than the retention is dropped by a later write to the person (not rolled up)."""
    project = new_project()
    retention = 86400

    async def body(store: RedisPersonStore) -> None:
        await feed(store, project, [event("$pageview", "u", at=NOW)], now=NOW, retention=retention)
        later = NOW + 40 * 86400
        await feed(store, project, [event("$pageview", "u", at=later)], now=later, retention=retention)

    Backend("redis", redis_srv.url).run(body)
    client = redis.Redis.from_url(redis_srv.url)
    try:
        fields: list[bytes] = client.hkeys(f"flagd:P{{p{project}:u}}")  # type: ignore[assignment]
        buckets = [f for f in fields if f.startswith(b"b")]
    finally:
        client.close()
    # Only the later event's 1-second bucket: the first event's rolled up past the retention and was dropped.
    assert len(buckets) == 1
    assert buckets[0][9:10] == b"0"


def test_concurrent_reads_on_a_worker_share_one_redis_call(redis_srv: RedisServer) -> None:
    """Fifty flag-time reads issued in one loop turn go to Redis as one script call, each answered."""
    project = new_project()
    q = pageviews(300)

    async def body(store: RedisPersonStore) -> tuple[list[PersonView], int]:
        await feed(
            store, project, [event("$pageview", f"u{i}", {"$set": {"i": i}}) for i in range(50)], now=NOW
        )
        before = store.flushes
        views = await asyncio.gather(
            *(
                store.read(ReadRequest(project, f"u{i}", (), (q,)), now=NOW, retention=86400)
                for i in range(50)
            )
        )
        return list(views), store.flushes - before

    views, flushes = Backend("redis", redis_srv.url).run(body)
    assert flushes == 1
    assert [v.properties["i"] for v in views] == list(range(50))
    assert all(v.behaviour[q.key] == 1 for v in views)


def test_a_chain_of_merges_resolves_from_any_id(redis_srv: RedisServer) -> None:
    """a merged into b, then b into c (a fresh client, no alias cache): reading a gives c's person."""
    project = new_project()
    q = pageviews(300)

    async def write(store: RedisPersonStore) -> None:
        await feed(store, project, [event("$pageview", "a", {"$set": {"from_a": 1}})], now=NOW)
        await feed(store, project, [event("$identify", "b", {"$anon_distinct_id": "a"})], now=NOW)
        await feed(store, project, [event("$create_alias", "c", {"alias": "b"})], now=NOW)
        await feed(store, project, [event("$pageview", "a")], now=NOW)

    async def read(store: RedisPersonStore) -> PersonView:
        return await store.read(ReadRequest(project, "a", (), (q,)), now=NOW, retention=86400)

    backend = Backend("redis", redis_srv.url)
    backend.run(write)
    view = backend.run(read)
    assert view.properties == {"from_a": 1}
    assert view.behaviour[q.key] == 2
