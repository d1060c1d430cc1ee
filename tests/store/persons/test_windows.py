"""Window arithmetic of count buckets (pure): an event counts inside its window, never after it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluator.behaviour import counter_id, in_window
from store.persons.model import EventWrite, PersonRecord
from store.persons.windows import LEVELS, counter_token, plan
from tests.store.persons.strategies import NOW, WINDOWS, pageviews

RETENTION = 400 * 86400
TOKEN = counter_token(counter_id("$pageview"))


def _record_with_event_at(t: int) -> PersonRecord:
    record = PersonRecord()
    record.apply(EventWrite("", t * 1000, [], [TOKEN]), now=t, retention=RETENTION)
    return record


@given(t=st.integers(NOW - 400 * 86400, NOW), window=WINDOWS, delay=st.integers(0, 400 * 86400))
def test_an_event_counts_in_its_window_and_never_after(t: int, window: int, delay: int) -> None:
    """An event at t never counts at t + window or later, and counts until t + window - width (bucket)."""
    q = pageviews(window)
    now = t + delay
    count = _record_with_event_at(t).count(q, now=now, retention=RETENTION)
    width = LEVELS[plan(q, now, RETENTION)[0]].seconds
    if delay >= window:
        assert count == 0
    elif delay < window - width + 1:
        assert count == 1
    if count:
        assert in_window(t, now, q)


@given(t=st.integers(NOW - 86400, NOW), window=st.integers(1, 899), delay=st.integers(0, 2000))
def test_windows_up_to_fifteen_minutes_are_exact_to_the_second(t: int, window: int, delay: int) -> None:
    """For windows under 15 minutes the count is exactly in_window: [t, t + window)."""
    q = pageviews(window)
    count = _record_with_event_at(t).count(q, now=t + delay, retention=RETENTION)
    assert count == (1 if delay < window else 0)


@given(t=st.integers(NOW - 30 * 86400, NOW), since_offset=st.integers(-86400, 86400))
def test_since_queries_count_events_from_that_second(t: int, since_offset: int) -> None:
    """A query since s counts an event at t >= s (s on a bucket edge of the level used), never t < s."""
    from evaluator.behaviour import query

    since = t + since_offset
    q = query(counter_id("$pageview"), since=since)
    count = _record_with_event_at(t).count(q, now=max(t, since), retention=RETENTION)
    if t < since:
        assert count == 0
    width = LEVELS[plan(q, max(t, since), RETENTION)[0]].seconds
    if since % width == 0 and t >= since:
        assert count == 1


def test_a_year_window_reads_day_buckets() -> None:
    """A one-year window is answered from day buckets (at most ~365 of them), not seconds or minutes."""
    level, _ = plan(pageviews(365 * 86400), NOW, RETENTION)
    assert LEVELS[level].seconds == 86400
