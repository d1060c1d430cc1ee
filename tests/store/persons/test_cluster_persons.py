"""The person store on a real Redis Cluster: a project's persons spread over the shards, reads coalesce per
slot, and a merge across slots that stops half-way is finished by the retry and counts once.
(The backend contract of ``test_backends`` runs on the cluster too.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import StoreUnavailable
from store.persons import PersonStore, PersonView, ReadRequest
from store.persons.redis import RedisPersonStore
from tests.redis_topology import Cluster
from tests.store.persons.conftest import Backend, feed, new_project
from tests.store.persons.strategies import NOW, event, mixed_timelines, pageviews

pytestmark = pytest.mark.integration


async def _read(store: PersonStore, project: int, distinct_id: str, *queries: Any) -> PersonView:
    return await store.read(ReadRequest(project, distinct_id, (), tuple(queries)), now=NOW, retention=86400)


def _slots(cluster: Cluster, keys: list[str]) -> set[int]:
    """The distinct cluster slots of ``keys``."""
    with redis.Redis(host="127.0.0.1", port=cluster.nodes[0].port) as client:
        return {int(client.execute_command("CLUSTER", "KEYSLOT", k)) for k in keys}


def _scripts_run(cluster: Cluster) -> int:
    """EVALSHA calls the cluster's live nodes have served so far."""
    total = 0
    for node in cluster.live():
        with redis.Redis(host="127.0.0.1", port=node.port) as client:
            stats = client.info("commandstats")
        total += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return total


def test_one_projects_persons_spread_over_the_shards_and_read_their_writes(person_cluster: Cluster) -> None:
    """50 persons of one project, written in one batch, live on every shard; 50 concurrent reads (with a
    group each) answer every person's properties and counts, in one pipeline (one script call per slot)."""
    project = new_project()
    q = pageviews(300)
    ids = [f"u{i}" for i in range(50)]

    async def body(store: RedisPersonStore) -> tuple[list[PersonView], int, int, list[str]]:
        events = [event("$pageview", d, {"$set": {"i": i}}) for i, d in enumerate(ids)]
        events.append(
            {
                "event": "$groupidentify",
                "distinct_id": "u0",
                "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"seats": 40}},
            }
        )
        await feed(store, project, events, now=NOW)
        await store.warm()  # the read script loaded (as at start-up), so no NOSCRIPT retry is counted
        before, scripts = store.flushes, _scripts_run(person_cluster)
        reads = (
            store.read(ReadRequest(project, d, (("company", "acme"),), (q,)), now=NOW, retention=86400)
            for d in ids
        )
        views = await asyncio.gather(*reads)
        keys = [store.person_key(project, d) for d in ids] + [store.group_key(project, "company", "acme")]
        return list(views), store.flushes - before, _scripts_run(person_cluster) - scripts, keys

    views, flushes, scripts, keys = Backend("cluster", person_cluster.url).run(body)
    assert [v.properties["i"] for v in views] == list(range(50))
    assert all(v.behaviour[q.key] == 1 for v in views)
    assert all(v.groups == {"company": {"seats": 40}} for v in views)
    assert len({person_cluster.primary_for(k).port for k in keys[:-1]}) == 3
    assert flushes == 1
    assert scripts == len(_slots(person_cluster, keys))


