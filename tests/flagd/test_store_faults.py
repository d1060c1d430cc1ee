"""Flag checks over a real primary + replica (and a lone Redis) while one or both stall or die: /flags keeps
answering 200, right wherever the data was reachable in time, failing only the flags that needed stored data
otherwise; the breaker stops trying a dead server and recovers by itself; the metrics show it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from flagd.metrics import Metrics
from flagd.sdk.app import SdkApp
from flagd.sdk.persons import Persons
from flagd.shedding import LoadShedder
from flagd.store_metrics import StoreMetrics
from store.persons.redis import RedisPersonStore
from store.servers.connections import server_name
from store.servers.hedging import HedgedReader
from tests.flagd.sdk_support import TOKEN_A, client, make_app
from tests.flagd.test_sdk_persons import _catalog
from tests.redis_topology import ReplicaSet, client_pause, debug_sleep, kill, replica_set
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

USERS = [f"user-{n}" for n in range(8)]
GENEROUS = 1.0  # deadline (s) where a test checks answers, not timing: the machine is shared and busy


@pytest.fixture
def pair() -> Iterator[ReplicaSet]:
    """A throwaway primary with one replica."""
    with replica_set(1) as servers:
        yield servers


class Stack:
    def __init__(self, app: SdkApp, store: RedisPersonStore, metrics: Metrics) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics


@contextlib.asynccontextmanager
async def stack(
    primary: str, replicas: list[str], *, deadline: float = GENEROUS, hedge_cap: float = 0.05
) -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    metrics = Metrics()
    urls = [primary, *replicas]
    reader = HedgedReader(
        [server_name(u) for u in urls],
        floor=0.002,
        cap=hedge_cap,
        breaker_base=0.2,
        observer=StoreMetrics(metrics),
    )
    # A generous WAIT: on this busy machine a replica may take over 20 ms to acknowledge the seed, and a
    # missed WAIT rightly sends this node's reads to the primary alone for a second (no hedge target).
    store = RedisPersonStore(primary, replicas=replicas, reader=reader, replica_wait_ms=2000)
    app = make_app(
        _catalog(),
        metrics=metrics,
        # The test blocks its own loop (starting/killing servers): no loop-lag shedding here.
        shedder=LoadShedder(target_delay=None),
        persons=Persons(store, history_seconds=86400, deadline_seconds=deadline),
    )
    try:
        async with client(app) as http:
            yield Stack(app, store, metrics), http
    finally:
        await store.close()


async def seed(http: httpx.AsyncClient, attempts: int = 1) -> None:
    """Two clicks and plan=pro for every user (so 'clickers' and 'pro' are on for all of them); retried
    like an SDK would (a 503 right after a restart: the pooled connection was closed)."""
    events: list[dict[str, Any]] = []
    for n, user in enumerate(USERS):
        events += [{"event": "clicked", "distinct_id": user, "uuid": f"c{n}-{i}"} for i in range(2)]
        events.append({"event": "x", "distinct_id": user, "$set": {"plan": "pro"}})
    for _ in range(attempts):
        answer = await http.post("/batch/", json={"api_key": TOKEN_A, "batch": events})
        if answer.status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(answer.text)


async def check_all(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """/flags for every user at once (concurrent, as SDKs would); each must be HTTP 200."""

    async def one(user: str) -> dict[str, Any]:
        response = await http.post("/flags/?v=2", json={"api_key": TOKEN_A, "distinct_id": user})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return list(await asyncio.gather(*(one(u) for u in USERS)))


def assert_right(answers: list[dict[str, Any]]) -> None:
    for answer in answers:
        flags = answer["flags"]
        assert answer["errorsWhileComputingFlags"] is False, answer
        assert flags["plain"]["enabled"] is True
        assert flags["clickers"]["enabled"] is True
        assert flags["pro"]["enabled"] is True


def assert_degraded(answers: list[dict[str, Any]], codes: tuple[str, ...]) -> None:
    for answer in answers:
        flags = answer["flags"]
        assert answer["errorsWhileComputingFlags"] is True
        assert flags["plain"]["enabled"] is True
        assert "failed" not in flags["plain"]
        for key in ("clickers", "pro"):
            assert flags[key]["failed"] is True
            assert flags[key]["enabled"] is False
            assert flags[key]["reason"]["code"] in codes


def test_a_stalled_primary_is_hedged_to_the_replica(pair: ReplicaSet) -> None:
    """With the primary paused (CLIENT PAUSE), every check still answers right: reads reach the replica,
    and the hedges show in /metrics under the replica's name."""

    async def main() -> None:
        async with stack(pair.primary.url, pair.replica_urls) as (_, http):
            await seed(http)
            assert_right(await check_all(http))
            client_pause(pair.primary, 3000)
            for _ in range(5):
                assert_right(await check_all(http))
            text = (await http.get("/metrics")).text
            replica = server_name(pair.replica_urls[0])
            reads_or_hedges = [
                line
                for line in text.splitlines()
                if line.startswith(("flagd_store_reads_total", "flagd_store_hedges_total"))
                and f'store="{replica}"' in line
            ]
            assert any(float(line.rsplit(" ", 1)[1]) > 0 for line in reads_or_hedges)

    asyncio.run(main())


