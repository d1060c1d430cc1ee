"""Cohort edges: a valid cohort that matches nobody versus a broken one (each used by several flags),
self-reference, static and externally resolved membership, empty groups, in / not_in / negation."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import Context, compile_flags


def _uses(key: str, cohort: int | str, operator: str = "in", **extra: Any) -> dict[str, Any]:
    filter_ = {"key": "id", "type": "cohort", "value": cohort, "operator": operator, **extra}
    return {
        "id": 1,
        "key": key,
        "filters": {"groups": [{"properties": [filter_], "rollout_percentage": None}]},
    }


def _group(*values: Any, kind: str = "AND") -> dict[str, Any]:
    return {"type": kind, "values": list(values)}


def test_a_valid_cohort_that_matches_nobody_is_not_an_error_for_any_flag() -> None:
    """A cohort whose only filter can never match (an unusable regex) makes every flag using it answer no
    match, not an error -- also the second flag, which gets the cohort from the snapshot's cache."""
    cohorts = {"5": _group({"key": "s", "operator": "regex", "value": "("})}
    snapshot = compile_flags([_uses("a", 5), _uses("b", 5)], cohorts=cohorts)
    for decision in snapshot.evaluate(Context("u", {"s": "("})).values():
        assert (decision.enabled, decision.error, decision.reason) == (False, None, "no_condition_match")


def test_a_broken_cohort_is_an_error_for_every_flag_using_it() -> None:
    """A cohort with an unknown operator makes each flag using it (first and cached uses) an error naming
    the filter's path and the cohort; a flag not using it is unaffected."""
    cohorts = {"6": _group({"key": "plan", "operator": "nah", "value": "x"})}
    other = {"id": 9, "key": "other", "filters": {"groups": [{"properties": []}]}}
    snapshot = compile_flags([_uses("a", 6), _uses("b", 6), other], cohorts=cohorts)
    decisions = snapshot.evaluate(Context("u", {"plan": "x"}))
    for key in ("a", "b"):
        assert decisions[key].error == "invalid_definition"
        assert "filters.groups[0].properties[0].value" in decisions[key].description
        assert "cohort 6 is invalid" in decisions[key].description
    assert decisions["other"].enabled is True


def test_a_cohort_referencing_itself_is_an_error() -> None:
    """Cohort 7 containing "in cohort 8" which contains "in cohort 7" cannot be evaluated."""
    cohorts = {
        "7": _group({"key": "id", "type": "cohort", "value": 8}),
        "8": _group({"key": "id", "type": "cohort", "value": 7}),
    }
    decision = compile_flags([_uses("a", 7)], cohorts=cohorts).evaluate(Context("u"))["a"]
    assert decision.error == "invalid_definition"
    assert "references itself" in decision.description


def test_static_and_external_membership() -> None:
    """A static cohort matches its distinct ids (or a request naming it in cohort_ids); an id that is
    neither property nor static cohort matches only through cohort_ids."""
    snapshot = compile_flags(
        [_uses("static", 3), _uses("external", "rt-1")], static_cohorts={"3": frozenset({"ann"})}
    )
    assert snapshot.evaluate(Context("ann"))["static"].enabled is True
    assert snapshot.evaluate(Context("bob"))["static"].enabled is False
    assert snapshot.evaluate(Context("bob", cohort_ids=frozenset({"3"})))["static"].enabled is True
    assert snapshot.evaluate(Context("ann"))["external"].enabled is False
    assert snapshot.evaluate(Context("ann", cohort_ids=frozenset({"rt-1"})))["external"].enabled is True


@pytest.mark.parametrize("definition", [{}, _group(), _group(kind="OR")])
def test_empty_cohorts_match_everyone(definition: dict[str, Any]) -> None:
    """An empty cohort (no filters at all, an empty AND or an empty OR) matches every person; not_in it
    matches nobody."""
    cohorts = {"4": definition}
    snapshot = compile_flags([_uses("in", 4), _uses("out", 4, "not_in")], cohorts=cohorts)
    decisions = snapshot.evaluate(Context("anyone"))
    assert (decisions["in"].enabled, decisions["out"].enabled) == (True, False)


