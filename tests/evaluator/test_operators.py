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


@pytest.mark.parametrize(
    ("value", "v1", "v2"),
    [(0, True, False), (1, True, False), ("no", True, False), (False, True, True), ("FALSE", True, True),
     (True, False, False), ("true", False, False), ([False], True, False)],
)  # fmt: skip
def test_exact_on_booleans_follows_the_property_matching_version(value: Any, v1: bool, v2: bool) -> None:
    """``beta exact false``: version 1 (default) compares truthiness, so 0, 1 and "no" match; version 2
    compares text, so only false-like text does."""
    flag = {
        "id": 1,
        "key": "beta-off",
        "filters": {"groups": [{"properties": [{"key": "beta", "value": False, "operator": "exact"}]}]},
    }
    for version, expected in ((1, v1), (2, v2)):
        snapshot = compile_flags([flag], property_matching_version=version)
        assert snapshot.property_matching_version == version
        assert snapshot.evaluate(Context("u", {"beta": value}))["beta-off"].enabled is expected


def test_empty_list_exact_matches_truthy_values_in_both_versions() -> None:
    """``exact []`` matches a truthy property (true, "true") and nothing else, under both versions."""
    flag = {"id": 1, "key": "e", "filters": {"groups": [{"properties": [{"key": "b", "value": []}]}]}}
    for version in (1, 2):
        snapshot = compile_flags([flag], property_matching_version=version)
        got = [snapshot.evaluate(Context("u", {"b": v}))["e"].enabled for v in (True, "TRUE", "x", 1, False)]
        assert got == [True, True, False, False, False]


def test_an_unknown_property_matching_version_is_refused() -> None:
    """Only versions 1 and 2 exist; compiling with another is a caller error."""
    with pytest.raises(ValueError, match="property_matching_version"):
        compile_flags([], property_matching_version=3)


@pytest.mark.parametrize(
    ("signup", "before"),
    [("June 1, 2023", True), ("2023/05/01", True), ("Wed, 02 Jun 2021 06:31:39 GMT", True),
     ("2023-12-31 18:00:00 PST", False), ("01/15/2024", False), (1_700_000_000, True), ("1704067199", True),
     ("1704067200", False), ("4:00pm", False), ("not a date", False)],
)  # fmt: skip
def test_dates_are_read_as_posthogs_server_reads_them(signup: Any, before: bool) -> None:
    """``is_date_before 2024-01-01`` holds for non-ISO dates the server parses ("June 1, 2023", "2023/05/01",
    RFC 2822, US zones) and for epoch seconds (numbers or numeric strings); a string without a full date
    (a bare time) or no date at all never matches."""
    flag = {
        "id": 1,
        "key": "early",
        "filters": {
            "groups": [
                {"properties": [{"key": "signup", "operator": "is_date_before", "value": "2024-01-01"}]}
            ]
        },
    }
    snapshot = compile_flags([flag])
    assert snapshot.evaluate(Context("u", {"signup": signup}))["early"].enabled is before


def test_a_non_iso_date_filter_works_remotely_but_is_not_offered_to_sdks() -> None:
    """A filter value like "June 1, 2023" evaluates on flagd, but SDKs read it each their own way, so the flag
    stays out of local evaluation; ISO and relative filter values stay in."""

    def flag(key: str, value: Any) -> dict[str, Any]:
        prop = {"key": "signup", "operator": "is_date_after", "value": value}
        return {
            "id": len(key),
            "key": key,
            "bucketing": "posthog",
            "filters": {"groups": [{"properties": [prop]}]},
        }

    snapshot = compile_flags(
        [
            flag("prose", "June 1, 2023"),
            flag("epoch", 1685577600),
            flag("iso", "2023-06-01"),
            flag("rel", "-7d"),
        ]
    )
    assert snapshot.evaluate(Context("u", {"signup": "2023-07-01"}))["prose"].enabled
    assert snapshot.sdk_reproducible == {"iso", "rel"}


BIG = 2**70  # beyond a double's 53 bits: 2**70 and 2**70 + 1 are the same float


@pytest.mark.parametrize(
    ("operator", "value", "sent", "match"),
    [
        ("gt", BIG, BIG + 1, True),
        ("gte", BIG + 1, BIG, False),
        ("lt", BIG + 1, BIG, True),
        ("lte", BIG, BIG + 1, False),
    ],
)
@pytest.mark.parametrize("negation", [False, True])
def test_large_integers_compare_exactly(
    operator: str, value: int, sent: int, match: bool, negation: bool
) -> None:
    """Integers too large for a double compare exactly, on the fused path and on the negated generic one (the
    compiled evaluator must not round them through ``float``)."""
    prop = {"key": "n", "type": "person", "operator": operator, "value": value, "negation": negation}
    snapshot = compile_flags([{"id": 1, "key": "f", "filters": {"groups": [{"properties": [prop]}]}}])
    decision = snapshot.evaluate(Context("u", {"n": sent}))["f"]
    assert decision.error is None
    assert decision.enabled is (match is not negation)


def test_regex_on_a_lone_surrogate_answers_instead_of_raising() -> None:
    """A property value with a lone surrogate (JSON "\\ud800") is searched like any text: regex and
    not_regex answer (the surrogate stands for one unknown character), they never raise."""
    snapshot = compile_flags(
        [
            {
                "key": "re",
                "filters": {
                    "groups": [{"properties": [{"key": "p", "operator": "regex", "value": "^a.b$"}]}]
                },
            },
            {
                "key": "nre",
                "filters": {
                    "groups": [{"properties": [{"key": "p", "operator": "not_regex", "value": "x"}]}]
                },
            },
        ]
    )
    decisions = snapshot.evaluate(Context("u", {"p": "a\ud800b"}))
    assert (decisions["re"].enabled, decisions["re"].error) == (True, None)
    assert (decisions["nre"].enabled, decisions["nre"].error) == (True, None)
