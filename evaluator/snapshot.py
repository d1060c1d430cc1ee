"""A snapshot: one project's flags compiled together, immutable, evaluated many times.

``compile_flags`` never raises on bad definitions: a broken flag evaluates to an error Decision and never
affects the others. ``Snapshot.evaluate`` never raises either.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import msgspec

from evaluator.behaviour import STORE_UNAVAILABLE, EventCounter, StoreNeeds
from evaluator.cohorts import CohortBook
from evaluator.dependencies import evaluation_order, references, resolve
from evaluator.errors import BehaviourUnavailableError
from evaluator.explain import Explanation, explain_flag
from evaluator.filters import CohortEntry, DependencyTarget
from evaluator.flag import CompiledFlag, compile_flag
from evaluator.issues import Problems
from evaluator.model import Context, Decision, Issue
from evaluator.needs import NeedsTable, own_needs
from evaluator.operators import Clock
from evaluator.steps import Runner, link


class _Scope:
    """What flags compiling into one snapshot share: clock, group types, cohorts, already compiled flags."""

    __slots__ = (
        "book",
        "by_id",
        "by_key",
        "clock",
        "compiled",
        "cyclic",
        "group_type_mapping",
        "property_matching_version",
    )

    def __init__(
        self,
        clock: Clock,
        group_type_mapping: Mapping[str, str],
        book: CohortBook,
        by_key: Mapping[str, Mapping[str, Any]],
        by_id: Mapping[str, str],
        property_matching_version: int = 1,
    ) -> None:
        self.clock = clock
        self.property_matching_version = property_matching_version
        self.group_type_mapping = group_type_mapping
        self.book = book
        self.by_key = by_key
        self.by_id = by_id
        self.compiled: dict[str, CompiledFlag] = {}
        self.cyclic: set[str] = set()

    def cohort(self, cohort_id: str, problems: Problems, path: str) -> CohortEntry:
        return self.book.entry(cohort_id, problems, path, self)

    def dependency(self, ref: Any, problems: Problems, path: str) -> DependencyTarget | None:
        key = resolve(ref, self.by_key, self.by_id)
        if key is None:
            problems.dependency(path, f"flag {ref!r} does not exist")
            return None
        if key in self.cyclic:
            problems.dependency(path, f"flag {key!r} is part of a dependency cycle")
            return None
        target = self.compiled.get(key)
        if target is None:
            problems.dependency(path, f"flag {key!r} is part of a dependency cycle")
            return None
        if target.error is not None:
            problems.dependency(path, f"flag {key!r} cannot be evaluated ({target.error})")
            return None
        return DependencyTarget(key, target.static, target.run)


class Snapshot:
    """Compiled flags of one project. Evaluate with ``evaluate``; trace one flag with ``explain``."""

    __slots__ = (
        "_book",
        "_chains",
        "_counters",
        "_crashed",
        "_cyclic",
        "_dynamic",
        "_first",
        "_flags",
        "_inputs",
        "_needs",
        "_position",
        "_reproducible",
        "_runs",
        "_sources",
        "_static",
        "_targets",
        "_template",
        "_unavailable",
        "_used_cohorts",
        "property_matching_version",
    )

    def __init__(
        self,
        flags: dict[str, CompiledFlag],
        order: list[str],
        *,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
        targets: Mapping[str, list[str]] | None = None,
        inputs: tuple[Any, ...] | None = None,
        cyclic: frozenset[str] = frozenset(),
        book: CohortBook | None = None,
        counters: tuple[EventCounter, ...] = (),
        group_types: frozenset[str] = frozenset(),
        property_matching_version: int = 1,
    ) -> None:
        self._flags = flags
        self._book = book or CohortBook({}, {})
        self._counters = counters
        # The exact/is_not rule this snapshot evaluates with; SDKs must be told it (local evaluation).
        self.property_matching_version = property_matching_version
        # What this snapshot was compiled from, so the next compile can reuse unchanged flags.
        self._sources = sources or {}
        self._targets = targets or {}
        self._inputs = inputs
        self._cyclic = cyclic
        self._position = {key: i for i, key in enumerate(order)}
        self._chains: dict[str, list[str]] = {}
        self._static: dict[str, Decision] = {}
        dynamic: list[Runner] = []
        self._crashed: dict[str, Decision] = {}
        for key in order:
            flag = flags[key]
            if flag.static is not None:
                self._static[key] = flag.static
            else:
                assert flag.run is not None
                dynamic.append(flag.run)
                self._crashed[key] = Decision(
                    key,
                    False,
                    None,
                    None,
                    "no_condition_match",
                    None,
                    "Evaluation failed",
                    "evaluation_error",
                    flag.flag_id,
                    flag.version,
                    False,
                )
        self._dynamic = tuple(dynamic)
        self._first = link(dynamic)
        self._runs = {run.key: run for run in dynamic}
        # Every answer's slot, in answer order, before the first request: copying it sizes the answer once
        # (no growing it flag by flag), and a slot a flag never fills says its evaluation failed.
        self._template = {**self._static, **self._crashed}
        book = self._book
        own = {key: own_needs(flags[key], book.get, group_types) for key in order}
        self._needs = NeedsTable(order, own, {key: flags[key].dependencies for key in order})
        self._unavailable = {
            key: msgspec.structs.replace(
                self._crashed[key],
                description="Stored person data (behavioural counts) could not be read",
                error=STORE_UNAVAILABLE,
            )
            for key, needs in self._needs.by_flag.items()
            if needs.queries and key in self._crashed
        }
        reproducible: set[str] = set()
        used: dict[str, frozenset[str]] = {}
        for key in order:
            flag = flags[key]
            deps = flag.dependencies
            if flag.reproducible and flag.error is None and deps <= reproducible:
                reproducible.add(key)
            used[key] = frozenset(flag.cohorts).union(*(used.get(dep, ()) for dep in deps))
        self._reproducible = frozenset(reproducible)
        self._used_cohorts = used

    def evaluate(self, ctx: Context, keys: Collection[str] | None = None) -> dict[str, Decision]:
        """Every flag's decision for ``ctx`` (or only ``keys``; unknown keys are absent). Never raises."""
        if keys is None:
            memo = self._template.copy()
            try:
                props, uid = ctx.person_properties, ctx.distinct_id
            except TypeError:  # compiled, a Context built by hand with other types: every flag failed
                return memo
            step = self._first
            while step is not None:
                run = step.run
                try:
                    memo[run.key] = run.decide(ctx, props, uid, memo)
                except BehaviourUnavailableError:  # this flag needed a count the store did not answer
                    memo[run.key] = self._unavailable.get(run.key) or self._crashed[run.key]
                except Exception:  # a bug must cost one flag, never the request
                    memo[run.key] = self._crashed[run.key]
                step = step.after
            return memo
        static, runs = self._static, self._runs
        out: dict[str, Decision] = {}
        scratch: dict[str, Decision] = {}
        for key in keys:
            decision = static.get(key)
            if decision is None:
                decision = scratch.get(key)
                if decision is None:
                    found = runs.get(key)
                    if found is None:
                        continue
                    try:
                        decision = found(ctx, scratch)
                    except BehaviourUnavailableError:
                        decision = self._unavailable.get(key) or self._crashed[key]
                    except Exception:
                        decision = self._crashed[key]
                    scratch[key] = decision
            out[key] = decision
        return out

    def explain(self, key: str, ctx: Context) -> Explanation:
        """A step-by-step, JSON-encodable trace of how ``key`` evaluates for ``ctx``; its ``decision`` is the
        one ``evaluate`` returns. An unknown key gives ``found=False``."""
        return explain_flag(self._flags.get(key), key, ctx, self.evaluate(ctx), self._book.get)

    @property
    def counters(self) -> tuple[EventCounter, ...]:
        """Every event counter the project's valid cohorts need (used by a flag or not), sorted by id.

        Ingestion counts an event for each counter whose ``event`` it is and whose ``matches`` accepts its
        properties. Ids depend only on the event name and its filters: stable across compiles and
        processes."""
        return self._counters

    def store_needs(self, keys: Collection[str] | None = None) -> StoreNeeds:
        """What evaluating these flags (all when ``keys`` is None; unknown keys need nothing) may read from
        the person store, dependencies and the cohorts they use included. Falsy: read nothing. Cheap: the
        per-flag answers are computed at compile time, the all-flags one is cached."""
        if keys is None:
            return self._needs.all
        return self._needs.of(keys)

    @property
    def sdk_reproducible(self) -> frozenset[str]:
        """Keys an SDK evaluating locally answers identically for: PostHog bucketing, no static, external or
        behavioural cohorts (nested ones included), no operator SDKs lack, not broken, and every dependency
        reproducible too."""
        return self._reproducible

    def cohorts_used_by(self, keys: Iterable[str]) -> frozenset[str]:
        """Cohort ids those flags reference, through nested cohorts and through their dependencies."""
        used = self._used_cohorts
        return frozenset().union(*(used.get(key, ()) for key in keys))

    def dependency_chain(self, key: str) -> list[str]:
        """Every flag ``key`` depends on, directly or not, in evaluation order, then ``key`` itself: the order
        a PostHog SDK evaluating locally walks a flag dependency in. Empty when ``key`` is unknown, or on or
        behind a dependency cycle (SDKs treat an empty chain as unresolvable)."""
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = self._solve_chain(key)
        return list(chain)

    def _solve_chain(self, key: str) -> list[str]:
        if key not in self._flags or key in self._cyclic:
            return []
        needed: set[str] = set()
        stack = [key]
        while stack:
            for dep in self._targets.get(stack.pop(), ()):
                if dep not in needed:
                    needed.add(dep)
                    stack.append(dep)
        if needed & self._cyclic:
            return []
        return [*sorted(needed, key=self._position.__getitem__), key]

    def issues(self, key: str) -> list[Issue]:
        """What is wrong with a flag's definition (empty when it is fine or unknown)."""
        flag = self._flags.get(key)
        return list(flag.problems.issues) if flag is not None else []

    def with_flags(self, definitions: Iterable[Mapping[str, Any]]) -> Snapshot:
        """This snapshot with ``definitions`` in place of the flags with the same id (or key): added when new,
        removed when marked ``deleted``; the same cohorts, group types, clock and property matching version.
        Unchanged flags are reused (``compile_flags(previous=self)``), so asking "what would this edit do"
        costs one flag's compile."""
        sources = dict(self._sources)
        for definition in definitions:
            flag_id = definition.get("id")
            if flag_id is not None:
                for old in [k for k, d in sources.items() if d.get("id") == flag_id]:
                    del sources[old]
            new = definition.get("key")
            if isinstance(new, str) and new:
                sources.pop(new, None)
                if not definition.get("deleted"):
                    sources[new] = definition
        if self._inputs is None:
            return compile_flags(sources.values())
        mapping, cohorts, statics, clock, matching = self._inputs
        return compile_flags(
            sources.values(),
            cohorts=cohorts,
            group_type_mapping=mapping,
            static_cohorts=statics,
            clock=clock,
            previous=self,
            property_matching_version=matching,
        )

    def definition(self, ref: str) -> Mapping[str, Any] | None:
        """The definition a flag was compiled from, by key or by id (as text); None when there is none."""
        found = self._sources.get(ref)
        if found is None and ref.isdigit():
            found = next((d for d in self._sources.values() if str(d.get("id")) == ref), None)
        return found

    def flag(self, key: str) -> CompiledFlag | None:
        """The compiled flag (for tooling and tests), or None."""
        return self._flags.get(key)

    def keys(self) -> Iterable[str]:
        return self._flags.keys()

    def __len__(self) -> int:
        return len(self._flags)

    def __contains__(self, key: object) -> bool:
        return key in self._flags

    def __repr__(self) -> str:
        return f"<Snapshot {len(self._flags)} flags, {len(self._dynamic)} request-dependent>"

    def _reusable(self, inputs: tuple[Any, ...]) -> _Reusable | None:
        """This snapshot's flags for reuse by a compile with ``inputs``; None if a shared input changed."""
        if self._inputs is None or len(inputs) != len(self._inputs):
            return None
        if any(a is not b and a != b for a, b in zip(inputs, self._inputs, strict=True)):
            return None
        return _Reusable(self)


