"""The contract between flag evaluation and the person/behaviour store (real-time cohorts).

A behavioural cohort leaf ("performed ``$pageview`` with ``$current_url`` containing ``/pricing`` at least
3 times in the last 5 minutes") needs two things from the store, and this module names both:

- **what ingestion counts** (``EventCounter``): occurrences of one event name whose properties pass the leaf's
  ``event_filters``. A counter's ``id`` is stable across snapshots and processes (``counter_id``), so counts
  written before a recompile are read after it. An event name with no filters is always the counter
  ``"e:<event>"``; the store counts those for every event it sees, so a new cohort on a plain event name sees
  history within the store's retention.
- **what a flag check reads** (``BehaviourQuery``): one counter's total over a window that ends now
  (relative, ``window_seconds``) or starts at a fixed instant (``since``, epoch seconds). ``StoreNeeds``
  gathers everything a set of flags may read: stored person properties, group properties by group type, and
  behaviour queries.

The store answers with ``Context.behaviour``: ``{query.key: count}``. A query whose key is missing (the store
was unreachable or the request's deadline passed) makes each flag that needed it fail on its own, never the
request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

__all__ = [
    "NOTHING",
    "STORE_UNAVAILABLE",
    "BehaviourQuery",
    "EventCounter",
    "StoreNeeds",
    "counter_id",
    "first_bucket",
    "in_window",
    "query",
    "window_start",
]

STORE_UNAVAILABLE = "store_unavailable"  # Decision.error of a flag whose behavioural counts were not read


def counter_id(event: str, canonical_filters: str = "") -> str:
    """The stable id of the counter for ``event`` filtered by ``canonical_filters``.

    ``canonical_filters`` is the compact, key-sorted JSON text of the leaf's ``event_filters`` ("" when it has
    none, which gives ``"e:<event>"``). Equal inputs give equal ids in every process.
    """
    if not canonical_filters:
        return f"e:{event}"
    digest = hashlib.sha1(f"{event}\x00{canonical_filters}".encode(), usedforsecurity=False).hexdigest()
    return f"f:{digest[:20]}"


class EventCounter(msgspec.Struct, frozen=True):
    """One thing ingestion counts: events named ``event`` whose properties satisfy ``matches``.

    ``filters`` is the canonical JSON text the id was derived from ("" for a plain event counter);
    ``matches`` never raises (bad data means "no match").
    """

    id: str
    event: str
    filters: str
    matches: Callable[[Mapping[str, Any]], bool]


class BehaviourQuery(msgspec.Struct, frozen=True):
    """One count a flag check needs: occurrences counted by ``counter`` within the window.

    Exactly one of ``window_seconds`` (the last N seconds, ending now) and ``since`` (epoch seconds, up to
    now) is set. ``key`` names the answer in ``Context.behaviour``; build queries with ``query``.
    """

    key: str
    counter: str
    window_seconds: int | None = None
    since: int | None = None


def query(counter: str, *, window_seconds: int | None = None, since: int | None = None) -> BehaviourQuery:
    """A query for ``counter`` over the last ``window_seconds``, or since the epoch second ``since``."""
    if (window_seconds is None) == (since is None):
        raise ValueError("exactly one of window_seconds and since must be given")
    key = f"{counter}@{window_seconds}s" if window_seconds is not None else f"{counter}@since:{since}"
    return BehaviourQuery(key, counter, window_seconds, since)


def window_start(now: float, q: BehaviourQuery) -> float:
    """The lower bound of ``q``'s window at ``now``: ``now - window_seconds`` (exclusive: an event exactly
    ``window_seconds`` old no longer counts) or ``since`` (inclusive)."""
    if q.window_seconds is not None:
        return now - q.window_seconds
    assert q.since is not None
    return float(q.since)


def in_window(t: float, now: float, q: BehaviourQuery) -> bool:
    """Whether an event at ``t`` counts for ``q`` at ``now``.

    Relative windows: an event at ``t`` counts exactly while ``t <= now < t + window_seconds``, never
    before it happened and never once the window has passed. Absolute ones: ``since <= t <= now``."""
    if t > now:
        return False
    if q.window_seconds is not None:
        return now < t + q.window_seconds
    assert q.since is not None
    return t >= q.since


def first_bucket(now: float, q: BehaviourQuery, width: int) -> int:
    """The oldest time bucket (index ``t // width``) to add up for ``q`` at ``now``, the newest being
    ``now // width``.

    Chosen so a bucketed count never includes an event ``in_window`` rejects: a bucket counts only while
    all of it is inside the window, so an event stops counting at most ``width`` seconds early, never late.
    (For ``since``, the bucket holding ``since`` counts only when it starts exactly there.)"""
    if q.window_seconds is not None:
        return int((now - q.window_seconds) // width) + 1
    assert q.since is not None
    return -int(-q.since // width)


class StoreNeeds(msgspec.Struct, frozen=True):
    """What evaluating some flags may read from the store; falsy when it needs nothing (then don't read)."""

    person_properties: bool = False
    group_types: frozenset[str] = frozenset()
    queries: tuple[BehaviourQuery, ...] = ()
    # The person property names those flags read, or None when that is not known (a cohort reads person
    # properties): stored properties cannot change an answer when the request already sends all of them.
    person_keys: frozenset[str] | None = frozenset()

    def __bool__(self) -> bool:
        return self.person_properties or bool(self.group_types) or bool(self.queries)

    def covered_by(self, person_properties: Mapping[str, Any]) -> bool:
        """Whether the store has nothing to add: only person properties needed, and all of them sent."""
        keys = self.person_keys
        return (
            keys is not None
            and not self.queries
            and not self.group_types
            and all(key in person_properties for key in keys)
        )

    def union(self, others: Iterable[StoreNeeds]) -> StoreNeeds:
        """Everything this and ``others`` need together (queries deduplicated by key, order kept)."""
        person = self.person_properties
        groups = set(self.group_types)
        queries = {q.key: q for q in self.queries}
        keys = None if self.person_keys is None else set(self.person_keys)
        for other in others:
            person = person or other.person_properties
            groups |= other.group_types
            for q in other.queries:
                queries.setdefault(q.key, q)
            if keys is not None:
                if other.person_keys is None:
                    keys = None
                else:
                    keys |= other.person_keys
        return StoreNeeds(
            person, frozenset(groups), tuple(queries.values()), None if keys is None else frozenset(keys)
        )


NOTHING = StoreNeeds()
