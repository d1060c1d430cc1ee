"""What a flag change does to the persons flagd has seen: the exact what-if, and a change in words.

Bucketing is deterministic, so "who flips if this flag changes" has an exact answer over a known population:
the persons the person store saw in the last 7 days (``PersonStore.seen_persons``), or distinct ids the caller
names. Each person is evaluated against the project's snapshot with the flag as it is and as it would be
(``Snapshot.with_flags``), with the context ``/flags`` builds for a request that carries only the distinct id:
stored person properties and behavioural counts are read exactly when the flag needs them
(``flagd.sdk.persons.Persons.enrich``). So for a change a request cannot see otherwise, the persons this
names are those whose ``/flags`` answer changes once the change is live.

Group flags bucket by a group key persons do not carry; they are evaluated without groups (off), and the
summary says so. Variants are assigned by their own hash (salt ``variant``): a change of variant percentages
moves persons between variants whether or not they stay served, and the result counts them separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from evaluator import Context, Decision, Snapshot
from flagd.sdk.persons import Persons
from store.catalog import ProjectState
from store.persons import PersonStore

SEEN_SECONDS = 7 * 86400
MAX_POPULATION = 10_000  # persons evaluated at most per what-if (newest first)
MAX_DISTINCT_IDS = 1000  # ids a caller may name
DEFAULT_LIMIT = 100  # ids listed per category
MAX_LIMIT = 1000


class Subject(msgspec.Struct, frozen=True):
    """One person to evaluate: stored properties when known (a seen person), else None (read when needed)."""

    distinct_id: str
    properties: dict[str, Any] | None = None


class Population(msgspec.Struct, frozen=True):
    subjects: list[Subject]
    source: str  # "seen": persons seen in the last 7 days; "given": the caller's ids; "none": no person store
    capped: bool = False  # more persons were seen than MAX_POPULATION

    def describe(self) -> str:
        if self.source == "given":
            return f"the {len(self.subjects)} distinct ids given"
        if self.source == "none":
            return "no persons (the person store is off)"
        if self.capped:
            return (
                f"the {len(self.subjects)} newest persons seen in the last 7 days (at most {MAX_POPULATION})"
            )
        return f"the {len(self.subjects)} persons seen in the last 7 days"


async def population(
    persons: PersonStore | None, project_id: int, distinct_ids: Sequence[str] | None
) -> Population:
    """The persons a what-if evaluates: ``distinct_ids`` when given, else those seen in the last 7 days."""
    if distinct_ids is not None:
        unique = list(dict.fromkeys(distinct_ids))
        return Population([Subject(i) for i in unique], "given")
    if persons is None:
        return Population([], "none")
    seen = await persons.seen_persons(project_id, SEEN_SECONDS, MAX_POPULATION + 1)
    return Population(
        [Subject(p.distinct_id, p.properties) for p in seen[:MAX_POPULATION]],
        "seen",
        capped=len(seen) > MAX_POPULATION,
    )


class VariantChange(msgspec.Struct, frozen=True):
    distinct_id: str
    before: str | None
    after: str | None


class Impact(msgspec.Struct, frozen=True):
    """Before/after over one population. Lists hold at most ``limit`` ids; counts are exact."""

    population: str
    evaluated: int
    served_before: int
    served_after: int
    turns_on: list[str]
    turns_on_count: int
    turns_off: list[str]
    turns_off_count: int
    variant_changes: list[VariantChange]
    variant_changed_count: int
    unchanged: int
    group_flag: bool


def _served(decision: Decision | None) -> bool:
    return decision is not None and decision.enabled


def _variant(decision: Decision | None) -> str | None:
    return decision.variant if decision is not None and decision.enabled else None


class Evaluator:
    """Evaluates one flag for a population, as ``/flags`` would (see the module docstring)."""

    def __init__(self, state: ProjectState, enricher: Persons | None) -> None:
        self._state = state
        self._enricher = enricher

    def snapshot(self, definition: Mapping[str, Any]) -> Snapshot:
        """The project's snapshot with this flag definition in place (a ``deleted`` one removes it)."""
        return self._state.snapshot.with_flags([definition])

    async def context(self, snapshot: Snapshot, key: str, subject: Subject, base: Context) -> Context:
        needs = snapshot.store_needs([key])
        if not needs:
            return base
        if subject.properties is not None and not needs.queries and not needs.group_types:
            return msgspec.structs.replace(
                base, person_properties={**subject.properties, **base.person_properties}
            )
        if self._enricher is None:
            return base
        state = msgspec.structs.replace(self._state, snapshot=snapshot)
        return await self._enricher.enrich(state, base, [key])

    async def decide(self, snapshot: Snapshot, key: str, subject: Subject) -> Decision | None:
        if key not in snapshot:
            return None
        ctx = await self.context(snapshot, key, subject, Context(distinct_id=subject.distinct_id))
        return snapshot.evaluate(ctx, keys=[key]).get(key)

    async def measure(
        self,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
        people: Population,
        limit: int = DEFAULT_LIMIT,
    ) -> Impact:
        """Evaluate ``before`` (None: the flag does not exist yet) and ``after`` for every person."""
        key_after = str(after.get("key"))
        old = self.snapshot(before) if before is not None else None
        new = self.snapshot(after)
        key_before = str(before.get("key")) if before is not None else key_after
        on: list[str] = []
        off: list[str] = []
        moved: list[VariantChange] = []
        on_count = off_count = moved_count = unchanged = served_before = served_after = 0
        for subject in people.subjects:
            was = await self.decide(old, key_before, subject) if old is not None else None
            now = await self.decide(new, key_after, subject)
            served_before += _served(was)
            served_after += _served(now)
            if _served(now) and not _served(was):
                on_count += 1
                if len(on) < limit:
                    on.append(subject.distinct_id)
            elif _served(was) and not _served(now):
                off_count += 1
                if len(off) < limit:
                    off.append(subject.distinct_id)
            elif _variant(was) != _variant(now):
                moved_count += 1
                if len(moved) < limit:
                    moved.append(VariantChange(subject.distinct_id, _variant(was), _variant(now)))
            else:
                unchanged += 1
        filters = after.get("filters")
        group_flag = isinstance(filters, Mapping) and filters.get("aggregation_group_type_index") is not None
        return Impact(
            population=people.describe(),
            evaluated=len(people.subjects),
            served_before=served_before,
            served_after=served_after,
            turns_on=on,
            turns_on_count=on_count,
            turns_off=off,
            turns_off_count=off_count,
            variant_changes=moved,
            variant_changed_count=moved_count,
            unchanged=unchanged,
            group_flag=group_flag,
        )
