"""A snapshot: one project's flags compiled together, immutable, evaluated many times.

``compile_flags`` never raises on bad definitions: a broken flag evaluates to an error Decision and never
affects the others. ``Snapshot.evaluate`` never raises either.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from evaluator.cohorts import CohortBook
from evaluator.dependencies import evaluation_order, references, resolve
from evaluator.explain import Explanation, explain_flag
from evaluator.filters import CohortEntry, DependencyTarget
from evaluator.flag import CompiledFlag, compile_flag
from evaluator.issues import Problems
from evaluator.model import Context, Decision, Issue
from evaluator.operators import Clock
from evaluator.runner import Run


class _Scope:
    """What flags compiling into one snapshot share: clock, group types, cohorts, already compiled flags."""

    __slots__ = ("book", "by_id", "by_key", "clock", "compiled", "cyclic", "group_type_mapping")

    def __init__(
        self,
        clock: Clock,
        group_type_mapping: Mapping[str, str],
        book: CohortBook,
        by_key: Mapping[str, Mapping[str, Any]],
        by_id: Mapping[str, str],
    ) -> None:
        self.clock = clock
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

    __slots__ = ("_crashed", "_dynamic", "_flags", "_reproducible", "_runs", "_static", "_used_cohorts")

    def __init__(self, flags: dict[str, CompiledFlag], order: list[str]) -> None:
        self._flags = flags
        self._static: dict[str, Decision] = {}
        dynamic: list[tuple[str, Run]] = []
        self._crashed: dict[str, Decision] = {}
        for key in order:
            flag = flags[key]
            if flag.static is not None:
                self._static[key] = flag.static
            else:
                assert flag.run is not None
                dynamic.append((key, flag.run))
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
        self._runs = dict(dynamic)
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
            memo = self._static.copy()
            for key, run in self._dynamic:
                try:
                    memo[key] = run(ctx, memo)
                except Exception:  # a bug must cost one flag, never the request
                    memo[key] = self._crashed[key]
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
                    except Exception:
                        decision = self._crashed[key]
                    scratch[key] = decision
            out[key] = decision
        return out

    def explain(self, key: str, ctx: Context) -> Explanation:
        """A step-by-step, JSON-encodable trace of how ``key`` evaluates for ``ctx``; its ``decision`` is the
        one ``evaluate`` returns. An unknown key gives ``found=False``."""
        return explain_flag(self._flags.get(key), key, ctx, self.evaluate(ctx))

    @property
    def sdk_reproducible(self) -> frozenset[str]:
        """Keys an SDK evaluating locally answers identically for: PostHog bucketing, no static or external
        cohorts, no operator SDKs lack, not broken, and every dependency reproducible too."""
        return self._reproducible

    def cohorts_used_by(self, keys: Iterable[str]) -> frozenset[str]:
        """Cohort ids those flags reference, through nested cohorts and through their dependencies."""
        used = self._used_cohorts
        return frozenset().union(*(used.get(key, ()) for key in keys))

    def issues(self, key: str) -> list[Issue]:
        """What is wrong with a flag's definition (empty when it is fine or unknown)."""
        flag = self._flags.get(key)
        return list(flag.problems.issues) if flag is not None else []

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


def compile_flags(
    flags: Iterable[Mapping[str, Any]],
    *,
    cohorts: Mapping[str, Any] | None = None,
    group_type_mapping: Mapping[str, str] | None = None,
    static_cohorts: Mapping[str, Collection[str]] | None = None,
    clock: Clock = time.time,
) -> Snapshot:
    """Compile a project's flags (PostHog definitions; deleted ones are skipped) into a Snapshot.

    ``cohorts``: property cohorts by id (``{"type": "AND"|"OR", "values": [...]}``); ``static_cohorts``:
    distinct-id sets by cohort id; ``group_type_mapping``: group type index (as a string) to group name;
    ``clock``: POSIX seconds, read when a relative date filter is evaluated. Never raises on bad definitions.
    """
    live: dict[str, Mapping[str, Any]] = {}
    for definition in flags:
        if not isinstance(definition, Mapping) or definition.get("deleted"):
            continue
        key = definition.get("key")
        if isinstance(key, str) and key:
            live[key] = definition
    by_id = {str(d["id"]): key for key, d in live.items() if d.get("id") is not None}
    mapping = {str(k): str(v) for k, v in (group_type_mapping or {}).items()}
    book = CohortBook(cohorts or {}, {str(k): frozenset(v) for k, v in (static_cohorts or {}).items()})
    scope = _Scope(clock, mapping, book, live, by_id)
    graph: dict[str, list[str]] = {}
    for key, definition in live.items():
        targets = (resolve(ref, live, by_id) for ref in references(definition))
        graph[key] = [target for target in targets if target is not None]
    order, scope.cyclic = evaluation_order(graph)
    compiled: dict[str, CompiledFlag] = {}
    for key in [*order, *sorted(scope.cyclic)]:
        compiled[key] = scope.compiled[key] = compile_flag(live[key], scope, mapping)
    return Snapshot(compiled, [*order, *sorted(scope.cyclic)])
