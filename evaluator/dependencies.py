"""Flag dependencies: which flags a flag depends on, and an evaluation order solved at compile time.

A dependency filter names its target by flag id (PostHog stores ids) or by key. Flags are compiled and
evaluated in dependency order, so a flag's dependencies are decided before it; a flag on a cycle, or
depending (directly or not) on a missing flag or on one on a cycle, cannot be evaluated and reports
``missing_dependency``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def resolve(ref: Any, by_key: Mapping[str, Any], by_id: Mapping[str, str]) -> str | None:
    """The key of the flag ``ref`` (an id or a key) points at, or None."""
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        return None
    text = str(ref)
    if text in by_id:
        return by_id[text]
    return text if text in by_key else None


def references(definition: Mapping[str, Any]) -> list[Any]:
    """Every dependency target named in a flag's conditions (raw: ids or keys)."""
    filters = definition.get("filters")
    groups = filters.get("groups") if isinstance(filters, dict) else None
    found: list[Any] = []
    for condition in groups if isinstance(groups, list) else ():
        props = condition.get("properties") if isinstance(condition, dict) else None
        for item in props if isinstance(props, list) else ():
            found.extend([item.get("key")] if isinstance(item, dict) and item.get("type") == "flag" else [])
    return found


def evaluation_order(graph: Mapping[str, Iterable[str]]) -> tuple[list[str], set[str]]:
    """Keys ordered so each comes after everything it depends on, and the set of keys on a cycle.

    ``graph`` maps each key to the keys it depends on (all present in ``graph``). Keys on a cycle are left
    out of the order; keys depending on them are ordered normally (their dependency check fails).
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1: visiting, 2: done
    cyclic: set[str] = set()
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                seen = state.get(child)
                if seen == 1:
                    cyclic.update(path[path.index(child) :])
                elif seen is None:
                    state[child] = 1
                    stack.append((child, iter(graph[child])))
                    path.append(child)
                    break
            else:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
    return [key for key in order if key not in cyclic], cyclic
