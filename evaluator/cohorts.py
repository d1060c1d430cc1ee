"""Cohorts: property cohorts (nested AND/OR groups of filters, cohort-in-cohort, behavioural conditions
read from the person store; see ``behavioural``), static cohorts (sets of distinct ids) and cohorts resolved
outside the evaluator (``Context.cohort_ids``).

Each cohort compiles once per snapshot and is shared by every flag that uses it. A cohort that references
itself (directly or through others), or whose definition is broken, makes the flags using it unevaluable
(an issue at the filter's path). An id that is neither a property nor a static cohort is taken to be
resolved externally: it matches iff the id is in ``Context.cohort_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluator.behaviour import EventCounter
from evaluator.behavioural import MAX_BEHAVIOURAL_LEAVES, Leaf, compile_leaf, is_behavioural
from evaluator.filters import Check, CohortEntry, FilterContext, Scope, compile_filter
from evaluator.fused import Combined, PropertyTest
from evaluator.issues import Problems
from evaluator.model import Context, Decision

_COMPILING = CohortEntry(False, False, frozenset())


def _is_group(value: Any) -> bool:
    return isinstance(value, dict) and (
        value == {} or "values" in value or value.get("type") in ("AND", "OR")
    )


class Notes:
    """What compiling one cohort's own tree found: its behavioural leaves and the properties it reads."""

    __slots__ = ("behavioural", "groups", "leaves", "reads_props", "uses")

    def __init__(self) -> None:
        self.behavioural = 0  # behavioural leaves in this cohort's own tree (the limit counts these)
        self.uses = 0  # behavioural leaves and references to cohorts holding some, as compiled so far
        self.leaves: list[Leaf] = []  # with those of referenced cohorts
        self.reads_props = False
        self.groups: set[str] = set()

    def add(self, entry: CohortEntry) -> None:
        """A referenced cohort's findings."""
        self.uses += bool(entry.leaves)
        self.leaves.extend(leaf for leaf in entry.leaves if leaf not in self.leaves)
        self.reads_props = self.reads_props or entry.reads_props
        self.groups |= entry.groups


def compile_group(
    group: Any,
    path: str,
    problems: Problems,
    scope: Scope,
    where: FilterContext,
    notes: Notes | None = None,
) -> Check | bool:
    """An AND/OR group of filters, behavioural conditions and nested groups; ``{}`` and an empty list match
    everyone. Whatever reads behavioural counts (a leaf, a nested group or cohort holding one) goes last:
    an AND or OR that properties already decide needs no count."""
    if notes is None:
        notes = Notes()
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
    performed: list[Check | bool] = []
    for index, item in enumerate(values):
        item_path = f"{path}.values[{index}]"
        uses = notes.uses
        if _is_group(item):
            check = compile_group(item, item_path, problems, scope, where, notes)
            (performed if notes.uses > uses else checks).append(check)
        elif is_behavioural(item):
            notes.behavioural += 1
            notes.uses += 1
            if notes.behavioural == MAX_BEHAVIOURAL_LEAVES + 1:
                problems.error(
                    item_path, f"a cohort has at most {MAX_BEHAVIOURAL_LEAVES} behavioural conditions"
                )
            leaf = compile_leaf(item, item_path, problems, scope.clock)
            performed.append(False if leaf is None else leaf.check)
            if leaf is not None and leaf not in notes.leaves:
                notes.leaves.append(leaf)
        else:
            info = compile_filter(item, item_path, problems, scope, where)
            (performed if notes.uses > uses else checks).append(info.check)
            if info.kind == "property" and not isinstance(info.check, bool):
                if info.source.startswith("group:"):
                    notes.groups.add(info.source[6:])
                else:
                    notes.reads_props = True
    return combine([*checks, *performed], conjunction=kind == "AND")


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
    tests = tuple(check for check in dynamic if isinstance(check, PropertyTest))
    if len(tests) == len(dynamic):  # property filters only: one object the hot path calls directly
        return Combined(tests, conjunction)
    parts = tuple(dynamic)
    if conjunction:

        def all_of(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            return all(part(props, ctx, memo) for part in parts)

        return all_of

    def any_of(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return any(part(props, ctx, memo) for part in parts)

    return any_of


class CohortBook:
    """Compiles cohorts on first use and remembers them; snapshots of the same cohorts share one book."""

    __slots__ = ("_broken", "_compiled", "_counters", "_definitions", "_static")

    def __init__(self, definitions: Mapping[str, Any], static: Mapping[str, frozenset[str]]) -> None:
        self._definitions = {str(k): v for k, v in definitions.items()}
        self._static = {str(k): frozenset(v) for k, v in static.items()}
        self._compiled: dict[str, CohortEntry] = {}
        self._broken: set[str] = set()
        self._counters: tuple[EventCounter, ...] | None = None

    def extra(self) -> int:
        """How many compiled entries are neither a cohort definition nor a static cohort (external ids)."""
        defined, static = self._definitions, self._static
        return sum(1 for key in self._compiled if key not in defined and key not in static)

    def get(self, cohort_id: str) -> CohortEntry | None:
        """A cohort already compiled (None when it is not, or not yet)."""
        entry = self._compiled.get(cohort_id)
        return None if entry is _COMPILING else entry

    def counters(self, scope: Scope) -> tuple[EventCounter, ...]:
        """Every counter a valid cohort of the project needs, used by a flag or not (so counting starts when
        the cohort is saved, not when a flag first uses it), by id."""
        if self._counters is None:
            for cohort_id in self._definitions:
                self.entry(cohort_id, Problems(), f"cohort {cohort_id}", scope)
            found = {
                leaf.counter.id: leaf.counter
                for cohort_id, entry in self._compiled.items()
                if cohort_id not in self._broken
                for leaf in entry.leaves
            }
            self._counters = tuple(found[key] for key in sorted(found))
        return self._counters

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
        check = compile_group(
            definition, f"cohort {cohort_id}", own, scoped, FilterContext(None, False), scoped.notes
        )
        if own:
            problems.error(
                path, f"cohort {cohort_id} is invalid: {own.fatal[0].path}: {own.fatal[0].message}"
            )
            self._broken.add(cohort_id)
            check = False
        notes = scoped.notes
        entry = CohortEntry(
            check,
            scoped.reproducible and not notes.leaves,
            frozenset({cohort_id, *scoped.used}),
            tuple(notes.leaves),
            notes.reads_props,
            frozenset(notes.groups),
        )
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

    __slots__ = ("_book", "_outer", "notes", "reproducible", "used")

    def __init__(self, outer: Scope, book: CohortBook) -> None:
        self._outer = outer
        self._book = book
        self.used: set[str] = set()
        self.reproducible = True
        self.notes = Notes()

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
        self.notes.add(entry)
        return entry

    def dependency(self, ref: Any, problems: Problems, path: str) -> Any:
        problems.error(path, "flag dependencies are not supported inside cohorts")
        return None
