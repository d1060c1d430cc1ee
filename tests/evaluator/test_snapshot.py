"""Snapshot: the facade's container behaviour, shared immutable decisions, subsets, reproducibility."""

from __future__ import annotations

from evaluator import Context, Decision, compile_flags

STATIC = {"id": 1, "key": "static", "bucketing": "posthog", "filters": {"groups": [{"properties": []}]}}
TARGETED = {
    "id": 2,
    "key": "targeted",
    "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro", "type": "person"}]}]},
}


def test_container_protocol() -> None:
    """len, in and keys() describe the live flags."""
    snapshot = compile_flags([STATIC, TARGETED])
    assert len(snapshot) == 2
    assert "static" in snapshot
    assert "nope" not in snapshot
    assert set(snapshot.keys()) == {"static", "targeted"}


def test_decisions_are_shared_immutable_objects() -> None:
    """Two evaluations return the very same Decision objects (prepared at compile time), which are frozen."""
    snapshot = compile_flags([STATIC, TARGETED])
    first = snapshot.evaluate(Context("a", {"plan": "pro"}))
    second = snapshot.evaluate(Context("b", {"plan": "pro"}))
    assert all(first[key] is second[key] for key in first)
    decision: Decision = first["static"]
    try:
        decision.enabled = False  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("Decision must be frozen")


def test_results_are_fresh_dicts() -> None:
    """Changing a returned dict never changes what the next evaluation returns."""
    snapshot = compile_flags([STATIC])
    snapshot.evaluate(Context("a")).clear()
    assert "static" in snapshot.evaluate(Context("a"))


def test_keys_subset() -> None:
    """Only requested, known keys are returned."""
    snapshot = compile_flags([STATIC, TARGETED])
    assert set(snapshot.evaluate(Context("a"), keys=["targeted", "zzz"])) == {"targeted"}
    assert snapshot.evaluate(Context("a"), keys=[]) == {}


def test_sdk_reproducible_needs_posthog_bucketing_and_sdk_operators() -> None:
    """Only PostHog-bucketed, non-broken flags using operators SDKs know are offered for local evaluation."""
    between = {
        "id": 3,
        "key": "between",
        "bucketing": "posthog",
        "filters": {"groups": [{"properties": [{"key": "a", "operator": "between", "value": [1, 2]}]}]},
    }
    broken = {
        "id": 4,
        "key": "broken",
        "bucketing": "posthog",
        "filters": {"groups": [{"rollout_percentage": -1}]},
    }
    snapshot = compile_flags([STATIC, TARGETED, between, broken])
    assert snapshot.sdk_reproducible == {"static"}


def test_compile_flags_accepts_junk_without_raising() -> None:
    """Non-mapping entries and flags without a key are skipped, never fatal."""
    snapshot = compile_flags([None, 3, {"filters": {}}, STATIC])  # type: ignore[list-item]
    assert list(snapshot.keys()) == ["static"]
