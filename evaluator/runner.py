"""The runners of compiled flags: the hot path.

``build_run`` picks, per flag and at compile time, the smallest runner (``steps.Runner``) that can evaluate
it: a single condition of one kind gets a runner doing just that (a direct check: fused property tests, a
flag dependency; other filters; a rollout or a variant split, ``bucketed``), other person flags without
holdout or enrollment a loop with nothing else in it, the rest a closure. Conditions are plain tuples,
hashing happens at most once per flag and only when a rollout below 100 or a multivariate match needs it,
and every return value is a Decision prepared at compile time.

Reason when no condition matches (PostHog's priority): ``no_group_type`` over ``out_of_rollout_bound`` over
``no_condition_match``; among conditions of the same reason the first one (lowest index) is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from evaluator.bucketed import rollout_runner, split_runner
from evaluator.bucketing import BucketingScheme
from evaluator.filters import EMPTY, Check
from evaluator.fused import DirectCheck
from evaluator.model import Context, Decision
from evaluator.steps import Runner

if TYPE_CHECKING:
    from evaluator.flag import CompiledFlag, ConditionInfo

Run = Callable[[Context, dict[str, Decision]], Decision]


def build_run(flag: CompiledFlag, live: list[ConditionInfo]) -> Runner:
    """The runner evaluating ``flag`` over its still-live conditions (those not folded to False)."""
    if any(c.group != flag.group for c in live):
        return _Closure(flag.key, _mixed(flag, live))
    if flag.group is None and flag.holdout is None and flag.enrollment is None and not flag.bucket_on_device:
        return _person(flag, live)
    return _Closure(flag.key, _general(flag, live))


class _Closure(Runner):
    """The rarer shapes (groups, holdouts, enrollment, device ids, mixed aggregation): a closure."""

    __slots__ = ("run",)

    def __init__(self, key: str, run: Run) -> None:
        super().__init__(key)
        self.run = run

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        return self.run(ctx, memo)


def _tuples(live: list[ConditionInfo]) -> tuple[tuple[Any, float | None, Any, Decision], ...]:
    return tuple((None if c.check is True else c.check, c.rollout, c.outcome, c.out_of_rollout) for c in live)


def _person(flag: CompiledFlag, live: list[ConditionInfo]) -> Runner:
    assert flag.scheme is not None
    assert flag.no_match is not None
    if len(live) == 1:
        single = _single(flag, live[0])
        if single is not None:
            return single
    return _PersonLoop(flag, live)


class _PersonLoop(Runner):
    """Person conditions in order, no holdout or enrollment: the first that matches (and is in) decides."""

    __slots__ = ("conds", "early_exit", "no_match", "scheme", "variants")

    def __init__(self, flag: CompiledFlag, live: list[ConditionInfo]) -> None:
        super().__init__(flag.key)
        assert flag.scheme is not None
        assert flag.no_match is not None
        self.scheme: BucketingScheme = flag.scheme
        self.variants = flag.variants
        self.no_match: Decision = flag.no_match
        self.conds = _tuples(live)
        self.early_exit = flag.early_exit

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        key, scheme, no_match = self.key, self.scheme, self.no_match
        position = -1.0
        best = no_match
        for check, pct, outcome, out_of_rollout in self.conds:
            if check is not None and not check(props, ctx, memo):
                continue
            if pct is not None:
                if position < 0.0:
                    position = scheme.rollout_value(key, uid)
                if not scheme.in_rollout(position, pct):
                    if self.early_exit:
                        return out_of_rollout
                    if best is no_match:
                        best = out_of_rollout
                    continue
            if outcome.__class__ is dict:
                return outcome[scheme.pick_variant(scheme.variant_value(key, uid), self.variants)]  # type: ignore[no-any-return]
            return outcome  # type: ignore[no-any-return]
        return best


def _single(flag: CompiledFlag, condition: ConditionInfo) -> Runner | None:
    """One condition of one kind only -- filters, a rollout, or a variant split: the commonest shapes, each
    with a runner that does just that (murmur3 hashing with its prefix and thresholds worked out here)."""
    assert flag.scheme is not None
    assert flag.no_match is not None
    key, no_match, outcome = flag.key, flag.no_match, condition.outcome
    check, pct, out_of_rollout = condition.check, condition.rollout, condition.out_of_rollout
    scheme = flag.scheme
    if isinstance(outcome, Decision) and pct is None and not isinstance(check, bool):
        if isinstance(check, DirectCheck):
            return _Direct(key, check, outcome, no_match)
        return _Filtered(key, check, outcome, no_match)
    if isinstance(outcome, Decision) and pct is not None and check is True:
        return rollout_runner(key, scheme, pct, outcome, out_of_rollout)
    if isinstance(outcome, dict) and pct is None and check is True:
        return split_runner(key, scheme, flag.variants, outcome)
    return None


class _Filtered(Runner):
    __slots__ = ("check", "no_match", "outcome")

    def __init__(self, key: str, check: Check, outcome: Decision, no_match: Decision) -> None:
        super().__init__(key)
        self.check = check
        self.outcome = outcome
        self.no_match = no_match

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        return self.outcome if self.check(props, ctx, memo) else self.no_match


class _Direct(_Filtered):
    """Filters that are one ``DirectCheck`` (fused property tests, a flag dependency): called directly."""

    __slots__ = ("test",)

    def __init__(self, key: str, test: DirectCheck, outcome: Decision, no_match: Decision) -> None:
        super().__init__(key, test, outcome, no_match)
        self.test = test

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        return self.outcome if self.test.holds_for(ctx, props, memo) else self.no_match


def _general(flag: CompiledFlag, live: list[ConditionInfo]) -> Run:
    """Group flags, holdouts, feature enrollment, device-id bucketing."""
    assert flag.scheme is not None
    assert flag.no_match is not None
    assert flag.no_group is not None
    key, variants, no_match, no_group, group = (
        flag.key,
        flag.variants,
        flag.no_match,
        flag.no_group,
        flag.group,
    )
    scheme = flag.scheme
    rollout_value, in_rollout = scheme.rollout_value, scheme.in_rollout
    variant_value, pick_variant = scheme.variant_value, scheme.pick_variant
    holdout_value, in_holdout = scheme.holdout_value, scheme.in_holdout
    holdout = flag.holdout
    enrollment_key, enrollment = flag.enrollment_key, flag.enrollment
    on_device = flag.bucket_on_device
    conds = _tuples(live)
    early_exit = flag.early_exit
    # PostHog's server skips every person condition of a device-bucketed flag when there is no device id,
    # each reporting out_of_rollout_bound: the first one's decision is the answer.
    no_device = live[0].out_of_rollout if live else no_match

    def run_general(ctx: Context, memo: dict[str, Decision]) -> Decision:
        if group is None:
            props = ctx.person_properties
            if on_device:
                device = device_id_of(ctx)
                if device is None:
                    if enrollment is not None and enrollment_key in props:
                        enrolled = props[enrollment_key]
                        return enrollment[0] if enrolled is True or enrolled == "true" else enrollment[1]
                    return no_device
                bucketing_id = device
            else:
                bucketing_id = ctx.distinct_id
        else:
            group_key = ctx.groups.get(group)
            if group_key is None:
                return no_group
            bucketing_id = group_key if group_key.__class__ is str else str(group_key)
            props = ctx.group_properties.get(group, EMPTY)
        if enrollment is not None:
            enrolled = ctx.person_properties.get(enrollment_key, _ABSENT)  # type: ignore[arg-type]
            if enrolled is not _ABSENT:
                yes = enrolled is True or enrolled == "true"  # exactly what SDKs accept
                return enrollment[0] if yes else enrollment[1]
        if holdout is not None and in_holdout(holdout_value(holdout.id, bucketing_id), holdout.percentage):
            return holdout.decision
        position = -1.0
        best = no_match
        for check, pct, outcome, out_of_rollout in conds:
            if check is not None and not check(props, ctx, memo):
                continue
            if pct is not None:
                if position < 0.0:
                    position = rollout_value(key, bucketing_id)
                if not in_rollout(position, pct):
                    if early_exit:
                        return out_of_rollout
                    if best is no_match:
                        best = out_of_rollout
                    continue
            if outcome.__class__ is dict:
                return outcome[pick_variant(variant_value(key, bucketing_id), variants)]  # type: ignore[no-any-return]
            return outcome  # type: ignore[no-any-return]
        return best

    return run_general


_ABSENT = object()


def device_id_of(ctx: Context) -> str | None:
    """The device id a ``bucketing_identifier: "device_id"`` flag hashes: the request's (``$device_id`` /
    ``device_id``), else the person property ``$device_id``; None when neither is a non-empty string."""
    device = ctx.device_id
    if device:
        return device
    fallback = ctx.person_properties.get("$device_id")
    return fallback if fallback.__class__ is str and fallback else None


def _mixed(flag: CompiledFlag, live: list[ConditionInfo]) -> Run:
    """Conditions aggregating on different groups (or the person): each resolves its own properties and
    bucketing id. A condition whose group is absent from the request reports ``no_group_type``."""
    general = _general(flag, [])  # the prelude (enrollment, holdout) of the flag itself
    assert flag.scheme is not None
    assert flag.no_match is not None
    key, variants, no_match = flag.key, flag.variants, flag.no_match
    scheme = flag.scheme
    conds: tuple[tuple[Any, ...], ...] = tuple(
        (c.group, None if c.check is True else c.check, c.rollout, c.outcome, c.out_of_rollout, c.no_group)
        for c in live
    )
    flag_group = flag.group
    early_exit = flag.early_exit
    on_device = flag.bucket_on_device
    prelude_possible = flag.holdout is not None or flag.enrollment is not None or flag_group is not None

    def run_mixed(ctx: Context, memo: dict[str, Decision]) -> Decision:
        if prelude_possible:
            first = general(ctx, memo)
            if first is not no_match:
                return first
        best, rank = no_match, 0
        for group, check, pct, outcome, out_of_rollout, no_group in conds:
            props: Mapping[str, Any]
            if group is None:
                props, bucketing_id = ctx.person_properties, ctx.distinct_id
                if on_device:
                    device = device_id_of(ctx)
                    if device is None:  # skipped, as PostHog's server does
                        if rank < 1:
                            best, rank = out_of_rollout, 1
                        continue
                    bucketing_id = device
            else:
                group_key = ctx.groups.get(group)
                if group_key is None:
                    if rank < 2:
                        best, rank = no_group, 2
                    continue
                props, bucketing_id = ctx.group_properties.get(group, EMPTY), str(group_key)
            if check is not None and not check(props, ctx, memo):
                continue
            if pct is not None and not scheme.in_rollout(scheme.rollout_value(key, bucketing_id), pct):
                if early_exit:
                    return out_of_rollout  # type: ignore[no-any-return]
                if rank < 1:
                    best, rank = out_of_rollout, 1
                continue
            if outcome.__class__ is dict:
                return outcome[scheme.pick_variant(scheme.variant_value(key, bucketing_id), variants)]  # type: ignore[no-any-return]
            return outcome  # type: ignore[no-any-return]
        return best

    return run_mixed
