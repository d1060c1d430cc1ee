"""What the person store codes against: ``Snapshot.counters`` and ``Snapshot.store_needs``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator import Context, compile_flags
from evaluator.behaviour import NOTHING, counter_id
from tests.evaluator.behaviour.strategies import cohort_flag, group, leaf, person, trees

PRICING = [{"key": "$current_url", "operator": "icontains", "value": "/pricing", "type": "event"}]


def _rollout_flag(key: str, flag_id: int) -> dict[str, Any]:
    return {"id": flag_id, "key": key, "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}}


def test_counters_cover_every_valid_cohort() -> None:
    """Each behavioural leaf of each valid cohort has a counter, used by a flag or not; broken ones none."""
    cohorts = {
        "1": group("AND", leaf("$pageview")),
        "2": group("OR", leaf("purchase", times=2, event_filters=PRICING)),  # no flag uses it
        "3": group("AND", leaf("signed_up", time_interval="fortnight")),  # invalid
    }
    snapshot = compile_flags([cohort_flag("f", 1)], cohorts=cohorts)
    ids = [c.id for c in snapshot.counters]
    assert ids == sorted(ids)
    assert "e:$pageview" in ids
    filtered = [c for c in snapshot.counters if c.event == "purchase"]
    assert len(filtered) == 1
    assert filtered[0].id == counter_id("purchase", filtered[0].filters)
    assert not any(c.event == "signed_up" for c in snapshot.counters)


def test_counter_matches_event_properties() -> None:
    """A filtered counter's ``matches`` applies the leaf's event filters to event properties; never raises."""
    snapshot = compile_flags([], cohorts={"1": group("AND", leaf(event_filters=PRICING))})
    (counter,) = snapshot.counters
    assert counter.matches({"$current_url": "https://x.io/PRICING?a=1"})
    assert not counter.matches({"$current_url": "https://x.io/docs"})
    assert not counter.matches({})
    assert not counter.matches(None)  # type: ignore[arg-type]


def test_counter_ids_ignore_filter_order_and_spelled_defaults() -> None:
    """Reordering event filters, or spelling operator "exact" and negation false, keeps the same counter."""
    a = {"key": "plan", "value": "pro", "type": "event"}
    b = {"key": "$browser", "operator": "icontains", "value": "fire", "type": "event"}
    spelled = {**a, "operator": "exact", "negation": False}
    one = compile_flags([], cohorts={"1": group("AND", leaf(event_filters=[a, b]))}).counters
    two = compile_flags([], cohorts={"1": group("AND", leaf(event_filters=[b, spelled]))}).counters
    assert [c.id for c in one] == [c.id for c in two]


def test_counters_stable_across_recompiles() -> None:
    """Counter ids and query keys are equal after a fresh compile, an incremental one and a cohort edit."""
    cohorts = {"1": group("AND", leaf(event_filters=PRICING, times=3))}
    first = compile_flags([cohort_flag("f", 1)], cohorts=cohorts)
    again = compile_flags([cohort_flag("f", 1), _rollout_flag("r", 2)], cohorts=cohorts, previous=first)
    fresh = compile_flags(
        [cohort_flag("f", 1)], cohorts={"1": group("AND", leaf(event_filters=PRICING, times=3))}
    )
    edited = compile_flags(
        [cohort_flag("f", 1)],
        cohorts={"1": group("AND", leaf(event_filters=PRICING, times=5), person("plan", "pro"))},
        previous=first,
    )
    ids = [c.id for c in first.counters]
    assert (
        ids
        == [c.id for c in again.counters]
        == [c.id for c in fresh.counters]
        == [c.id for c in edited.counters]
    )
    assert first.store_needs().queries == again.store_needs().queries == edited.store_needs().queries


def test_a_flag_without_stored_data_needs_nothing() -> None:
    """Rollouts, static answers and inactive flags read nothing: needs are falsy, for all flags too."""
    flags = [
        _rollout_flag("r", 1),
        {"id": 2, "key": "off", "active": False, "filters": {"groups": [{"properties": [person("a", 1)]}]}},
        {"id": 3, "key": "all", "filters": {"groups": [{"properties": []}]}},
    ]
    snapshot = compile_flags(flags, cohorts={"9": group("AND", leaf())})
    assert snapshot.store_needs() is NOTHING
    assert not snapshot.store_needs(["r", "off", "all", "missing"])


def test_needs_by_kind_of_filter() -> None:
    """Person filters need person properties; group filters their group type; behaviour its queries."""
    flags = [
        {"id": 1, "key": "p", "filters": {"groups": [{"properties": [person("plan", "pro")]}]}},
        {
            "id": 2,
            "key": "g",
            "filters": {
                "aggregation_group_type_index": 0,
                "groups": [
                    {
                        "properties": [
                            {
                                "key": "size",
                                "value": 5,
                                "operator": "gt",
                                "type": "group",
                                "group_type_index": 0,
                            }
                        ]
                    }
                ],
            },
        },
        cohort_flag("b", 7, flag_id=3),
        {
            "id": 4,
            "key": "g_rollout",
            "filters": {"aggregation_group_type_index": 0, "groups": [{"rollout_percentage": 20}]},
        },
    ]
    snapshot = compile_flags(flags, cohorts={"7": group("AND", leaf())}, group_type_mapping={"0": "company"})
    p, g, b = snapshot.store_needs(["p"]), snapshot.store_needs(["g"]), snapshot.store_needs(["b"])
    assert p.person_properties
    assert not p.group_types
    assert not p.queries
    assert not g.person_properties
    assert g.group_types == {"company"}
    assert not g.queries
    assert b.person_properties
    assert [q.counter for q in b.queries] == ["e:$pageview"]
    assert b.queries[0].window_seconds == 300
    assert not snapshot.store_needs(["g_rollout"])
    everything = snapshot.store_needs()
    assert everything.person_properties
    assert everything.group_types == {"company"}
    assert everything.queries == b.queries


def test_needs_follow_dependencies_and_nested_cohorts() -> None:
    """A flag depending on a behavioural flag, or using a cohort that nests one, needs its queries too."""
    cohorts = {
        "7": group("AND", leaf(times=2)),
        "8": group("OR", {"key": "id", "type": "cohort", "value": 7}, person("plan", "pro")),
    }
    flags = [
        cohort_flag("b", 7, flag_id=1),
        {
            "id": 2,
            "key": "dep",
            "filters": {
                "groups": [
                    {
                        "properties": [
                            {"key": "b", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
                        ]
                    }
                ]
            },
        },
        cohort_flag("nested", 8, flag_id=3),
    ]
    snapshot = compile_flags(flags, cohorts=cohorts)
    wanted = snapshot.store_needs(["b"]).queries
    assert wanted
    assert snapshot.store_needs(["dep"]).queries == wanted
    assert snapshot.store_needs(["nested"]).queries == wanted


@settings(max_examples=60, deadline=None)
@given(st.lists(trees(), min_size=1, max_size=4), st.lists(st.integers(0, 5), max_size=6))
def test_needs_of_keys_is_the_union_of_each(cohort_trees: list[dict[str, Any]], picks: list[int]) -> None:
    """store_needs(keys) is exactly the union of each key's needs; every key's needs are within all flags'."""
    cohorts = {str(i): tree for i, tree in enumerate(cohort_trees)}
    flags = [cohort_flag(f"f{i}", i, flag_id=i + 1) for i in range(len(cohort_trees))]
    flags.append(_rollout_flag("plain", 99))
    snapshot = compile_flags(flags, cohorts=cohorts)
    keys = [f"f{i}" if i < len(cohort_trees) else "plain" for i in picks]
    union = NOTHING.union(snapshot.store_needs([k]) for k in keys)
    got = snapshot.store_needs(keys)
    assert got.person_properties == union.person_properties
    assert got.group_types == union.group_types
    assert {q.key for q in got.queries} == {q.key for q in union.queries}
    everything = {q.key for q in snapshot.store_needs().queries}
    assert {q.key for q in got.queries} <= everything
    assert {c.id for c in snapshot.counters} >= {q.counter for q in got.queries}


