"""validate_flag / validate_cohort: every issue, each at its field path relative to the definition."""

from __future__ import annotations

from typing import Any

from evaluator import Issue, validate_cohort, validate_flag


def _flag(**filters: Any) -> dict[str, Any]:
    return {"id": 1, "key": "new-checkout", "active": True, "filters": {"groups": [], **filters}}


def _paths(issues: list[Issue]) -> set[str]:
    return {issue.path for issue in issues}


def test_valid_flag_has_no_issues() -> None:
    """A well-formed flag with every feature validates cleanly."""
    flag = _flag(
        groups=[
            {
                "properties": [
                    {"key": "email", "value": "@acme.com", "operator": "icontains", "type": "person"},
                    {"key": "id", "value": 12, "type": "cohort"},
                    {"key": "base", "value": True, "type": "flag", "operator": "flag_evaluates_to"},
                ],
                "rollout_percentage": 50,
                "variant": "b",
            }
        ],
        multivariate={
            "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
        },
        payloads={"a": '{"x": 1}'},
        aggregation_group_type_index=0,
    )
    others = [{"id": 2, "key": "base", "filters": {"groups": [{"properties": []}]}}]
    assert validate_flag(flag, others=others, cohort_ids=["12"], group_type_mapping={"0": "company"}) == []


def test_every_issue_is_reported_with_its_path() -> None:
    """Unknown operator, rollout out of range, bad variant sum, bad regex, unknown cohort: all, with paths."""
    flag = _flag(
        groups=[
            {
                "properties": [
                    {"key": "a", "value": 1, "operator": "sounds_like"},
                    {"key": "b", "value": "(unclosed", "operator": "regex"},
                    {"key": "id", "value": 404, "type": "cohort"},
                ],
                "rollout_percentage": 150,
            },
            {"properties": [{"key": "age", "operator": "gt", "value": "old"}], "variant": "zzz"},
        ],
        multivariate={
            "variants": [{"key": "a", "rollout_percentage": 30}, {"key": "b", "rollout_percentage": 60}]
        },
    )
    issues = validate_flag(flag, cohort_ids=["12"])
    assert _paths(issues) >= {
        "filters.groups[0].properties[0].operator",
        "filters.groups[0].properties[1].value",
        "filters.groups[0].properties[2].value",
        "filters.groups[0].rollout_percentage",
        "filters.groups[1].properties[0].value",
        "filters.groups[1].variant",
        "filters.multivariate.variants",
    }
    assert all(issue.message for issue in issues)


def test_key_bucketing_and_field_types() -> None:
    """Key format, bucketing name and boolean fields are checked."""
    issues = validate_flag({"key": "has space", "bucketing": "md5", "active": "yes", "filters": {}})
    assert _paths(issues) == {"key", "bucketing", "active"}


def test_dependencies_are_checked_against_the_other_flags() -> None:
    """A missing target and a cycle closed through another live flag are both reported."""
    missing = _flag(groups=[{"properties": [{"key": "ghost", "type": "flag", "value": True}]}])
    assert _paths(validate_flag(missing)) == {"filters.groups[0].properties[0].key"}
    closing = _flag(groups=[{"properties": [{"key": "b", "type": "flag", "value": True}]}])
    other = {
        "id": 2,
        "key": "b",
        "filters": {"groups": [{"properties": [{"key": "1", "type": "flag", "value": True}]}]},
    }
    issues = validate_flag(closing, others=[other])
    assert any("cycle" in issue.message for issue in issues)
    assert _paths(issues) == {"filters.groups[0].properties[0].key"}


def test_an_older_version_of_the_same_flag_among_others_is_ignored() -> None:
    """When updating, the stored version of the flag (same id) in others does not count as another flag."""
    stored = _flag(groups=[{"properties": [{"key": "new-checkout", "type": "flag", "value": True}]}])
    assert validate_flag(_flag(), others=[stored]) == []


def test_unknown_group_type() -> None:
    """A group flag whose group type index is not in the project's mapping is reported."""
    issues = validate_flag(_flag(aggregation_group_type_index=3), group_type_mapping={"0": "company"})
    assert _paths(issues) == {"filters.aggregation_group_type_index"}


def test_validate_cohort() -> None:
    """Cohort filters are validated with paths under the given prefix, cohort ids checked."""
    good = {"properties": {"type": "OR", "values": [{"key": "plan", "value": "pro", "type": "person"}]}}
    assert validate_cohort(good) == []
    bad = {
        "properties": {
            "type": "AND",
            "values": [
                {"type": "OR", "values": [{"key": "age", "operator": "between", "value": "x"}]},
                {"key": "id", "type": "cohort", "value": 9},
                {"key": "f", "type": "flag", "value": True},
            ],
        }
    }
    issues = validate_cohort(bad, cohort_ids=["1"])
    assert _paths(issues) == {
        "filters.properties.values[0].values[0].value",
        "filters.properties.values[1].value",
        "filters.properties.values[2].type",
    }
    assert _paths(validate_cohort({"properties": {"type": "XOR", "values": []}}, path="c")) == {
        "c.properties.type"
    }
    assert _paths(validate_cohort({})) == {"filters.properties"}
