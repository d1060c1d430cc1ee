"""explain's trace agrees step by step with the decision evaluate makes, on arbitrary flags and contexts:
the decisive condition is the decision's condition, out-of-rollout and holdout steps say what decided, the
variant walk ends in the decision's variant, every threshold is the rollout over 100, and the trace is
immutable (it may be shared and cached)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from evaluator import Context, compile_flags
from tests.evaluator import strategies as gen

MAPPING = {"0": "company", "1": "team"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=gen.flags("flag-0"), ctx=gen.contexts())
def test_the_trace_agrees_with_the_decision(definition: dict[str, Any], ctx: Context) -> None:
    """Whatever decided the flag is what the trace marks as deciding it."""
    snapshot = compile_flags([definition], cohorts=gen.COHORTS, group_type_mapping=MAPPING)
    decision = snapshot.evaluate(ctx)["flag-0"]
    trace = snapshot.explain("flag-0", ctx)
    assert trace.found
    assert trace.decision == decision
    decisive = [step for step in trace.conditions if step.decisive]
    assert len(decisive) <= 1
    for step in trace.conditions:
        if step.outcome == "no_group":
            assert (step.filters, step.threshold, step.in_rollout) == ([], None, None)
        elif step.rollout_percentage is None:
            assert step.threshold is None
        else:
            assert step.threshold == step.rollout_percentage / 100
        if step.outcome in ("match", "out_of_rollout"):
            assert step.filters_matched
            assert all(f.result for f in step.filters)
        if step.outcome == "out_of_rollout":
            assert step.in_rollout is False
        if step.outcome == "match" and step.rollout_percentage is not None:
            assert step.in_rollout is True
    if decision.reason == "condition_match":
        (step,) = decisive
        assert (step.index, step.outcome) == (decision.condition_index, "match")
        if trace.variant is not None:
            assert trace.variant.chosen == decision.variant
            assert [v.cumulative_percentage for v in trace.variant.variants][-1] == pytest.approx(100)
    elif decision.reason == "holdout_condition_value":
        assert trace.holdout is not None
        assert trace.holdout.held_out is True
        assert trace.conditions == []
    elif decision.reason == "super_condition_value":
        assert trace.enrollment is not None
        assert trace.enrollment.startswith("$feature_enrollment/flag-0 = ")
    elif decision.reason == "out_of_rollout_bound":
        assert decisive == []
        outs = [step for step in trace.conditions if step.outcome == "out_of_rollout"]
        if outs:
            assert outs[0].index == decision.condition_index
        else:  # a device-bucketed flag without a device id skips its person conditions
            assert definition.get("bucketing_identifier") == "device_id"
            assert not ctx.device_id
    elif decision.reason == "no_condition_match":
        assert decisive == []
        assert all(step.outcome in ("no_match", "no_group") for step in trace.conditions)
    if trace.holdout is not None and decision.reason != "holdout_condition_value":
        assert trace.holdout.held_out is False


def test_the_trace_names_the_bucketing_id_of_group_and_device_flags() -> None:
    """A group flag buckets on the group key and says so; without the group the trace says it is missing;
    a device-bucketed flag buckets on the device id, and says so when the request has none."""
    group_flag = {
        "id": 1,
        "key": "g",
        "filters": {
            "aggregation_group_type_index": 0,
            "groups": [{"properties": [], "rollout_percentage": 50}],
        },
    }
    device_flag = {
        "id": 2,
        "key": "d",
        "bucketing_identifier": "device_id",
        "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]},
    }
    snapshot = compile_flags([group_flag, device_flag], group_type_mapping=MAPPING)
    with_group = snapshot.explain("g", Context("u", groups={"company": "acme"}))
    assert (with_group.aggregation, with_group.bucketing_id) == ("company", "acme")
    assert with_group.conditions[0].bucketing_id == "acme"
    without = snapshot.explain("g", Context("u"))
    assert without.found
    assert without.conditions == []
    assert "company" in without.summary
    assert without.decision is not None
    assert without.decision.reason == "no_group_type"
    assert snapshot.explain("d", Context("u", device_id="dev-1")).bucketing_id == "dev-1"
    no_device = snapshot.explain("d", Context("u"))
    assert no_device.bucketing_id is None
    assert "device_id" in no_device.summary


def test_an_enrollment_decision_is_traced_as_such() -> None:
    """When the enrollment property decides, the trace is found, names the property and its value, and shows
    no condition."""
    flag = {"id": 1, "key": "f", "filters": {"feature_enrollment": True, "groups": [{"properties": []}]}}
    snapshot = compile_flags([flag])
    trace = snapshot.explain("f", Context("u", {"$feature_enrollment/f": "true"}))
    assert (trace.found, trace.enrollment, trace.conditions) == (True, "$feature_enrollment/f = 'true'", [])
    assert trace.summary == "Feature enrollment decided"
    assert trace.decision is not None
    assert (trace.decision.enabled, trace.decision.reason) == (True, "super_condition_value")


def test_traces_are_immutable() -> None:
    """Every part of a trace refuses assignment."""
    flag = {
        "id": 1,
        "key": "f",
        "filters": {
            "groups": [{"properties": [{"key": "plan", "value": "pro"}], "rollout_percentage": 50}],
            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 100}]},
            "holdout": {"id": 1, "exclusion_percentage": 0},
        },
    }
    snapshot = compile_flags([flag])
    user = next(
        f"u{n}" for n in range(200) if snapshot.evaluate(Context(f"u{n}", {"plan": "pro"}))["f"].enabled
    )
    trace = snapshot.explain("f", Context(user, {"plan": "pro"}))
    assert trace.variant is not None
    assert trace.holdout is not None
    parts: list[Any] = [
        trace,
        trace.conditions[0],
        trace.conditions[0].filters[0],
        trace.variant,
        trace.variant.variants[0],
        trace.holdout,
    ]
    for part in parts:
        field = part.__struct_fields__[0]
        with pytest.raises(AttributeError):
            setattr(part, field, None)
    assert msgspec.json.decode(msgspec.json.encode(trace))["key"] == "f"


def test_an_empty_group_key_and_a_device_flag_without_device_trace_as_evaluated() -> None:
    """An empty group key is hashed like any key (the variant walk uses it), and a device-bucketed flag whose
    condition aggregates on a group is evaluated and traced on that group even without a device id."""
    split = {
        "id": 1,
        "key": "flag-0",
        "bucketing": "murmur3",
        "filters": {
            "groups": [{"properties": [], "rollout_percentage": None, "aggregation_group_type_index": 1}],
            "multivariate": {
                "variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 40}]
            },
            "feature_enrollment": True,
        },
    }
    device = {
        "id": 1,
        "key": "flag-0",
        "bucketing": "murmur3",
        "bucketing_identifier": "device_id",
        "filters": {
            "groups": [{"properties": [], "aggregation_group_type_index": 1}],
            "feature_enrollment": True,
        },
    }
    for definition in (split, device):
        for key in ("", "acme"):
            ctx = Context("0", groups={"team": key})
            snapshot = compile_flags([definition], group_type_mapping=MAPPING)
            decision = snapshot.evaluate(ctx)["flag-0"]
            trace = snapshot.explain("flag-0", ctx)
            assert decision.reason == "condition_match"
            (step,) = [s for s in trace.conditions if s.decisive]
            assert step.bucketing_id == key
            if trace.variant is not None:
                assert trace.variant.chosen == decision.variant
