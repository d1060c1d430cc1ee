"""Evaluating behavioural cohorts: thresholds, negation, AND/OR trees with person properties, cohorts in
cohorts, and flags failing on their own (``store_unavailable``) when a count they need is missing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator import Context, compile_flags
from evaluator.behaviour import STORE_UNAVAILABLE
from tests.evaluator.behaviour.strategies import (
    cohort_flag,
    group,
    leaf,
    leaf_holds,
    leaves,
    person,
    query_key,
    tree_holds,
    tree_keys,
    trees,
)

PAGEVIEW_5M = "e:$pageview@300s"


def _member(cohort: dict[str, Any], counts: dict[str, int] | None, **props: Any) -> Any:
    snapshot = compile_flags([cohort_flag("f", 1)], cohorts={"1": cohort})
    return snapshot.evaluate(Context("u1", props, behaviour=counts))["f"]


@pytest.mark.parametrize(
    ("operator", "matches"),
    [
        ("gte", (False, True, True)),
        ("gt", (False, False, True)),
        ("lte", (True, True, False)),
        ("lt", (True, False, False)),
        ("eq", (False, True, False)),
        ("exact", (False, True, False)),
    ],
)
def test_thresholds_at_their_boundary(operator: str, matches: tuple[bool, bool, bool]) -> None:
    """performed_event_multiple compares the count with operator_value exactly: one below, at, one above."""
    cohort = group("AND", leaf(times=3, operator=operator))
    got = tuple(_member(cohort, {PAGEVIEW_5M: n}).enabled for n in (2, 3, 4))
    assert got == matches


def test_performed_event_is_at_least_once() -> None:
    """performed_event matches from one occurrence in the window; zero is not a member."""
    cohort = group("AND", leaf())
    assert not _member(cohort, {PAGEVIEW_5M: 0}).enabled
    assert _member(cohort, {PAGEVIEW_5M: 1}).enabled


def test_windows_name_their_queries() -> None:
    """Each interval reads the count over its own window (month 30 days, year 365) or since an instant."""
    cohorts = {
        "1": group(
            "AND",
            leaf(time_value=2, time_interval="hour"),
            leaf(time_value=1, time_interval="month"),
            leaf(time_value=1, time_interval="year"),
            leaf(explicit_datetime="-15M", time_value=None, time_interval=None),
            leaf(explicit_datetime="2026-01-01T00:00:00Z", time_value=None, time_interval=None),
        )
    }
    snapshot = compile_flags([cohort_flag("f", 1)], cohorts=cohorts)
    queries = snapshot.store_needs().queries
    assert sorted((q.window_seconds or 0, q.since or 0) for q in queries) == [
        (0, 1_767_225_600),
        (900, 0),
        (7200, 0),
        (30 * 86400, 0),
        (365 * 86400, 0),
    ]


@given(leaves(), st.integers(0, 10))
def test_negation_inverts_a_leaf(raw: dict[str, Any], count: int) -> None:
    """A negated leaf matches exactly when the same leaf without negation does not."""
    plain = {**raw, "negation": False}
    negated = {**raw, "negation": True}
    counts = {query_key(raw): count}
    assert _member(group("AND", plain), counts).enabled is not _member(group("AND", negated), counts).enabled
    assert _member(group("AND", plain), counts).enabled is leaf_holds(plain, count)


@settings(max_examples=150, deadline=None)
@given(trees(), st.sampled_from([None, "free", "pro"]), st.data())
def test_trees_mixing_behaviour_and_properties(
    tree: dict[str, Any], plan: str | None, data: st.DataObject
) -> None:
    """An AND/OR tree of behavioural and person leaves evaluates like its reference semantics."""
    counts = {key: data.draw(st.integers(0, 6)) for key in tree_keys(tree)}
    props = {} if plan is None else {"plan": plan}
    decision = _member(tree, counts, **props)
    assert decision.error is None
    assert decision.enabled is tree_holds(tree, plan, counts)


@settings(max_examples=150, deadline=None)
@given(trees(), st.sampled_from([None, "free", "pro"]), st.data())
def test_missing_counts_fail_only_when_needed(
    tree: dict[str, Any], plan: str | None, data: st.DataObject
) -> None:
    """With some counts missing, the flag either fails (store_unavailable) or gives the answer every
    completion of the missing counts would give; it fails only if a count is missing."""
    keys = sorted(tree_keys(tree))
    present = {key: data.draw(st.integers(0, 6)) for key in keys if data.draw(st.booleans())}
    props = {} if plan is None else {"plan": plan}
    decision = _member(tree, present, **props)
    if decision.error is not None:
        assert decision.error == STORE_UNAVAILABLE
        assert not decision.enabled
        assert set(present) != set(keys)
        return
    for fill in (0, 1, 3, 100):
        complete = {key: present.get(key, fill) for key in keys}
        assert decision.enabled is tree_holds(tree, plan, complete)


def test_cohort_in_cohort_with_behaviour() -> None:
    """A cohort requiring another, behavioural, cohort (or not_in it) reads the inner cohort's count."""
    cohorts = {
        "1": group("AND", leaf("purchase", times=2)),
        "2": group("AND", {"key": "id", "type": "cohort", "value": 1}, person("plan", "pro")),
        "3": group("AND", {"key": "id", "type": "cohort", "value": 1, "negation": True}),
    }
    snapshot = compile_flags([cohort_flag("in2", 2), cohort_flag("out3", 3, flag_id=2)], cohorts=cohorts)
    key = "e:purchase@300s"

    def answer(count: int, plan: str) -> tuple[bool, bool]:
        got = snapshot.evaluate(Context("u", {"plan": plan}, behaviour={key: count}))
        return got["in2"].enabled, got["out3"].enabled

    assert answer(2, "pro") == (True, False)
    assert answer(1, "pro") == (False, True)
    assert answer(5, "free") == (False, False)


