"""The edges of a flag definition, at their exact values: variant percentages (0, 100, sums to 100 within
rounding), duplicate variant keys, holdout percentages and ids, payload encodings, ids and versions, disabled
broken flags, feature enrollment and early exit. Each one is what an admin sees in /flags answers."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import Context, compile_flags


def _flag(**filters: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"groups": [{"properties": [], "rollout_percentage": None}]}
    return {"id": 4, "key": "f", "version": 2, "filters": {**base, **filters}}


def _decide(definition: dict[str, Any], ctx: Context | None = None) -> Any:
    return compile_flags([definition]).evaluate(ctx or Context("user-1"))["f"]


def _variants(*split: float) -> dict[str, Any]:
    return {"variants": [{"key": f"v{n}", "rollout_percentage": pct} for n, pct in enumerate(split)]}


@pytest.mark.parametrize(
    ("split", "error_path"),
    [
        ((100,), None),
        ((0, 100), None),
        ((33.33, 33.33, 33.34), None),
        ((50, 49.99), "filters.multivariate.variants"),
        ((50, 50.01), "filters.multivariate.variants"),
        ((100.01, -0.01), "filters.multivariate.variants[0].rollout_percentage"),
        ((-0.01, 100.01), "filters.multivariate.variants[0].rollout_percentage"),
        ((True, 100), "filters.multivariate.variants[0].rollout_percentage"),
    ],
)
def test_variant_percentages_from_0_to_100_summing_to_100(
    split: tuple[float, ...], error_path: str | None
) -> None:
    """Percentages must each be within 0-100 and sum to 100 (to rounding); otherwise the flag is an error
    naming the field."""
    decision = _decide(_flag(multivariate=_variants(*split)))
    if error_path is None:
        assert decision.error is None
        assert decision.variant in {f"v{n}" for n, pct in enumerate(split) if pct > 0}
    else:
        assert decision.error == "invalid_definition"
        assert error_path in decision.description


def test_duplicate_and_empty_variant_keys_are_errors() -> None:
    """Two variants with one key, or a variant without a key, make the flag an error naming the entry."""
    duplicate = {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "a", "rollout_percentage": 50}]}
    decision = _decide(_flag(multivariate=duplicate))
    assert decision.error == "invalid_definition"
    assert "variants[1].key" in decision.description
    empty = {"variants": [{"key": "", "rollout_percentage": 100}]}
    assert "variants[0].key" in _decide(_flag(multivariate=empty)).description


@pytest.mark.parametrize(
    ("holdout", "error_path"),
    [
        ({"id": 3, "exclusion_percentage": 0}, None),
        ({"id": 3, "exclusion_percentage": 100}, None),
        ({"id": "h-3", "exclusion_percentage": 100}, None),
        ({"id": 3, "exclusion_percentage": 100.01}, "filters.holdout.exclusion_percentage"),
        ({"id": 3, "exclusion_percentage": -0.01}, "filters.holdout.exclusion_percentage"),
        ({"id": 3, "exclusion_percentage": True}, "filters.holdout.exclusion_percentage"),
        ({"id": "", "exclusion_percentage": 10}, "filters.holdout.id"),
        ({"id": True, "exclusion_percentage": 10}, "filters.holdout.id"),
        ([3, 10], "filters.holdout"),
    ],
)
def test_holdout_shape_and_edges(holdout: Any, error_path: str | None) -> None:
    """A holdout of 100 % holds everyone out with variant holdout-<id>; 0 % nobody; bad values are errors."""
    decision = _decide(_flag(holdout=holdout))
    if error_path is not None:
        assert decision.error == "invalid_definition"
        assert error_path in decision.description
        return
    assert decision.error is None
    if holdout["exclusion_percentage"] == 100:
        assert (decision.enabled, decision.variant, decision.reason) == (
            True,
            f"holdout-{holdout['id']}",
            "holdout_condition_value",
        )
    else:
        assert (decision.enabled, decision.variant, decision.reason) == (True, None, "condition_match")


def test_payloads_attach_to_enabled_answers_only() -> None:
    """The "true" payload comes with an enabled boolean answer, a variant's with that variant; objects are
    stored as compact JSON text; a null payload is none; a disabled answer carries no payload."""
    on = _decide(_flag(payloads={"true": {"b": [1, 2], "a": None}, "false": "x"}))
    assert (on.enabled, on.payload) == (True, '{"b":[1,2],"a":null}')
    only = _decide(_flag(multivariate=_variants(100), payloads={"v0": '"V"', "true": "t"}))
    assert (only.variant, only.payload) == ("v0", '"V"')
    nothing = _decide(_flag(multivariate=_variants(100), payloads={"v0": None}))
    assert nothing.payload is None
    off = _decide({**_flag(payloads={"true": "t"}), "filters": {"groups": [], "payloads": {"true": "t"}}})
    assert (off.enabled, off.payload) == (False, None)
    assert _decide(_flag(payloads=["t"])).error == "invalid_definition"


def test_decisions_carry_the_flag_id_and_version_when_they_are_integers() -> None:
    """id and version are echoed when they are integers (not booleans); the value is the variant or the
    enabled flag; descriptions number conditions from 1."""
    decision = _decide(_flag())
    assert (decision.flag_id, decision.version, decision.value) == (4, 2, True)
    odd = _decide({**_flag(), "id": True, "version": "2"})
    assert (odd.flag_id, odd.version) == (None, None)
    second = _decide(
        _flag(
            groups=[
                {"properties": [{"key": "p", "value": "x"}]},
                {"properties": [], "rollout_percentage": None},
            ]
        )
    )
    assert (second.condition_index, second.description) == (1, "Matched condition set 2")


def test_a_disabled_flag_answers_disabled_even_when_broken() -> None:
    """An inactive flag is "flag_disabled" without an error, whatever its definition holds; active must be
    exactly true to serve."""
    broken = {**_flag(), "active": False, "filters": {"groups": "nope"}}
    decision = _decide(broken)
    assert (decision.enabled, decision.reason, decision.error) == (False, "flag_disabled", None)
    assert _decide({**_flag(), "active": "yes"}).reason == "flag_disabled"
    assert _decide({**_flag(), "active": True}).enabled is True


@pytest.mark.parametrize(
    ("enrolled", "enabled"),
    [(True, True), ("true", True), (False, False), ("false", False), ("yes", False), (None, False)],
)
def test_feature_enrollment_decides_before_any_condition(enrolled: Any, enabled: bool) -> None:
    """With feature_enrollment on, a person's $feature_enrollment/<key> property decides alone (true or
    "true" only), before conditions; without the property the conditions decide."""
    definition = _flag(feature_enrollment=True, groups=[{"properties": [], "rollout_percentage": 0}])
    ctx = Context("u", {"$feature_enrollment/f": enrolled})
    decision = _decide(definition, ctx)
    assert (decision.enabled, decision.reason, decision.condition_index) == (
        enabled,
        "super_condition_value",
        0,
    )
    fallback = _decide(definition, Context("u"))
    assert (fallback.enabled, fallback.reason) == (False, "out_of_rollout_bound")


def test_early_exit_stops_at_the_first_condition_out_of_rollout() -> None:
    """With early_exit, a person matching a condition but outside its rollout gets out_of_rollout_bound
    even when a later condition would match; without it, the later condition matches."""
    groups = [{"properties": [], "rollout_percentage": 0}, {"properties": [], "rollout_percentage": None}]
    later = _decide(_flag(groups=groups))
    assert (later.enabled, later.condition_index) == (True, 1)
    stopped = _decide(_flag(groups=groups, early_exit=True))
    assert (stopped.enabled, stopped.reason, stopped.condition_index) == (False, "out_of_rollout_bound", 0)


def test_no_match_reason_prefers_out_of_rollout_and_reports_the_first() -> None:
    """When nothing matches: out_of_rollout_bound (first such condition) beats no_condition_match."""
    groups = [
        {"properties": [{"key": "p", "value": "x"}], "rollout_percentage": None},
        {"properties": [], "rollout_percentage": 0},
        {"properties": [], "rollout_percentage": 0},
    ]
    decision = _decide(_flag(groups=groups))
    assert (decision.reason, decision.condition_index) == ("out_of_rollout_bound", 1)


MAPPING = {"0": "company", "1": "team"}
UNUSABLE = {"key": "s", "operator": "regex", "value": "("}  # a warning: this filter never matches


def _decide_with(definition: dict[str, Any], ctx: Context) -> Any:
    return compile_flags([definition], group_type_mapping=MAPPING).evaluate(ctx)["f"]


def test_a_group_flag_whose_conditions_cannot_match_still_reports_a_missing_group() -> None:
    """A group flag whose only condition never matches answers no_group_type when the request lacks the
    group, and no_condition_match when it has it."""
    flag = _flag(aggregation_group_type_index=0, groups=[{"properties": [UNUSABLE]}])
    assert _decide_with(flag, Context("u")).reason == "no_group_type"
    assert _decide_with(flag, Context("u", groups={"company": "acme"})).reason == "no_condition_match"


def test_holdout_and_enrollment_still_decide_when_no_condition_can_match() -> None:
    """A 100 % holdout holds everyone out, and an enrollment property decides, even if no condition could
    ever match."""
    held = _flag(holdout={"id": 2, "exclusion_percentage": 100}, groups=[{"properties": [UNUSABLE]}])
    assert _decide_with(held, Context("u")).reason == "holdout_condition_value"
    enrolled = _flag(feature_enrollment=True, groups=[{"properties": [UNUSABLE]}])
    decision = _decide_with(enrolled, Context("u", {"$feature_enrollment/f": True}))
    assert (decision.enabled, decision.reason) == (True, "super_condition_value")


def test_a_condition_on_a_group_in_a_person_flag_needs_that_group() -> None:
    """A person flag's condition aggregated on team matches only requests with a team (even with no
    filters), reads the team's properties, and says no_group_type without one."""
    open_to_teams = _flag(groups=[{"properties": [], "aggregation_group_type_index": 1}])
    assert _decide_with(open_to_teams, Context("u")).reason == "no_group_type"
    assert _decide_with(open_to_teams, Context("u", groups={"team": "t1"})).enabled is True
    gold = {"key": "tier", "value": "gold", "type": "group", "group_type_index": 1}
    gold_teams = _flag(groups=[{"properties": [gold], "aggregation_group_type_index": 1}])
    team = Context("u", {"tier": "gold"}, {"team": "t1"}, {"team": {"tier": "gold"}})
    assert _decide_with(gold_teams, team).enabled is True
    assert _decide_with(gold_teams, Context("u", {"tier": "gold"}, {"team": "t1"})).enabled is False


