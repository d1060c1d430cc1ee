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


def _sha1_unit(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF


def test_trace_shows_bucketing_and_the_variant_walk() -> None:
    """For a user inside the 40 % rollout, the trace shows scheme, bucketing id, bucket value, threshold and
    the variant walk ending in the variant evaluate gives (the one PostHog's hash picks)."""
    snapshot = compile_flags([FLAG])
    inside = next(f"user-{n}" for n in range(100) if _sha1_unit(f"checkout.user-{n}") <= 0.4)
    trace = snapshot.explain("checkout", Context(inside))
    rollout = trace.conditions[2]
    assert (trace.bucketing, rollout.bucketing_id, rollout.rollout_percentage) == ("posthog", inside, 40)
    assert rollout.threshold == 0.4
    assert rollout.bucket_value == _sha1_unit(f"checkout.{inside}")
    assert rollout.in_rollout is True
    wanted = "a" if _sha1_unit(f"checkout.{inside}variant") < 0.5 else "b"
    assert trace.variant is not None
    assert trace.variant.chosen == wanted
    assert [v.cumulative_percentage for v in trace.variant.variants] == [50, 100]
    assert trace.decision == snapshot.evaluate(Context(inside))["checkout"]
    assert trace.decision.variant == wanted


def test_trace_shows_a_user_out_of_rollout() -> None:
    """For a user outside the 40 % rollout the trace says so and ends in an out-of-rollout decision."""
    snapshot = compile_flags([FLAG])
    outside = next(f"user-{n}" for n in range(100) if _sha1_unit(f"checkout.user-{n}") > 0.4)
    trace = snapshot.explain("checkout", Context(outside))
    assert trace.conditions[2].in_rollout is False
    assert trace.conditions[2].bucket_value == _sha1_unit(f"checkout.{outside}")
    assert trace.decision is not None
    assert trace.decision.reason == "out_of_rollout_bound"
    assert trace.decision == snapshot.evaluate(Context(outside))["checkout"]


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