@pytest.mark.parametrize(
    ("operator", "negation", "plan", "enabled"),
    [
        ("in", False, "pro", True),
        ("in", False, "free", False),
        ("not_in", False, "pro", False),
        ("not_in", False, "free", True),
        ("in", True, "pro", False),
        ("in", True, "free", True),
        ("not_in", True, "pro", True),
        ("exact", False, "pro", True),
    ],
)
def test_in_not_in_and_negation(operator: str, negation: bool, plan: str, enabled: bool) -> None:
    """in / not_in (and "exact", PostHog's alias of in) with and without negation."""
    cohorts = {"2": _group({"key": "plan", "value": "pro", "type": "person"}, kind="OR")}
    flag = _uses("f", 2, operator, negation=negation)
    decision = compile_flags([flag], cohorts=cohorts).evaluate(Context("u", {"plan": plan}))["f"]
    assert decision.error is None
    assert decision.enabled is enabled


def test_nested_groups_combine_and_or() -> None:
    """(plan = pro OR plan = team) AND age > 18, as nested groups."""
    cohorts = {
        "1": _group(
            _group({"key": "plan", "value": "pro"}, {"key": "plan", "value": "team"}, kind="OR"),
            {"key": "age", "operator": "gt", "value": 18},
        )
    }
    snapshot = compile_flags([_uses("f", 1)], cohorts=cohorts)
    for props, enabled in (
        ({"plan": "team", "age": 30}, True),
        ({"plan": "pro", "age": 30}, True),
        ({"plan": "free", "age": 30}, False),
        ({"plan": "pro", "age": 18}, False),
    ):
        assert snapshot.evaluate(Context("u", props))["f"].enabled is enabled, props


@pytest.mark.parametrize("value", [True, "", [1], None, 1.5])
def test_a_cohort_filter_needs_a_cohort_id(value: Any) -> None:
    """A cohort filter whose value is not an id (int or non-empty string) makes the flag an error naming
    the value's path."""
    decision = compile_flags([_uses("f", value)]).evaluate(Context("u"))["f"]
    assert decision.error == "invalid_definition"
    assert "filters.groups[0].properties[0].value" in decision.description


def test_flag_dependencies_inside_a_cohort_are_refused_at_the_filters_type() -> None:
    """A cohort may not depend on a flag: the flag using it is an error naming the cohort filter's type."""
    cohorts = {"3": _group({"key": "other", "type": "flag", "value": True, "operator": "flag_evaluates_to"})}
    other = {"id": 2, "key": "other", "filters": {"groups": [{"properties": []}]}}
    decision = compile_flags([other, _uses("f", 3)], cohorts=cohorts).evaluate(Context("u"))["f"]
    assert decision.error == "invalid_definition"
    assert "cohort 3.values[0].type" in decision.description
    assert "flag dependencies are not supported inside cohorts" in decision.description


@pytest.mark.parametrize(
    "definition", [[1, 2], {"type": "XOR", "values": []}, {"type": "AND", "values": "plan"}, "pro"]
)
def test_a_malformed_cohort_is_an_error_not_a_match(definition: Any) -> None:
    """A cohort that is not an AND/OR group of filters never matches: the flag using it is an error."""
    decision = compile_flags([_uses("f", 4)], cohorts={"4": definition}).evaluate(Context("u"))["f"]
    assert (decision.enabled, decision.error) == (False, "invalid_definition")
    assert "cohort 4" in decision.description


def test_static_and_external_cohorts_need_nothing_from_the_person_store() -> None:
    """Membership of a static cohort or an externally resolved one is decided from the request alone: the
    flags using them ask the person store for nothing; a property cohort needs the person's properties."""
    cohorts = {"2": _group({"key": "plan", "value": "pro", "type": "person"})}
    snapshot = compile_flags(
        [_uses("static", 3), _uses("external", "rt-1"), _uses("property", 2)],
        cohorts=cohorts,
        static_cohorts={"3": frozenset({"ann"})},
    )
    assert not snapshot.store_needs(["static", "external"])
    assert snapshot.store_needs(["property"]).person_properties is True
