"""What each compiled flag may read from the person store (``StoreNeeds``), worked out once per compile.

A flag needs stored person properties when a live person-property filter, a cohort reading the person's
properties, feature enrollment or a behavioural condition can be evaluated for it; a group type's stored
properties when a live filter reads them; and the behaviour queries of every behavioural condition in the
cohorts it uses. With person properties come the names read (unknown when a cohort reads them), so a
request sending all of them needs no read. A flag whose answer never depends on the request needs nothing.
A flag's total adds what its dependencies need. Equal needs are one shared object, so unions on the hot
path are mostly identity checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from evaluator.behaviour import NOTHING, BehaviourQuery, StoreNeeds
from evaluator.filters import CohortEntry
from evaluator.flag import CompiledFlag


def own_needs(
    flag: CompiledFlag, cohort: Callable[[str], CohortEntry | None], group_types: Collection[str]
) -> StoreNeeds:
    """What evaluating ``flag`` itself (not its dependencies) may read. ``cohort`` finds compiled cohorts."""
    if flag.static is not None:
        return NOTHING
    person = flag.enrollment_key is not None
    keys: set[str] | None = set() if flag.enrollment_key is None else {flag.enrollment_key}
    groups: set[str] = set()
    queries: dict[str, BehaviourQuery] = {}
    for condition in flag.conditions:
        if condition.check is False or condition.check is True:
            continue  # folded at compile time: reads nothing
        for info in condition.filters:
            if isinstance(info.check, bool):
                continue
            if info.kind == "property":
                if info.source.startswith("group:"):
                    groups.add(info.source[6:])
                else:
                    person = True
                    if keys is not None and info.source == "person":
                        keys.add(info.key)
                    else:
                        keys = None
            elif info.kind == "cohort":
                entry = cohort(info.key)
                if entry is None:
                    continue
                if entry.reads_props:
                    if condition.group is None:
                        person, keys = True, None
                    else:
                        groups.add(condition.group)
                groups |= entry.groups
                for leaf in entry.leaves:
                    person = True
                    queries.setdefault(leaf.query.key, leaf.query)
    known = frozenset(groups.intersection(group_types))
    if not person and not known and not queries:
        return NOTHING
    ordered = tuple(queries[key] for key in sorted(queries))
    return StoreNeeds(person, known, ordered, None if keys is None else frozenset(keys))


class NeedsTable:
    """Every flag's total needs (own and its dependencies'), interned, and the union over all flags."""

    __slots__ = ("_bits", "_distinct", "_unions", "all", "by_flag")

    def __init__(
        self, order: Iterable[str], own: Mapping[str, StoreNeeds], deps: Mapping[str, Iterable[str]]
    ):
        interned: dict[StoreNeeds, StoreNeeds] = {NOTHING: NOTHING}
        total: dict[str, StoreNeeds] = {}
        for key in order:
            mine = own[key]
            extra = [total[dep] for dep in deps.get(key, ()) if total.get(dep, NOTHING)]
            if mine is not NOTHING or extra:
                mine = _normal(mine.union(extra)) if extra else mine
            total[key] = interned.setdefault(mine, mine)
        self.by_flag = {key: needs for key, needs in total.items() if needs is not NOTHING}
        self.all = _normal(NOTHING.union(self.by_flag.values())) if self.by_flag else NOTHING
        self._distinct = list({id(needs): needs for needs in self.by_flag.values()}.values())
        bit_of = {id(needs): 1 << index for index, needs in enumerate(self._distinct)}
        self._bits = {key: bit_of[id(needs)] for key, needs in self.by_flag.items()}
        self._unions: dict[int, StoreNeeds] = {0: NOTHING}

    def of(self, keys: Iterable[str]) -> StoreNeeds:
        """The union for ``keys`` (unknown keys need nothing): one dict lookup and an OR per key (each
        distinct needs object has a bit), then a cached union per combination (bounded)."""
        bits = self._bits
        if not bits:
            return NOTHING
        mask = 0
        for key in keys:
            mask |= bits.get(key, 0)
        union = self._unions.get(mask)
        if union is None:
            chosen = [needs for bit, needs in enumerate(self._distinct) if mask >> bit & 1]
            union = (
                NOTHING if not chosen else chosen[0] if len(chosen) == 1 else _normal(NOTHING.union(chosen))
            )
            if len(self._unions) >= _MAX_CACHED_UNIONS:
                self._unions.clear()
            self._unions[mask] = union
        return union


_MAX_CACHED_UNIONS = 512


def _normal(needs: StoreNeeds) -> StoreNeeds:
    """Queries sorted by key, so equal needs compare equal whatever order they were gathered in."""
    if not needs:
        return NOTHING
    return StoreNeeds(
        needs.person_properties, needs.group_types, tuple(sorted(needs.queries, key=_key)), needs.person_keys
    )


def _key(q: BehaviourQuery) -> str:
    return q.key
