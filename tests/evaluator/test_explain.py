"""explain: a JSON-encodable trace that shows every condition and filter and ends in evaluate's decision."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from hypothesis import given, settings

from evaluator import Context, compile_flags
from tests.evaluator import strategies as gen

FLAG = {
    "id": 5,
    "key": "checkout",
    "bucketing": "posthog",
    "filters": {
        "groups": [
            {"properties": [{"key": "plan", "value": "pro", "type": "person"}], "rollout_percentage": None},
            {
                "properties": [{"key": "email", "value": "acme", "operator": "icontains", "type": "person"}],
                "rollout_percentage": 100,
            },
            {"properties": [], "rollout_percentage": 40},
        ],
        "multivariate": {
            "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
        },
    },
}


def test_trace_shows_each_filter_with_expected_and_actual() -> None:
    """Each filter appears with its property, operator, expected and actual value and result."""
    snapshot = compile_flags([FLAG])
    trace = snapshot.explain("checkout", Context("u1", {"plan": "free", "email": "x@acme.io"}))
    first, second = trace.conditions[0].filters[0], trace.conditions[1].filters[0]
    assert (first.key, first.operator, first.expected, first.actual, first.result) == (
        "plan",
        "exact",
        "pro",
        "free",
        False,
    )
    assert (second.operator, second.actual, second.result, second.present) == (
        "icontains",
        "x@acme.io",
        True,
        True,
    )
    assert [c.outcome for c in trace.conditions][:2] == ["no_match", "match"]
    assert trace.conditions[1].decisive
    assert (
        trace.decision == snapshot.evaluate(Context("u1", {"plan": "free", "email": "x@acme.io"}))["checkout"]
    )


def test_trace_shows_bucketing_and_the_variant_walk() -> None:
    """The rollout step shows scheme, bucketing id, bucket value and threshold; the walk shows the choice."""
    snapshot = compile_flags([FLAG])
    trace = snapshot.explain("checkout", Context("user-7"))
    rollout = trace.conditions[2]
    expected = int(hashlib.sha1(b"checkout.user-7").hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF
    assert (trace.bucketing, rollout.bucketing_id, rollout.rollout_percentage) == ("posthog", "user-7", 40)
    assert rollout.threshold == 0.4
    assert rollout.bucket_value == expected
    assert rollout.in_rollout is (expected <= 0.4)
    if rollout.in_rollout:
        assert trace.variant is not None
        assert trace.variant.chosen == trace.decision.variant if trace.decision else False
        assert [v.cumulative_percentage for v in trace.variant.variants] == [50, 100]
    else:
        assert trace.decision is not None
        assert trace.decision.reason == "out_of_rollout_bound"


def test_missing_property_is_shown_as_absent() -> None:
    """A property the context lacks is reported as not present, and its filter as false."""
    trace = compile_flags([FLAG]).explain("checkout", Context("u"))
    step = trace.conditions[0].filters[0]
    assert (step.present, step.actual, step.result) == (False, None, False)


def test_unknown_flag_and_broken_flag() -> None:
    """Unknown keys say so; a broken flag's trace carries its issues and error decision."""
    broken = {"id": 1, "key": "broken", "filters": {"groups": [{"rollout_percentage": "x"}]}}
    snapshot = compile_flags([broken])
    assert not snapshot.explain("nope", Context("u")).found
    trace = snapshot.explain("broken", Context("u"))
    assert trace.decision is not None
    assert trace.decision.error == "invalid_definition"
    assert trace.issues[0].path == "filters.groups[0].rollout_percentage"


@settings(max_examples=80, deadline=None)
@given(definition=gen.flags("flag-0"), other=gen.flags("flag-1"), ctx=gen.contexts())
def test_trace_always_encodes_and_ends_in_the_evaluated_decision(
    definition: dict[str, Any], other: dict[str, Any], ctx: Context
) -> None:
    """For any flag and context the trace is JSON-encodable and its decision is evaluate's decision."""
    snapshot = compile_flags([definition, other], cohorts=gen.COHORTS, group_type_mapping={"0": "company"})
    trace = snapshot.explain("flag-0", ctx)
    msgspec.json.encode(trace)
    assert trace.decision == snapshot.evaluate(ctx)["flag-0"]
    decisive = [c for c in trace.conditions if c.decisive]
    if trace.decision is not None and trace.decision.reason == "condition_match":
        assert [c.index for c in decisive] == [trace.decision.condition_index]
