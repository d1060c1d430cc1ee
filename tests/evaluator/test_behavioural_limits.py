"""The behavioural-cohort limits the README documents, at their numbers (not read back from the module):
20 behavioural conditions per cohort, 20 event_filters per condition, windows up to 730 days, event names up
to 400 characters. One past each is an issue at the field's path."""

from __future__ import annotations

from typing import Any

from evaluator import validate_cohort
from tests.evaluator.behaviour.strategies import group, leaf

LEAF = "filters.properties.values[0]"


def _paths(*values: Any) -> list[str]:
    return [issue.path for issue in validate_cohort({"properties": group("AND", *values)})]


def test_twenty_behavioural_conditions_per_cohort() -> None:
    """20 conditions validate; a 21st is reported at its own path."""
    twenty = [leaf(f"event-{i}") for i in range(20)]
    assert _paths(*twenty) == []
    assert _paths(*twenty, leaf("event-20")) == ["filters.properties.values[20]"]


def test_twenty_event_filters_per_condition() -> None:
    """20 event filters validate; 21 are reported at the condition's event_filters."""
    filters = [{"key": f"k{i}", "value": i} for i in range(21)]
    assert _paths(leaf(event_filters=filters[:20])) == []
    assert _paths(leaf(event_filters=filters)) == [f"{LEAF}.event_filters"]


def test_windows_up_to_730_days() -> None:
    """A window of 730 days (or 104 weeks, or 2 years) validates; 731 days does not."""
    assert _paths(leaf(time_value=730, time_interval="day")) == []
    assert _paths(leaf(time_value=2, time_interval="year")) == []
    assert _paths(leaf(time_value=104, time_interval="week")) == []
    assert _paths(leaf(time_value=731, time_interval="day")) == [f"{LEAF}.time_value"]
    assert _paths(leaf(time_value=105, time_interval="week")) == [f"{LEAF}.time_value"]


def test_event_names_up_to_400_characters() -> None:
    """An event name of 400 characters validates; 401 is reported at the condition's key."""
    assert _paths(leaf("e" * 400)) == []
    assert _paths(leaf("e" * 401)) == [f"{LEAF}.key"]
