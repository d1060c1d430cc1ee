"""validate_cohort on behavioural conditions: as strict as flags, every issue at its field path."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import Context, Issue, compile_flags, validate_cohort, validate_flag
from evaluator.behavioural import MAX_BEHAVIOURAL_LEAVES, MAX_EVENT_FILTERS
from tests.evaluator.behaviour.strategies import cohort_flag, group, leaf, person

LEAF = "filters.properties.values[0]"


def _issues(*values: Any) -> dict[str, str]:
    found = validate_cohort({"properties": group("AND", *values)})
    return {issue.path: issue.message for issue in found}


def test_valid_behavioural_cohorts() -> None:
    """Every supported shape validates cleanly, mixed with person leaves and nested groups."""
    cohort = {
        "properties": group(
            "OR",
            group(
                "AND",
                leaf(
                    "$pageview",
                    event_filters=[{"key": "$current_url", "operator": "icontains", "value": "/p"}],
                ),
                person("plan", "pro"),
            ),
            leaf("purchase", times=3, operator="exact", time_value="2", time_interval="week", negation=True),
            leaf("x", explicit_datetime="-30d", conditionHash="0123456789abcdef", bytecode=["_H", 1]),
            leaf("y", explicit_datetime="2026-01-01", time_value=None, time_interval=None),
            leaf("w", explicit_datetime="-7d", time_value=None, time_interval="day"),
            leaf("z", times=0, operator="lte", event_filters=[], time_interval="year", time_value=2),
        )
    }
    assert validate_cohort(cohort) == []


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"colour": "red"}, f"{LEAF}.colour", "unknown key 'colour'"),
        ({"time_interval": "fortnight"}, f"{LEAF}.time_interval", "must be one of minute, hour"),
        ({"time_value": 0}, f"{LEAF}.time_value", "at least 1"),
        ({"time_value": -3}, f"{LEAF}.time_value", "at least 1"),
        ({"time_value": True}, f"{LEAF}.time_value", "at least 1"),
        ({"time_value": 3, "time_interval": "year"}, f"{LEAF}.time_value", "at most 730 days"),
        ({"value": "performed_event_regularly"}, f"{LEAF}.value", "is not supported"),
        ({"value": "danced"}, f"{LEAF}.value", "is unknown"),
        ({"event_type": "actions"}, f"{LEAF}.event_type", "actions are not supported"),
        ({"key": ""}, f"{LEAF}.key", "must be an event name"),
        ({"negation": "yes"}, f"{LEAF}.negation", "true or false"),
        ({"operator": "gte", "operator_value": 2}, f"{LEAF}.operator", "only performed_event_multiple"),
        (
            {"explicit_datetime": "-7d", "time_interval": "fortnight"},
            f"{LEAF}.time_interval",
            "must be one of",
        ),
        ({"explicit_datetime": "last week"}, f"{LEAF}.explicit_datetime", "neither a relative date"),
        ({"explicit_datetime": "-0d"}, f"{LEAF}.explicit_datetime", "windows are from"),
        ({"explicit_datetime": "-3y"}, f"{LEAF}.explicit_datetime", "windows are from"),
        ({"event_filters": {"key": "a"}}, f"{LEAF}.event_filters", "must be a list"),
        (
            {"event_filters": [{"key": "a", "value": 1, "shape": 2}]},
            f"{LEAF}.event_filters[0].shape",
            "unknown key",
        ),
        (
            {"event_filters": [{"key": "a", "value": 1, "operator": "near"}]},
            f"{LEAF}.event_filters[0].operator",
            "unknown operator",
        ),
        (
            {"event_filters": [{"key": "a", "value": "x", "operator": "gt"}]},
            f"{LEAF}.event_filters[0].value",
            "",
        ),
        (
            {"event_filters": [{"key": "a", "value": 1, "type": "person"}]},
            f"{LEAF}.event_filters[0].type",
            'must be "event"',
        ),
        ({"event_filters": [{"value": 1}]}, f"{LEAF}.event_filters[0].key", "non-empty"),
    ],
)
def test_each_mistake_is_reported_at_its_path(changes: dict[str, Any], path: str, message: str) -> None:
    """A bad key, interval, value, operator or event filter gives an issue at that field's path."""
    issues = _issues({**leaf(), **changes})
    assert path in issues, issues
    assert message in issues[path]


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"operator": "about"}, f"{LEAF}.operator"),
        ({"operator_value": -1}, f"{LEAF}.operator_value"),
        ({"operator_value": 1.5}, f"{LEAF}.operator_value"),
        ({"operator_value": None}, f"{LEAF}.operator_value"),
    ],
)
def test_performed_event_multiple_needs_a_count_test(changes: dict[str, Any], path: str) -> None:
    """performed_event_multiple needs one of the count operators and a whole operator_value."""
    assert path in _issues({**leaf(times=2), **changes})


def test_limits_on_conditions_and_event_filters() -> None:
    """A cohort has at most MAX_BEHAVIOURAL_LEAVES behavioural conditions (nested groups count), and a
    condition at most MAX_EVENT_FILTERS event filters."""
    at_limit = [leaf(f"e{i}") for i in range(MAX_BEHAVIOURAL_LEAVES)]
    assert _issues(*at_limit[:-1], group("OR", at_limit[-1])) == {}
    over = _issues(*at_limit[:-1], group("OR", at_limit[-1], leaf("one_more")))
    assert list(over) == [f"filters.properties.values[{MAX_BEHAVIOURAL_LEAVES - 1}].values[1]"]
    filters = [{"key": f"k{i}", "value": i} for i in range(MAX_EVENT_FILTERS + 1)]
    assert f"{LEAF}.event_filters" in _issues(leaf(event_filters=filters))
    assert _issues(leaf(event_filters=filters[:-1])) == {}


def test_a_broken_behavioural_cohort_fails_its_flags_only() -> None:
    """In a snapshot, a flag on an invalid behavioural cohort answers invalid_definition; others work."""
    cohorts = {"1": group("AND", leaf(time_interval="fortnight")), "2": group("AND", person("a", 1))}
    snapshot = compile_flags([cohort_flag("bad", 1), cohort_flag("good", 2, flag_id=2)], cohorts=cohorts)
    got = snapshot.evaluate(Context("u", {"a": 1}))
    assert got["bad"].error == "invalid_definition"
    assert got["good"].enabled
    assert snapshot.counters == ()


def test_behavioural_filters_belong_in_cohorts() -> None:
    """A behavioural filter written straight into a flag condition is an error pointing at cohorts."""
    flag = {"key": "f", "filters": {"groups": [{"properties": [leaf()]}]}}
    issues = validate_flag(flag)
    assert (
        Issue(
            "filters.groups[0].properties[0].type",
            "behavioural conditions belong in a cohort; filter on that cohort",
        )
        in issues
    )
