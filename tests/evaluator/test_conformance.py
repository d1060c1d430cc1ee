"""Conformance with the reference implementations flagd promises to reproduce.

* ``posthog`` bucketing against the 1000-id consistency tables shipped in the installed posthog wheel's own
  tests (read and parsed at test time, never copied here), and against the SDK's public local evaluator.
* ``murmur3`` bucketing against ``openfeature-flagd-core``'s ``fractional`` operator, the flagd reference.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core.targeting.targeting import targeting
from openfeature.evaluation_context import EvaluationContext
from posthog.feature_flags import match_feature_flag_properties

from evaluator import Context, compile_flags
from evaluator.bucketing import BucketingScheme, get_scheme

CONSISTENCY_TESTS = ("test_simple_flag_consistency", "test_multivariate_flag_consistency")


def _posthog_test_module() -> Path:
    spec = importlib.util.find_spec("posthog")
    assert spec is not None, "posthog is not installed"
    assert spec.origin is not None, "posthog is not installed as a regular package"
    path = Path(spec.origin).parent / "test" / "test_feature_flags.py"
    assert path.is_file(), f"{path} missing: the posthog wheel no longer ships its tests"
    return path


def _assigned_literal(function: ast.FunctionDef, target: str) -> Any:
    """The literal value assigned to ``target`` (a name or ``self.a.b`` attribute) inside ``function``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == target for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{function.name} assigns no {target}")


@cache
def consistency_table(test_name: str) -> tuple[dict[str, Any], list[bool | str]]:
    """(flag definition, 1000 expected results) of one ``TestConsistency`` test in the installed wheel."""
    tree = ast.parse(_posthog_test_module().read_text(encoding="utf-8"))
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name == "TestConsistency":
            for function in cls.body:
                if isinstance(function, ast.FunctionDef) and function.name == test_name:
                    (flag,) = _assigned_literal(function, "self.client.feature_flags")
                    results = _assigned_literal(function, "results")
                    return flag, results
    raise AssertionError(f"TestConsistency.{test_name} not found in the posthog wheel")


def bucket_like_posthog(scheme: BucketingScheme, flag: Mapping[str, Any], distinct_id: str) -> bool | str:
    """A flag with property-less conditions, evaluated through the bucketing primitives alone."""
    key = flag["key"]
    filters = flag["filters"]
    variants = [
        (v["key"], v["rollout_percentage"]) for v in (filters.get("multivariate") or {}).get("variants", [])
    ]
    for condition in filters["groups"]:
        assert not condition.get("properties"), "only property-less consistency flags are expected"
        pct = condition.get("rollout_percentage")
        if pct is None or scheme.in_rollout(scheme.rollout_value(key, distinct_id), pct):
            if variants:
                variant = scheme.pick_variant(scheme.variant_value(key, distinct_id), variants)
                return variant if variant is not None else True
            return True
    return False


@pytest.mark.parametrize("test_name", CONSISTENCY_TESTS)
def test_posthog_scheme_reproduces_posthog_consistency_tables(test_name: str) -> None:
    """The posthog scheme gives all 1000 ids of the wheel's table the same result as every PostHog SDK."""
    flag, results = consistency_table(test_name)
    assert len(results) == 1000  # the wheel's table was found
    assert len(set(results)) >= 2
    scheme = get_scheme("posthog")
    got = [bucket_like_posthog(scheme, flag, f"distinct_id_{i}") for i in range(1000)]
    mismatches = [i for i in range(1000) if got[i] != results[i]]
    assert mismatches == [], f"{len(mismatches)} of 1000 differ, first ids: {mismatches[:10]}"


@pytest.mark.parametrize("test_name", CONSISTENCY_TESTS)
def test_engine_with_posthog_bucketing_reproduces_consistency_tables(test_name: str) -> None:
    """The same flag JSON compiled by flagd's engine with bucketing "posthog" matches the table 1000/1000."""
    flag, results = consistency_table(test_name)
    definition = {"team_id": 1, "deleted": False, "version": 1, **flag, "bucketing": "posthog"}
    snapshot = compile_flags([definition])
    got = []
    for i in range(1000):
        decision = snapshot.evaluate(Context(distinct_id=f"distinct_id_{i}"))[flag["key"]]
        assert decision.error is None, decision
        got.append(decision.variant if decision.variant is not None else decision.enabled)
    mismatches = [i for i in range(1000) if got[i] != results[i]]
    assert mismatches == [], f"{len(mismatches)} of 1000 differ, first ids: {mismatches[:10]}"


# --- posthog against the SDK's own local evaluator, on random flags ---------------------------------------

variant_splits = st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=6).map(
    lambda weights: [(f"v{n}", w) for n, w in enumerate(weights)]
)


