"""Invariants, checked with hypothesis: evaluation never raises, whatever the data; splits converge."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import Context, Decision, compile_flags, validate_flag
from evaluator.filters import MISSING, FilterContext, compile_filter
from evaluator.fused import fused_check
from evaluator.issues import Problems
from tests.evaluator import strategies as gen

ERRORS = {None, "invalid_definition", "missing_dependency"}
MAPPING = {"0": "company", "1": "team"}


def _check_decisions(decisions: dict[str, Decision], keys: list[str]) -> None:
    assert set(decisions) == set(keys)
    for key, decision in decisions.items():
        assert decision.key == key
        assert decision.error in ERRORS
        if decision.error is not None:
            assert decision.enabled is False
        assert decision.value == (decision.variant if decision.variant is not None else decision.enabled)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    definitions=st.tuples(gen.flags("flag-0"), gen.flags("flag-1"), gen.flags("flag-2")),
    ctx=gen.contexts(),
)
def test_evaluate_never_raises_on_arbitrary_property_values(definitions: Any, ctx: Context) -> None:
    """Well-shaped flags with every operator evaluate any context without raising, one answer per flag."""
    snapshot = compile_flags(definitions, cohorts=gen.COHORTS, group_type_mapping=MAPPING)
    _check_decisions(snapshot.evaluate(ctx), ["flag-0", "flag-1", "flag-2"])
    assert snapshot.evaluate(ctx) == snapshot.evaluate(ctx)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    definitions=st.tuples(gen.flags("flag-0", malformed=True), gen.flags("flag-1", malformed=True)),
    ctx=gen.contexts(),
    extra=st.lists(gen.json_values, max_size=2),
)
def test_compile_and_evaluate_never_raise_on_malformed_definitions(
    definitions: Any, ctx: Context, extra: list[Any]
) -> None:
    """Arbitrary JSON in any part of a definition (or instead of one) never makes compile or evaluate fail."""
    snapshot = compile_flags([*definitions, *extra], cohorts=gen.COHORTS, group_type_mapping=MAPPING)
    _check_decisions(snapshot.evaluate(ctx), ["flag-0", "flag-1"])
    _check_decisions(snapshot.evaluate(ctx, keys=["flag-1", "nope"]), ["flag-1"])
    snapshot.explain("flag-0", ctx)


@settings(max_examples=100, deadline=None)
@given(definition=gen.flags("flag-0", malformed=True))
def test_validate_never_raises_and_agrees_with_compile(definition: dict[str, Any]) -> None:
    """Validation returns issues instead of raising; a flag it accepts never compiles into an error."""
    issues = validate_flag(definition, cohort_ids=["1", "2", "99"], group_type_mapping=MAPPING)
    if not issues and definition.get("active") is True:
        snapshot = compile_flags(
            [definition], static_cohorts={"1": [], "2": [], "99": []}, group_type_mapping=MAPPING
        )
        assert snapshot.evaluate(Context("u"))["flag-0"].error is None


@settings(max_examples=300, deadline=None)
@given(
    operator=st.sampled_from(["exact", "icontains", "gt", "gte", "lt", "lte"]),
    expected=gen.json_values | gen.boolean_like,
    props=gen.properties,
    version=st.sampled_from([1, 2]),
)
def test_fused_checks_agree_with_the_generic_path(
    operator: str, expected: Any, props: dict[str, Any], version: int
) -> None:
    """The hot path's fused checks answer exactly like the generic operator path (negated twice), under
    both property matching versions."""
    fused = fused_check(operator, expected, "plan", MISSING, version)
    if fused is None:
        return
    problems = Problems()
    raw = {"key": "plan", "operator": operator, "value": expected, "negation": True}
    negated = compile_filter(raw, "f", problems, _NoScope(version), FilterContext(None))
    if problems or isinstance(negated.check, bool):
        return
    ctx = Context("u", props)
    assert fused(props, ctx, {}) is (not negated.check(props, ctx, {}))


class _NoScope:
    clock = staticmethod(lambda: 0.0)
    group_type_mapping: dict[str, str] = {}  # noqa: RUF012

    def __init__(self, property_matching_version: int = 1) -> None:
        self.property_matching_version = property_matching_version

    def cohort(self, *args: Any) -> Any:
        raise AssertionError("no cohorts here")

    def dependency(self, *args: Any) -> Any:
        raise AssertionError("no dependencies here")


@settings(max_examples=6, deadline=None)
@given(
    scheme=st.sampled_from(["murmur3", "posthog"]),
    split=st.lists(st.integers(5, 60), min_size=2, max_size=4).filter(lambda s: sum(s) <= 100),
)
def test_variant_shares_converge_to_their_percentages(scheme: str, split: list[int]) -> None:
    """Over many users each variant's share is within a few points of its percentage."""
    split = [*split[:-1], 100 - sum(split[:-1])]
    variants = [{"key": f"v{i}", "rollout_percentage": pct} for i, pct in enumerate(split)]
    flag = {
        "id": 1,
        "key": "experiment",
        "bucketing": scheme,
        "filters": {
            "groups": [{"properties": [], "rollout_percentage": None}],
            "multivariate": {"variants": variants},
        },
    }
    snapshot = compile_flags([flag])
    users = 4000
    counts: dict[str | None, int] = {}
    for n in range(users):
        variant = snapshot.evaluate(Context(f"user-{n}"))["experiment"].variant
        counts[variant] = counts.get(variant, 0) + 1
    for i, pct in enumerate(split):
        assert abs(counts.get(f"v{i}", 0) / users * 100 - pct) < 3.5
