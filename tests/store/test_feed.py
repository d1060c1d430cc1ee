"""``Pace`` (``store.redis.feed``): how the syncer and the nodes read their stream, checked when built."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.redis.feed import Pace

VALID: dict[str, Any] = {"batch_size": 500, "wait_seconds": 2.0, "backoff_base": 0.1, "backoff_cap": 5.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"batch_size": 0},
        {"wait_seconds": 0.0},
        {"wait_seconds": -1.0},
        {"backoff_base": 0.0},
        {"backoff_base": 6.0},
    ],
)
def test_a_pace_that_cannot_pace_is_refused_when_built(bad: dict[str, Any]) -> None:
    """No batch, no wait (a spin, or an XREAD that blocks forever) or a backoff base of zero or above its cap
    is a ``ValueError`` naming the rule, at start-up rather than in the reconnect loop."""
    with pytest.raises(ValueError, match="batch_size >= 1, wait_seconds > 0"):
        Pace(**{**VALID, **bad})


@given(
    base=st.floats(0.001, 1.0),
    extra=st.floats(0.0, 10.0),
    failures=st.integers(0, 40),
)
def test_a_pace_backoff_grows_from_its_base_and_stays_under_its_cap(
    base: float, extra: float, failures: int
) -> None:
    """Every delay of the pace's backoff lies in [base/2, cap]; the first is at most the base."""
    cap = base + extra
    backoff = Pace(batch_size=1, wait_seconds=1.0, backoff_base=base, backoff_cap=cap).backoff()
    delays = [backoff.next_delay() for _ in range(failures + 1)]
    assert delays[0] <= base
    assert all(base / 2 <= d <= cap for d in delays)