def test_a_condition_may_aggregate_on_the_person_inside_a_group_flag() -> None:
    """In a company flag, a condition with aggregation_group_type_index null reads the person."""
    person_condition = {"properties": [{"key": "plan", "value": "pro"}], "aggregation_group_type_index": None}
    flag = _flag(aggregation_group_type_index=0, groups=[person_condition])
    ctx = Context("u", {"plan": "pro"}, {"company": "acme"}, {"company": {"plan": "free"}})
    assert _decide_with(flag, ctx).enabled is True


def test_group_key_filters_read_the_groups_key() -> None:
    """In a company flag, "$group_key" is the company's key unless its properties carry one."""
    flag = _flag(
        aggregation_group_type_index=0, groups=[{"properties": [{"key": "$group_key", "value": "acme"}]}]
    )
    assert _decide_with(flag, Context("u", groups={"company": "acme"})).enabled is True
    assert _decide_with(flag, Context("u", groups={"company": "other"})).enabled is False
    override = Context("u", groups={"company": "other"}, group_properties={"company": {"$group_key": "acme"}})
    assert _decide_with(flag, override).enabled is True


@pytest.mark.parametrize("value", [5, "", None, ["a"], {"x": 1}])
def test_a_flag_dependency_value_must_be_a_boolean_or_a_variant(value: Any) -> None:
    """A dependency filter whose value is not true, false or a variant key makes the flag an error."""
    base = {"id": 1, "key": "base", "filters": {"groups": [{"properties": []}]}}
    dependent = _flag(
        groups=[
            {"properties": [{"key": "1", "type": "flag", "value": value, "operator": "flag_evaluates_to"}]}
        ]
    )
    decision = compile_flags([base, dependent]).evaluate(Context("u"))["f"]
    assert decision.error == "invalid_definition"
    assert "properties[0].value" in decision.description


