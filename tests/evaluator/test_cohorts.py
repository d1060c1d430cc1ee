"""Cohorts: nested AND/OR groups with negation, cohort-in-cohort, static and externally resolved cohorts."""

from __future__ import annotations

from typing import Any

from evaluator import Context, compile_flags


def _flag(cohort: Any, operator: str = "in") -> dict[str, Any]:
    return {
        "id": 1,
        "key": "f",
        "bucketing": "posthog",
        "filters": {
            "groups": [
                {"properties": [{"key": "id", "type": "cohort", "value": cohort, "operator": operator}]}
            ]
        },
    }


def _person(key: str, value: Any, operator: str = "exact", **extra: Any) -> dict[str, Any]:
    return {"key": key, "value": value, "operator": operator, "type": "person", **extra}


NESTED = {
    "type": "OR",
    "values": [
        {"type": "AND", "values": [_person("country", "DE"), _person("age", 18, "gte")]},
        {
            "type": "AND",
            "values": [_person("email", "corp", "icontains"), _person("plan", "free", negation=True)],
        },
    ],
}


def _enabled(snapshot: Any, **props: Any) -> bool:
    return bool(snapshot.evaluate(Context("u1", props))["f"].enabled)


def test_nested_groups_and_negation() -> None:
    """An OR of ANDs matches when one AND holds entirely; a negated filter excludes its value."""
    snapshot = compile_flags([_flag(12)], cohorts={"12": NESTED})
    assert _enabled(snapshot, country="DE", age=30)
    assert not _enabled(snapshot, country="DE", age=10)
    assert _enabled(snapshot, email="a@corp.com", plan="pro")
    assert not _enabled(snapshot, email="a@corp.com", plan="free")


def test_cohort_in_cohort() -> None:
    """A cohort can require membership of another cohort, and not_in inverts membership."""
    cohorts = {
        "12": NESTED,
        "20": {
            "type": "AND",
            "values": [{"key": "id", "type": "cohort", "value": 12}, _person("beta", True)],
        },
    }
    snapshot = compile_flags([_flag(20)], cohorts=cohorts)
    assert _enabled(snapshot, country="DE", age=30, beta=True)
    assert not _enabled(snapshot, country="DE", age=30)
    assert not _enabled(snapshot, country="FR", age=30, beta=True)
    outside = compile_flags([_flag(20, "not_in")], cohorts=cohorts)
    assert _enabled(outside, country="FR", beta=True)


def test_empty_cohort_matches_everyone() -> None:
    """A cohort with no filters ({} or empty values) contains everyone, like PostHog."""
    snapshot = compile_flags([_flag(1)], cohorts={"1": {}})
    assert _enabled(snapshot)


def test_self_referencing_cohort_makes_the_flag_an_error() -> None:
    """A cohort cycle is a broken definition: the flag answers with an error, other flags are unaffected."""
    cohorts = {
        "1": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 2}]},
        "2": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 1}]},
    }
    ok = {"id": 2, "key": "ok", "filters": {"groups": [{"properties": []}]}}
    snapshot = compile_flags([_flag(1), ok], cohorts=cohorts)
    decisions = snapshot.evaluate(Context("u"))
    assert decisions["f"].error == "invalid_definition"
    assert decisions["ok"].enabled


def test_static_and_external_cohorts() -> None:
    """Static cohorts are distinct-id sets; unknown ids are resolved by the caller through cohort_ids."""
    snapshot = compile_flags([_flag(13), {**_flag(77), "key": "g"}], static_cohorts={"13": frozenset({"u1"})})
    decisions = snapshot.evaluate(Context("u1"))
    assert decisions["f"].enabled
    assert not decisions["g"].enabled
    assert snapshot.evaluate(Context("u2", cohort_ids=frozenset({"77"})))["g"].enabled
    assert not snapshot.evaluate(Context("u2"))["f"].enabled


def test_cohorts_used_by_and_reproducibility() -> None:
    """cohorts_used_by follows nested cohorts; a static cohort anywhere keeps a flag server-side only."""
    cohorts = {"12": NESTED, "20": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 12}]}}
    flags = [_flag(20), {**_flag(13), "key": "g", "id": 2}]
    snapshot = compile_flags(flags, cohorts=cohorts, static_cohorts={"13": frozenset()})
    assert snapshot.cohorts_used_by(["f"]) == {"12", "20"}
    assert snapshot.cohorts_used_by(["f", "g"]) == {"12", "13", "20"}
    assert snapshot.sdk_reproducible == {"f"}