def compile_flags(
    flags: Iterable[Mapping[str, Any]],
    *,
    cohorts: Mapping[str, Any] | None = None,
    group_type_mapping: Mapping[str, str] | None = None,
    static_cohorts: Mapping[str, Collection[str]] | None = None,
    clock: Clock = time.time,
    previous: Snapshot | None = None,
    property_matching_version: int = 1,
) -> Snapshot:
    """Compile a project's flags (PostHog definitions; deleted ones are skipped) into a Snapshot.

    ``cohorts``: property cohorts by id (``{"type": "AND"|"OR", "values": [...]}``); ``static_cohorts``:
    distinct-id sets by cohort id; ``group_type_mapping``: group type index (as a string) to group name;
    ``clock``: POSIX seconds, read when a relative date filter is evaluated. Never raises on bad definitions.

    ``previous``: the project's last snapshot. A flag is then reused, not recompiled, when its definition is
    equal, it resolves to the same dependencies, each of those was itself reused, and the cohorts, static
    cohorts, group type mapping and clock are all unchanged; the result evaluates exactly as a fresh
    compile would, but one edit in a large project recompiles only the edited flag and its dependents.
    Definitions are data: the caller must not mutate them after compiling.

    ``property_matching_version``: 1 (PostHog's default: ``exact``/``is_not`` on true/false values compare
    truthiness) or 2 (plain string comparison); see ``evaluator/operators.py``. Anything else is a
    ``ValueError``.
    """
    if property_matching_version not in (1, 2):
        raise ValueError(f"property_matching_version must be 1 or 2, not {property_matching_version!r}")
    live: dict[str, Mapping[str, Any]] = {}
    for definition in flags:
        if not isinstance(definition, Mapping) or definition.get("deleted"):
            continue
        key = definition.get("key")
        if isinstance(key, str) and key:
            live[key] = definition
    by_id = {str(d["id"]): key for key, d in live.items() if d.get("id") is not None}
    mapping = {str(k): str(v) for k, v in (group_type_mapping or {}).items()}
    statics = {str(k): frozenset(v) for k, v in (static_cohorts or {}).items()}
    cohort_defs = dict(cohorts or {})
    inputs = (mapping, cohort_defs, statics, clock, property_matching_version)
    reusable = previous._reusable(inputs) if previous is not None else None
    # Same cohorts, mapping and clock: the previous snapshot's compiled cohorts serve again (unless ids
    # referenced by no definition have piled up in it: then a fresh book, so memory stays bounded).
    book = CohortBook(cohort_defs, statics)
    if reusable is not None and previous is not None and previous._book.extra() <= len(live) + 100:
        book = previous._book
    scope = _Scope(clock, mapping, book, live, by_id, property_matching_version)
    graph: dict[str, list[str]] = {}
    for key, definition in live.items():
        targets = (resolve(ref, live, by_id) for ref in references(definition))
        graph[key] = [target for target in targets if target is not None]
    order, scope.cyclic = evaluation_order(graph)
    compiled: dict[str, CompiledFlag] = {}
    reused: set[str] = set()
    for key in [*order, *sorted(scope.cyclic)]:
        old = reusable.get(key, live[key], graph[key], reused) if reusable is not None else None
        if old is not None:
            reused.add(key)
            compiled[key] = scope.compiled[key] = old
        else:
            compiled[key] = scope.compiled[key] = compile_flag(live[key], scope, mapping)
    return Snapshot(
        compiled,
        [*order, *sorted(scope.cyclic)],
        sources=live,
        targets=graph,
        inputs=inputs,
        cyclic=frozenset(scope.cyclic),
        book=book,
        counters=book.counters(scope),
        group_types=frozenset(mapping.values()),
        property_matching_version=property_matching_version,
    )


class _Reusable:
    """The compiled flags of a previous snapshot that may serve again (see ``compile_flags``)."""

    __slots__ = ("_flags", "_sources", "_targets")

    def __init__(self, snapshot: Snapshot) -> None:
        self._flags = snapshot._flags
        self._sources = snapshot._sources
        self._targets = snapshot._targets

    def get(
        self, key: str, definition: Mapping[str, Any], targets: list[str], reused: set[str]
    ) -> CompiledFlag | None:
        old = self._flags.get(key)
        if old is None or self._targets.get(key) != targets or not reused.issuperset(targets):
            return None
        # Flags on or behind a cycle always have a target not reused before them: recompiled, never reused.
        return old if self._sources.get(key) == definition else None
