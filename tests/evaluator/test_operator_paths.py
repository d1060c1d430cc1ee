"""Every operator through every path a filter can take: the hot path's fused check (positive person filter),
the generic path (negated filter, ``distinct_id``, another group's property) and the missing-property rule.

Each row is (operator, filter value, property value, expected match); the rows sit on the boundaries a slip
would move: equality for strict and inclusive comparisons, case folding of single values and lists, booleans,
empty lists, unusable filter values. The clock is fixed at 2024-06-15T12:00:00Z for relative dates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from evaluator import Context, Decision, compile_flags

NOW = 1_718_452_800.0  # 2024-06-15T12:00:00Z
UNUSABLE = (
    "unusable"  # the filter value cannot be used: the filter is false whatever the polarity (a warning)
)
ERROR = (
    "error"  # the filter value is not of the operator's kind: the flag answers an invalid_definition error
)

Row = tuple[str, Any, Any, bool | str]
ROWS: list[Row] = [
    # exact / is_not: str.lower() on both sides, lists mean "any of", non-strings compare as compact JSON
    ("exact", "Pro", "pro", True),
    ("exact", "pro", "PRO", True),
    ("exact", "pro", "pr", False),
    ("exact", ["a", "B"], "b", True),
    ("exact", ["a", "b"], "B", True),
    ("exact", ["a", "b"], "c", False),
    ("exact", ["x", 2], 2, True),
    ("exact", ["x", 2], "X", True),
    ("exact", ["x", 2], 3, False),
    ("exact", [], "a", False),  # an empty list matches a truthy property (PostHog)
    ("exact", [], True, True),
    ("exact", [], "TRUE", True),
    ("exact", "2", 2, True),
    ("exact", 1, 1.0, False),
    ("exact", True, True, True),
    ("exact", True, "TRUE", True),
    ("exact", "true", True, True),
    ("exact", False, True, False),
    ("exact", None, None, True),
    ("exact", "straße", "STRASSE", False),
    ("exact", "ÉTÉ", "été", True),
    ("exact", {"b": 1, "a": [2, None]}, {"a": [2, None], "b": 1}, True),
    ("exact", '{"a":1}', {"a": 1}, True),
    ("exact", "1.5", 1.5, True),
    ("exact", "1e+100", 1e100, True),
    ("exact", "nan", float("nan"), False),
    ("exact", ["inf", "nan"], float("inf"), False),
    ("icontains", "1", float("inf"), False),
    ("is_not", "Pro", "pro", False),
    ("is_not", ["a", "B"], "b", False),
    ("is_not", ["a", "b"], "c", True),
    ("is_not", "a", 1, True),
    ("is_not", "2", 2, False),
    ("is_not", [], "a", True),
    ("is_not", [], "true", False),
    ("is_set", "any", None, True),
    ("is_set", None, "x", True),
    ("is_not_set", "any", "x", False),
    ("is_not_set", None, None, False),
    # substring operators: ASCII-only case folding
    ("icontains", "ELL", "hello", True),
    ("icontains", "ell", "HELLO", True),
    ("icontains", "x", "hello", False),
    ("icontains", "É", "é", False),
    ("icontains", "Àb", "xàBy", False),
    ("icontains", "Àb", "xÀBy", True),
    ("icontains", "1", 12, True),
    ("icontains", "TRU", True, True),
    ("icontains", "", "anything", True),
    ("not_icontains", "ELL", "hello", False),
    ("not_icontains", "x", "hello", True),
    ("not_icontains", "Àb", "xÀBy", False),
    ("starts_with", "HE", "hello", True),
    ("starts_with", "he", "HELLO", True),
    ("starts_with", "lo", "hello", False),
    ("starts_with", "1", 12, True),
    ("not_starts_with", "he", "hello", False),
    ("not_starts_with", "x", "hello", True),
    ("ends_with", "LO", "hello", True),
    ("ends_with", "lo", "HELLO", True),
    ("ends_with", "he", "hello", False),
    ("not_ends_with", "LO", "hello", False),
    ("not_ends_with", "he", "hello", True),
    ("starts_with", ["a"], "a", False),  # a list value is stringified: '["a"]'
    # regex: RE2 search, case-sensitive, in the stringified value
    ("regex", "^a.c$", "abc", True),
    ("regex", "b", "abc", True),
    ("regex", "^b", "abc", False),
    ("regex", "A", "a", False),
    ("regex", "", "anything", True),
    ("regex", "^1", 12, True),
    ("regex", "^tr", True, True),
    ("regex", 12, "x12", True),
    ("regex", "(a", "a", UNUSABLE),
    ("regex", "(a)\\1", "aa", UNUSABLE),
    ("regex", True, "true", ERROR),
    ("not_regex", "b", "abc", False),
    ("not_regex", "^b", "abc", True),
    ("not_regex", "^1", 12, False),
    ("not_regex", "(", "x", UNUSABLE),
    # numeric comparisons: strict at equality for gt/lt, inclusive for gte/lte; bools are not numbers
    ("gt", 5, 5, False),
    ("gt", 5, 6, True),
    ("gt", 5, 5.000001, True),
    ("gt", 5, "5.5", True),
    ("gt", "5", 4, False),
    ("gt", 5, "abc", False),
    ("gt", 0, True, False),
    ("gt", 5, "1e3", True),
    ("gt", 5, " 12", False),
    ("gt", 5, "nan", False),
    ("gt", 2**70, 2**70 + 1, True),
    ("gt", "five", 6, ERROR),
    ("gte", 5, 5, True),
    ("gte", 5, "5", True),
    ("gte", 5, 4.9, False),
    ("gte", 5, 6, True),
    ("lt", 5, 5, False),
    ("lt", 5, 4, True),
    ("lt", 5, "4", True),
    ("lt", 5, 6, False),
    ("lt", 5, None, False),
    ("lte", 5, 5, True),
    ("lte", 5, 5.0, True),
    ("lte", 5, 6, False),
    ("lte", 5, 4, True),
    ("between", [1, 3], 1, True),
    ("between", [1, 3], 3, True),
    ("between", [1, 3], 2, True),
    ("between", [1, 3], 0.5, False),
    ("between", [1, 3], 3.5, False),
    ("between", {"min": 1, "max": 3}, 2, True),
    ("between", {"min": 1, "max": 3}, 4, False),
    ("between", [3, 1], 2, False),
    ("between", [1, 3], "x", False),
    ("between", [1], 2, ERROR),
    ("between", ["a", 3], 2, ERROR),
    ("between", 2, 2, ERROR),
    ("not_between", [1, 3], 1, False),
    ("not_between", [1, 3], 3, False),
    ("not_between", [1, 3], 0, True),
    ("not_between", [1, 3], 4, True),
    ("not_between", [1, 3], "x", False),
    # dates: strict before/after (equal instants match neither), exact = same UTC calendar day
    ("is_date_before", "2024-01-02", "2024-01-01", True),
    ("is_date_before", "2024-01-02", "2024-01-02", False),
    ("is_date_before", "2024-01-02T00:00:00Z", 1704153600, False),
    ("is_date_before", "2024-01-02T00:00:00Z", 1704153599, True),
    ("is_date_before", "2024-01-02T00:00:00Z", "1704153599", True),
    ("is_date_before", "2024-01-02", "2024-01-01 23:00:00 UTC", True),
    ("is_date_before", "2024-01-02", "not a date", False),
    ("is_date_before", "2024-01-02", "x" * 65, False),
    ("is_date_before", "nope", "2024-01-01", ERROR),
    ("is_date_after", "2024-01-02", "2024-01-02", False),
    ("is_date_after", "2024-01-02", "2024-01-02T00:00:01Z", True),
    ("is_date_after", "2024-01-02", "2024-01-01T23:59:59Z", False),
    ("is_date_after", "2024-01-02T00:00:00+02:00", "2024-01-01T23:00:00Z", True),
    ("is_date_exact", "2024-01-02", "2024-01-02T23:59:59Z", True),
    ("is_date_exact", "2024-01-02", "2024-01-03T00:00:00Z", False),
    ("is_date_exact", "2024-01-02", "2024-01-01T23:59:59Z", False),
    ("is_date_exact", "2024-01-02T18:00:00Z", "2024-01-02", True),
    ("is_date_exact", "1969-12-31", "1969-12-31T23:00:00Z", True),
    ("is_date_exact", "1969-12-31", "1970-01-01T01:00:00Z", False),
    ("is_date_before", " -1d ", "2024-06-14T11:59:59Z", True),
    ("is_date_after", "1d", "2024-06-14T12:00:01Z", True),
    # relative dates, against the fixed clock
    ("is_date_after", "-1d", "2024-06-14T12:00:01Z", True),
    ("is_date_after", "-1d", "2024-06-14T12:00:00Z", False),
    ("is_date_before", "-1d", "2024-06-14T12:00:00Z", False),
    ("is_date_before", "-1d", "2024-06-14T11:59:59Z", True),
    ("is_date_after", "-2h", "2024-06-15T10:00:01Z", True),
    ("is_date_after", "-2h", "2024-06-15T10:00:00Z", False),
    ("is_date_after", "-1w", "2024-06-08T12:00:00Z", False),
    ("is_date_after", "-1m", "2024-05-15T12:00:00Z", False),
    ("is_date_after", "-1y", "2023-06-15T12:00:00Z", False),
    ("is_date_before", "-1w", "2024-06-08T12:00:00Z", False),
    ("is_date_after", "-2h", "2024-06-15T09:59:59Z", False),
    ("is_date_after", "-1w", "2024-06-08T12:00:01Z", True),
    ("is_date_after", "-1w", "2024-06-08T11:59:59Z", False),
    ("is_date_after", "-1m", "2024-05-15T12:00:01Z", True),
    ("is_date_after", "-1m", "2024-05-15T11:59:59Z", False),
    ("is_date_after", "-6m", "2023-12-15T12:00:01Z", True),
    ("is_date_after", "-6m", "2023-12-15T11:59:59Z", False),
    ("is_date_after", "-1y", "2023-06-15T12:00:01Z", True),
    ("is_date_after", "-1y", "2023-06-15T11:59:59Z", False),
    ("is_date_after", "-3000y", "0001-01-01T00:00:00Z", True),
    ("is_date_exact", "-1d", "2024-06-14T00:00:00Z", True),
    ("is_date_exact", "-1d", "2024-06-15T00:00:00Z", False),
    # semver: numeric parts, pre-release and build dropped, missing parts are 0
    ("semver_eq", "1.2.3", "v1.2.3", True),
    ("semver_eq", "1.2.3", " V1.2.3-rc.1+b7 ", True),
    ("semver_eq", "1.2.3", "1.2.4", False),
    ("semver_eq", "1.2", "1.2.0", True),
    ("semver_eq", "1.0.3", "1..3", True),
    ("semver_eq", "1.2.3", "1.2.3.4", True),
    ("semver_eq", "1.2.3", "1.2.3.x", True),
    ("semver_eq", "1.2.3", "abc", False),
    ("semver_eq", "1.2.3", ".1.2", False),
    ("semver_eq", "1.2.0", "1.2.", True),
    ("semver_eq", "1.2.3", "1.2.x", False),
    ("semver_eq", "1.2.3", "１.2.3", False),
    ("semver_eq", "1.2.3", True, False),
    ("semver_eq", "1.0.0", 1, True),
    ("semver_eq", "x.y", "1.2.3", ERROR),
    ("semver_neq", "1.2.3", "1.2.3", False),
    ("semver_neq", "1.2.3", "1.2.4", True),
    ("semver_gt", "1.2.3", "1.2.3", False),
    ("semver_gt", "1.2.3", "1.2.4", True),
    ("semver_gt", "1.9.0", "1.10.0", True),
    ("semver_gte", "1.2.3", "1.2.3", True),
    ("semver_gte", "1.2.3", "1.2.2", False),
    ("semver_lt", "1.2.3", "1.2.3", False),
    ("semver_lt", "1.2.3", "1.2.2", True),
    ("semver_lte", "1.2.3", "1.2.3", True),
    ("semver_lte", "1.2.3", "1.2.4", False),
    ("semver_tilde", "1.2.3", "1.2.3", True),
    ("semver_tilde", "1.2.3", "1.2.99", True),
    ("semver_tilde", "1.2.3", "1.3.0", False),
    ("semver_tilde", "1.2.3", "1.2.2", False),
    ("semver_caret", "1.2.3", "1.9.9", True),
    ("semver_caret", "1.2.3", "2.0.0", False),
    ("semver_caret", "1.2.3", "1.2.2", False),
    ("semver_caret", "0.2.3", "0.2.9", True),
    ("semver_caret", "0.2.3", "0.3.0", False),
    ("semver_caret", "0.0.3", "0.0.3", True),
    ("semver_caret", "0.0.3", "0.0.4", False),
    ("semver_caret", "nope", "1.0.0", ERROR),
    ("semver_wildcard", "1.2.*", "1.2.0", True),
    ("semver_wildcard", "1.2.*", "1.2.99", True),
    ("semver_wildcard", "1.2.*", "1.3.0", False),
    ("semver_wildcard", "1.2.*", "1.1.9", False),
    ("semver_wildcard", "1.*", "1.99.0", True),
    ("semver_wildcard", "1.*", "2.0.0", False),
    ("semver_wildcard", "v1.2.3", "1.2.3", True),
    ("semver_wildcard", "1.2.3", "1.2.4", False),
    ("semver_wildcard", "1.2.3.4", "1.2.3", ERROR),
    ("semver_wildcard", "*", "1.2.3", ERROR),
    ("semver_wildcard", 1, "1.0.0", ERROR),
]


def _flag(filter_: dict[str, Any], aggregation: int | None = None) -> dict[str, Any]:
    filters: dict[str, Any] = {"groups": [{"properties": [filter_], "rollout_percentage": None}]}
    if aggregation is not None:
        filters["aggregation_group_type_index"] = aggregation
    return {"id": 1, "key": "f", "active": True, "filters": filters}


def _decide(filter_: dict[str, Any], ctx: Context, aggregation: int | None = None) -> Decision:
    snapshot = compile_flags(
        [_flag(filter_, aggregation)], group_type_mapping={"0": "company", "1": "team"}, clock=lambda: NOW
    )
    return snapshot.evaluate(ctx)["f"]


def _matches(filter_: dict[str, Any], ctx: Context, aggregation: int | None = None) -> bool:
    decision = _decide(filter_, ctx, aggregation)
    assert decision.error is None, decision.description
    return decision.enabled


def _row_id(row: Row) -> str:
    return f"{row[0]}-{row[1]!r}-{row[2]!r}"[:60]


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(row) for row in ROWS])
def test_every_path_gives_the_documented_answer(row: Row) -> None:
    """A person filter (fused), its negation, a distinct_id filter and another group's filter (generic) all
    give the row's answer for a present property, and its opposite when negated."""
    operator, expected, value, match = row
    positive = {"key": "k", "operator": operator, "value": expected}
    negated = {**positive, "negation": True}
    if match == UNUSABLE:
        for filter_ in (positive, negated, {**positive, "key": "distinct_id"}):
            assert _matches(filter_, Context("u", {"k": value, "distinct_id": value})) is False
        return
    if match == ERROR:
        for filter_ in (positive, negated):
            decision = _decide(filter_, Context("u", {"k": value}))
            assert (decision.enabled, decision.error) == (False, "invalid_definition")
            assert "filters.groups[0].properties[0].value" in decision.description
        return
    assert _matches(positive, Context("u", {"k": value})) is match
    assert _matches(negated, Context("u", {"k": value})) is (not match)
    # distinct_id reads the context (or a distinct_id property): the generic path with the positive operator
    by_id = {**positive, "key": "distinct_id"}
    if isinstance(value, str):
        assert _matches(by_id, Context(value)) is match
    assert _matches(by_id, Context("someone-else", {"distinct_id": value})) is match
    # a group filter in a person flag reads that group's properties through the generic path
    grouped = {**positive, "type": "group", "group_type_index": 0}
    company = Context("u", {"k": "person-value"}, {"company": "acme"}, {"company": {"k": value}})
    assert _matches(grouped, company) is match
    assert _matches({**grouped, "negation": True}, company) is (not match)
    # in a group flag, the flag's own group properties are the condition's properties
    assert _matches(positive, company, aggregation=0) is match


