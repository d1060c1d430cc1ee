"""Window arithmetic of count buckets (pure): an event counts inside its window, never after it, whatever
bucket roll-ups happened in between."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluator.behaviour import counter_id, in_window, query
from store.persons.model import EventWrite, PersonRecord
from store.persons.windows import LEVELS, counter_token
from tests.store.persons.strategies import NOW, WINDOWS, pageviews

RETENTION = 400 * 86400
TOKEN = counter_token(counter_id("$pageview"))


def _record(t: int, *, written: int, trimmed: int) -> PersonRecord:
    """A person with one pageview at ``t``, written at ``written`` and rolled up at ``trimmed``."""
    record = PersonRecord()
    record.apply(EventWrite("", t * 1000, [], [TOKEN]), now=written, retention=RETENTION)
    record.maintain(written, RETENTION)
    record.maintain(trimmed, RETENTION)
    return record


def _width(record: PersonRecord) -> int:
    (field,) = record.buckets
    return LEVELS[int(field[8])].seconds


@given(
    t=st.integers(NOW - 300 * 86400, NOW),
    lag=st.integers(0, 3600),
    window=WINDOWS,
    trim_after=st.integers(0, 400 * 86400),
    extra=st.integers(0, 400 * 86400),
)
def test_an_event_counts_in_its_window_and_never_after(
    t: int, lag: int, window: int, trim_after: int, extra: int
) -> None:
    """Event at t (arriving up to an hour late, rolled up later): 0 from t + window on, 1 until then minus
    the width of the bucket it ended in."""
    record = _record(t, written=t + lag, trimmed=t + lag + trim_after)
    if not record.buckets:
        return  # older than the retention: gone
    delay = lag + trim_after + extra
    q = pageviews(window)
    count = record.count(q, now=t + delay)
    if delay >= window:
        assert count == 0
    elif delay < window - _width(record) + 1:
        assert count == 1
    if count:
        assert in_window(t, t + delay, q)


@given(t=st.integers(NOW - 86400, NOW), window=st.integers(1, 900), delay=st.integers(0, 2000))
def test_windows_up_to_fifteen_minutes_are_exact_to_the_second(t: int, window: int, delay: int) -> None:
    """For windows of at most 15 minutes the count is exactly in_window, even after a roll-up at read time."""
    q = pageviews(window)
    count = _record(t, written=t, trimmed=t + delay).count(q, now=t + delay)
    assert count == (1 if delay < window else 0)


@given(t=st.integers(NOW - 30 * 86400, NOW), since_offset=st.integers(-86400, 86400))
def test_since_queries_never_count_earlier_events(t: int, since_offset: int) -> None:
    """A query since s never counts an event at t < s, and counts one at t >= s while in a 1-second bucket."""
    since = t + since_offset
    q = query(counter_id("$pageview"), since=since)
    count = _record(t, written=t, trimmed=t).count(q, now=max(t, since))
    assert count == (1 if t >= since else 0)


def test_a_busy_year_stays_bounded() -> None:
    """A year of one event every 10 minutes, rolled up every 6 hours, keeps at most ~26 h of minute buckets
    plus 33 days of hours plus days, and a year window still counts all but the youngest edge."""
    record = PersonRecord()
    start = NOW - 365 * 86400
    step, every = 600, 6 * 3600
    for block in range(0, 365 * 86400, every):
        end = start + block + every
        for second in range(block, block + every, step):
            record.apply(EventWrite("", (start + second) * 1000, [], [TOKEN]), now=end, retention=RETENTION)
        record.trim(end, RETENTION)
    assert len(record.buckets) <= 26 * 60 + 33 * 24 + 366
    total = 365 * 86400 // step
    assert total - 2 * 86400 // step <= record.count(pageviews(366 * 86400), now=NOW) <= total