def test_payload_keys_must_be_true_or_a_variant() -> None:
    """A payload for neither "true" nor a variant is reported (a warning); known keys are not."""
    flag = _flag(multivariate=_variants(100), payloads={"v0": "1", "true": "2", "ghost": "3"})
    issues = compile_flags([flag]).issues("f")
    assert [issue.path for issue in issues] == ["filters.payloads.ghost"]


def test_between_with_equal_bounds_is_fine_and_reversed_bounds_are_reported() -> None:
    """[2, 2] is a valid range (exactly 2); [3, 1] is reported as empty and matches nothing."""
    equal = _flag(groups=[{"properties": [{"key": "n", "operator": "between", "value": [2, 2]}]}])
    snapshot = compile_flags([equal])
    assert snapshot.issues("f") == []
    assert snapshot.evaluate(Context("u", {"n": 2}))["f"].enabled is True
    reversed_ = _flag(groups=[{"properties": [{"key": "n", "operator": "between", "value": [3, 1]}]}])
    assert [i.path for i in compile_flags([reversed_]).issues("f")] == [
        "filters.groups[0].properties[0].value"
    ]


@pytest.mark.parametrize(("first", "local"), [("is_not", False), ("not_icontains", False), ("exact", True)])
def test_an_earlier_condition_true_on_a_missing_property_keeps_a_flag_server_side(
    first: str, local: bool
) -> None:
    """SDKs skip a condition whose property is missing, where the server treats is_not / not_ forms as true:
    a flag with such a filter before its last condition is not offered for local evaluation."""
    flag = {
        **_flag(
            groups=[{"properties": [{"key": "plan", "operator": first, "value": "x"}]}, {"properties": []}]
        ),
        "bucketing": "posthog",
    }
    assert (compile_flags([flag]).sdk_reproducible == {"f"}) is local


def test_the_first_condition_missing_its_group_is_reported() -> None:
    """When several conditions need groups the request lacks, no_group_type names the first of them."""
    flag = _flag(
        groups=[
            {"properties": [{"key": "p", "value": "x"}]},
            {"properties": [], "aggregation_group_type_index": 1},
            {"properties": [], "aggregation_group_type_index": 0},
        ]
    )
    decision = _decide_with(flag, Context("u"))
    assert (decision.reason, decision.condition_index) == ("no_group_type", 1)


@pytest.mark.parametrize("key", ["", 5, None, ["f"]])
def test_definitions_without_a_usable_key_are_left_out(key: Any) -> None:
    """A definition whose key is not a non-empty string is not a flag of the snapshot; the others are."""
    snapshot = compile_flags([{**_flag(), "key": key}, {**_flag(), "key": "kept", "id": 5}])
    assert list(snapshot.keys()) == ["kept"]
    assert set(snapshot.evaluate(Context("u"))) == {"kept"}