ON_MISSING = {
    "is_not": True,
    "is_not_set": True,
    "not_icontains": True,
    "not_starts_with": True,
    "not_ends_with": True,
    "not_regex": True,
}
SAMPLE_VALUE = {
    "between": [1, 3],
    "not_between": [1, 3],
    "is_date_before": "2024-01-01",
    "is_date_after": "2024-01-01",
    "is_date_exact": "2024-01-01",
    "semver_tilde": "1.2.3",
    "semver_caret": "1.2.3",
    "semver_wildcard": "1.2.*",
}


@pytest.mark.parametrize("operator", sorted({row[0] for row in ROWS}))
def test_missing_property_follows_the_documented_rule(operator: str) -> None:
    """A missing property matches only the not_, is_not and is_not_set forms; negation flips that, on every
    path."""
    value = SAMPLE_VALUE.get(operator, "1.2.3" if operator.startswith("semver") else "5")
    expected = ON_MISSING.get(operator, False)
    positive = {"key": "k", "operator": operator, "value": value}
    nobody = Context("u", {"other": 1})
    assert _matches(positive, nobody) is expected
    assert _matches({**positive, "negation": True}, nobody) is (not expected)
    grouped = {**positive, "type": "group", "group_type_index": 0}
    assert _matches(grouped, Context("u", {"k": "x"}, {"company": "acme"}, {"company": {}})) is expected
    assert _matches(grouped, Context("u", {"k": "x"})) is expected  # no properties for the group at all
    assert _matches(positive, Context("u", {}, {"company": "acme"}), aggregation=0) is expected


