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


def _dep_flag(fid: int, key: str, *deps: object) -> dict[str, object]:
    props = [{"key": d, "type": "flag", "value": True, "operator": "flag_evaluates_to"} for d in deps]
    return {"id": fid, "key": key, "active": True, "filters": {"groups": [{"properties": props}]}}


def test_dependency_chain_lists_every_needed_flag_in_evaluation_order() -> None:
    """A flag's chain holds its transitive dependencies, each after the ones it needs, then the flag."""
    snapshot = compile_flags(
        [_dep_flag(1, "base"), _dep_flag(2, "middle", 1), _dep_flag(3, "top", "middle", "base")]
    )
    assert snapshot.dependency_chain("base") == ["base"]
    assert snapshot.dependency_chain("middle") == ["base", "middle"]
    assert snapshot.dependency_chain("top") == ["base", "middle", "top"]
    assert snapshot.dependency_chain("unknown") == []


def test_dependency_chain_is_empty_on_and_behind_a_cycle() -> None:
    """Flags on a dependency cycle, and flags depending on one, get an empty chain (unresolvable)."""
    snapshot = compile_flags(
        [_dep_flag(1, "a", "b"), _dep_flag(2, "b", "a"), _dep_flag(3, "c", "a"), _dep_flag(4, "d")]
    )
    assert snapshot.dependency_chain("a") == []
    assert snapshot.dependency_chain("b") == []
    assert snapshot.dependency_chain("c") == []
    assert snapshot.dependency_chain("d") == ["d"]


def test_a_context_built_with_the_wrong_types_never_raises() -> None:
    """``Context`` does not check its fields when built by hand; evaluating one whose distinct id or
    properties have the wrong type still answers every flag (each a Decision, static flags as always)."""
    flags = [
        {
            "key": "on",
            "active": True,
            "filters": {"groups": [{"properties": [], "rollout_percentage": None}]},
        },
        {
            "key": "half",
            "active": True,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]},
        },
        {
            "key": "pro",
            "active": True,
            "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro", "type": "person"}]}]},
        },
    ]
    snapshot = compile_flags(flags)
    for ctx in (
        Context(distinct_id=123, person_properties={"plan": "pro"}),  # type: ignore[arg-type]
        Context(distinct_id="u", person_properties=[("plan", "pro")]),  # type: ignore[arg-type]
    ):
        answers = snapshot.evaluate(ctx)
        assert set(answers) == {"on", "half", "pro"}
        assert all(isinstance(answer, Decision) for answer in answers.values())
        assert answers["on"].enabled is True
