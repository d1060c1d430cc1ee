"""``Snapshot.explain``: a JSON-encodable, step-by-step account of how one flag evaluates for one context.

The trace walks every condition and every filter (evaluation itself stops at the first match) and shows
each filter's property, operator, expected and actual value and result; the bucketing scheme, bucketing id,
bucket value and threshold of each rollout; the variant walk; and the final decision -- which is the very
Decision ``evaluate`` returns, so the trace can never disagree with what SDKs get.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from evaluator.behaviour import STORE_UNAVAILABLE
from evaluator.behavioural import Leaf
from evaluator.errors import BehaviourUnavailableError
from evaluator.filters import EMPTY, MISSING, CohortEntry, FilterInfo
from evaluator.flag import CompiledFlag, ConditionInfo
from evaluator.model import Context, Decision, Issue
from evaluator.runner import device_id_of

CohortLookup = Callable[[str], CohortEntry | None]


def _no_cohorts(cohort_id: str) -> CohortEntry | None:
    return None


class BehaviourStep(msgspec.Struct, frozen=True):
    """One behavioural condition of a cohort: the count the store answered in the window, and the test."""

    event: str
    counter: str  # the counter id (``evaluator.behaviour.counter_id``)
    event_filters: str  # their canonical JSON ("" for none)
    window_seconds: int | None  # the last N seconds; or
    since: int | None  # since this epoch second
    count: int | None  # None: the store did not answer
    operator: str  # gte, lte, gt, lt, eq
    threshold: int
    negation: bool
    result: bool | None  # None when the count is missing


class FilterStep(msgspec.Struct, frozen=True):
    kind: str  # property, cohort or flag
    key: str
    operator: str
    expected: Any
    source: str  # person, group:<name>, cohort, flag
    negation: bool
    present: bool  # the property (or the dependency's decision) was there
    actual: Any  # the property value, the dependency's value; None for cohorts
    result: bool
    behaviour: list[BehaviourStep] = []  # a cohort's behavioural conditions (its nested cohorts' too)


class VariantStep(msgspec.Struct, frozen=True):
    key: str
    rollout_percentage: float
    cumulative_percentage: float


class VariantWalk(msgspec.Struct, frozen=True):
    bucket_value: float
    variants: list[VariantStep]
    chosen: str | None


class ConditionStep(msgspec.Struct, frozen=True):
    index: int
    aggregation: str | None  # the group this condition reads, None for the person
    filters: list[FilterStep]
    filters_matched: bool
    rollout_percentage: float | None  # None: no rollout limit
    bucketing_id: str | None
    bucket_value: float | None  # the scheme's rollout value for (flag key, bucketing id), in [0, 1]
    threshold: float | None  # rollout_percentage / 100: the scheme compares bucket_value with it
    in_rollout: bool | None
    variant_override: str | None
    # match, no_match, out_of_rollout, no_group, or no_device (a person condition of a device-bucketed flag
    # whose request has no device id: skipped, as PostHog's server does)
    outcome: str
    decisive: bool  # this condition decided the flag


class HoldoutStep(msgspec.Struct, frozen=True):
    id: int | str
    exclusion_percentage: float
    bucket_value: float
    held_out: bool


class Explanation(msgspec.Struct, frozen=True):
    key: str
    found: bool
    flag_id: int | None = None
    version: int | None = None
    bucketing: str | None = None
    bucketing_id: str | None = None
    aggregation: str | None = None
    issues: list[Issue] = []
    enrollment: str | None = None  # the enrollment property and what it said, when it decided
    holdout: HoldoutStep | None = None
    conditions: list[ConditionStep] = []
    variant: VariantWalk | None = None
    decision: Decision | None = None
    summary: str = ""


def explain_flag(
    flag: CompiledFlag | None,
    key: str,
    ctx: Context,
    memo: dict[str, Decision],
    cohorts: CohortLookup = _no_cohorts,
) -> Explanation:
    """Trace ``flag`` for ``ctx``; ``memo`` holds every flag's decision for ``ctx`` (dependencies read it),
    ``cohorts`` finds compiled cohorts (their behavioural conditions are shown with their counts). A flag
    that failed for want of stored counts is still traced: the missing counts show as None."""
    if flag is None:
        return Explanation(key, False, summary=f"No live flag {key!r} in this project")
    decision = memo[key]
    base: dict[str, Any] = {
        "flag_id": flag.flag_id,
        "version": flag.version,
        "issues": list(flag.problems.issues),
        "bucketing": flag.scheme.name if flag.scheme else None,
        "aggregation": flag.group,
        "decision": decision,
    }
    if decision.reason == "flag_disabled" or decision.error not in (None, STORE_UNAVAILABLE):
        return Explanation(key, True, summary=decision.description, **base)
    if flag.group is not None:
        group_key = ctx.groups.get(flag.group)
        if group_key is None:
            return Explanation(key, True, summary=f"The request has no {flag.group!r} group", **base)
        props: Mapping[str, Any] = ctx.group_properties.get(flag.group, EMPTY)
        bucketing_id = str(group_key)
    else:
        props = ctx.person_properties
        device = device_id_of(ctx) if flag.bucket_on_device else None
        person_only = all(c.group is None for c in flag.conditions)
        skipped = flag.bucket_on_device and device is None and person_only
        if skipped and decision.reason != "super_condition_value":
            summary = "The flag buckets on device_id and the request has none: person conditions are skipped"
            return Explanation(key, True, summary=summary, **base)
        bucketing_id = device or ctx.distinct_id
    base["bucketing_id"] = bucketing_id
    if flag.enrollment_key is not None and flag.enrollment_key in ctx.person_properties:
        said = ctx.person_properties[flag.enrollment_key]
        return Explanation(
            key,
            True,
            enrollment=f"{flag.enrollment_key} = {said!r}",
            summary="Feature enrollment decided",
            **base,
        )
    holdout = None
    assert flag.scheme is not None
    # Without a device id, a device-bucketed person flag has no id to hold out: evaluate skips the holdout
    # and goes on to the conditions on groups.
    no_device = flag.group is None and flag.bucket_on_device and device_id_of(ctx) is None
    if flag.holdout is not None and not no_device:
        value = flag.scheme.holdout_value(flag.holdout.id, bucketing_id)
        held = flag.scheme.in_holdout(value, flag.holdout.percentage)
        holdout = HoldoutStep(flag.holdout.id, flag.holdout.percentage, value, held)
        if held:
            return Explanation(key, True, holdout=holdout, summary="Held out", **base)
    steps: list[ConditionStep] = []
    walk: VariantWalk | None = None
    decided = False
    for condition in flag.conditions:
        step = _condition(flag, condition, ctx, memo, props, bucketing_id, cohorts)
        if step.outcome == "out_of_rollout" and flag.early_exit:
            decided = True  # early exit: later conditions are shown but cannot decide
        if step.outcome == "match" and not decided:
            decided = True
            step = msgspec.structs.replace(step, decisive=True)
            if isinstance(condition.outcome, dict):
                # An empty group key is a key (it is hashed): only a missing one falls back.
                walk = _walk(flag, bucketing_id if step.bucketing_id is None else step.bucketing_id)
        steps.append(step)
    summary = decision.description
    return Explanation(key, True, holdout=holdout, conditions=steps, variant=walk, summary=summary, **base)


def _condition(
    flag: CompiledFlag,
    condition: ConditionInfo,
    ctx: Context,
    memo: dict[str, Decision],
    props: Mapping[str, Any],
    bucketing_id: str,
    cohorts: CohortLookup,
) -> ConditionStep:
    assert flag.scheme is not None
    if condition.group is None and flag.bucket_on_device and device_id_of(ctx) is None:
        return ConditionStep(
            condition.condition_index, None, [], False, condition.rollout, None, None, None, None,
            condition.variant, "no_device", False,
        )  # fmt: skip
    if condition.group != flag.group:
        if condition.group is None:
            props, bucketing_id = ctx.person_properties, ctx.distinct_id
        elif condition.group in ctx.groups:
            props = ctx.group_properties.get(condition.group, EMPTY)
            bucketing_id = str(ctx.groups[condition.group])
        else:
            return ConditionStep(
                condition.condition_index,
                condition.group,
                [],
                False,
                condition.rollout,
                None,
                None,
                None,
                None,
                condition.variant,
                "no_group",
                False,
            )
    filters = [_filter(info, ctx, memo, props, cohorts) for info in condition.filters]
    matched = all(f.result for f in filters) and condition.check is not False
    value = in_rollout = None
    outcome = "no_match"
    if matched:
        outcome = "match"
        if condition.rollout is not None:
            value = flag.scheme.rollout_value(flag.key, bucketing_id)
            in_rollout = flag.scheme.in_rollout(value, condition.rollout)
            outcome = "match" if in_rollout else "out_of_rollout"
    return ConditionStep(
        condition.condition_index,
        condition.group,
        filters,
        matched,
        condition.rollout,
        bucketing_id,
        value,
        None if condition.rollout is None else condition.rollout / 100,
        in_rollout,
        condition.variant,
        outcome,
        False,
    )


def _filter(
    info: FilterInfo,
    ctx: Context,
    memo: dict[str, Decision],
    props: Mapping[str, Any],
    cohorts: CohortLookup,
) -> FilterStep:
    try:
        result = info.check if isinstance(info.check, bool) else info.check(props, ctx, dict(memo))
    except BehaviourUnavailableError:
        result = False  # the decision says store_unavailable; the steps show which count is missing
    behaviour: list[BehaviourStep] = []
    if info.kind == "flag":
        dependency = memo.get(info.key)
        present = dependency is not None
        actual: Any = dependency.value if dependency is not None else None
    elif info.kind == "cohort":
        present, actual = True, None
        entry = cohorts(info.key) if info.key else None
        behaviour = [_behaviour(leaf, ctx) for leaf in entry.leaves] if entry is not None else []
    else:
        value = info.read(props, ctx)
        present = value is not MISSING
        actual = value if present else None
    return FilterStep(
        info.kind,
        info.key,
        info.operator,
        info.expected,
        info.source,
        info.negation,
        present,
        actual,
        result,
        behaviour,
    )


def _behaviour(leaf: Leaf, ctx: Context) -> BehaviourStep:
    count = leaf.answered(ctx)
    result = None if count is None else leaf.check(EMPTY, ctx, {})
    q = leaf.query
    return BehaviourStep(
        leaf.event,
        leaf.counter.id,
        leaf.counter.filters,
        q.window_seconds,
        q.since,
        count,
        leaf.operator,
        leaf.threshold,
        leaf.negation,
        result,
    )


def _walk(flag: CompiledFlag, bucketing_id: str) -> VariantWalk:
    assert flag.scheme is not None
    value = flag.scheme.variant_value(flag.key, bucketing_id)
    steps: list[VariantStep] = []
    total = 0.0
    for name, pct in flag.variants:
        total += pct
        steps.append(VariantStep(name, pct, total))
    return VariantWalk(value, steps, flag.scheme.pick_variant(value, flag.variants))
