"""Behavioural cohorts in the evaluator: what they add to a flag check, and what the store-facing calls cost.

Run with ``make bench PYTEST_ARGS=bench/test_behaviour.py``. A 50-flag project where 10 flags use cohorts is
measured twice, side by side: the cohorts made of behavioural conditions (counts answered in
``Context.behaviour``) and the same cohorts with person-property leaves in their place. Also timed:
``Snapshot.store_needs`` (all flags, and the ``flag_keys_to_evaluate`` subsets a request brings) and a
filtered counter's ``matches`` on one event's properties (what ingestion runs per event and counter).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from evaluator import Context, Snapshot, compile_flags

BEHAVIOURAL = 10
OTHERS = 40


def _leaf(i: int) -> dict[str, Any]:
    return {
        "type": "behavioral",
        "key": f"event_{i % 4}",
        "value": "performed_event_multiple",
        "operator": "gte",
        "operator_value": 2,
        "time_value": 1 + i % 3,
        "time_interval": "hour",
        "event_filters": [{"key": "$current_url", "operator": "icontains", "value": f"/p{i % 2}"}],
    }


def _person(key: str, value: Any, operator: str = "exact") -> dict[str, Any]:
    return {"key": key, "value": value, "operator": operator, "type": "person"}


def _project(behavioural: bool) -> Snapshot:
    cohorts = {
        str(i): {
            "type": "OR",
            "values": [
                {"type": "AND", "values": [_leaf(i) if behavioural else _person(f"seen_{i}", 2, "gte")]},
                {"type": "AND", "values": [_person("plan", "enterprise")]},
            ],
        }
        for i in range(BEHAVIOURAL)
    }
    flags = [
        {
            "id": i + 1,
            "key": f"cohort-{i}",
            "filters": {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": i}]}]},
        }
        for i in range(BEHAVIOURAL)
    ]
    flags += [
        {
            "id": 100 + i,
            "key": f"flag-{i}",
            "filters": {"groups": [{"properties": [_person("plan", "pro")], "rollout_percentage": 50}]},
        }
        for i in range(OTHERS)
    ]
    return compile_flags(flags, cohorts=cohorts)


def _contexts(snapshot: Snapshot, behavioural: bool) -> itertools.cycle[Context]:
    keys = [q.key for q in snapshot.store_needs().queries]
    made = []
    for n in range(1000):
        props: dict[str, Any] = {"plan": "pro" if n % 2 else "free"}
        counts = {key: (n + i) % 4 for i, key in enumerate(keys)}
        if not behavioural:
            props.update({f"seen_{i}": (n + i) % 4 for i in range(BEHAVIOURAL)})
        made.append(Context(f"user-{n}", props, behaviour=counts if behavioural else None))
    return itertools.cycle(made)


@pytest.mark.parametrize("behavioural", [False, True], ids=["property-cohorts", "behavioural-cohorts"])
def test_evaluate_50_flags_with_cohorts(benchmark: Any, behavioural: bool) -> None:
    """One user's evaluation of all 50 flags, 10 of them on cohorts (behavioural or property leaves)."""
    snapshot = _project(behavioural)
    contexts = _contexts(snapshot, behavioural)
    assert all(d.error is None for d in snapshot.evaluate(next(contexts)).values())
    benchmark.group = "50 flags, 10 on cohorts"
    benchmark(lambda: snapshot.evaluate(next(contexts)))


@pytest.mark.parametrize("count", [0, 5, 50])
def test_store_needs(benchmark: Any, count: int) -> None:
    """store_needs for all flags (0) or for a request's flag_keys_to_evaluate (5 or 50 keys)."""
    snapshot = _project(True)
    keys = list(snapshot.keys())[:count] if count else None
    assert snapshot.store_needs(keys)
    benchmark.group = "store_needs"
    benchmark(snapshot.store_needs, keys)


def test_counter_matches_one_event(benchmark: Any) -> None:
    """A filtered counter's ``matches`` on one event's properties."""
    counter = next(c for c in _project(True).counters if c.filters)
    props = {"$current_url": "https://example.com/p1/pricing", "$browser": "Firefox", "n": 3}
    benchmark.group = "ingestion"
    benchmark(counter.matches, props)
