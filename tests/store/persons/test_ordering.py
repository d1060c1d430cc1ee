"""Property operations converge on both person stores (real Redis, real SQLite file): whatever order
the $set / $set_once / $unset events arrive in, a person ends with the properties ``store.persons.model``
documents (an $unset leaves a tombstone; see its docstring)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import msgspec
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.persons import PersonStore, ReadRequest, StoreSettings
from tests.servers import RedisServer
from tests.store.persons.conftest import RETENTION, Backend, feed, new_project
from tests.store.persons.strategies import NOW, event, property_ops

EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Stamped = tuple[int, str]  # (event ms, JSON value): the order ties are broken in


def _documented(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule, from the operations alone: the latest $set unless an $unset at or after it; else the
    earliest $set_once if after every $unset; else the latest $set_once if after every $unset; else none."""
    latest_set: dict[str, Stamped] = {}
    first_once: dict[str, Stamped] = {}
    last_once: dict[str, Stamped] = {}
    unset_at: dict[str, int] = {}
    for e in events:
        ms = int(datetime.fromisoformat(e["timestamp"]).timestamp() * 1000)
        props = e["properties"]
        for key, value in props.get("$set", {}).items():
            latest_set[key] = max(latest_set.get(key, (ms, "")), (ms, msgspec.json.encode(value).decode()))
        for key, value in props.get("$set_once", {}).items():
            stamped = (ms, msgspec.json.encode(value).decode())
            first_once[key] = min(first_once.get(key, stamped), stamped)
            last_once[key] = max(last_once.get(key, stamped), stamped)
        for key in props.get("$unset", []):
            unset_at[key] = max(unset_at.get(key, ms), ms)
    result = {}
    for key in latest_set.keys() | first_once.keys():
        floor = unset_at.get(key, -1)
        for candidate in (latest_set.get(key), first_once.get(key), last_once.get(key)):
            if candidate is not None and candidate[0] > floor:
                result[key] = msgspec.json.decode(candidate[1])
                break
    return result


async def _properties(store: PersonStore, project: int, distinct_id: str = "p") -> dict[str, Any]:
    request = ReadRequest(project, distinct_id, (), ())
    return (await store.read(request, now=NOW, retention=RETENTION)).properties


def _arrive(backend: Backend, events: list[dict[str, Any]], cuts: list[int]) -> dict[str, Any]:
    """Feed ``events`` in this order, as batches split at ``cuts``; the person's properties afterwards."""
    project = new_project()
    bounds = [0, *sorted(c % (len(events) + 1) for c in cuts), len(events)]

    async def body(store: PersonStore) -> dict[str, Any]:
        for start, end in itertools.pairwise(bounds):
            if start < end:
                await feed(store, project, events[start:end], now=NOW)
        return await _properties(store, project)

    return backend.run(body)