def test_needs_of_enrollment_and_cohorts_on_groups() -> None:
    """Feature enrollment reads a person property; a property cohort inside a group condition reads that
    group's properties, while its behavioural leaves still read the person's counts."""
    cohorts = {"1": group("AND", person("tier", "gold")), "2": group("AND", person("tier", "gold"), leaf())}
    on_group = {
        "aggregation_group_type_index": 0,
        "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 1}]}],
    }
    flags = [
        {
            "id": 1,
            "key": "enrolled",
            "filters": {"feature_enrollment": True, "groups": [{"rollout_percentage": 5}]},
        },
        {"id": 2, "key": "grouped", "filters": on_group},
        {
            "id": 3,
            "key": "grouped_behaviour",
            "filters": {
                **on_group,
                "groups": [{"properties": [{"key": "id", "type": "cohort", "value": 2}]}],
            },
        },
    ]
    snapshot = compile_flags(flags, cohorts=cohorts, group_type_mapping={"0": "company"})
    assert snapshot.store_needs(["enrolled"]).person_properties
    grouped = snapshot.store_needs(["grouped"])
    assert grouped.group_types == {"company"}
    assert not grouped.person_properties
    both = snapshot.store_needs(["grouped_behaviour"])
    assert both.group_types == {"company"}
    assert both.person_properties
    assert [q.counter for q in both.queries] == ["e:$pageview"]


def test_reused_cohorts_do_not_pile_up_across_incremental_compiles() -> None:
    """Edits that keep referencing new, undefined cohort ids never grow the shared cohort book for good."""
    cohorts = {"1": group("AND", leaf())}
    snapshot = compile_flags([cohort_flag("f", 1)], cohorts=cohorts)
    for i in range(400):
        flags = [cohort_flag("f", 1), cohort_flag("g", f"external-{i}", flag_id=2)]
        snapshot = compile_flags(flags, cohorts=cohorts, previous=snapshot)
        assert snapshot._book.extra() <= len(flags) + 101
    assert [c.id for c in snapshot.counters] == ["e:$pageview"]


