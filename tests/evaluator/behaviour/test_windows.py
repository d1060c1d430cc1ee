"""Window arithmetic shared with the store: an event at t counts in [t, t + window) and never after, and a
bucketed count never includes an event the exact window rejects."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evaluator.behaviour import first_bucket, in_window, query, window_start

INSTANTS = st.integers(1_600_000_000, 1_900_000_000)
WINDOWS = st.integers(1, 2 * 365 * 86400)
WIDTHS = st.sampled_from([1, 10, 60, 300, 3600, 86400])


@given(INSTANTS, WINDOWS, st.integers(-10 * 86400, 3 * 365 * 86400))
def test_an_event_counts_for_exactly_its_window(t: int, window: int, elapsed: int) -> None:
    """At now = t + elapsed, the event counts iff 0 <= elapsed < window."""
    q = query("e:x", window_seconds=window)
    assert in_window(t, t + elapsed, q) is (0 <= elapsed < window)


@given(INSTANTS, WINDOWS)
def test_window_edges(t: int, window: int) -> None:
    """It counts the instant it happens and one moment before the window passes, and not at the end."""
    q = query("e:x", window_seconds=window)
    assert in_window(t, t, q)
    assert in_window(t, t + window - 0.001, q)
    assert not in_window(t, t + window, q)
    assert not in_window(t, t - 0.001, q)
    assert window_start(t + window, q) == t


@given(INSTANTS, INSTANTS, INSTANTS)
def test_since_windows(t: int, since: int, now: int) -> None:
    """An absolute window counts events from ``since`` (inclusive) up to now."""
    q = query("e:x", since=since)
    assert in_window(t, now, q) is (since <= t <= now)
    assert window_start(now, q) == since


@given(INSTANTS, st.integers(0, 3 * 365 * 86400), WINDOWS, WIDTHS)
def test_buckets_never_count_late(t: int, elapsed: int, window: int, width: int) -> None:
    """An event in a bucket the store adds up for a relative window is always inside the exact window,
    and an event stays counted until at most one bucket width before its window ends."""
    now = t + elapsed
    q = query("e:x", window_seconds=window)
    counted = first_bucket(now, q, width) <= t // width <= now // width
    if counted:
        assert in_window(t, now, q)
    if in_window(t, now, q) and elapsed < window - width:
        assert counted


@given(INSTANTS, INSTANTS, WIDTHS)
def test_since_buckets_never_count_before_since(t: int, since: int, width: int) -> None:
    """A bucket added up for a ``since`` window holds no event older than ``since``."""
    q = query("e:x", since=since)
    if first_bucket(t + 1, q, width) <= t // width:
        assert t >= since
