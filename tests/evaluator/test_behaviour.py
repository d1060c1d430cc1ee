"""The evaluator/store contract for behavioural cohorts: stable counter ids, query keys, needs unions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.behaviour import NOTHING, StoreNeeds, counter_id, query


def test_plain_event_counter_is_the_event_name() -> None:
    """An event with no filters is counted under "e:<event>", the id ingestion uses for every event."""
    assert counter_id("$pageview") == "e:$pageview"


@given(st.text(), st.text(min_size=1))
def test_filtered_counter_ids_are_stable_and_distinct(event: str, filters: str) -> None:
    """The same event and filters give the same id; the id never collides with a plain event counter."""
    assert counter_id(event, filters) == counter_id(event, filters)
    assert counter_id(event, filters).startswith("f:")
    assert counter_id(event, filters) != counter_id(event, filters + " ")


def test_query_needs_exactly_one_window() -> None:
    """A query is relative (window_seconds) or absolute (since), never both or neither."""
    assert query("e:x", window_seconds=300).key == "e:x@300s"
    assert query("e:x", since=1_700_000_000).key == "e:x@since:1700000000"
    with pytest.raises(ValueError, match="exactly one"):
        query("e:x")
    with pytest.raises(ValueError, match="exactly one"):
        query("e:x", window_seconds=1, since=1)


def test_needs_union_and_truthiness() -> None:
    """Nothing needed is falsy; a union keeps every distinct query once and every group type."""
    assert not NOTHING
    a = StoreNeeds(queries=(query("e:x", window_seconds=60),))
    b = StoreNeeds(person_properties=True, group_types=frozenset({"company"}), queries=a.queries)
    both = a.union([b])
    assert both.person_properties
    assert both.group_types == {"company"}
    assert [q.key for q in both.queries] == ["e:x@60s"]
    assert StoreNeeds(group_types=frozenset({"org"}))