def test_a_stalled_replica_is_hedged_to_the_primary(pair: ReplicaSet) -> None:
    """With the replica asleep (DEBUG SLEEP), every check still answers right from the primary."""

    async def main() -> None:
        async with stack(pair.primary.url, pair.replica_urls) as (_, http):
            await seed(http)
            assert_right(await check_all(http))
            debug_sleep(pair.replicas[0], 3)
            for _ in range(5):
                assert_right(await check_all(http))

    asyncio.run(main())


@pytest.mark.parametrize("victim", ["primary", "replica"])
def test_one_server_killed_the_other_answers(pair: ReplicaSet, victim: str) -> None:
    """With either server shut down (SHUTDOWN NOSAVE), checks keep answering right from the other, and the
    dead one's breaker opens."""

    async def main() -> None:
        async with stack(pair.primary.url, pair.replica_urls) as (s, http):
            await seed(http)
            assert_right(await check_all(http))
            dead = pair.primary if victim == "primary" else pair.replicas[0]
            kill(dead)
            name = server_name(dead.url)
            for _ in range(300):  # right every time, until reads have tried the dead one often enough
                assert_right(await check_all(http))
                if s.store.reader.breaker_states()[name] != "closed":
                    break
                await asyncio.sleep(0.02)
            assert s.store.reader.breaker_states()[name] in ("open", "half_open")

    asyncio.run(main())


def test_both_killed_only_flags_needing_stored_data_fail_and_the_breaker_recovers(pair: ReplicaSet) -> None:
    """With both servers dead, checks answer 200 with the stored-data flags failed (store_unavailable) and
    the rest right; once Redis is back (empty), the breakers close by themselves and checks read it again."""

    async def main() -> None:
        async with stack(pair.primary.url, pair.replica_urls) as (s, http):
            await seed(http)
            kill(pair.replicas[0])
            kill(pair.primary)
            for _ in range(8):  # concurrent checks share one read: 8 reads, each failing on both servers
                assert_degraded(await check_all(http), ("store_unavailable",))
            assert set(s.store.reader.breaker_states().values()) <= {"open", "half_open"}
            pair.primary.start()
            pair.replicas[0].start()
            await seed(http, attempts=20)  # the restarted servers are empty: write again

            async def recovered() -> bool:  # right answers, and both breakers closed again (probed)
                answers = await check_all(http)
                closed = set(s.store.reader.breaker_states().values()) == {"closed"}
                return closed and not any(a["errorsWhileComputingFlags"] for a in answers)

            recovered_at_last = False
            for _ in range(200):  # a single slow check on this busy machine is not a failure to recover
                if await recovered():
                    recovered_at_last = True
                    break
                await asyncio.sleep(0.05)
            assert recovered_at_last
            assert set(s.store.reader.breaker_states().values()) == {"closed"}

    asyncio.run(main())


def test_past_the_deadline_only_flags_needing_stored_data_fail(own_redis: RedisServer) -> None:
    """A lone Redis paused past the 25 ms deadline: /flags answers 200 with the stored-data flags failed as
    store_timeout (errorsWhileComputingFlags), the plain flag right; OFREP bulk answers ERROR for those
    flags only; the misses are counted per server."""

    async def main() -> None:
        async with stack(own_redis.url, [], deadline=0.025) as (_, http):
            await seed(http)
            client_pause(own_redis, 2000)
            assert_degraded(await check_all(http), ("store_timeout",))
            bulk = await http.post(
                "/ofrep/v1/evaluate/flags",
                json={"context": {"targetingKey": USERS[0]}},
                headers={"authorization": f"Bearer {TOKEN_A}"},
            )
            assert bulk.status_code == 200
            items = {item["key"]: item for item in bulk.json()["flags"]}
            assert items["plain"]["value"] is True
            assert items["plain"]["reason"] != "ERROR"
            assert "errorCode" in items["clickers"]
            assert "errorCode" in items["pro"]
            await asyncio.sleep(0.1)  # the coalesced read gives up at its own deadline right after
            text = (await http.get("/metrics")).text
            name = server_name(own_redis.url)
            misses = [
                line
                for line in text.splitlines()
                if line.startswith("flagd_store_deadline_misses_total") and f'store="{name}"' in line
            ]
            assert misses
            assert float(misses[0].rsplit(" ", 1)[1]) > 0

    asyncio.run(main())
