"""``Snapshot.with_flags``: a snapshot with some flags replaced evaluates exactly like a fresh compile."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator import compile_flags
from tests.evaluator.test_incremental import CONTEXTS, KEYS, flags, projects

COHORTS = {"1": {"type": "AND", "values": [{"key": "age", "value": 30, "operator": "gt", "type": "person"}]}}


@settings(max_examples=60, deadline=None)
@given(project=projects(), data=st.data())
def test_with_flags_equals_a_fresh_compile(project: dict[str, dict[str, Any]], data: st.DataObject) -> None:
    """Replacing, adding or deleting a flag (dependencies, cohorts, group flags included) gives every
    context the decisions a fresh compile of the edited project gives."""
    mapping = {"0": "company"}
    snapshot = compile_flags(project.values(), cohorts=COHORTS, group_type_mapping=mapping)
    key = data.draw(st.sampled_from(KEYS))
    edited = data.draw(flags(key, KEYS.index(key) + 1))
    if data.draw(st.booleans()):
        edited = {**edited, "deleted": True}
    changed = snapshot.with_flags([edited])
    expected_defs = {**project, key: edited}
    fresh = compile_flags(expected_defs.values(), cohorts=COHORTS, group_type_mapping=mapping)
    assert set(changed.keys()) == set(fresh.keys())
    for ctx in CONTEXTS[:8]:
        assert changed.evaluate(ctx) == fresh.evaluate(ctx)


def test_with_flags_follows_a_rename_by_id() -> None:
    """A definition with a known id but a new key replaces the old key (a rename), it does not add a flag."""
    old = {"id": 1, "key": "old", "active": True, "filters": {"groups": [{"rollout_percentage": 100}]}}
    snapshot = compile_flags([old])
    renamed = snapshot.with_flags([{**old, "key": "new"}])
    assert list(renamed.keys()) == ["new"]
