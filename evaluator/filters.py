"""Compiling one property filter (person, group, cohort or flag dependency) into a check.

A check is ``check(props, ctx, memo) -> bool``: ``props`` are the properties the condition aggregates on
(the person's, or the flag's group's), ``memo`` the decisions already made for this context (flag
dependencies read it). A filter whose outcome cannot depend on the request compiles to a plain ``bool``
instead, which lets conditions and whole flags fold away at compile time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, Protocol

from evaluator.behaviour import STORE_UNAVAILABLE
from evaluator.behavioural import Leaf
from evaluator.errors import BehaviourUnavailableError
from evaluator.fused import DirectCheck, fused_check
from evaluator.issues import Problems
from evaluator.model import Context, Decision
from evaluator.operators import OPERATORS, Clock, Test, never, truthiness_test

Check = Callable[[Mapping[str, Any], Context, dict[str, Decision]], bool]
Reader = Callable[[Mapping[str, Any], Context], Any]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
EMPTY: Final[dict[str, Any]] = {}  # shared: never mutated
COHORT_OPERATORS: Final = frozenset({"in", "not_in", "exact"})


class FilterInfo(NamedTuple):
    """A compiled filter and what explain needs to show about it."""

    kind: str  # "property", "cohort" or "flag"
    key: str
    operator: str
    expected: Any
    negation: bool
    source: str  # "person", "group:<name>", "cohort", "flag"
    check: Check | bool
    read: Reader


class DependencyTarget(NamedTuple):
    """A flag another flag depends on, already compiled (flags compile in dependency order)."""

    key: str
    static: Decision | None  # the decision when it never depends on the request
    run: Callable[[Context, dict[str, Decision]], Decision] | None


class CohortEntry(NamedTuple):
    check: Check | bool
    reproducible: bool  # an SDK can evaluate it (property cohorts only, all the way down)
    used: frozenset[str]  # this cohort and every cohort it references
    leaves: tuple[Leaf, ...] = ()  # its behavioural conditions and those of cohorts it references
    reads_props: bool = False  # some property filter reads the properties of the condition using it
    groups: frozenset[str] = frozenset()  # group types whose properties its filters read by index


class Scope(Protocol):
    """What compiling a filter needs from the snapshot being built."""

    @property
    def clock(self) -> Clock: ...

    @property
    def group_type_mapping(self) -> Mapping[str, str]: ...

    @property
    def property_matching_version(self) -> int: ...

    def cohort(self, cohort_id: str, problems: Problems, path: str) -> CohortEntry: ...

    def dependency(self, ref: Any, problems: Problems, path: str) -> DependencyTarget | None: ...


class FilterContext(NamedTuple):
    """Where the condition holding a filter reads properties from: None for the person, else a group name."""

    group: str | None
    allow_flags: bool = True


def compile_filter(raw: Any, path: str, problems: Problems, scope: Scope, where: FilterContext) -> FilterInfo:
    """Compile one filter dict; problems are recorded (the returned check is then ``False``)."""
    if not isinstance(raw, dict):
        problems.error(path, "filter must be an object")
        return FilterInfo("property", "", "", None, False, "person", False, _read_nothing)
    kind = raw.get("type") or "person"
    negation = problems.negation(raw, path)
    if kind == "cohort":
        return _cohort_filter(raw, path, problems, scope, negation)
    if kind == "flag":
        if not where.allow_flags:
            problems.error(f"{path}.type", "flag dependencies are not supported inside cohorts")
            return FilterInfo("flag", str(raw.get("key")), "", None, False, "flag", False, _read_nothing)
        return _flag_filter(raw, path, problems, scope, negation)
    if kind == "behavioral":
        problems.error(f"{path}.type", "behavioural conditions belong in a cohort; filter on that cohort")
        return FilterInfo("property", "", "", None, False, "person", False, _read_nothing)
    if kind not in ("person", "group"):
        problems.error(
            f"{path}.type", f"unknown filter type {kind!r}; expected person, group, cohort or flag"
        )
        return FilterInfo("property", "", "", None, False, "person", False, _read_nothing)
    return _property_filter(raw, path, problems, scope, where, kind, negation)


def _read_nothing(props: Mapping[str, Any], ctx: Context) -> Any:
    return MISSING


def _property_filter(
    raw: dict[str, Any],
    path: str,
    problems: Problems,
    scope: Scope,
    where: FilterContext,
    kind: str,
    negation: bool,
) -> FilterInfo:
    key = raw.get("key")
    operator = raw.get("operator") or "exact"
    expected = raw.get("value")
    if not isinstance(key, str) or not key:
        problems.error(f"{path}.key", "must be a non-empty string")
        key = ""
    spec = OPERATORS.get(operator) if isinstance(operator, str) else None
    if spec is None:
        problems.error(f"{path}.operator", f"unknown operator {operator!r}")
        return FilterInfo("property", key, str(operator), expected, negation, "person", False, _read_nothing)
    source, read, plain = _reader(raw, key, path, problems, scope, where, kind)
    truthy = truthiness_test(operator, expected, scope.property_matching_version)
    test: Test = truthy or spec.factory(expected, problems, f"{path}.value", scope.clock)
    info = FilterInfo._make(("property", key, operator, expected, negation, source, False, read))
    if test is never:
        return info  # an unusable value (invalid regex...) never matches, whatever the operator
    flip = spec.inverted is not negation
    on_missing = spec.on_missing is not negation
    if plain and not flip and not on_missing:
        fused = fused_check(operator, expected, key, MISSING, scope.property_matching_version)
        if fused is not None:
            return info._replace(check=fused)
    return info._replace(check=_property_check(key, test, flip, on_missing, read if not plain else None))


def _reader(
    raw: dict[str, Any],
    key: str,
    path: str,
    problems: Problems,
    scope: Scope,
    where: FilterContext,
    kind: str,
) -> tuple[str, Reader, bool]:
    """Where this filter's property comes from: (label, reader, whether the reader is a plain props get)."""
    group = where.group
    if kind == "group" and (group is None or raw.get("group_type_index") is not None):
        index = raw.get("group_type_index")
        name = scope.group_type_mapping.get(str(index)) if index is not None else None
        if name is None:
            problems.error(f"{path}.group_type_index", f"unknown group type index {index!r}")
            return "group:?", _read_nothing, False
        if name != group:
            return f"group:{name}", _group_reader(name, key), False
    label = "person" if group is None else f"group:{group}"
    if group is None and key == "distinct_id":
        return label, _read_distinct_id, False
    if group is not None and key == "$group_key":
        return label, _group_key_reader(group), False
    return label, _props_reader(key), True


