"""Cohorts: property cohorts (nested AND/OR groups of filters, cohort-in-cohort), static cohorts (sets of
distinct ids) and cohorts resolved outside the evaluator (``Context.cohort_ids``, e.g. real-time cohorts).

Each cohort compiles once per snapshot and is shared by every flag that uses it. A cohort that references
itself (directly or through others), or whose definition is broken, makes the flags using it unevaluable
(an issue at the filter's path). An id that is neither a property nor a static cohort is taken to be
resolved externally: it matches iff the id is in ``Context.cohort_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluator.filters import Check, CohortEntry, FilterContext, Scope, compile_filter
from evaluator.issues import Problems
from evaluator.model import Context, Decision

_COMPILING = CohortEntry(False, False, frozenset())


def _is_group(value: Any) -> bool:
    return isinstance(value, dict) and (
        value == {} or "values" in value or value.get("type") in ("AND", "OR")
    )


def compile_group(
    group: Any, path: str, problems: Problems, scope: Scope, where: FilterContext
) -> Check | bool:
    """An AND/OR group of filters and nested groups; ``{}`` and an empty list match everyone."""
    if group == {}:
        return True
    if not isinstance(group, dict):
        problems.error(path, 'must be a property group {"type": "AND"|"OR", "values": [...]}')
        return False
    kind = group.get("type", "AND")
    values = group.get("values")
    if kind not in ("AND", "OR"):
        problems.error(f"{path}.type", "must be AND or OR")
        return False
    if not isinstance(values, list):
        problems.error(f"{path}.values", "must be a list")
        return False
    checks: list[Check | bool] = []
    for index, item in enumerate(values):
        item_path = f"{path}.values[{index}]"
        if _is_group(item):
            checks.append(compile_group(item, item_path, problems, scope, where))
        else:
            checks.append(compile_filter(item, item_path, problems, scope, where).check)
    return combine(checks, conjunction=kind == "AND")


def combine(checks: list[Check | bool], *, conjunction: bool) -> Check | bool:
    """AND (or OR) of checks, folding constants: ``False`` decides an AND, ``True`` an OR."""
    dynamic: list[Check] = []
    for check in checks:
        if isinstance(check, bool):
            if check is not conjunction:
                return check
            continue
        dynamic.append(check)
    if not dynamic:
        return conjunction if checks else True
    if len(dynamic) == 1:
        return dynamic[0]
    parts = tuple(dynamic)
    if conjunction:

        def all_of(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            return all(part(props, ctx, memo) for part in parts)

        return all_of

    def any_of(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return any(part(props, ctx, memo) for part in parts)

    return any_of


class CohortBook:
    """Compiles cohorts on first use and remembers them for the rest of the snapshot."""

    __slots__ = ("_broken", "_compiled", "_definitions", "_static")

    def __init__(self, definitions: Mapping[str, Any], static: Mapping[str, frozenset[str]]) -> None:
        self._definitions = {str(k): v for k, v in definitions.items()}
        self._static = {str(k): frozenset(v) for k, v in static.items()}
        self._compiled: dict[str, CohortEntry] = {}
        self._broken: set[str] = set()

    def entry(self, cohort_id: str, problems: Problems, path: str, scope: Scope) -> CohortEntry:
        entry = self._compiled.get(cohort_id)
        if entry is _COMPILING:
            problems.error(path, f"cohort {cohort_id} references itself")
            return _COMPILING
        if entry is not None:
            if entry.check is False and cohort_id in self._broken:
                problems.error(path, f"cohort {cohort_id} is invalid")
            return entry
        if cohort_id in self._static:
            entry = self._compiled[cohort_id] = _static_entry(cohort_id, self._static[cohort_id])
            return entry
        definition = self._definitions.get(cohort_id)
        if definition is None:
            entry = self._compiled[cohort_id] = _external_entry(cohort_id)
            return entry
        self._compiled[cohort_id] = _COMPILING
        own = Problems()
        scoped = _TrackingScope(scope, self)
        check = compile_group(definition, f"cohort {cohort_id}", own, scoped, FilterContext(None, False))
        if own:
            problems.error(
                path, f"cohort {cohort_id} is invalid: {own.fatal[0].path}: {own.fatal[0].message}"
            )
            self._broken.add(cohort_id)
            check = False
        entry = CohortEntry(check, scoped.reproducible, frozenset({cohort_id, *scoped.used}))
        self._compiled[cohort_id] = entry
        return entry


def _static_entry(cohort_id: str, members: frozenset[str]) -> CohortEntry:
    def in_static(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return ctx.distinct_id in members or cohort_id in ctx.cohort_ids

    return CohortEntry(in_static, False, frozenset({cohort_id}))


def _external_entry(cohort_id: str) -> CohortEntry:
    def in_external(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return cohort_id in ctx.cohort_ids

    return CohortEntry(in_external, False, frozenset({cohort_id}))


class _TrackingScope:
    """The snapshot's scope, noting which cohorts a cohort uses and whether an SDK could evaluate them all."""

    __slots__ = ("_book", "_outer", "reproducible", "used")

    def __init__(self, outer: Scope, book: CohortBook) -> None:
        self._outer = outer
        self._book = book
        self.used: set[str] = set()
        self.reproducible = True

    @property
    def clock(self) -> Any:
        return self._outer.clock

    @property
    def group_type_mapping(self) -> Mapping[str, str]:
        return self._outer.group_type_mapping

    @property
    def property_matching_version(self) -> int:
        return self._outer.property_matching_version

    def cohort(self, cohort_id: str, problems: Problems, path: str) -> CohortEntry:
        entry = self._book.entry(cohort_id, problems, path, self._outer)
        self.used |= entry.used
        self.reproducible = self.reproducible and entry.reproducible
        return entry

    def dependency(self, ref: Any, problems: Problems, path: str) -> Any:
        problems.error(path, "flag dependencies are not supported inside cohorts")
        return None
