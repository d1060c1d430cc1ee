"""explain for behavioural cohorts: each condition's count in its window, the threshold and the result."""

from __future__ import annotations

import msgspec

from evaluator import Context, compile_flags
from evaluator.behaviour import STORE_UNAVAILABLE
from tests.evaluator.behaviour.strategies import cohort_flag, group, leaf, person

PRICING = [{"key": "$current_url", "operator": "icontains", "value": "/pricing"}]
COHORTS = {
    "1": group("AND", leaf("$pageview", times=3, event_filters=PRICING), person("plan", "pro")),
    "2": group("OR", {"key": "id", "type": "cohort", "value": 1}, leaf("purchase", negation=True)),
}


def _keys() -> tuple[str, str]:
    snapshot = compile_flags([cohort_flag("f", 2)], cohorts=COHORTS)
    by_counter = {q.counter: q.key for q in snapshot.store_needs().queries}
    return by_counter["e:purchase"], next(k for c, k in by_counter.items() if c.startswith("f:"))


def test_each_behavioural_condition_shows_count_and_threshold() -> None:
    """The cohort filter lists every behavioural condition it uses (nested ones too) with count and test."""
    snapshot = compile_flags([cohort_flag("f", 2)], cohorts=COHORTS)
    purchase, pageview = _keys()
    trace = snapshot.explain("f", Context("u", {"plan": "pro"}, behaviour={pageview: 2, purchase: 1}))
    (step,) = trace.conditions[0].filters
    assert step.kind == "cohort"
    assert not step.result
    shown = {b.event: b for b in step.behaviour}
    assert (shown["$pageview"].count, shown["$pageview"].operator, shown["$pageview"].threshold) == (
        2,
        "gte",
        3,
    )
    assert shown["$pageview"].window_seconds == 300
    assert "/pricing" in shown["$pageview"].event_filters
    assert shown["$pageview"].result is False
    assert (shown["purchase"].count, shown["purchase"].negation, shown["purchase"].result) == (1, True, False)
    assert (
        trace.decision
        == snapshot.evaluate(Context("u", {"plan": "pro"}, behaviour={pageview: 2, purchase: 1}))["f"]
    )
    msgspec.json.encode(trace)


def test_missing_counts_are_traced_as_missing() -> None:
    """A flag that failed for want of counts is still traced: the missing count shows as None."""
    snapshot = compile_flags([cohort_flag("f", 2)], cohorts=COHORTS)
    purchase, _ = _keys()
    trace = snapshot.explain("f", Context("u", {"plan": "pro"}, behaviour={purchase: 3}))
    assert trace.decision is not None
    assert trace.decision.error == STORE_UNAVAILABLE
    shown = {b.event: b for b in trace.conditions[0].filters[0].behaviour}
    assert shown["$pageview"].count is None
    assert shown["$pageview"].result is None
    assert shown["purchase"].count == 3
