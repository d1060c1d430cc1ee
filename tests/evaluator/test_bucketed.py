"""The runners of flags that are one rollout or one variant split (``evaluator/bucketed.py``) work out the
hash prefix, thresholds and boundaries once; they must answer exactly as the scheme's documented functions,
including at an id's own position, where a ``<`` written as ``<=`` would show."""

from __future__ import annotations

import itertools
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import Context, compile_flags
from evaluator.bucketing import get_scheme

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_condition(
    key: str, bucketing: str, rollout: float | None, variants: list[tuple[str, float]] | None = None
) -> Any:
    filters: dict[str, Any] = {"groups": [{"properties": [], "rollout_percentage": rollout}]}
    if variants is not None:
        filters["multivariate"] = {"variants": [{"key": k, "rollout_percentage": p} for k, p in variants]}
    return {"key": key, "bucketing": bucketing, "filters": filters}


@SETTINGS
@given(
    bucketing=st.sampled_from(["murmur3", "posthog"]),
    key=st.text(min_size=1, max_size=30),
    uid=st.text(max_size=40),
    pct=st.floats(0, 100, exclude_max=True) | st.sampled_from([0.0, 0.01, 33.33, 99.99]),
    at_value=st.booleans(),
    nudge=st.sampled_from([-1, 0, 1]),
)
def test_a_rollout_runner_answers_as_the_documented_scheme(
    bucketing: str, key: str, uid: str, pct: float, at_value: bool, nudge: int
) -> None:
    """A flag that is one rollout (its own runner: murmur3 compares the hash itself, posthog hashes from a
    prefix) lets in exactly the ids ``in_rollout(rollout_value(key, id), pct)`` lets in, also with the
    percentage a float step around the id's own position."""
    scheme = get_scheme(bucketing)
    value = scheme.rollout_value(key, uid)
    if at_value:
        around = value * 100
        if nudge:
            around = math.nextafter(around, math.inf if nudge > 0 else -math.inf)
        pct = max(min(around, 99.99), 0.0)
    decision = compile_flags([_one_condition(key, bucketing, pct)]).evaluate(Context(uid))[key]
    assert decision.enabled is scheme.in_rollout(value, pct)
    assert decision.reason == ("condition_match" if decision.enabled else "out_of_rollout_bound")


@SETTINGS
@given(
    bucketing=st.sampled_from(["murmur3", "posthog"]),
    key=st.text(min_size=1, max_size=30),
    uid=st.text(max_size=40),
    cuts=st.lists(st.integers(0, 100), max_size=4),
    at_value=st.booleans(),
)
def test_a_split_runner_answers_as_the_documented_scheme(
    bucketing: str, key: str, uid: str, cuts: list[int], at_value: bool
) -> None:
    """A flag that is one variant split (its own runner walking weights or boundaries worked out once)
    gives every id the variant ``pick_variant(variant_value(key, id), variants)`` gives, zero weights too,
    and when the first variant ends exactly at the id's own position (which is then past it)."""
    scheme = get_scheme(bucketing)
    value = scheme.variant_value(key, uid)
    bounds = [0, *sorted(cuts), 100]
    variants = [(f"v{i}", float(high - low)) for i, (low, high) in enumerate(itertools.pairwise(bounds))]
    if at_value:
        # murmur3 buckets in hundredths of a percent; posthog compares the position with the boundary
        first = ((int(value * 2**32) * 10_000) >> 32) / 100 if bucketing == "murmur3" else value * 100
        variants = [("v0", first), ("v1", 100 - first)]
    expected = scheme.pick_variant(value, tuple(variants))
    decision = compile_flags([_one_condition(key, bucketing, None, variants)]).evaluate(Context(uid))[key]
    assert (decision.variant, decision.reason) == (expected, "condition_match")
