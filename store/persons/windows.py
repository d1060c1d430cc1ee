"""Window arithmetic for behavioural counts (pure: no I/O, shared by every person store and the tests).

An occurrence is counted **once**, in one bucket of one **level** (``LEVELS``: 1-second buckets kept 15
minutes, 1-minute ones kept 26 hours, 1-hour ones kept 33 days, 1-day ones kept for the store's retention —
the longest window in use, at least the plain-event history). A new event goes to the finest level that keeps
buckets of its age; when a person is written, buckets older than their level keeps are **rolled up** into the
coarser bucket that contains them (and the last level's are deleted past the retention). So a busy person
holds at most ~900 + 1,560 + 792 + retention/day buckets per counter, and a write costs one increment.

To count a window, the store adds up, at every level, the buckets that lie **entirely** inside the window
(``evaluator.behaviour.first_bucket`` for that level's width), so:

- an event at second ``t`` never counts once ``now >= t + window`` (a bucket that started before the window
  is never read), and
- it counts at every ``now`` in ``[t, t + window - width + 1)``, ``width`` being the width of the bucket it
  sits in: exactly ``[t, t + window)`` while it is in a 1-second bucket (its first 15 minutes at least), to
  within a minute for a day, an hour for a month, a day beyond.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import NamedTuple

from evaluator.behaviour import BehaviourQuery, first_bucket

__all__ = [
    "LAST",
    "LEVELS",
    "TRIM_EVERY",
    "Level",
    "counter_token",
    "expired",
    "firsts",
    "level_for",
    "rolled_up",
]


class Level(NamedTuple):
    seconds: int  # bucket width
    keep: int  # how long buckets stay at this level (the last level: the store's retention instead)


LEVELS: tuple[Level, ...] = (
    Level(1, 15 * 60),
    Level(60, 26 * 3600),
    Level(3600, 33 * 86400),
    Level(86400, 0),
)
LAST = len(LEVELS) - 1
TRIM_EVERY = 600  # a person's buckets are rolled up at most this often (on a write)


def _keep(level: int, retention: int) -> int:
    return retention if level == LAST else LEVELS[level].keep


def expired(level: int, bucket: int, now: int, retention: int) -> bool:
    """Whether ``bucket`` of ``level`` ended longer ago than the level keeps buckets."""
    return (bucket + 1) * LEVELS[level].seconds <= now - _keep(level, retention)


def level_for(second: int, now: int, retention: int) -> int | None:
    """The finest level that keeps the bucket of an event at ``second`` (None: older than the retention)."""
    for level, (seconds, _) in enumerate(LEVELS):
        if not expired(level, second // seconds, now, retention):
            return level
    return None


def rolled_up(level: int, bucket: int, now: int, retention: int) -> tuple[int, int] | None:
    """Where an expired bucket's count goes: the coarser ``(level, bucket)`` containing it, or None (gone)."""
    start = bucket * LEVELS[level].seconds
    for coarser in range(level + 1, LAST + 1):
        target = start // LEVELS[coarser].seconds
        if not expired(coarser, target, now, retention):
            return coarser, target
    return None


def firsts(query: BehaviourQuery, now: int) -> tuple[int, ...]:
    """Per level, the first bucket lying entirely inside ``query``'s window at ``now``."""
    return tuple(first_bucket(now, query, seconds) for seconds, _ in LEVELS)


@functools.lru_cache(maxsize=8192)
def counter_token(counter: str) -> str:
    """A fixed-width (8 characters) stand-in for a counter id in stored field names (48 bits of blake2b)."""
    digest = hashlib.blake2b(counter.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()
