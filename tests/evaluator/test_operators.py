"""Operators, table-driven from ``cases/operators.json``, plus what a table cannot show (the clock); the
regex limits are tested at their documented numbers in ``test_boundaries.py``."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import Context, compile_flags
from evaluator.operators import OPERATORS
from tests.evaluator import cases

OPERATOR_CASES = cases.load("operators.json")


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=[c["name"] for c in OPERATOR_CASES])
def test_operator_case(case: dict[str, Any]) -> None:
    """Each filter matches exactly when the case file says it does."""
    snapshot, key = cases.snapshot(case)
    decision = snapshot.evaluate(cases.context(case["context"]))[key]
    assert decision.error is None
    assert decision.enabled is case["expect"]["match"]


def test_every_operator_has_a_case() -> None:
    """The case file exercises every operator the engine knows."""
    used = {case["filter"]["operator"] for case in OPERATOR_CASES}
    assert set(OPERATORS) <= used


def _one(filter_: dict[str, Any], clock: Any = None) -> Any:
    flag = cases.flag_for_filter(filter_)
    return compile_flags([flag], clock=clock) if clock else compile_flags([flag])


def test_relative_dates_read_the_clock_at_each_evaluation() -> None:
    """A relative date moves with the injected clock: the same snapshot answers differently as time passes."""
    now = [1_718_452_800.0]  # 2024-06-15T12:00:00Z
    snapshot = _one({"key": "seen", "operator": "is_date_after", "value": "-1d"}, clock=lambda: now[0])
    ctx = Context("u", {"seen": "2024-06-15T00:00:00Z"})
    assert snapshot.evaluate(ctx)["case-flag"].enabled
    now[0] += 2 * 86400
    assert not snapshot.evaluate(ctx)["case-flag"].enabled


def test_unusable_filter_value_makes_the_flag_an_error() -> None:
    """A gt filter whose value is not a number compiles into an error decision naming the path."""
    snapshot = _one({"key": "age", "operator": "gt", "value": "thirty"})
    decision = snapshot.evaluate(Context("u", {"age": 40}))["case-flag"]
    assert (decision.enabled, decision.error) == (False, "invalid_definition")
    assert "filters.groups[0].properties[0].value" in decision.description


def test_group_filter_reads_the_named_groups_properties() -> None:
    """A group-typed filter in a person flag reads the properties of the group its index names."""
    flag = cases.flag_for_filter(
        {"key": "tier", "operator": "exact", "value": "gold", "type": "group", "group_type_index": 0}
    )
    snapshot = compile_flags([flag], group_type_mapping={"0": "company"})
    gold = Context("u", groups={"company": "acme"}, group_properties={"company": {"tier": "gold"}})
    assert snapshot.evaluate(gold)["case-flag"].enabled
    assert not snapshot.evaluate(Context("u", {"tier": "gold"}))["case-flag"].enabled
