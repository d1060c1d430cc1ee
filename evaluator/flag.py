"""Compiling one flag definition (PostHog shape) into a ``CompiledFlag``.

Everything is decided here, once: the bucketing scheme, where properties and the bucketing id come from,
every filter's check, and every Decision the flag can ever return (one per condition and variant, one per
reason), so evaluating is a walk over prepared tuples that returns shared, immutable objects. A flag whose
answer cannot depend on the request (inactive, broken, or a first condition that matches everyone) has a
``static`` decision and no ``run`` at all. Hashing is lazy: only a condition with a rollout below 100 or a
multivariate match hashes, at most once each per evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from evaluator.bucketing import BucketingScheme, get_scheme
from evaluator.cohorts import combine
from evaluator.filters import Check, FilterContext, FilterInfo, Scope, compile_filter
from evaluator.issues import Problems
from evaluator.model import Decision
from evaluator.operators import OPERATORS, SERVER_ONLY_OPERATORS
from evaluator.outcomes import Decisions, Holdout, number, parse_holdout, parse_payloads, parse_variants
from evaluator.runner import build_run
from evaluator.steps import Runner
from evaluator.values import iso_instant, parse_relative, to_number


class ConditionInfo(NamedTuple):
    """One condition as compiled: for evaluation and for explain."""

    condition_index: int
    filters: tuple[FilterInfo, ...]
    check: Check | bool
    rollout: float | None  # None: everyone who matches the filters (null or 100)
    variant: str | None  # a valid variant override
    group: str | None  # the group this condition aggregates on; None: the person
    outcome: Decision | dict[str | None, Decision]  # dict: pick by variant
    out_of_rollout: Decision
    no_group: Decision


class CompiledFlag:
    """A flag ready to evaluate: ``static`` when the answer never depends on the request, else ``run``."""

    __slots__ = (
        "bucket_on_device",
        "cohorts",
        "conditions",
        "dependencies",
        "early_exit",
        "enrollment",
        "enrollment_key",
        "error",
        "flag_id",
        "group",
        "holdout",
        "key",
        "no_group",
        "no_match",
        "problems",
        "reproducible",
        "run",
        "scheme",
        "static",
        "variants",
        "version",
    )

    def __init__(self, key: str) -> None:
        self.key = key
        self.flag_id: int | None = None
        self.version: int | None = None
        self.scheme: BucketingScheme | None = None
        self.group: str | None = None
        self.bucket_on_device = False
        self.early_exit = False  # stop at the first condition that matched but was out of rollout
        self.conditions: tuple[ConditionInfo, ...] = ()
        self.variants: tuple[tuple[str, float], ...] = ()
        self.holdout: Holdout | None = None
        self.enrollment_key: str | None = None
        self.enrollment: tuple[Decision, Decision] | None = None
        self.static: Decision | None = None
        self.run: Runner | None = None
        self.no_match: Decision | None = None
        self.no_group: Decision | None = None
        self.error: str | None = None
        self.problems = Problems()
        self.reproducible = True
        self.cohorts: set[str] = set()
        self.dependencies: set[str] = set()


def failed(flag: CompiledFlag, decisions: Decisions | None = None) -> Decision:
    """The decision of a flag that cannot be evaluated (its definition is broken or a dependency is)."""
    made = decisions or Decisions(flag.key, flag.flag_id, flag.version, {})
    first = flag.problems.fatal[0] if flag.problems.fatal else None
    detail = f"{first.path}: {first.message}" if first else "invalid definition"
    if flag.problems.missing_dependency:
        return made.make("missing_dependency", description=detail, error="missing_dependency")
    return made.make(
        "no_condition_match", description=f"Invalid flag definition: {detail}", error="invalid_definition"
    )


def compile_flag(
    definition: Mapping[str, Any], scope: Scope, group_type_mapping: Mapping[str, str]
) -> CompiledFlag:
    """Compile one live flag; never raises. Problems found are in ``flag.problems``."""
    key = str(definition.get("key"))
    flag = CompiledFlag(key)
    problems = flag.problems
    raw_id, raw_version = definition.get("id"), definition.get("version")
    flag.flag_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    flag.version = raw_version if isinstance(raw_version, int) and not isinstance(raw_version, bool) else None
    scheme_name = definition.get("bucketing") or "murmur3"
    try:
        flag.scheme = get_scheme(scheme_name)
    except ValueError as exc:
        problems.error("bucketing", str(exc))
    flag.reproducible = scheme_name == "posthog" and not definition.get("ensure_experience_continuity")
    filters = definition.get("filters")
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        problems.error("filters", "must be an object")
        filters = {}
    payloads = parse_payloads(filters.get("payloads"), problems)
    made = Decisions(key, flag.flag_id, flag.version, payloads)
    identifier = definition.get("bucketing_identifier") or filters.get("bucketing_identifier")
    flag.bucket_on_device = identifier == "device_id"
    _compile_body(flag, filters, scope, group_type_mapping, made, payloads)
    if problems:
        flag.error = "missing_dependency" if problems.missing_dependency else "invalid_definition"
        flag.static, flag.run, flag.reproducible = failed(flag, made), None, False
    if definition.get("active", True) is not True:
        # A disabled flag answers "disabled" even when its definition is broken; dependents may use it.
        flag.static, flag.run, flag.error = made.make("flag_disabled"), None, None
    return flag


def _compile_body(
    flag: CompiledFlag,
    filters: dict[str, Any],
    scope: Scope,
    group_type_mapping: Mapping[str, str],
    made: Decisions,
    payloads: Mapping[str, str],
) -> None:
    problems = flag.problems
    flag.variants = parse_variants(filters.get("multivariate"), problems)
    variant_keys = {name for name, _ in flag.variants}
    for name in payloads:
        if name != "true" and name not in variant_keys:
            problems.warn(f"filters.payloads.{name}", 'payload key is neither "true" nor a variant key')
    aggregation = filters.get("aggregation_group_type_index")
    group_known = True
    if aggregation is not None:
        flag.group = group_type_mapping.get(str(aggregation))
        if flag.group is None:
            group_known = False
            problems.warn("filters.aggregation_group_type_index", f"unknown group type index {aggregation!r}")
            flag.reproducible = False
    flag.early_exit = filters.get("early_exit") is True
    if filters.get("feature_enrollment") is True or filters.get("super_groups"):
        # posthog-node ignores both (it would answer from the conditions alone): served remotely only.
        flag.reproducible = False
    flag.no_match = made.make("no_condition_match")
    flag.no_group = made.make("no_group_type")
    if filters.get("feature_enrollment") is True:
        if flag.group is not None or not group_known:
            problems.warn(
                "filters.feature_enrollment",
                "feature enrollment reads person properties; ignored on group flags",
            )
        else:
            flag.enrollment_key = f"$feature_enrollment/{flag.key}"
            flag.enrollment = (
                made.make("super_condition_value", enabled=True, index=0),
                made.make("super_condition_value", index=0),
            )
    flag.holdout = parse_holdout(filters.get("holdout"), problems, made)
    groups = filters.get("groups")
    if groups is None:
        groups = []
    if not isinstance(groups, list):
        problems.error("filters.groups", "must be a list of conditions")
        groups = []
    conditions = []
    for index, condition in enumerate(groups):
        info = _condition(flag, index, condition, scope, group_type_mapping, made, variant_keys)
        if info is not None:
            conditions.append(info)
    flag.conditions = tuple(conditions)
    if any(_true_when_missing(c) for c in flag.conditions[:-1]):
        # An SDK cannot tell whether such a filter holds when the property is missing; it skips the condition
        # and may match a later one, where the server (missing = true for these operators) matched this one.
        flag.reproducible = False
    if problems:
        return  # compile_flag turns the flag into its error decision
    if not group_known:
        flag.static = flag.no_group
        return
    _choose_run(flag)


def _condition(
    flag: CompiledFlag,
    index: int,
    raw: Any,
    scope: Scope,
    group_type_mapping: Mapping[str, str],
    made: Decisions,
    variant_keys: set[str],
) -> ConditionInfo | None:
    problems = flag.problems
    path = f"filters.groups[{index}]"
    if not isinstance(raw, dict):
        problems.error(path, "condition must be an object")
        return None
    group = flag.group
    if "aggregation_group_type_index" in raw and raw["aggregation_group_type_index"] is not None:
        group = group_type_mapping.get(str(raw["aggregation_group_type_index"]))
        if group is None:
            problems.warn(f"{path}.aggregation_group_type_index", "unknown group type index")
            flag.reproducible = False
            group = "\x00unknown"
    elif "aggregation_group_type_index" in raw and flag.group is not None:
        group = None  # explicitly the person, in a group flag
    raw_props = raw.get("properties") or []
    if not isinstance(raw_props, list):
        problems.error(f"{path}.properties", "must be a list of filters")
        raw_props = []
    where = FilterContext(group)
    infos = tuple(
        compile_filter(item, f"{path}.properties[{i}]", problems, scope, where)
        for i, item in enumerate(raw_props)
    )
    for info in infos:
        if info.kind == "cohort":
            entry = scope.cohort(info.key, Problems(), path) if info.key else None
            if entry is not None:
                flag.cohorts |= entry.used
                flag.reproducible = flag.reproducible and entry.reproducible
        elif info.kind == "flag":
            flag.dependencies.add(info.key)
        elif info.operator in SERVER_ONLY_OPERATORS or info.negation or not _sdk_date(info):
            # SDKs lack these operators, honour ``negation`` only inside cohorts, and read date filters other
            # than ISO-8601 and relative ones each their own way (posthog-python refuses them, posthog-node
            # hands them to JavaScript's Date: local time, numbers as milliseconds).
            flag.reproducible = False
    # Cohorts reading stored behavioural counts go last: a condition a property already decides needs none.
    counted = [
        info.kind == "cohort" and bool(info.key) and bool(scope.cohort(info.key, Problems(), path).leaves)
        for info in infos
    ]
    checks = [info.check for info, late in zip(infos, counted, strict=True) if not late]
    checks += [info.check for info, late in zip(infos, counted, strict=True) if late]
    check = combine(checks, conjunction=True)
    rollout = raw.get("rollout_percentage")
    pct: float | None = None
    if rollout is not None:
        pct = number(rollout)
        if pct is None or not 0 <= pct <= 100:
            problems.error(f"{path}.rollout_percentage", "must be null or a number from 0 to 100")
            pct = None
        elif pct >= 100:
            pct = None
    override = raw.get("variant")
    if override is not None and override not in variant_keys:
        problems.warn(f"{path}.variant", f"variant {override!r} is not one of the flag's variants; ignored")
        override = None
    outcome: Decision | dict[str | None, Decision]
    if override is not None or not flag.variants:
        outcome = made.make(
            "condition_match",
            enabled=True,
            variant=override,
            index=index,
            description=f"Matched condition set {index + 1}",
        )
    else:
        outcome = {
            name: made.make(
                "condition_match",
                enabled=True,
                variant=name,
                index=index,
                description=f"Matched condition set {index + 1}",
            )
            for name in (*variant_keys, None)
        }
    out_of_rollout = made.make("out_of_rollout_bound", index=index)
    no_group = made.make("no_group_type", index=index)
    return ConditionInfo(index, infos, check, pct, override, group, outcome, out_of_rollout, no_group)


def _sdk_date(info: FilterInfo) -> bool:
    if info.operator not in ("is_date_before", "is_date_after"):
        return True
    value = info.expected
    if not isinstance(value, str):
        return False
    return parse_relative(value) is not None or (
        to_number(value.strip()) is None and iso_instant(value.strip()) is not None
    )


def _true_when_missing(condition: ConditionInfo) -> bool:
    return any(
        info.kind == "property" and OPERATORS[info.operator].on_missing
        for info in condition.filters
        if info.operator in OPERATORS
    )


def _choose_run(flag: CompiledFlag) -> None:
    """Fold what can be folded, then pick the evaluation closure for what is left."""
    live = [c for c in flag.conditions if c.check is not False]
    assert flag.no_match is not None
    plain = (
        flag.group is None and flag.holdout is None and flag.enrollment is None and not flag.bucket_on_device
    )
    if plain and all(c.group is None for c in live):
        if not live:
            flag.static = flag.no_match
            return
        first = live[0]
        if first.check is True and first.rollout is None and isinstance(first.outcome, Decision):
            flag.static = first.outcome
            return
    flag.run = build_run(flag, live)


__all__ = ["CompiledFlag", "ConditionInfo", "compile_flag", "failed"]
