"""Flag dependencies: solved in dependency order at compile time; cycles and missing targets are data."""

from __future__ import annotations

from typing import Any

from evaluator import Context, compile_flags
from evaluator.dependencies import evaluation_order


def _flag(
    key: str, flag_id: int, *deps: tuple[Any, Any], bucketing: str = "posthog", **extra: Any
) -> dict[str, Any]:
    props = [
        {"key": ref, "type": "flag", "value": value, "operator": "flag_evaluates_to"} for ref, value in deps
    ]
    return {
        "id": flag_id,
        "key": key,
        "bucketing": bucketing,
        "filters": {"groups": [{"properties": props}], **extra},
    }


def _pro(key: str, flag_id: int) -> dict[str, Any]:
    return {
        "id": flag_id,
        "key": key,
        "bucketing": "posthog",
        "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro", "type": "person"}]}]},
    }


def test_chain_is_evaluated_in_dependency_order_whatever_the_input_order() -> None:
    """c depends on b depends on a (by id and by key), listed backwards: every answer follows a."""
    flags = [_flag("c", 3, ("b", True)), _flag("b", 2, (1, True)), _pro("a", 1)]
    snapshot = compile_flags(flags)
    pro = snapshot.evaluate(Context("u", {"plan": "pro"}))
    free = snapshot.evaluate(Context("u", {"plan": "free"}))
    assert [pro[k].enabled for k in "abc"] == [True, True, True]
    assert [free[k].enabled for k in "abc"] == [False, False, False]


def test_requested_subset_still_evaluates_dependencies() -> None:
    """Asking only for the dependent flag evaluates its dependencies but returns only what was asked."""
    snapshot = compile_flags([_flag("c", 3, ("b", True)), _flag("b", 2, ("a", True)), _pro("a", 1)])
    result = snapshot.evaluate(Context("u", {"plan": "pro"}), keys=["c", "unknown"])
    assert list(result) == ["c"]
    assert result["c"].enabled


def test_cycle_and_its_dependents_report_missing_dependency() -> None:
    """Flags on a cycle, and flags depending on them, answer missing_dependency; others are unaffected."""
    flags = [
        _flag("x", 1, ("y", True)),
        _flag("y", 2, ("x", True)),
        _flag("z", 3, ("x", False)),
        _pro("p", 4),
    ]
    decisions = compile_flags(flags).evaluate(Context("u", {"plan": "pro"}))
    for key in "xyz":
        assert (decisions[key].reason, decisions[key].error, decisions[key].enabled) == (
            "missing_dependency",
            "missing_dependency",
            False,
        )
    assert decisions["p"].enabled


def test_self_dependency_is_a_cycle() -> None:
    """A flag depending on itself is reported, not looped on."""
    decision = compile_flags([_flag("me", 1, ("me", True))]).evaluate(Context("u"))["me"]
    assert decision.error == "missing_dependency"


def test_dependency_on_a_broken_flag_reports_missing_dependency() -> None:
    """Depending on a flag whose definition is broken is itself a missing dependency."""
    broken = {"id": 1, "key": "broken", "filters": {"groups": [{"rollout_percentage": 500}]}}
    decision = compile_flags([broken, _flag("dep", 2, ("broken", True))]).evaluate(Context("u"))["dep"]
    assert decision.error == "missing_dependency"


def test_variant_dependencies_match_exact_variant_or_any_enabled() -> None:
    """true matches any variant; a string matches only that variant (case-sensitive)."""
    experiment = {
        "id": 1,
        "key": "exp",
        "filters": {
            "groups": [{"properties": [], "variant": "Blue"}],
            "multivariate": {
                "variants": [
                    {"key": "Blue", "rollout_percentage": 50},
                    {"key": "red", "rollout_percentage": 50},
                ]
            },
        },
    }
    flags = [
        experiment,
        _flag("any", 2, ("exp", True)),
        _flag("blue", 3, ("exp", "Blue")),
        _flag("b", 4, ("exp", "blue")),
    ]
    decisions = compile_flags(flags).evaluate(Context("u"))
    assert (decisions["any"].enabled, decisions["blue"].enabled, decisions["b"].enabled) == (
        True,
        True,
        False,
    )


def test_reproducibility_requires_reproducible_dependencies() -> None:
    """A PostHog-bucketed flag depending on a murmur3 flag cannot be evaluated identically by an SDK."""
    flags = [
        _pro("a", 1),
        {**_pro("m", 2), "bucketing": "murmur3"},
        _flag("on-a", 3, ("a", True)),
        _flag("on-m", 4, ("m", True)),
    ]
    assert compile_flags(flags).sdk_reproducible == {"a", "on-a"}


def test_evaluation_order_puts_dependencies_first() -> None:
    """The order lists each key after all it depends on, and leaves cycles out."""
    order, cyclic = evaluation_order({"a": ["b"], "b": ["c"], "c": [], "x": ["y"], "y": ["x"], "z": ["x"]})
    assert cyclic == {"x", "y"}
    assert order.index("c") < order.index("b") < order.index("a")
    assert "z" in order
    assert "x" not in order
