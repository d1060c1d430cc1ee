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