@EXAMPLES
@given(events=property_ops(), data=st.data())
def test_any_arrival_order_leaves_the_same_properties(
    backend: Backend, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Two arrival orders of the same $set/$set_once/$unset events (in any batches) leave the person with the
    same properties: the documented rule's."""
    orders = [data.draw(st.permutations(events)) for _ in range(2)]
    cuts = [data.draw(st.lists(st.integers(0, 8), max_size=3)) for _ in range(2)]
    first, second = (_arrive(backend, order, cut) for order, cut in zip(orders, cuts, strict=True))
    assert first == second == _documented(events)


@EXAMPLES
@given(events=property_ops(), data=st.data())
def test_a_merge_leaves_what_one_person_would_have(
    backend: Backend, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """The same operations spread over two ids that $identify then merges (some arriving after the merge)
    leave the merged person with the documented rule's properties over all of them."""
    owners = [data.draw(st.sampled_from(["anon", "user"])) for _ in events]
    spread = [{**e, "distinct_id": owner} for e, owner in zip(events, owners, strict=True)]
    order = data.draw(st.permutations(spread))
    merge_at = data.draw(st.integers(0, len(order)))
    project = new_project()

    async def body(store: PersonStore) -> dict[str, Any]:
        for e in order[:merge_at]:
            await feed(store, project, [e], now=NOW)
        merge = event("$identify", "user", {"$anon_distinct_id": "anon"})
        await feed(store, project, [merge], now=NOW)
        for e in order[merge_at:]:
            await feed(store, project, [e], now=NOW)
        return await _properties(store, project, "anon")

    assert backend.run(body) == _documented(events)


def test_a_late_set_older_than_an_unset_stays_unset(backend: Backend) -> None:
    """$unset at t, then (arriving later) a $set stamped before t: still unset; a $set stamped after t wins;
    a $set_once stamped at t is ignored, one stamped after t fills."""
    project = new_project()

    async def body(store: PersonStore) -> list[dict[str, Any]]:
        seen = []
        await feed(store, project, [event("e", "p", {"$unset": ["a", "b"]}, at=NOW - 10)], now=NOW)
        await feed(store, project, [event("e", "p", {"$set": {"a": "old"}}, at=NOW - 20)], now=NOW)
        await feed(store, project, [event("e", "p", {"$set_once": {"b": "at"}}, at=NOW - 10)], now=NOW)
        seen.append(await _properties(store, project))
        await feed(store, project, [event("e", "p", {"$set": {"a": "new"}}, at=NOW - 5)], now=NOW)
        await feed(store, project, [event("e", "p", {"$set_once": {"b": "after"}}, at=NOW - 5)], now=NOW)
        seen.append(await _properties(store, project))
        return seen

    assert backend.run(body) == [{}, {"a": "new", "b": "after"}]


def test_a_merge_keeps_the_newer_unset(backend: Backend) -> None:
    """An anonymous person's $unset of a property the identified person $set before it, merged by
    $identify: the merged person has no such property; one $set after the unset keeps it."""
    project = new_project()

    async def body(store: PersonStore) -> dict[str, Any]:
        user = event("e", "user", {"$set": {"plan": "pro", "seats": 3}}, at=NOW - 20)
        anon = event("e", "anon", {"$unset": ["plan", "seats"]}, at=NOW - 10)
        later = event("e", "user", {"$set": {"seats": 4}}, at=NOW - 5)
        await feed(store, project, [user, later], now=NOW)
        await feed(store, project, [anon], now=NOW)
        await feed(store, project, [event("$identify", "user", {"$anon_distinct_id": "anon"})], now=NOW)
        return await _properties(store, project, "anon")

    assert backend.run(body) == {"seats": 4}


def test_a_tombstone_is_forgotten_after_the_lateness_window(backend: Backend) -> None:
    """An $unset is remembered for the dedupe period (how late an event may arrive and still be ordered):
    within it a $set stamped before the unset stays ignored; once the person's next roll-up after it has
    passed, the same late $set applies again (the tombstone is gone)."""
    project = new_project()
    window = StoreSettings(dedupe_seconds=3600)

    async def body(store: PersonStore) -> list[dict[str, Any]]:
        seen = []
        await feed(store, project, [event("e", "p", {"$unset": ["a"]}, at=NOW)], now=NOW)
        stale = event("e", "p", {"$set": {"a": 1}}, at=NOW - 1)
        await feed(store, project, [stale], now=NOW + 1800)
        seen.append(await _properties(store, project))
        later = NOW + 3600 + 700  # past the window and the next roll-up of the person
        await feed(store, project, [event("other", "p", at=later)], now=later)
        await feed(store, project, [stale], now=later + 1)
        seen.append(await _properties(store, project))
        return seen

    assert backend.run(body, window) == [{}, {"a": 1}]


def test_redis_keeps_no_tombstone_fields_past_the_window(redis_srv: RedisServer) -> None:
    """Unsetting many names leaves tombstone fields in the person's hash only until the roll-up after the
    lateness window: then the hash holds no field for them."""
    project = new_project()
    names = [f"n{i}" for i in range(50)]

    async def body(store: PersonStore) -> None:
        await feed(store, project, [event("e", "p", {"$unset": names}, at=NOW)], now=NOW)
        later = NOW + 3600 + 700
        await feed(store, project, [event("other", "p", at=later)], now=later)

    client = redis.Redis.from_url(redis_srv.url)
    key = f"flagd:P{{p{project}:p}}"
    try:
        Backend("redis", redis_srv.url).run(body, StoreSettings(dedupe_seconds=3600))
        fields = [f.decode() for f in client.hkeys(key)]
    finally:
        client.close()
    assert not [f for f in fields if '"n' in f]