def test_every_operator_has_a_row() -> None:
    """The table covers every operator the engine knows."""
    from evaluator.operators import OPERATORS

    assert set(OPERATORS) <= {row[0] for row in ROWS}


@pytest.mark.parametrize(
    ("now", "value", "match"),
    [
        ("2024-03-31T12:00:00+00:00", "2024-02-29T12:00:01Z", True),  # March 31 minus a month: Feb 29
        ("2024-03-31T12:00:00+00:00", "2024-02-29T11:59:59Z", False),
        ("2023-03-31T12:00:00+00:00", "2023-02-28T12:00:01Z", True),  # not a leap year: Feb 28
        ("2023-03-31T12:00:00+00:00", "2023-02-28T11:59:59Z", False),
        ("2024-01-31T12:00:00+00:00", "2023-12-31T12:00:01Z", True),  # across the year, into December
        ("2024-01-31T12:00:00+00:00", "2023-12-31T11:59:59Z", False),
        ("2024-12-31T12:00:00+00:00", "2024-11-30T12:00:01Z", True),
        ("2024-12-31T12:00:00+00:00", "2024-11-30T11:59:59Z", False),
    ],
)
def test_relative_months_clamp_to_the_end_of_the_month(now: str, value: str, match: bool) -> None:
    """ "-1m" moves one calendar month back, clamping the day (March 31 -> February 28 or 29)."""
    instant = datetime.fromisoformat(now).timestamp()
    flag = _flag({"key": "k", "operator": "is_date_after", "value": "-1m"})
    snapshot = compile_flags([flag], clock=lambda: instant)
    assert snapshot.evaluate(Context("u", {"k": value}))["f"].enabled is match


def test_dates_given_as_python_objects_compare_as_instants() -> None:
    """A property holding a datetime (naive = UTC) or a date compares like its ISO-8601 text."""
    flag = _flag({"key": "k", "operator": "is_date_before", "value": "2024-01-02T00:00:00Z"})
    snapshot = compile_flags([flag], clock=lambda: NOW)
    for value, match in (
        (datetime(2024, 1, 1, 23, 59), True),
        (datetime(2024, 1, 2, 0, 0), False),
        (datetime(2024, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=1))), True),
        (date(2024, 1, 1), True),
        (date(2024, 1, 2), False),
    ):
        assert snapshot.evaluate(Context("u", {"k": value}))["f"].enabled is match, value
