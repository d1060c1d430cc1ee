"""Every person store (real Redis, real Redis Cluster, real SQLite file) applies events the same way: windows,
merges, ordering."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.behaviour import counter_id, query
from store.persons import PersonLimitExceeded, PersonStore, PersonView, ReadRequest, StoreSettings
from store.persons.model import EventWrite, PersonRecord
from store.persons.windows import counter_token
from tests.store.persons.conftest import RETENTION, Backend, feed, new_project
from tests.store.persons.strategies import (
    NOW,
    WINDOWS,
    event,
    identity_timelines,
    mixed_timelines,
    pageviews,
    property_events,
)

EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def _read(
    store: PersonStore, project: int, distinct_id: str, *queries: Any, now: int = NOW
) -> PersonView:
    request = ReadRequest(project, distinct_id, (), tuple(queries))
    return await store.read(request, now=now, retention=RETENTION)


@EXAMPLES
@given(
    t=st.integers(NOW - 30 * 86400, NOW),
    window=WINDOWS,
    later=st.integers(0, 40 * 86400),
    extra=st.integers(0, 40 * 86400),
)
def test_stored_counts_match_the_window_arithmetic(
    backend: Backend, t: int, window: int, later: int, extra: int
) -> None:
    """A pageview at t, another write to the person at t + later (rolling buckets up), a read at
    t + later + extra: the store's count is the pure model's (tests/store/persons/test_windows.py)."""
    project = new_project()
    q = pageviews(window)
    token = counter_token(counter_id("$pageview"))
    oracle = PersonRecord()
    oracle.apply(EventWrite("", t * 1000, [], [token]), now=t, retention=RETENTION)
    oracle.maintain(t, RETENTION)
    oracle.maintain(t + later, RETENTION)

    async def body(store: PersonStore) -> int:
        await feed(store, project, [event("$pageview", "u", at=t)], now=t)
        await feed(store, project, [event("other", "u", at=t + later)], now=t + later)
        return (await _read(store, project, "u", q, now=t + later + extra)).behaviour[q.key]

    assert backend.run(body) == oracle.count(q, now=t + later + extra)


@EXAMPLES
@given(timeline=identity_timelines())
def test_merged_persons_count_once(backend: Backend, timeline: list[dict[str, Any]]) -> None:
    """After $identify/$create_alias merges, every id of a person reads the pageviews of all its ids, once;
    an $identify does not merge a person that is already identified (the target of an earlier merge)."""
    project = new_project()
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    identified: set[str] = set()  # roots that were the target of a merge
    for e in timeline:
        other = e["properties"].get("$anon_distinct_id") or e["properties"].get("alias")
        if other is None or other == e["distinct_id"]:
            continue
        source, target = find(other), find(e["distinct_id"])
        if source == target:
            continue
        if not (e["event"] == "$identify" and source in identified):  # two identified persons stay two
            parent[source] = target
        identified.add(target)
    views: dict[str, int] = {}
    for e in timeline:
        if e["event"] == "$pageview":
            views[find(e["distinct_id"])] = views.get(find(e["distinct_id"]), 0) + 1
    q = pageviews(3600)

    async def body(store: PersonStore) -> dict[str, int]:
        # Each event its own batch, as SDKs flushing often would send them.
        for e in timeline:
            await feed(store, project, [e], now=NOW)
        return {i: (await _read(store, project, i, q)).behaviour[q.key] for i in "abcd"}

    counts = backend.run(body)
    assert counts == {i: views.get(find(i), 0) for i in "abcd"}


def _replay(events: list[dict[str, Any]]) -> dict[str, Any]:
    """PostHog's semantics replayed in timestamp order: $set overwrites, $set_once fills only absent keys."""
    props: dict[str, Any] = {}
    for e in sorted(events, key=lambda e: e["timestamp"]):
        for key, value in e["properties"].get("$set", {}).items():
            props[key] = value
        for key, value in e["properties"].get("$set_once", {}).items():
            props.setdefault(key, value)
    return props


