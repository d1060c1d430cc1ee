"""``tracking_since``: from when a cohort's filtered behavioural conditions have been counted.

A condition on a plain event name reads the per-event-name counts kept for every event (history within the
retention). A condition with ``event_filters`` has its own counter, counted only from the moment a node
compiles a cohort using it; the store records that moment per counter (``PersonStore.track``, first write
wins) and a cohort's ``tracking_since`` is the latest of its filtered counters' (None when it has none).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from evaluator.behavioural import compile_leaf, is_behavioural
from evaluator.issues import Problems
from store.persons.protocol import PersonStore

__all__ = ["counters_of", "tracking_since"]


def _leaves(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, Mapping):
        if is_behavioural(node):
            yield dict(node)
        else:
            for value in node.values():
                yield from _leaves(value)
    elif isinstance(node, list):
        for item in node:
            yield from _leaves(item)


def counters_of(filters: Mapping[str, Any], *, filtered_only: bool = False) -> list[str]:
    """Ids of the counters behind the cohort's own behavioural conditions (invalid ones skipped); with
    ``filtered_only``, only those with event filters."""
    ids: dict[str, None] = {}
    for raw in _leaves(filters.get("properties")):
        leaf = compile_leaf(raw, "", Problems(), time.time)
        if leaf is not None and (leaf.counter.filters or not filtered_only):
            ids.setdefault(leaf.counter.id)
    return list(ids)


async def tracking_since(store: PersonStore, project_id: int, filters: Mapping[str, Any]) -> str | None:
    """The cohort's ``tracking_since`` (ISO 8601, UTC), recording now for counters not tracked yet."""
    counters = counters_of(filters, filtered_only=True)
    if not counters:
        return None
    since = await store.track(project_id, counters, int(time.time()))
    return datetime.fromtimestamp(max(since.values()), UTC).isoformat().replace("+00:00", "Z")
