"""Invariants, checked with hypothesis: evaluation never raises, whatever the data; the hot path's compiled
filters answer like the generic operator path."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import Context, Decision, compile_flags, validate_flag
from evaluator.filters import MISSING, FilterContext, compile_filter
from evaluator.fused import fused_check
from evaluator.issues import Problems
from evaluator.operators import OPERATORS, never, truthiness_test
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


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), operator=st.sampled_from(sorted(OPERATORS)), version=st.sampled_from([1, 2]))
def test_compiled_filters_agree_with_the_generic_operator_path(
    operator: str, version: int, data: st.DataObject
) -> None:
    """For every operator and both property matching versions, the filter the hot path runs (fused where
    there is one) answers exactly like the operator's own test around the documented missing-key rule, and
    its negation answers the opposite; the property is absent, null, or present with a value of any JSON
    type."""
    spec = OPERATORS[operator]
    values = gen.operator_values(operator)
    if operator in ("exact", "is_not"):
        values = values | gen.boolean_like
    for _ in range(4):
        expected = data.draw(values, label="value")
        props = data.draw(gen.person_properties(operator), label="props")
        test = truthiness_test(operator, expected, version) or spec.factory(
            expected, Problems(), "value", _NoScope.clock
        )
        value = props.get("plan", MISSING)
        if test is never:
            reference = False
        elif value is MISSING:
            reference = spec.on_missing
        else:
            reference = test(value) is not spec.inverted
        ctx = Context("u", props)
        for negation in (False, True):
            raw = {"key": "plan", "operator": operator, "value": expected, "negation": negation}
            problems = Problems()
            compiled = compile_filter(raw, "f", problems, _NoScope(version), FilterContext(None))
            check = compiled.check
            answer = check if isinstance(check, bool) else check(props, ctx, {})
            if problems.fatal:
                assert answer is False  # the flag becomes an error decision; the filter itself never matches
            elif test is never:
                assert answer is False
            else:
                assert answer is (reference is not negation), (raw, props)
        fused = fused_check(operator, expected, "plan", MISSING, version)
        if fused is not None and test is not never:
            assert fused(props, ctx, {}) is reference, (expected, props)


def test_every_fused_operator_is_covered() -> None:
    """The equivalence property reaches every operator that has a fused check (and the rest)."""
    fused = {op for op in OPERATORS if fused_check(op, "1", "plan", MISSING) is not None}
    assert fused == {"exact", "icontains", "gt", "gte", "lt", "lte"}


class _NoScope:
    clock = staticmethod(lambda: 1_718_452_800.0)  # 2024-06-15T12:00:00Z
    group_type_mapping: dict[str, str] = {}  # noqa: RUF012

    def __init__(self, property_matching_version: int = 1) -> None:
        self.property_matching_version = property_matching_version

    def cohort(self, *args: Any) -> Any:
        raise AssertionError("no cohorts here")

    def dependency(self, *args: Any) -> Any:
        raise AssertionError("no dependencies here")