def _project() -> Any:
    cohorts = {
        "1": group("AND", leaf()),
        "2": group("AND", person("plan", "pro"), leaf("purchase")),
        "3": group("AND", person("plan", "pro")),
    }
    dep = {"key": "behaves", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
    flags = [
        cohort_flag("behaves", 1, flag_id=1),
        cohort_flag("pro_buyer", 2, flag_id=2),
        cohort_flag("pro", 3, flag_id=3),
        {"id": 4, "key": "rollout", "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}},
        {"id": 5, "key": "depends", "filters": {"groups": [{"properties": [dep]}]}},
    ]
    return compile_flags(flags, cohorts=cohorts)


@pytest.mark.parametrize("behaviour", [None, {}, {"e:purchase@300s": 4}])
def test_missing_counts_fail_only_the_flags_that_need_them(behaviour: dict[str, int] | None) -> None:
    """Without the $pageview count, the flag reading it and its dependent fail; flags reading no count,
    or decided by a property before any count is needed, answer normally."""
    snapshot = _project()
    for keys in (None, ["behaves", "depends", "pro", "rollout", "pro_buyer"], ["depends"]):
        got = snapshot.evaluate(Context("u1", {"plan": "free"}, behaviour=behaviour), keys)
        assert got["depends"].error == STORE_UNAVAILABLE
        assert not got["depends"].enabled
        if keys is None or "behaves" in keys:
            assert got["behaves"].error == STORE_UNAVAILABLE
        if keys is None or "pro" in keys:
            assert got["pro"].error is None
            assert got["rollout"].error is None
            assert got["pro_buyer"].error is None  # plan is free: the AND is decided without a count
            assert got["pro_buyer"].reason == "no_condition_match"


def test_a_present_count_is_used_and_a_missing_one_fails() -> None:
    """A pro user's pro_buyer flag needs the purchase count: missing fails it, present decides it."""
    snapshot = _project()
    failed = snapshot.evaluate(Context("u1", {"plan": "pro"}, behaviour={PAGEVIEW_5M: 1}))
    assert failed["pro_buyer"].error == STORE_UNAVAILABLE
    assert failed["behaves"].enabled
    assert failed["depends"].enabled
    ok = snapshot.evaluate(Context("u1", {"plan": "pro"}, behaviour={PAGEVIEW_5M: 0, "e:purchase@300s": 1}))
    assert ok["pro_buyer"].enabled
    assert not ok["behaves"].enabled
    assert ok["behaves"].error is None


def test_behavioural_cohorts_are_not_sdk_reproducible() -> None:
    """Flags using a behavioural cohort -- directly, nested, or through a dependency -- are left to the
    server; flags using only property cohorts stay reproducible."""
    cohorts = {
        "1": group("AND", leaf()),
        "2": group("OR", {"key": "id", "type": "cohort", "value": 1}, person("plan", "pro")),
        "3": group("AND", person("plan", "pro")),
    }
    dep = {"key": "direct", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
    flags = [
        cohort_flag("direct", 1, flag_id=1),
        cohort_flag("nested", 2, flag_id=2),
        cohort_flag("property", 3, flag_id=3),
        {"id": 4, "key": "dependent", "bucketing": "posthog", "filters": {"groups": [{"properties": [dep]}]}},
    ]
    snapshot = compile_flags(flags, cohorts=cohorts)
    assert snapshot.sdk_reproducible == {"property"}
    assert snapshot.cohorts_used_by(snapshot.sdk_reproducible) == {"3"}


def test_incremental_compile_follows_cohort_edits() -> None:
    """After a cohort edit, a compile with ``previous`` evaluates like a fresh one, with the new threshold."""
    flags = [
        cohort_flag("f", 1),
        {"id": 2, "key": "p", "filters": {"groups": [{"properties": [person("a", 1)]}]}},
    ]
    first = compile_flags(flags, cohorts={"1": group("AND", leaf(times=2))})
    edited = {"1": group("AND", leaf(times=5))}
    again = compile_flags(flags, cohorts=edited, previous=first)
    fresh = compile_flags(flags, cohorts=edited)
    ctx = Context("u", {"a": 1}, behaviour={PAGEVIEW_5M: 3})
    assert first.evaluate(ctx)["f"].enabled
    assert again.evaluate(ctx) == fresh.evaluate(ctx)
    assert not again.evaluate(ctx)["f"].enabled
    unchanged = compile_flags(flags, cohorts=edited, previous=again)
    assert unchanged.flag("f") is again.flag("f")
    assert unchanged.counters == again.counters
    assert unchanged.evaluate(ctx) == fresh.evaluate(ctx)


@settings(max_examples=60, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=3), st.lists(trees(), min_size=1, max_size=3), st.data())
def test_incremental_compile_with_changing_behavioural_cohorts(
    before: list[dict[str, Any]], after: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Compiling with ``previous`` after the cohorts change (or not) evaluates, needs and counts exactly like
    a fresh compile."""
    flags = [cohort_flag(f"f{i}", i, flag_id=i + 1) for i in range(3)]
    old = {str(i): tree for i, tree in enumerate(before)}
    new = old if data.draw(st.booleans()) else {str(i): tree for i, tree in enumerate(after)}
    first = compile_flags(flags, cohorts=old)
    again = compile_flags(flags, cohorts=new, previous=first)
    fresh = compile_flags(flags, cohorts=new)
    assert [c.id for c in again.counters] == [c.id for c in fresh.counters]
    assert again.store_needs() == fresh.store_needs()
    keys = sorted(set().union(*(tree_keys(t) for t in [*before, *after])))
    for _ in range(3):
        counts = {key: data.draw(st.integers(0, 4)) for key in keys if data.draw(st.booleans())}
        ctx = Context("u", {"plan": data.draw(st.sampled_from(["free", "pro"]))}, behaviour=counts)
        assert again.evaluate(ctx) == fresh.evaluate(ctx)


def test_a_condition_decided_by_a_property_needs_no_count() -> None:
    """A flag condition listing a behavioural cohort before a person filter that fails answers
    no_condition_match without counts; when the person filter holds, the missing count fails the flag."""
    flag = cohort_flag("f", 1)
    flag["filters"]["groups"][0]["properties"].append(person("plan", "pro"))
    snapshot = compile_flags([flag], cohorts={"1": group("AND", leaf())})
    free = snapshot.evaluate(Context("u", {"plan": "free"}))["f"]
    assert free.error is None
    assert free.reason == "no_condition_match"
    assert snapshot.evaluate(Context("u", {"plan": "pro"}))["f"].error == STORE_UNAVAILABLE
    assert snapshot.evaluate(Context("u", {"plan": "pro"}, behaviour={PAGEVIEW_5M: 1}))["f"].enabled


def test_nested_groups_and_cohorts_with_behaviour_are_checked_last() -> None:
    """A nested group or a referenced cohort holding behaviour, listed first, is not read when a property
    later in the same AND already fails (or in an OR already holds)."""
    cohorts = {
        "1": group("AND", leaf()),
        "2": group("AND", group("OR", leaf("purchase"), leaf("signed_up")), person("plan", "pro")),
        "3": group("AND", {"key": "id", "type": "cohort", "value": 1}, person("plan", "pro")),
        "4": group("OR", {"key": "id", "type": "cohort", "value": 1}, person("plan", "free")),
    }
    flags = [cohort_flag(f"c{i}", i, flag_id=i) for i in (2, 3, 4)]
    snapshot = compile_flags(flags, cohorts=cohorts)
    got = snapshot.evaluate(Context("u", {"plan": "free"}))
    assert [got[k].error for k in ("c2", "c3", "c4")] == [None, None, None]
    assert [got[k].enabled for k in ("c2", "c3", "c4")] == [False, False, True]
    pro = snapshot.evaluate(Context("u", {"plan": "pro"}))
    assert [pro[k].error for k in ("c2", "c3", "c4")] == [STORE_UNAVAILABLE] * 3