@pytest.mark.parametrize(
    ("event_filter", "properties", "counted"),
    [
        ({"key": "plan", "value": ["pro", "team"]}, {"plan": "PRO"}, True),
        ({"key": "plan", "value": "pro", "operator": "is_not"}, {}, True),
        ({"key": "plan", "value": "pro", "negation": True}, {"plan": "free"}, True),
        ({"key": "plan", "value": "pro", "negation": True}, {"plan": "pro"}, False),
        ({"key": "n", "value": 3, "operator": "gt"}, {"n": "4"}, True),
        ({"key": "n", "value": 3, "operator": "gt"}, {"n": "four"}, False),
        ({"key": "url", "value": "/docs", "operator": "not_icontains"}, {}, True),
        ({"key": "url", "value": "(unclosed", "operator": "regex"}, {"url": "(unclosed"}, False),
        ({"key": "url", "value": "(unclosed", "operator": "not_regex"}, {"url": "x"}, False),
        ({"key": "url", "value": "^https://", "operator": "regex"}, {"url": "https://x.io"}, True),
        ({"key": "v", "value": "1.2.0", "operator": "semver_gte"}, {"v": "v1.10.3"}, True),
        ({"key": "seen", "operator": "is_set", "value": "is_set"}, {"seen": None}, True),
        (
            {"key": "at", "value": "2026-01-01", "operator": "is_date_after"},
            {"at": "2026-03-01T10:00:00Z"},
            True,
        ),
    ],
)
def test_event_filters_use_every_property_operator(
    event_filter: dict[str, Any], properties: dict[str, Any], counted: bool
) -> None:
    """Event filters follow the property operators' rules: lists are any-of, missing keys, negation,
    numbers from strings, invalid regexes matching nothing, versions, dates."""
    cohort = group("AND", leaf(event_filters=[{**event_filter, "type": "event"}]))
    (counter,) = compile_flags([], cohorts={"1": cohort}).counters
    assert counter.matches(properties) is counted


def test_needs_name_the_person_properties_read() -> None:
    """Person filters, dependencies and enrollment name what they read; a property cohort makes it unknown."""
    flags = [
        {"id": 1, "key": "p", "filters": {"groups": [{"properties": [person("plan", "pro")]}]}},
        {
            "id": 2,
            "key": "dep",
            "filters": {
                "groups": [
                    {
                        "properties": [
                            person("age", 30, "gt"),
                            {"key": "p", "type": "flag", "value": True, "operator": "flag_evaluates_to"},
                        ]
                    }
                ]
            },
        },
        {"id": 3, "key": "enrolled", "filters": {"groups": [], "feature_enrollment": True}},
        cohort_flag("c", 9, flag_id=4),
    ]
    snapshot = compile_flags(flags, cohorts={"9": group("AND", person("tier", "gold"))})
    assert snapshot.store_needs(["p"]).person_keys == {"plan"}
    assert snapshot.store_needs(["dep"]).person_keys == {"plan", "age"}
    assert snapshot.store_needs(["enrolled"]).person_keys == {"$feature_enrollment/enrolled"}
    assert snapshot.store_needs(["c"]).person_keys is None
    assert snapshot.store_needs(["p", "c"]).person_keys is None
    assert snapshot.store_needs(["dep"]).covered_by({"plan": "pro", "age": 40, "other": 1})
    assert not snapshot.store_needs(["dep"]).covered_by({"plan": "pro"})
    assert not snapshot.store_needs(["c"]).covered_by({"tier": "gold", "plan": "pro"})


PLANS = st.sampled_from(["free", "pro", "enterprise", None, 3])


@settings(max_examples=80, deadline=None)
@given(
    sent=st.fixed_dictionaries({"plan": PLANS, "age": st.integers(0, 90)}, optional={"x": st.integers()}),
    stored=st.dictionaries(st.sampled_from(["plan", "age", "x", "y"]), st.one_of(PLANS, st.integers(0, 90))),
)
def test_stored_properties_change_nothing_when_the_request_covers_the_needs(
    sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    """When ``covered_by`` says the request sends every property read, merging stored ones under it (as the
    server does after a read) gives the same decisions: skipping the read is safe."""
    flags = [
        {
            "id": 1,
            "key": "p",
            "filters": {"groups": [{"properties": [person("plan", ["pro", "enterprise"])]}]},
        },
        {
            "id": 2,
            "key": "a",
            "filters": {"groups": [{"properties": [person("age", 30, "gt")], "rollout_percentage": 50}]},
        },
        {"id": 3, "key": "r", "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}},
    ]
    snapshot = compile_flags(flags)
    needs = snapshot.store_needs()
    assert needs.covered_by(sent)
    alone = snapshot.evaluate(Context(distinct_id="u", person_properties=sent))
    merged = snapshot.evaluate(Context(distinct_id="u", person_properties={**stored, **sent}))
    assert alone == merged
