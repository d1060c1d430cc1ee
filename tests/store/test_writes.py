"""The shared write rules: normalisation, PATCH merges, shape issues with paths, dependency closure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.errors import ValidationFailed
from store.records import CohortRecord, FlagRecord
from store.sql import writes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(flag_id: int, key: str, filters: dict[str, Any] | None = None, **extra: Any) -> FlagRecord:
    fields: dict[str, Any] = {
        "id": flag_id, "project_id": 1, "key": key, "name": "", "filters": filters or {}, "active": True,
        "deleted": False, "bucketing": "murmur3", "ensure_experience_continuity": False, "version": 1,
        "created_at": NOW, "created_by": "t", "updated_at": NOW, "updated_by": "t",
    }  # fmt: skip
    return FlagRecord(**(fields | extra))


def depends_on(*refs: str | int) -> dict[str, Any]:
    props = [{"key": r, "type": "flag", "value": True, "operator": "flag_evaluates_to"} for r in refs]
    return {"groups": [{"properties": props}]}


def paths(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return sorted(i.path for i in exc.value.issues)


def test_create_fills_defaults() -> None:
    """A create with only a key gets an empty name and filters, active, murmur3, no continuity."""
    values = writes.flag_values({"key": "a"})
    assert values == writes.FlagValues(
        key="a", name="", filters={}, active=True, bucketing="murmur3", ensure_experience_continuity=False
    )


def test_create_reports_every_shape_issue_at_once() -> None:
    """Every bad field is reported in one ValidationFailed, each with its path."""
    with pytest.raises(ValidationFailed) as info:
        writes.flag_values(
            {
                "name": 5,
                "filters": [],
                "active": 1,
                "bucketing": "sha1",
                "ensure_experience_continuity": "no",
                "x": 1,
            }
        )
    assert paths(info) == sorted(
        ["key", "name", "filters", "active", "bucketing", "ensure_experience_continuity", "x"]
    )


@pytest.mark.parametrize("key", ["", "has space", "ü", "a/b", "x" * 401, 12])
def test_bad_keys_are_rejected(key: Any) -> None:
    """Keys must be 1-400 characters of letters, digits, '_', '.' or '-'."""
    with pytest.raises(ValidationFailed) as info:
        writes.flag_values({"key": key})
    assert paths(info) == ["key"]


@given(st.from_regex(r"[A-Za-z0-9_.-]{1,400}", fullmatch=True))
def test_every_well_formed_key_is_accepted(key: str) -> None:
    """Any key matching the documented format passes unchanged."""
    assert writes.flag_values({"key": key}).key == key


def test_update_changes_only_given_fields() -> None:
    """PATCH semantics: fields not in the change keep their current values."""
    current = record(3, "a", {"groups": []}, name="Old", bucketing="posthog", active=False)
    merged = writes.flag_values({"name": "New"}, current=current)
    assert (merged.key, merged.name, merged.filters, merged.bucketing, merged.active) == (
        "a", "New", {"groups": []}, "posthog", False,
    )  # fmt: skip


def test_update_rejects_unknown_and_read_only_fields() -> None:
    """Fields the store owns (id, version, deleted) are not writable through an update."""
    with pytest.raises(ValidationFailed) as info:
        writes.flag_values({"id": 9, "version": 3, "deleted": True}, current=record(1, "a"))
    assert paths(info) == ["deleted", "id", "version"]


def test_dependency_closure_follows_ids_and_keys_transitively() -> None:
    """The closure holds exactly the flags reachable through dependencies, by id or by key."""
    a = record(1, "a", depends_on("b"))
    b = record(2, "b", depends_on(3))
    c = record(3, "c")
    unrelated = record(4, "d", depends_on("a"))
    assert writes.dependency_closure(depends_on("a"), [a, b, c, unrelated]) == [a, b, c]
    assert writes.dependency_closure({"groups": []}, [a, b, c]) == []
    cyclic = record(5, "e", depends_on("f"))
    back = record(6, "f", depends_on("e"))
    assert writes.dependency_closure(depends_on("e"), [cyclic, back]) == [cyclic, back]


def test_cohort_values_for_static_and_property_cohorts() -> None:
    """Static cohorts take members (deduplicated, as strings); property cohorts refuse them."""
    static = writes.cohort_values({"name": "VIP", "is_static": True, "members": ["a", 2, "a"]})
    assert static.members == ("a", "2")
    with pytest.raises(ValidationFailed) as info:
        writes.cohort_values({"name": "P", "members": ["a"]})
    assert paths(info) == ["members"]
    with pytest.raises(ValidationFailed) as info:
        writes.cohort_values({"name": "VIP", "is_static": True, "members": ["", None, "ok"]})
    assert paths(info) == ["members[0]", "members[1]"]


def test_cohort_static_flag_is_fixed_at_creation() -> None:
    """An update cannot turn a property cohort into a static one."""
    current = CohortRecord(
        id=1, project_id=1, name="P", description="", filters={}, is_static=False, deleted=False, version=1,
        created_at=NOW, created_by="t", updated_at=NOW, updated_by="t",
    )  # fmt: skip
    with pytest.raises(ValidationFailed) as info:
        writes.cohort_values({"is_static": True}, current=current)
    assert paths(info) == ["is_static"]


def test_property_cohort_filters_are_checked_by_the_evaluator() -> None:
    """A property cohort with an unknown operator is rejected with the evaluator's path."""
    rules = {"properties": {"type": "AND", "values": [{"key": "plan", "value": "x", "operator": "nope"}]}}
    values = writes.cohort_values({"name": "P", "filters": rules})
    with pytest.raises(ValidationFailed) as info:
        writes.check_cohort(values, cohort_id=0, cohort_ids=[])
    assert all(p.startswith("filters.properties") for p in paths(info))