def _props_reader(key: str) -> Reader:
    def read(props: Mapping[str, Any], ctx: Context) -> Any:
        return props.get(key, MISSING)

    return read


def _group_reader(name: str, key: str) -> Reader:
    def read(props: Mapping[str, Any], ctx: Context) -> Any:
        return ctx.group_properties.get(name, EMPTY).get(key, MISSING)

    return read


def _read_distinct_id(props: Mapping[str, Any], ctx: Context) -> Any:
    return props.get("distinct_id", ctx.distinct_id)


def _group_key_reader(group: str) -> Reader:
    def read(props: Mapping[str, Any], ctx: Context) -> Any:
        value = props.get("$group_key", MISSING)
        return ctx.groups.get(group, MISSING) if value is MISSING else value

    return read


def _property_check(key: str, test: Test, flip: bool, on_missing: bool, read: Reader | None) -> Check:
    if read is None:
        # The common case gets a closure of its own: one dict lookup, one test, no extra call.
        def props_check(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            value = props.get(key, MISSING)
            if value is MISSING:
                return on_missing
            return test(value) is not flip

        return props_check

    def read_check(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        value = read(props, ctx)
        if value is MISSING:
            return on_missing
        return test(value) is not flip

    return read_check


def _cohort_filter(
    raw: dict[str, Any], path: str, problems: Problems, scope: Scope, negation: bool
) -> FilterInfo:
    value = raw.get("value")
    operator = raw.get("operator") or "in"
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        problems.error(f"{path}.value", "must be a cohort id")
        return FilterInfo("cohort", "", str(operator), value, negation, "cohort", False, _read_nothing)
    if operator not in COHORT_OPERATORS:
        problems.error(f"{path}.operator", f"cohort filters take in or not_in, not {operator!r}")
        return FilterInfo(
            "cohort", str(value), str(operator), value, negation, "cohort", False, _read_nothing
        )
    cohort_id = str(value)
    entry = scope.cohort(cohort_id, problems, f"{path}.value")
    flip = (operator == "not_in") is not negation
    check: Check | bool
    if isinstance(entry.check, bool):
        check = entry.check is not flip
    elif flip:
        inner = entry.check

        def not_in(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            return not inner(props, ctx, memo)

        check = not_in
    else:
        check = entry.check
    return FilterInfo("cohort", cohort_id, operator, value, negation, "cohort", check, _read_nothing)


def matches_dependency(expected: Any, actual: bool | str) -> bool:
    """PostHog's rule: ``true`` matches any enabled value (a variant too), ``false`` a disabled flag, a string
    exactly that variant (case-sensitive)."""
    if actual.__class__ is str:
        return expected is True if isinstance(expected, bool) else actual == expected
    return expected is actual


def _flag_filter(
    raw: dict[str, Any], path: str, problems: Problems, scope: Scope, negation: bool
) -> FilterInfo:
    ref = raw.get("key")
    operator = raw.get("operator") or "flag_evaluates_to"
    expected = raw.get("value")
    info = FilterInfo("flag", str(ref), str(operator), expected, negation, "flag", False, _read_nothing)
    if operator != "flag_evaluates_to":
        problems.error(f"{path}.operator", "flag dependencies take the operator flag_evaluates_to")
        return info
    if not isinstance(expected, bool | str) or expected == "":
        problems.error(f"{path}.value", "must be true, false or a variant key")
        return info
    target = scope.dependency(ref, problems, f"{path}.key")
    if target is None:
        return info
    dep_key = target.key

    def read(props: Mapping[str, Any], ctx: Context) -> Any:
        return MISSING  # explain reads the dependency's decision from the memo itself

    info = info._replace(key=dep_key, read=read)
    if target.static is not None:
        decided = target.static.error is None and matches_dependency(expected, target.static.value)
        return info._replace(check=decided is not negation)
    assert target.run is not None
    return info._replace(check=FlagTest(dep_key, target.run, expected, negation))


class FlagTest(DirectCheck):
    """A flag dependency filter: the dependency's decision (made now when this context has none yet) against
    the expected value.

    A dependency answers with one of a few Decisions prepared when it compiled (this test holds its runner,
    so they live as long as it does): the verdict on each is remembered by identity, since reading a
    Decision's fields is a generic attribute lookup each time. One tuple, replaced whole; at most eight."""

    __slots__ = ("dep_key", "expected", "known", "negation", "run")

    def __init__(
        self,
        dep_key: str,
        run: Callable[[Context, dict[str, Decision]], Decision],
        expected: bool | str,
        negation: bool,
    ) -> None:
        self.dep_key = dep_key
        self.run = run
        self.expected = expected
        self.negation = negation
        self.known: tuple[tuple[Decision, bool], ...] = ()

    def holds_for(self, ctx: Context, props: dict[str, Any], memo: dict[str, Decision]) -> bool:
        decision = memo.get(self.dep_key)
        if decision is None:
            decision = memo[self.dep_key] = self.run(ctx, memo)
        for seen, verdict in self.known:
            if seen is decision:
                return verdict
        error = decision.error
        if error is not None:
            if error == STORE_UNAVAILABLE:
                raise BehaviourUnavailableError(self.dep_key)  # it needed stored data; so does this flag
            return self.negation  # not remembered: a snapshot's failure decisions are its own
        verdict = matches_dependency(self.expected, decision.value) is not self.negation
        if len(self.known) < 8:
            self.known = (*self.known, (decision, verdict))
        return verdict
