"""flagd on a real Redis Cluster (``redis+cluster://``; 3 shards x 1 replica started by the fixture): the
flag store, the change feed and the person store work on it, and flag checks keep answering 200 while one
shard's primary is killed and its replica takes over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from flagd.sdk.persons import Persons
from flagd.shedding import LoadShedder
from store.catalog import Catalog
from store.persons.model import ReadRequest
from store.persons.redis import RedisPersonStore
from store.redis.flag_store import RedisFlagStore
from store.stream.node import NodeFollower
from tests.flagd.sdk_support import client, make_app
from tests.redis_topology import Cluster, kill, redis_cluster
from tests.store.persons.conftest import feed
from tests.store.streams import StreamEnv, catalog_flags, flag_data, follower_pace, stream_env, wait_until

pytestmark = pytest.mark.integration

PROJECTS = range(101, 113)  # person-store projects spread over the shards (one hash tag each)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A throwaway 3-shard cluster with one replica per shard."""
    with redis_cluster(3, 1) as c:
        yield c


@contextlib.asynccontextmanager
async def node(env: StreamEnv) -> AsyncIterator[NodeFollower]:
    """A node following the cluster's feed into its own catalog."""
    store = RedisFlagStore(env.redis_url, socket_timeout=0.5)
    follower = NodeFollower(store, Catalog(), fallback=env.repo, pace=follower_pace(0.2, backoff_cap=0.3))
    assert await follower.start()
    task = asyncio.create_task(follower.run())
    try:
        yield follower
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


async def _plans(store: RedisPersonStore) -> dict[int, Any]:
    reads = [
        store.read(ReadRequest(p, "merged", (), (), True), now=int(time.time()), retention=86400)
        for p in PROJECTS
    ]
    return {p: v.properties.get("plan") for p, v in zip(PROJECTS, await asyncio.gather(*reads), strict=True)}


async def _write_persons(store: RedisPersonStore) -> None:
    for p in PROJECTS:
        events = [
            {"event": "x", "distinct_id": "anon", "$set": {"plan": f"plan-{p}"}},
            {"event": "$identify", "distinct_id": "merged", "properties": {"$anon_distinct_id": "anon"}},
        ]
        await feed(store, p, events, now=int(time.time()))


async def test_flag_store_feed_and_person_store_work_on_a_cluster(
    database_url: str, cluster: Cluster
) -> None:
    """Through ``redis+cluster://``: admin edits reach a node via the syncer and the feed, and person
    writes, merges and coalesced reads of many projects (on different shards) answer right."""
    async with stream_env(database_url, cluster.url) as env:
        project = (await env.repo.create_project("p", actor="test")).project
        env.start(env.syncer())
        await env.synced()
        async with node(env) as follower:
            await env.repo.create_flag(project.id, flag_data("checkout"), actor="test")
            await wait_until(lambda: catalog_flags(follower.catalog, project.id) == {"checkout": True})
        persons = RedisPersonStore(cluster.url)
        try:
            await _write_persons(persons)
            assert await _plans(persons) == {p: f"plan-{p}" for p in PROJECTS}
            shards = {cluster.primary_for(persons.person_key(p, "merged")).port for p in PROJECTS}
            assert len(shards) >= 2  # the projects really are spread over shards
        finally:
            await persons.close()


async def test_a_shard_failover_mid_load_keeps_flag_checks_answering(
    database_url: str, cluster: Cluster
) -> None:
    """While checks run non-stop, the primary of the shard holding the feed is killed (SHUTDOWN NOSAVE):
    every check answers 200 (plain flag always right, stored-data flags right or failed per flag); after
    the replica takes over, checks read stored data right again and a new flag edit reaches the node."""
    async with stream_env(database_url, cluster.url, socket_timeout=0.5) as env:
        created = await env.repo.create_project("p", actor="test")
        project = created.project
        await env.repo.create_flag(project.id, flag_data("plain"), actor="test")
        pro = flag_data("pro")
        pro["filters"]["groups"][0]["properties"] = [
            {"key": "plan", "value": "pro", "operator": "exact", "type": "person"}
        ]
        await env.repo.create_flag(project.id, pro, actor="test")
        env.start(env.syncer())
        await env.synced()
        persons = RedisPersonStore(cluster.url)
        async with node(env) as follower:
            await wait_until(lambda: set(catalog_flags(follower.catalog, project.id)) == {"plain", "pro"})
            app = make_app(
                follower.catalog,
                shedder=LoadShedder(target_delay=None),
                persons=Persons(persons, history_seconds=86400, deadline_seconds=0.5),
            )
            users = [f"u{n}" for n in range(6)]
            answers: list[tuple[int, dict[str, Any]]] = []
            async with client(app) as http:
                batch = [{"event": "x", "distinct_id": u, "$set": {"plan": "pro"}} for u in users]
                seeded = await http.post("/batch/", json={"api_key": project.api_token, "batch": batch})
                assert seeded.status_code == 200, seeded.text
                stop = asyncio.Event()

                async def load() -> None:
                    while not stop.is_set():
                        for user in users:
                            body = {"api_key": project.api_token, "distinct_id": user}
                            response = await http.post("/flags/?v=2", json=body)
                            answers.append((response.status_code, response.json()))
                        await asyncio.sleep(0.01)

                running = asyncio.create_task(load())
                await wait_until(lambda: len(answers) > 20)
                victim = cluster.primary_for(env.store.feed_key)
                await asyncio.to_thread(kill, victim)
                await asyncio.to_thread(lambda: wait_until_sync(cluster.healthy, 30))

                def right(answer: dict[str, Any]) -> bool:
                    return not answer["errorsWhileComputingFlags"] and answer["flags"]["pro"]["enabled"]

                mark = len(answers)
                await wait_until(
                    lambda: len(answers) > mark + 12 and all(right(a) for _, a in answers[-6:]), 30
                )
                stop.set()
                await running
            for status, answer in answers:
                assert status == 200
                assert answer["flags"]["plain"]["enabled"] is True
                assert "failed" not in answer["flags"]["plain"]
                pro_flag = answer["flags"]["pro"]
                assert pro_flag["enabled"] is True or pro_flag.get("failed") is True
            await env.repo.create_flag(project.id, flag_data("after-failover"), actor="test")
            await wait_until(lambda: "after-failover" in catalog_flags(follower.catalog, project.id), 30)
        await _write_persons(persons)
        assert await _plans(persons) == {p: f"plan-{p}" for p in PROJECTS}
        await persons.close()


def wait_until_sync(condition: Any, timeout: float) -> None:
    from tests.redis_topology import wait_until as blocking_wait

    blocking_wait(condition, timeout)
