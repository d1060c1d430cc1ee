"""Flags end to end: conditions, rollouts, variants, payloads, groups, holdouts, enrollment, reasons."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from evaluator import Context, compile_flags
from tests.evaluator import cases

FLAG_CASES = cases.load("flags.json")


@pytest.mark.parametrize("case", FLAG_CASES, ids=[c["name"] for c in FLAG_CASES])
def test_flag_case(case: dict[str, Any]) -> None:
    """Each flag decides what the case file says, field by field."""
    snapshot, key = cases.snapshot(case)
    decision = snapshot.evaluate(cases.context(case["context"]))[key]
    for field, expected in case["expect"].items():
        assert getattr(decision, field) == expected, field


def _posthog_hash(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF


def _rollout_flag(pct: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "key": "gradual",
        "active": True,
        "bucketing": "posthog",
        "filters": {"groups": [{"properties": [], "rollout_percentage": pct}], **extra},
    }


def test_rollout_lets_in_exactly_the_users_hashing_below_it() -> None:
    """With PostHog bucketing, a 30% rollout admits a user iff sha1("gradual.<id>") <= 0.3."""
    snapshot = compile_flags([_rollout_flag(30)])
    for n in range(300):
        user = f"user-{n}"
        expected = _posthog_hash(f"gradual.{user}") <= 0.30
        decision = snapshot.evaluate(Context(user))["gradual"]
        assert decision.enabled is expected
        assert decision.reason == ("condition_match" if expected else "out_of_rollout_bound")


def test_multivariate_picks_the_variant_the_hash_falls_in() -> None:
    """Variants are walked in stored order over sha1("<key>.<id>variant") with cumulative boundaries."""
    variants = [("a", 20), ("b", 30), ("c", 50)]
    flag = _rollout_flag(
        100,
        multivariate={"variants": [{"key": k, "rollout_percentage": p} for k, p in variants]},
        payloads={"a": '"A"', "c": '{"c": 1}'},
    )
    snapshot = compile_flags([flag])
    payloads = {"a": '"A"', "b": None, "c": '{"c": 1}'}
    for n in range(300):
        value = _posthog_hash(f"gradual.user-{n}variant")
        expected = "a" if value < 0.2 else "b" if value < 0.5 else "c"
        decision = snapshot.evaluate(Context(f"user-{n}"))["gradual"]
        assert decision.variant == decision.value == expected
        assert decision.payload == payloads[expected]


def test_group_flag_buckets_on_the_group_key() -> None:
    """A group flag's rollout hashes the group key, so every member of a company gets the same answer."""
    flag = _rollout_flag(50, aggregation_group_type_index=0)
    snapshot = compile_flags([flag], group_type_mapping={"0": "company"})
    for n in range(100):
        company = f"company-{n}"
        expected = _posthog_hash(f"gradual.{company}") <= 0.5
        answers = {
            snapshot.evaluate(Context(f"user-{m}", groups={"company": company}))["gradual"].enabled
            for m in range(3)
        }
        assert answers == {expected}


def test_holdout_uses_the_bucketing_schemes_holdout_hash() -> None:
    """A PostHog-bucketed holdout holds out users with sha1("holdout-<distinct id>") <= pct, first."""
    flag = _rollout_flag(100, holdout={"id": 9, "exclusion_percentage": 25})
    snapshot = compile_flags([flag])
    held = 0
    for n in range(400):
        expected = _posthog_hash(f"holdout-user-{n}") <= 0.25
        decision = snapshot.evaluate(Context(f"user-{n}"))["gradual"]
        assert (decision.variant == "holdout-9") is expected
        held += expected
    assert 60 < held < 140


def test_deleted_flags_are_absent() -> None:
    """A deleted flag is not in the snapshot and not in any evaluation result."""
    snapshot = compile_flags([{**_rollout_flag(100), "deleted": True}])
    assert "gradual" not in snapshot
    assert snapshot.evaluate(Context("u")) == {}


def test_one_broken_flag_never_affects_the_others() -> None:
    """A flag with a broken definition answers with an error while its neighbours evaluate normally."""
    broken = {"id": 2, "key": "broken", "active": True, "filters": {"groups": "not a list"}}
    snapshot = compile_flags([broken, _rollout_flag(100)])
    decisions = snapshot.evaluate(Context("u"))
    assert decisions["broken"].error == "invalid_definition"
    assert decisions["gradual"].enabled


def test_device_id_bucketing() -> None:
    """A flag bucketing on device_id hashes the device id, not the distinct id."""
    flag = _rollout_flag(50, bucketing_identifier="device_id")
    snapshot = compile_flags([flag])
    for n in range(100):
        expected = _posthog_hash(f"gradual.device-{n}") <= 0.5
        ctx = Context("same-user", device_id=f"device-{n}")
        assert snapshot.evaluate(ctx)["gradual"].enabled is expected


def test_device_id_falls_back_to_the_person_property() -> None:
    """Without a device id in the request, a device-bucketed flag hashes the ``$device_id`` person property,
    as PostHog does, so the same device gets the same answer both ways."""
    snapshot = compile_flags([_rollout_flag(50, bucketing_identifier="device_id")])
    for n in range(50):
        direct = snapshot.evaluate(Context("u", device_id=f"device-{n}"))["gradual"]
        fallback = snapshot.evaluate(Context(f"other-{n}", {"$device_id": f"device-{n}"}))["gradual"]
        assert fallback.enabled is direct.enabled


def test_device_bucketing_without_a_device_id_skips_person_conditions() -> None:
    """No device id at all: every person condition is skipped as out of rollout (PostHog's server rule),
    whatever the distinct id."""
    snapshot = compile_flags([_rollout_flag(100, bucketing_identifier="device_id")])
    for user in ("a", "b", "c"):
        decision = snapshot.evaluate(Context(user))["gradual"]
        assert (decision.enabled, decision.reason) == (False, "out_of_rollout_bound")
    assert snapshot.evaluate(Context("a", device_id="d1"))["gradual"].enabled


def test_conditions_may_aggregate_on_different_groups() -> None:
    """Mixed targeting: each condition reads and buckets on its own group (or the person); a condition
    whose group is absent reports no_group_type when nothing matches."""
    flag = {
        "id": 3,
        "key": "mixed",
        "filters": {
            "groups": [
                {
                    "properties": [{"key": "tier", "value": "gold", "type": "group", "group_type_index": 0}],
                    "aggregation_group_type_index": 0,
                },
                {"properties": [{"key": "plan", "value": "pro", "type": "person"}]},
            ]
        },
    }
    snapshot = compile_flags([flag], group_type_mapping={"0": "company"})
    gold = Context("u", groups={"company": "acme"}, group_properties={"company": {"tier": "gold"}})
    assert snapshot.evaluate(gold)["mixed"].condition_index == 0
    assert snapshot.evaluate(Context("u", {"plan": "pro"}))["mixed"].condition_index == 1
    assert snapshot.evaluate(Context("u", {"plan": "free"}))["mixed"].reason == "no_group_type"
