"""The behavioural-cohort limits the README documents, at their numbers (not read back from the module):
20 behavioural conditions per cohort, 20 event_filters per condition, windows up to 730 days, event names up
to 400 characters. One past each is an issue at the field's path. Also the event filters' own edges."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator import compile_flags, validate_cohort
from tests.evaluator.behaviour.strategies import cohort_flag, group, leaf

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


def test_explicit_relative_windows_up_to_730_days() -> None:
    """explicit_datetime -104w and -2y fit in 730 days; -105w and -3y do not."""
    assert _paths(leaf(explicit_datetime="-104w", time_value=None, time_interval=None)) == []
    assert _paths(leaf(explicit_datetime="-2y", time_value=None, time_interval=None)) == []
    for too_long in ("-105w", "-3y"):
        assert _paths(leaf(explicit_datetime=too_long, time_value=None, time_interval=None)) == [
            f"{LEAF}.explicit_datetime"
        ]


def test_a_window_needs_an_interval_unless_an_explicit_date_is_given() -> None:
    """Without explicit_datetime, a missing time_interval is an issue at its path."""
    assert _paths(leaf(time_interval=None)) == [f"{LEAF}.time_interval"]


@pytest.mark.parametrize("key", ["", 5, None])
def test_event_filters_need_a_property_key(key: Any) -> None:
    """An event filter without a non-empty string key is an issue at that filter's key."""
    assert _paths(leaf(event_filters=[{"key": key, "value": 1}])) == [f"{LEAF}.event_filters[0].key"]


def test_an_event_filter_that_can_never_match_matches_no_event() -> None:
    """An event filter with an unusable regex matches no event, whether or not the event has the property
    (the counter then counts nothing), for the regex and its negation alike."""
    for negation in (False, True):
        unusable = {"key": "url", "operator": "regex", "value": "(", "negation": negation}
        cohorts = {"1": group("AND", leaf("visit", event_filters=[unusable]))}
        snapshot = compile_flags([cohort_flag("f", 1)], cohorts=cohorts)
        (counter,) = snapshot.counters
        assert counter.matches({"url": "("}) is False
        assert counter.matches({}) is False


@pytest.mark.parametrize(
    ("explicit", "seconds"),
    [
        ("-15M", 15 * 60),
        ("-24h", 24 * 3600),
        ("-30d", 30 * 86400),
        ("-2w", 14 * 86400),
        ("-1m", 30 * 86400),
        ("-1q", 90 * 86400),
        ("-2y", 730 * 86400),
    ],
)
def test_explicit_relative_windows_ask_the_store_for_their_length(explicit: str, seconds: int) -> None:
    """The window the person store is asked to count over is the documented length of each unit
    (M minutes, h hours, d days, w weeks, m = 30 days, q = 90 days, y = 365 days)."""
    raw = leaf("visit", explicit_datetime=explicit, time_value=None, time_interval=None)
    snapshot = compile_flags([cohort_flag("f", 1)], cohorts={"1": group("AND", raw)})
    (query,) = snapshot.store_needs(["f"]).queries
    assert (query.window_seconds, query.since) == (seconds, None)