@settings(max_examples=200)
@given(
    flag_key=st.text(min_size=1, max_size=30),
    distinct_id=st.text(min_size=1, max_size=60),
    rollout=st.one_of(st.none(), st.integers(0, 100), st.floats(0, 100, allow_nan=False)),
    variants=st.one_of(st.just([]), variant_splits),
    holdout=st.one_of(st.none(), st.tuples(st.integers(1, 10**6), st.integers(0, 100))),
)
def test_posthog_scheme_agrees_with_the_sdk_local_evaluator(
    flag_key: str,
    distinct_id: str,
    rollout: float | None,
    variants: list[tuple[str, int]],
    holdout: tuple[int, int] | None,
) -> None:
    """For random keys, ids, rollouts, variant splits and holdouts, PostHog's SDK and the scheme agree."""
    filters: dict[str, Any] = {"groups": [{"properties": [], "rollout_percentage": rollout}]}
    if variants:
        filters["multivariate"] = {"variants": [{"key": k, "rollout_percentage": p} for k, p in variants]}
    if holdout is not None:
        filters["holdout"] = {"id": holdout[0], "exclusion_percentage": holdout[1]}
    flag = {"id": 1, "key": flag_key, "active": True, "filters": filters}
    sdk = match_feature_flag_properties(flag, distinct_id, {}, bucketing_value=distinct_id)

    scheme = get_scheme("posthog")
    expected: bool | str
    if holdout is not None and scheme.in_holdout(scheme.holdout_value(holdout[0], distinct_id), holdout[1]):
        expected = f"holdout-{holdout[0]}"
    else:
        expected = bucket_like_posthog(scheme, flag, distinct_id)
    assert sdk == expected


# --- murmur3 against flagd's reference fractional operator -------------------------------------------------


@pytest.fixture(autouse=True)
def _quiet_flagd_core_logs() -> Iterator[None]:
    # openfeature-flagd-core logs an error for a zero total weight; that case is part of the comparison.
    logger = logging.getLogger("openfeature.contrib")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def flagd_fractional(flag_key: str, targeting_key: str, weights: list[tuple[str, int]]) -> Any:
    """flagd's answer: the shorthand ``fractional`` rule run through openfeature-flagd-core's JsonLogic."""
    rule = {"fractional": [[name, weight] for name, weight in weights]}
    return targeting(flag_key, rule, EvaluationContext(targeting_key=targeting_key))


def murmur3_variant(flag_key: str, targeting_key: str, weights: list[tuple[str, int]]) -> str | None:
    """flagd's murmur3 scheme, given the same weights as percentages in hundredths."""
    scheme = get_scheme("murmur3")
    return scheme.pick_variant(
        scheme.variant_value(flag_key, targeting_key), [(name, w / 100) for name, w in weights]
    )


weight_lists = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8).map(
    lambda ws: [(f"variant-{n}", w) for n, w in enumerate(ws)]
)


@settings(max_examples=300)
@given(
    flag_key=st.text(min_size=0, max_size=40),
    targeting_key=st.text(min_size=1, max_size=300),
    weights=weight_lists,
)
def test_murmur3_matches_flagd_fractional(
    flag_key: str, targeting_key: str, weights: list[tuple[str, int]]
) -> None:
    """For random flag keys, targeting keys and integer weights, murmur3 picks flagd's variant."""
    assert murmur3_variant(flag_key, targeting_key, weights) == flagd_fractional(
        flag_key, targeting_key, weights
    )


@pytest.mark.parametrize(
    "split",
    [[50, 50], [10, 20, 30, 40], [3333, 3333, 3334], [1, 9999], [0, 100, 0], [25, 25, 25, 25]],
)
def test_murmur3_matches_flagd_fractional_on_2000_ids(split: list[int]) -> None:
    """On 2000 fixed ids and common splits, every murmur3 pick equals flagd's fractional."""
    weights = [(f"v{n}", w) for n, w in enumerate(split)]
    for i in range(2000):
        targeting_key = f"user-{i}"
        assert murmur3_variant("checkout-experiment", targeting_key, weights) == flagd_fractional(
            "checkout-experiment", targeting_key, weights
        ), targeting_key


def test_engine_default_bucketing_matches_flagd_fractional() -> None:
    """A multivariate flag compiled with no "bucketing" field splits 1000 ids as flagd's fractional does."""
    split = [("control", 3334), ("test-a", 3333), ("test-b", 3333)]
    flag = {
        "id": 7,
        "team_id": 1,
        "key": "checkout-experiment",
        "name": "checkout experiment",
        "active": True,
        "deleted": False,
        "version": 1,
        "filters": {
            "groups": [{"properties": [], "rollout_percentage": None}],
            "multivariate": {
                "variants": [{"key": k, "name": k, "rollout_percentage": w / 100} for k, w in split]
            },
        },
    }
    snapshot = compile_flags([flag])
    for i in range(1000):
        targeting_key = f"user-{i}"
        decision = snapshot.evaluate(Context(distinct_id=targeting_key))["checkout-experiment"]
        assert decision.variant == flagd_fractional("checkout-experiment", targeting_key, split), (
            targeting_key
        )
