"""Hypothesis strategies and builders for behavioural cohorts: leaves, cohorts mixing them with person
properties, flags using them, and store answers."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from evaluator.behavioural import COUNT_OPERATORS, INTERVALS

EVENTS = st.sampled_from(["$pageview", "signed_up", "purchase", "$autocapture"])
INTERVAL_NAMES = st.sampled_from(sorted(INTERVALS))
COUNT_OPS = st.sampled_from(sorted(COUNT_OPERATORS))


def leaf(
    event: str = "$pageview",
    *,
    times: int | None = None,
    operator: str = "gte",
    time_value: int | str | None = 5,
    time_interval: str | None = "minute",
    event_filters: list[dict[str, Any]] | None = None,
    negation: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A behavioural leaf in PostHog's JSON: performed_event, or performed_event_multiple when ``times``."""
    raw: dict[str, Any] = {
        "type": "behavioral",
        "key": event,
        "value": "performed_event" if times is None else "performed_event_multiple",
        "event_type": "events",
        "time_value": time_value,
        "time_interval": time_interval,
        "negation": negation,
    }
    if times is not None:
        raw["operator"], raw["operator_value"] = operator, times
    if event_filters is not None:
        raw["event_filters"] = event_filters
    raw.update(extra)
    return raw


def person(key: str, value: Any, operator: str = "exact", **extra: Any) -> dict[str, Any]:
    return {"key": key, "value": value, "operator": operator, "type": "person", **extra}


def group(kind: str, *values: Any) -> dict[str, Any]:
    return {"type": kind, "values": list(values)}


def cohort_flag(
    key: str, cohort: Any, *, operator: str = "in", flag_id: int = 1, **extra: Any
) -> dict[str, Any]:
    """A flag whose one condition is membership of ``cohort``."""
    return {
        "id": flag_id,
        "key": key,
        "bucketing": "posthog",
        "filters": {
            "groups": [
                {"properties": [{"key": "id", "type": "cohort", "value": cohort, "operator": operator}]}
            ]
        },
        **extra,
    }


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    """A valid behavioural leaf with an arbitrary event, window, threshold and negation."""
    multiple = draw(st.booleans())
    interval = draw(INTERVAL_NAMES)
    return leaf(
        draw(EVENTS),
        times=draw(st.integers(0, 5)) if multiple else None,
        operator=draw(COUNT_OPS),
        time_value=draw(st.integers(1, 2 if interval == "year" else 24)),
        time_interval=interval,
        negation=draw(st.booleans()),
    )


@st.composite
def trees(draw: st.DrawFn, depth: int = 2) -> dict[str, Any]:
    """An AND/OR tree of behavioural leaves and person-property leaves."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 2 if depth > 0 else 1))
        if choice == 0:
            items.append(draw(leaves()))
        elif choice == 1:
            items.append(person("plan", draw(st.sampled_from(["free", "pro"])), negation=draw(st.booleans())))
        else:
            items.append(draw(trees(depth - 1)))
    return group(draw(st.sampled_from(["AND", "OR"])), *items)


def query_key(raw: dict[str, Any]) -> str:
    """The query key a leaf without event filters reads, worked out from its JSON independently."""
    return f"e:{raw['key']}@{int(raw['time_value']) * INTERVALS[raw['time_interval']]}s"


def leaf_holds(raw: dict[str, Any], count: int) -> bool:
    """Reference semantics of one leaf for a count."""
    if raw["value"] == "performed_event":
        held = count >= 1
    else:
        threshold = raw["operator_value"]
        held = {
            "gte": count >= threshold,
            "lte": count <= threshold,
            "gt": count > threshold,
            "lt": count < threshold,
            "eq": count == threshold,
            "exact": count == threshold,
        }[raw["operator"]]
    return held is not raw["negation"]


def tree_holds(tree: dict[str, Any], plan: str | None, counts: dict[str, int]) -> bool:
    """Reference semantics of a tree made by ``trees`` for a person's plan and the store's counts."""
    results = []
    for item in tree["values"]:
        if item.get("type") == "behavioral":
            results.append(leaf_holds(item, counts[query_key(item)]))
        elif item.get("type") == "person":
            results.append((plan is not None and plan == item["value"]) is not item.get("negation", False))
        else:
            results.append(tree_holds(item, plan, counts))
    return all(results) if tree["type"] == "AND" else any(results)


def tree_keys(tree: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for item in tree["values"]:
        if item.get("type") == "behavioral":
            found.add(query_key(item))
        elif item.get("type") in ("AND", "OR"):
            found |= tree_keys(item)
    return found