@EXAMPLES
@given(events=property_events(), data=st.data())
def test_set_and_set_once_follow_timestamp_order_whatever_the_arrival_order(
    backend: Backend, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Properties end as a time-ordered replay of $set/$set_once leaves them, in any arrival order."""
    arrival = data.draw(st.permutations(events))
    project = new_project()

    async def body(store: PersonStore) -> dict[str, Any]:
        for e in arrival:
            await feed(store, project, [e], now=NOW)
        return (await _read(store, project, "p")).properties

    assert backend.run(body) == _replay(events)


def test_unset_removes_and_top_level_set_applies(backend: Backend) -> None:
    """$unset removes a property set earlier; a top-level $set on the event applies like properties.$set."""
    project = new_project()

    async def body(store: PersonStore) -> dict[str, Any]:
        first = event("$pageview", "u", {"$set": {"a": 1, "b": 2}}, at=NOW - 10)
        top = event("$pageview", "u", at=NOW - 5)
        top["$set"] = {"c": "top"}
        await feed(store, project, [first, top, event("$pageview", "u", {"$unset": ["a"]}, at=NOW)], now=NOW)
        return (await _read(store, project, "u")).properties

    assert backend.run(body) == {"b": 2, "c": "top"}


def test_a_retried_uuid_counts_once(backend: Backend) -> None:
    """Two events with one uuid (an SDK retry), in one batch or two, count once."""
    project = new_project()
    q = pageviews(60)

    async def body(store: PersonStore) -> int:
        same = event("$pageview", "u", uuid="0190-retry")
        await feed(store, project, [same, same], now=NOW)
        await feed(store, project, [same], now=NOW)
        await feed(store, project, [event("$pageview", "u", uuid="0190-other")], now=NOW)
        return (await _read(store, project, "u", q)).behaviour[q.key]

    assert backend.run(body) == 2


def test_a_retry_counts_once_after_a_merge_and_again_after_the_dedupe_period(backend: Backend) -> None:
    """An anonymous event retried after $identify merged its person counts once; past the dedupe period
    (the uuid forgotten when the person is next written) the same uuid counts again."""
    project = new_project()
    q = pageviews(86400)
    dedupe = StoreSettings(dedupe_seconds=3600)

    async def body(store: PersonStore) -> tuple[int, int]:
        anon = event("$pageview", "anon", uuid="0190-anon")
        await feed(store, project, [anon], now=NOW)
        merge = event("$identify", "user", properties={"$anon_distinct_id": "anon"})
        await feed(store, project, [merge], now=NOW)
        await feed(store, project, [anon], now=NOW + 1)
        first = (await _read(store, project, "user", q, now=NOW + 1)).behaviour[q.key]
        later = NOW + 3600 + 700  # past the dedupe period and the next roll-up of the person
        await feed(store, project, [event("other", "user", at=later)], now=later)
        await feed(store, project, [anon], now=later + 1)
        return first, (await _read(store, project, "user", q, now=later + 1)).behaviour[q.key]

    assert backend.run(body, dedupe) == (1, 2)


def test_a_merge_keeps_the_person_within_the_property_limit(backend: Backend) -> None:
    """Merging a person with 3 properties into one with 3 others under a limit of 4 keeps the target's 3,
    one of the source's, and the value of a property both had by the usual time order."""
    project = new_project()

    async def body(store: PersonStore) -> dict[str, Any]:
        anon = {"a": 1, "b": 2, "shared": "anon"}
        user = {"x": 1, "y": 2, "shared": "user"}
        await feed(store, project, [event("e", "anon", {"$set": anon}, at=NOW - 10)], now=NOW)
        await feed(store, project, [event("e", "user", {"$set": user}, at=NOW - 5)], now=NOW)
        merge = event("$identify", "user", properties={"$anon_distinct_id": "anon"})
        await feed(store, project, [merge], now=NOW)
        return (await _read(store, project, "anon")).properties

    props = backend.run(body, StoreSettings(max_person_properties=4))
    assert len(props) == 4
    assert {k: props[k] for k in ("x", "y", "shared")} == {"x": 1, "y": 2, "shared": "user"}
    assert set(props) - {"x", "y", "shared"} <= {"a", "b"}


def test_identify_does_not_merge_an_identified_person(backend: Backend) -> None:
    """$identify(b, anon=a) after a was identified (it absorbed 'anon') leaves a and b two persons; a
    $create_alias still merges them."""
    project = new_project()
    q = pageviews(3600)

    async def body(store: PersonStore) -> list[tuple[int, int]]:
        counts = []
        await feed(store, project, [event("$pageview", "anon"), event("$pageview", "b")], now=NOW)
        await feed(store, project, [event("$identify", "a", {"$anon_distinct_id": "anon"})], now=NOW)
        await feed(store, project, [event("$identify", "b", {"$anon_distinct_id": "a"})], now=NOW)
        counts.append(
            (
                (await _read(store, project, "a", q)).behaviour[q.key],
                (await _read(store, project, "b", q)).behaviour[q.key],
            )
        )
        await feed(store, project, [event("$create_alias", "b", {"alias": "a"})], now=NOW)
        counts.append(
            (
                (await _read(store, project, "a", q)).behaviour[q.key],
                (await _read(store, project, "b", q)).behaviour[q.key],
            )
        )
        return counts

    assert backend.run(body) == [(1, 1), (2, 2)]


def test_retries_of_a_busy_persons_recent_events_count_once(backend: Backend) -> None:
    """A person with 2,500 events in a day (more uuids than the embedded row keeps) still has retries of
    its latest events counted once."""
    project = new_project()
    q = pageviews(86400)

    async def body(store: PersonStore) -> int:
        events = [event("$pageview", "busy", uuid=f"e{i}") for i in range(2500)]
        for start in range(0, 2500, 500):
            await feed(store, project, events[start : start + 500], now=NOW)
        await feed(store, project, events[-100:], now=NOW + 60)
        return (await _read(store, project, "busy", q, now=NOW + 60)).behaviour[q.key]

    assert backend.run(body) == 2500


def test_filtered_counters_count_only_matching_events(backend: Backend) -> None:
    """A counter with event filters counts the events its matcher accepts; the plain counter counts all."""
    from evaluator.behaviour import EventCounter

    project = new_project()
    pricing = EventCounter(
        counter_id("$pageview", '[{"key":"url"}]'),
        "$pageview",
        '[{"key":"url"}]',
        lambda p: "/pricing" in str(p.get("url")),
    )
    q_pricing = query(pricing.id, window_seconds=300)
    q_all = pageviews(300)

    async def body(store: PersonStore) -> dict[str, int]:
        events = [event("$pageview", "u", {"url": "/pricing"}), event("$pageview", "u", {"url": "/docs"})]
        await feed(store, project, events, now=NOW, counters={"$pageview": [pricing]})
        return (await _read(store, project, "u", q_pricing, q_all)).behaviour

    assert backend.run(body) == {q_pricing.key: 1, q_all.key: 2}


def test_group_properties_are_read_for_the_requested_groups(backend: Backend) -> None:
    """$groupidentify stores group properties; a read returns them for the group types asked for."""
    project = new_project()

    async def body(store: PersonStore) -> PersonView:
        identify = event(
            "$groupidentify",
            "u",
            {"$group_type": "company", "$group_key": "acme", "$group_set": {"seats": 40}},
        )
        await feed(store, project, [identify], now=NOW)
        request = ReadRequest(project, "u", (("company", "acme"), ("team", "red")), ())
        return await store.read(request, now=NOW, retention=RETENTION)

    view = backend.run(body)
    assert view.groups == {"company": {"seats": 40}, "team": {}}


def test_a_batch_over_the_property_limit_writes_nothing(backend: Backend) -> None:
    """A person who would exceed max_person_properties fails the whole batch; no other person is written."""
    project = new_project()
    q = pageviews(60)

    async def body(store: PersonStore) -> PersonView:
        events = [
            event("$pageview", "ok", {"$set": {"a": 1}}),
            event("$pageview", "big", {"$set": {"a": 1, "b": 2}}),
            event("$pageview", "big", {"$set": {"c": 3, "d": 4}}),
        ]
        with pytest.raises(PersonLimitExceeded):
            await feed(store, project, events, now=NOW)
        return await _read(store, project, "ok", q)

    view = backend.run(body, StoreSettings(max_person_properties=3))
    assert view.properties == {}
    assert view.behaviour[q.key] == 0


def test_seen_persons_lists_recent_persons_with_properties(backend: Backend) -> None:
    """seen_persons returns recently written persons, newest first, with their stored properties."""
    import time

    project = new_project()
    now = int(time.time())

    async def body(store: PersonStore) -> list[Any]:
        await feed(store, project, [event("$pageview", "old", {"$set": {"n": 1}}, at=now)], now=now - 7200)
        await feed(store, project, [event("$pageview", "new", {"$set": {"n": 2}}, at=now)], now=now)
        return await store.seen_persons(project, 3600, 10)

    seen = backend.run(body)
    assert [(p.distinct_id, p.properties) for p in seen] == [("new", {"n": 2})]


def test_tracking_since_is_the_first_time_a_counter_was_tracked(backend: Backend) -> None:
    """track() records now for new counters and keeps the first time for known ones."""
    project = new_project()

    async def body(store: PersonStore) -> tuple[dict[str, int], dict[str, int]]:
        first = await store.track(project, ["f:one"], 1000)
        again = await store.track(project, ["f:one", "f:two"], 2000)
        return first, again

    assert backend.run(body) == ({"f:one": 1000}, {"f:one": 1000, "f:two": 2000})


@settings(max_examples=30, deadline=None)
@given(batches=mixed_timelines())
def test_redis_cluster_and_sqlite_stores_agree(
    redis_srv: Any, person_cluster: Any, sqlite_path: Any, batches: list[list[dict[str, Any]]]
) -> None:
    """Any mix of property operations, merges, retries and pageviews leaves the stores (Redis, Redis Cluster,
    SQLite) with the same properties and counts for every id."""
    q_minute, q_hour = pageviews(60), pageviews(3600)

    def run(backend: Backend) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
        project = new_project()

        async def body(store: PersonStore) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
            for batch in batches:
                await feed(store, project, batch, now=NOW)
            views = {i: await _read(store, project, i, q_minute, q_hour) for i in "abcd"}
            return {i: (v.properties, v.behaviour) for i, v in views.items()}

        return backend.run(body)

    expected = run(Backend("sqlite", str(sqlite_path)))
    assert run(Backend("redis", redis_srv.url)) == expected
    assert run(Backend("cluster", person_cluster.url)) == expected
