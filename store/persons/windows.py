"""Window arithmetic for behavioural counts (pure: no I/O, shared by every person store and the tests).

Each occurrence is counted once per **level**, in the bucket ``t // seconds`` of that level (``t`` is the
event's epoch second). A level keeps its buckets for ``keep`` seconds; the last level keeps them for the
store's retention (the longest window in use, at least the plain-event history). To count a window, the store
picks the finest level that still holds buckets as old as the window's start and sums that level's buckets
that lie **entirely** inside the window, so:

- an event at second ``t`` never counts once ``now >= t + window`` (a bucket that started before the window
  is never read: ``evaluator.behaviour.first_bucket``), and
- it counts at every ``now`` in ``[t, t + window - seconds + 1)`` where ``seconds`` is the chosen level's
  resolution: exactly ``[t, t + window)`` for windows up to ``LEVELS[0].keep`` (15 minutes, 1-second buckets),
  to within a minute up to 26 hours, an hour up to 33 days and a day beyond.

A window of a year therefore reads at most ~400 day buckets per counter, and one of a minute at most 60.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

from evaluator.behaviour import BehaviourQuery, first_bucket, window_start

__all__ = ["LEVELS", "Level", "counter_token", "expired", "plan"]


class Level(NamedTuple):
    seconds: int  # bucket width
    keep: int  # how long buckets are kept (the last level: the store's retention instead)


LEVELS: tuple[Level, ...] = (
    Level(1, 15 * 60),
    Level(60, 26 * 3600),
    Level(3600, 33 * 86400),
    Level(86400, 0),
)


def plan(query: BehaviourQuery, now: int, retention: int) -> tuple[int, int]:
    """``(level, first bucket)`` to sum for ``query`` at ``now`` (whole seconds).

    The finest level whose kept buckets reach back to the window's start; the first bucket is the evaluator's
    ``first_bucket`` (the first one lying entirely inside the window). ``retention`` is how long the last
    level keeps its buckets.
    """
    age = max(0, now - int(window_start(now, query)))
    last = len(LEVELS) - 1
    for index, level in enumerate(LEVELS):
        keep = retention if index == last else level.keep
        if index == last or age <= keep - level.seconds:
            return index, first_bucket(now, query, level.seconds)
    raise AssertionError("unreachable")  # pragma: no cover


def expired(level: int, bucket: int, now: int, retention: int) -> bool:
    """Whether ``bucket`` of ``level`` is older than that level keeps (so it may be deleted)."""
    seconds, keep = LEVELS[level]
    if level == len(LEVELS) - 1:
        keep = retention
    return (bucket + 1) * seconds <= now - keep


def counter_token(counter: str) -> str:
    """A fixed-width (8 characters) stand-in for a counter id in stored field names (48 bits of blake2b)."""
    digest = hashlib.blake2b(counter.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()