def test_group_type_mapping_rules() -> None:
    """Indexes are '0'-'4', names non-empty and used once."""
    assert writes.check_project_fields(group_type_mapping={"0": "company", "1": "team"}) == {
        "0": "company",
        "1": "team",
    }
    with pytest.raises(ValidationFailed) as info:
        writes.check_project_fields(name="", group_type_mapping={"5": "x", "0": "", "1": "a", "2": "a"})
    assert paths(info) == ["group_type_mapping.0", "group_type_mapping.2", "group_type_mapping.5", "name"]


def test_audit_changes_lists_only_changed_fields() -> None:
    """The audit diff names each changed field with its old and new value, and nothing unchanged."""
    before = record(1, "a").definition()
    after = record(1, "a", active=False, version=2).definition()
    assert writes.audit_changes(before, after) == [
        {"field": "active", "before": True, "after": False},
        {"field": "version", "before": 1, "after": 2},
    ]
    created = writes.audit_changes(None, {"key": "a", "name": None})
    assert created == [
        {"field": "key", "before": None, "after": "a"},
        {"field": "name", "before": None, "after": None},
    ]
    assert writes.audit_changes(after, after) == []


def test_payloads_are_stored_as_json_text() -> None:
    """JSON payload values are encoded to JSON text, strings must already be JSON, nulls are dropped."""
    variants = [{"key": name, "rollout_percentage": 25} for name in "abcd"]
    payloads = {"true": {"x": [1, 2]}, "b": '"text"', "c": None, "d": 5}
    values = writes.flag_values(
        {"key": "a", "filters": {"payloads": payloads, "multivariate": {"variants": variants}}}
    )
    assert values.filters["payloads"] == {"true": '{"x":[1,2]}', "b": '"text"', "d": "5"}
    with pytest.raises(ValidationFailed) as info:
        writes.flag_values({"key": "a", "filters": {"payloads": {"true": "not json"}, "multivariate": 5}})
    assert paths(info) == ["filters.multivariate", "filters.payloads.true"]