class _Cut:
    """Wraps one of the store's scripts so its next call fails as a cut connection would (once)."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.armed = True

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            raise redis.ConnectionError("connection cut mid-merge")
        return await self.script(*args, **kwargs)


@pytest.fixture
def apart(person_cluster: Cluster) -> tuple[int, str, str]:
    """A project and two distinct ids whose persons live on different shards."""
    project = new_project()
    store_keys = [f"flagd:P{{p{project}:{d}}}" for d in ("anon", "user")]
    while person_cluster.primary_for(store_keys[0]).port == person_cluster.primary_for(store_keys[1]).port:
        project = new_project()
        store_keys = [f"flagd:P{{p{project}:{d}}}" for d in ("anon", "user")]
    return project, "anon", "user"


@pytest.mark.parametrize("step", ["_absorb", "_release"])
def test_a_merge_cut_after_a_step_is_finished_by_the_retry_and_counts_once(
    person_cluster: Cluster, apart: tuple[int, str, str], step: str
) -> None:
    """$identify of an anonymous person on another shard, cut after step 1 (or 2): the batch fails, no id
    counts the anonymous person's events twice meanwhile; the retried batch finishes the merge (the stash is
    gone) and both ids read all events once, also after a second retry."""
    project, anon, user = apart
    q = pageviews(300)
    identify = [event("$identify", user, {"$anon_distinct_id": anon, "$set": {"plan": "pro"}}, uuid="i1")]

    async def counts(store: RedisPersonStore) -> dict[str, tuple[int, dict[str, Any]]]:
        views = [
            await store.read(ReadRequest(project, d, (), (q,)), now=NOW, retention=86400)
            for d in (anon, user)
        ]
        return {d: (v.behaviour[q.key], v.properties) for d, v in zip((anon, user), views, strict=True)}

    async def body(store: RedisPersonStore) -> list[Any]:
        seen = []
        await feed(
            store,
            project,
            [event("$pageview", anon, {"$set": {"from": "anon"}}, uuid=f"a{i}") for i in range(2)],
            now=NOW,
        )
        await feed(store, project, [event("$pageview", user, uuid="u1")], now=NOW)
        handover = store._handover  # the adversity test cuts one step
        setattr(handover, step, _Cut(getattr(handover, step)))
        with pytest.raises(StoreUnavailable):
            await feed(store, project, identify, now=NOW)
        seen.append(await counts(store))
        await feed(store, project, identify, now=NOW)
        seen.append(await counts(store))
        await feed(store, project, identify, now=NOW)
        await feed(store, project, [event("$pageview", anon, uuid="a0")], now=NOW)  # a retried pageview
        seen.append(await counts(store))
        return seen

    cut, finished, again = Backend("cluster", person_cluster.url).run(body)
    merged = (3, {"from": "anon", "plan": "pro"})
    # Cut after step 1 (the batch stops at its merge, before its $set): both ids read the target without
    # the stashed source; cut after step 2: merged.
    stashed = {anon: (1, {}), user: (1, {})}
    absorbed = {anon: (3, {"from": "anon"}), user: (3, {"from": "anon"})}
    assert cut == (stashed if step == "_absorb" else absorbed)
    assert finished == again == {anon: merged, user: merged}
    client = redis.Redis(
        host="127.0.0.1", port=person_cluster.primary_for(f"flagd:M{{p{project}:{anon}}}").port
    )
    try:
        assert client.exists(f"flagd:M{{p{project}:{anon}}}", f"flagd:N{{p{project}:{anon}}}") == 0
        assert client.hgetall(f"flagd:P{{p{project}:{anon}}}") == {b"@": user.encode()}
    finally:
        client.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=mixed_timelines(), data=st.data())
def test_merges_cut_at_any_step_and_retried_end_as_uncut_ones(
    person_cluster: Cluster, sqlite_path: Any, batches: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """Batches of property operations, pageviews and merges on a Cluster, each batch possibly cut at one step
    of a cross-slot merge and then retried (as an SDK retries a failed request; every event has a uuid):
    every id reads the same properties and counts as the same batches applied without cuts (SQLite)."""
    batches = [[{**e, "uuid": f"e{b}.{i}"} for i, e in enumerate(batch)] for b, batch in enumerate(batches)]
    cuts = [
        data.draw(st.sampled_from([None, "_detach", "_absorb", "_release", "_seen_script"])) for _ in batches
    ]
    q_minute, q_hour = pageviews(60), pageviews(3600)

    def run(backend: Backend, cut: bool) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
        project = new_project()

        async def body(store: Any) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
            for batch, step in zip(batches, cuts, strict=True):
                if cut and step is not None:
                    handover = store._handover
                    original = getattr(handover, step)
                    setattr(handover, step, _Cut(original))
                    try:
                        await feed(store, project, batch, now=NOW)
                    except StoreUnavailable:
                        await feed(store, project, batch, now=NOW)
                    setattr(handover, step, original)
                else:
                    await feed(store, project, batch, now=NOW)
            views = {i: await _read(store, project, i, q_minute, q_hour) for i in "abcd"}
            return {i: (v.properties, v.behaviour) for i, v in views.items()}

        return backend.run(body)

    assert run(Backend("cluster", person_cluster.url), True) == run(
        Backend("sqlite", str(sqlite_path)), False
    )
