"""Read-your-writes with read replicas (real ``--replicaof`` processes): a write returns only once the
replicas have it (``WAIT``), so a node reading a replica right after sees it; a replica that does not
acknowledge in time sends this node's reads to the primary for a moment."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from store.persons import lua
from store.persons.model import ReadRequest
from store.persons.redis import RedisPersonStore
from store.servers.connections import server_name
from store.servers.hedging import HedgedReader
from tests.redis_topology import ReplicaSet, replica_set
from tests.store.persons.conftest import feed
from tests.store.test_hedging import Recorder

pytestmark = pytest.mark.integration


@pytest.fixture
def pair() -> Iterator[ReplicaSet]:
    """A throwaway primary with one replica."""
    with replica_set(1) as servers:
        yield servers


async def _plan(store: RedisPersonStore, user: str) -> object:
    view = await store.read(ReadRequest(1, user, (), (), True), now=int(time.time()), retention=86400)
    return view.properties.get("plan")


def test_a_write_returns_only_once_the_replica_has_it(pair: ReplicaSet) -> None:
    """With the replica stalled for 0.3 s, ``apply`` waits for it; right after, a node reading only that
    replica sees every write (20 rounds)."""
    replica = pair.replicas[0]

    async def main() -> None:
        writer = RedisPersonStore(pair.primary.url, replicas=pair.replica_urls, replica_wait_ms=5000)
        reader = RedisPersonStore(replica.url)  # another node, reading the replica alone
        try:
            replica.pause()
            threading.Timer(0.3, replica.resume).start()
            started = time.monotonic()
            await feed(writer, 1, [{"event": "x", "distinct_id": "u", "$set": {"plan": "stalled"}}], now=1)
            assert time.monotonic() - started >= 0.25  # it waited for the replica
            assert await _plan(reader, "u") == "stalled"
            for n in range(20):
                await feed(writer, 1, [{"event": "x", "distinct_id": f"u{n}", "$set": {"plan": n}}], now=1)
                assert await _plan(reader, f"u{n}") == n
            assert writer.replica_shortfalls == 0
        finally:
            replica.resume()
            await writer.close()
            await reader.close()

    asyncio.run(main())


def test_a_replica_that_misses_the_wait_sends_this_nodes_reads_to_the_primary(pair: ReplicaSet) -> None:
    """With the replica stopped, a write gives up waiting after ``replica_wait_ms`` (it is on the primary),
    and this node's next reads go to the primary only, so it reads its own write at once."""
    replica = pair.replicas[0]

    async def main() -> None:
        recorder = Recorder()
        names = [server_name(pair.primary.url), server_name(replica.url)]
        store = RedisPersonStore(
            pair.primary.url,
            replicas=pair.replica_urls,
            replica_wait_ms=50,
            reader=HedgedReader(names, observer=recorder),
        )
        try:
            replica.pause()
            await feed(store, 1, [{"event": "x", "distinct_id": "v", "$set": {"plan": "new"}}], now=1)
            assert store.replica_shortfalls == 1
            before = recorder.counts[("read", names[1])] + recorder.counts[("hedge", names[1])]
            for _ in range(10):
                assert await _plan(store, "v") == "new"
            after = recorder.counts[("read", names[1])] + recorder.counts[("hedge", names[1])]
            assert after == before
            # Meanwhile writes do not wait for the stopped replica again (it would cost every write 50 ms).
            await feed(store, 1, [{"event": "x", "distinct_id": "v", "$set": {"plan": "newer"}}], now=2)
            assert store.replica_shortfalls == 1
            assert await _plan(store, "v") == "newer"
        finally:
            replica.resume()
            await store.close()

    asyncio.run(main())


def test_warm_loads_the_read_script_on_every_server_and_skips_a_dead_one(pair: ReplicaSet) -> None:
    """After ``warm``, the primary and the replica both hold the read script (no NOSCRIPT round trip on the
    first flag check); a replica that is down does not make it fail."""
    sha = hashlib.sha1(lua.READ.encode()).hexdigest()

    async def main(replicas: list[str]) -> None:
        store = RedisPersonStore(pair.primary.url, replicas=replicas)
        try:
            await store.warm()
        finally:
            await store.close()

    for server in (pair.primary, *pair.replicas):
        with redis.Redis(host="127.0.0.1", port=server.port) as client:
            client.script_flush()
    asyncio.run(main(pair.replica_urls))
    for server in (pair.primary, *pair.replicas):
        with redis.Redis(host="127.0.0.1", port=server.port) as client:
            assert client.script_exists(sha) == [True]
    asyncio.run(main([*pair.replica_urls, "redis://127.0.0.1:1/0"]))
