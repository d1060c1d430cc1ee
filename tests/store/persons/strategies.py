"""Hypothesis strategies and builders for the person store: events, property operations, timelines."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from evaluator.behaviour import BehaviourQuery, counter_id, query

NOW = 1_800_000_000  # a fixed "now" (epoch seconds) so examples replay identically
WINDOWS = st.sampled_from(
    [1, 5, 59, 60, 61, 300, 899, 900, 901, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400]
)
IDS = st.sampled_from(["a", "b", "c", "d"])
KEYS = st.sampled_from(["plan", "email", "seats"])
VALUES = st.one_of(st.integers(-5, 5), st.sampled_from(["free", "pro", "x"]), st.booleans(), st.none())


def event(
    name: str,
    distinct_id: str,
    properties: dict[str, Any] | None = None,
    *,
    at: int = NOW,
    uuid: str | None = None,
) -> dict[str, Any]:
    """An event in PostHog's shape, timestamped ``at`` (epoch seconds)."""
    from datetime import UTC, datetime

    raw: dict[str, Any] = {
        "event": name,
        "distinct_id": distinct_id,
        "properties": properties or {},
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat(),
    }
    if uuid is not None:
        raw["uuid"] = uuid
    return raw


def pageviews(window: int) -> BehaviourQuery:
    return query(counter_id("$pageview"), window_seconds=window)


@st.composite
def property_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """$set / $set_once events on one person with distinct timestamps (so time order is total)."""
    count = draw(st.integers(1, 8))
    times = draw(st.lists(st.integers(NOW - 1000, NOW), min_size=count, max_size=count, unique=True))
    events = []
    for at in times:
        kind = draw(st.sampled_from(["$set", "$set_once"]))
        values = draw(st.dictionaries(KEYS, VALUES, min_size=1, max_size=2))
        events.append(event("$pageview", "p", {kind: values}, at=at))
    return events


@st.composite
def identity_timelines(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Pageviews by a few ids interleaved with $identify / $create_alias merges between them."""
    events: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        distinct_id = draw(IDS)
        kind = draw(st.sampled_from(["view", "view", "view", "identify", "alias"]))
        if kind == "view":
            events.append(event("$pageview", distinct_id))
        elif kind == "identify":
            events.append(event("$identify", distinct_id, {"$anon_distinct_id": draw(IDS)}))
        else:
            events.append(event("$create_alias", distinct_id, {"alias": draw(IDS)}))
    return events


@st.composite
def mixed_timelines(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Batches of events on a few ids: $set/$set_once/$unset at scattered times, views, merges, retries."""
    batches: list[list[dict[str, Any]]] = []
    uuids = [f"u{i}" for i in range(4)]
    for _ in range(draw(st.integers(1, 5))):
        batch = []
        for _ in range(draw(st.integers(1, 6))):
            distinct_id = draw(IDS)
            at = draw(st.integers(NOW - 3000, NOW))
            kind = draw(st.sampled_from(["$set", "$set_once", "$unset", "view", "identify"]))
            uuid = draw(st.one_of(st.none(), st.sampled_from(uuids)))
            if kind == "$unset":
                props: dict[str, Any] = {"$unset": draw(st.lists(KEYS, min_size=1, max_size=2))}
            elif kind in ("$set", "$set_once"):
                props = {kind: draw(st.dictionaries(KEYS, VALUES, min_size=1, max_size=2))}
            elif kind == "identify":
                batch.append(event("$identify", distinct_id, {"$anon_distinct_id": draw(IDS)}, at=at))
                continue
            else:
                props = {}
            batch.append(event("$pageview", distinct_id, props, at=at, uuid=uuid))
        batches.append(batch)
    return batches


@st.composite
def property_ops(draw: st.DrawFn) -> list[dict[str, Any]]:
    """$set / $set_once / $unset events on one person, timestamps drawn from a few seconds (so ties happen),
    an event possibly carrying several operations (PostHog applies its $unset last)."""
    events = []
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(NOW - 4, NOW))
        props: dict[str, Any] = {}
        for kind in draw(st.lists(st.sampled_from(["$set", "$set_once", "$unset"]), min_size=1, unique=True)):
            if kind == "$unset":
                props[kind] = draw(st.lists(KEYS, min_size=1, max_size=2, unique=True))
            else:
                props[kind] = draw(st.dictionaries(KEYS, VALUES, min_size=1, max_size=2))
        events.append(event("$pageview", "p", props, at=at))
    return events
