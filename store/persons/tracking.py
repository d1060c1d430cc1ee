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

__all__ = ["filtered_counters", "tracking_since"]


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


def filtered_counters(filters: Mapping[str, Any]) -> list[str]:
    """Ids of the counters behind the cohort's own conditions with event filters (invalid ones skipped)."""
    ids: dict[str, None] = {}
    for raw in _leaves(filters.get("properties")):
        leaf = compile_leaf(raw, "", Problems(), time.time)
        if leaf is not None and leaf.counter.filters:
            ids.setdefault(leaf.counter.id)
    return list(ids)


async def tracking_since(store: PersonStore, project_id: int, filters: Mapping[str, Any]) -> str | None:
    """The cohort's ``tracking_since`` (ISO 8601, UTC), recording now for counters not tracked yet."""
    counters = filtered_counters(filters)
    if not counters:
        return None
    since = await store.track(project_id, counters, int(time.time()))
    return datetime.fromtimestamp(max(since.values()), UTC).isoformat().replace("+00:00", "Z")
