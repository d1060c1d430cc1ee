"""What a person store writes and reads, and the rules every backend applies (pure: no I/O).

A batch of events becomes ``Steps`` (``store.persons.ingest``): runs of ``Writes`` (per person and per group:
the events' property operations and the counters they hit) separated by ``Merge`` steps (``$identify``,
``$create_alias``), applied in order. Backends keep a person as:

- properties: ``'p' + <JSON name>`` -> ``<kind><ms>;<JSON value>`` where kind is ``s`` (``$set``) or ``o``
  (``$set_once``) and ``ms`` the event timestamp in milliseconds: the value flag checks see;
- beside a property, what keeps its value independent of the order events arrive in (``PropState``):
  ``'u' + name`` -> the newest ``$unset``'s ms (a tombstone), ``'f' + name`` / ``'l' + name`` -> the first /
  last ``$set_once`` when it is not the visible value (``'f'`` is ``d`` when that first one came at or before
  the tombstone: spent). Most properties have none of them;
- counts: ``'b' + <counter token><level><bucket>`` -> occurrences (``store.persons.windows``);
- ``'@'`` -> the distinct id this one was merged into (nothing else is kept under a merged id).

The rule, a function of the operations alone (so any arrival order converges), ties broken by the JSON text:

- an ``$unset`` at ``t`` removes whatever ``$set``/``$set_once`` is stamped at or before ``t`` (including
  ones that arrive after it), and a ``$set`` stamped after ``t`` wins;
- the latest ``$set`` wins over every ``$set_once``, before or after it (as a time-ordered replay of PostHog's
  rules would leave it: ``$set`` overwrites, ``$set_once`` fills only an absent property);
- with no live ``$set``, the first ``$set_once`` fills; if it is at or before the tombstone (spent), the last
  ``$set_once`` after the tombstone does. PostHog applies operations in arrival order, so there an
  ``$unset`` then a ``$set_once`` fills the property again: the same here when the ``$set_once`` is stamped
  after the ``$unset``. (A time-ordered replay would take the *first* ``$set_once`` after the tombstone; which
  one that is cannot be known without keeping every ``$set_once``, so it differs only when two differing ones
  follow an ``$unset`` that came after an earlier one.)
- a tombstone is kept for the dedupe period (``StoreSettings.dedupe_seconds``, 24 h: how late an event may
  arrive and still be ordered exactly), then dropped at the person's next roll-up; a ``$set`` stamped before
  a dropped tombstone and arriving that late applies again.

``PersonRecord`` applies these rules in Python (the embedded store, and the oracle in tests); the Redis store
applies the same rules in Lua (``store.persons.lua``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from evaluator.behaviour import BehaviourQuery
from store.persons.windows import LEVELS, TRIM_EVERY, counter_token, expired, firsts, level_for, rolled_up

__all__ = [
    "EventWrite",
    "GroupRead",
    "Merge",
    "PersonRecord",
    "PersonView",
    "PropOp",
    "PropState",
    "ReadRequest",
    "Writes",
    "after",
]

SET, SET_ONCE, UNSET = "s", "o", "u"
DEAD = "d"  # a first $set_once at or before the tombstone: spent (PropState)


class PropOp(msgspec.Struct, array_like=True, frozen=True):
    """One property operation: ``kind`` (s/o/u), the JSON-encoded name, the JSON-encoded value ("" for u)."""

    kind: str
    name: str
    value: str = ""


class EventWrite(msgspec.Struct, array_like=True):
    """What one event changes on one person (or group): dedupe id, time, property operations, counters."""

    uuid: str  # a digest of the event's uuid ("" when it has none: never deduplicated)
    ms: int  # event time, epoch milliseconds (clamped to the ingest time)
    ops: list[PropOp]
    tokens: list[str]  # counter tokens (store.persons.windows.counter_token) the event increments


class Writes(msgspec.Struct):
    """Independent writes: per distinct id, and per group ``(type, key)``."""

    persons: dict[str, list[EventWrite]] = msgspec.field(default_factory=dict)
    groups: dict[tuple[str, str], list[EventWrite]] = msgspec.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.persons) or bool(self.groups)


class Merge(msgspec.Struct, frozen=True):
    """Merge ``source``'s person into ``target``'s: afterwards both ids are one person, identified.

    With ``identify`` (``$identify``), a source person that is already identified is not merged (as PostHog
    refuses to merge two identified persons); the target becomes identified either way."""

    source: str
    target: str
    identify: bool = False


Step = Writes | Merge


class ReadRequest(msgspec.Struct, frozen=True):
    """What one flag check reads: one person, some of its groups, some counts (all relative to ``now``)."""

    project_id: int
    distinct_id: str
    groups: tuple[tuple[str, str], ...]  # (group type, group key)
    queries: tuple[BehaviourQuery, ...]
    person_properties: bool = True


class GroupRead(msgspec.Struct, frozen=True):
    group_type: str
    properties: dict[str, Any]


class PersonView(msgspec.Struct, frozen=True):
    """A flag check's answer: stored person properties, group properties by type, counts by query key."""

    properties: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    behaviour: dict[str, int]


def _ms_of(stored: str) -> int:
    return int(stored[1 : stored.index(";")])


def after(a: str, b: str) -> bool:
    """Whether stored value ``a`` comes after ``b`` in (event ms, JSON text) order (ties broken by the text,
    compared as code points: what the Lua compares byte by byte in UTF-8)."""
    ms_a, ms_b = _ms_of(a), _ms_of(b)
    if ms_a != ms_b:
        return ms_a > ms_b
    return a[a.index(";") + 1 :] > b[b.index(";") + 1 :]


class PropState:
    """One property's operations, joined: the latest ``$set``, the first and last ``$set_once`` (``DEAD``
    for a first one at or before the tombstone) and the newest ``$unset`` (ms); dead parts are dropped."""

    __slots__ = ("first_once", "last_once", "latest_set", "unset_at")

    def __init__(
        self, latest_set: str | None, first_once: str | None, last_once: str | None, unset_at: int | None
    ) -> None:
        self.latest_set = latest_set
        self.first_once = first_once
        self.last_once = last_once
        self.unset_at = unset_at

    @classmethod
    def of(cls, record: PersonRecord, name: str) -> PropState:
        """The state stored for ``name`` (the visible value plus the shadow fields; see the module docs)."""
        shown = record.props.get(name)
        first = record.first_onces.get(name)
        last = record.last_onces.get(name)
        unset_at = record.unsets.get(name)
        if shown is None:
            return cls(None, first, None, unset_at)
        if shown[0] == SET:
            return cls(shown, first, last or (first if first != DEAD else None), unset_at)
        if first == DEAD:
            return cls(None, DEAD, shown, unset_at)
        return cls(None, shown, last or shown, unset_at)

    def visible(self) -> str | None:
        """What flag checks see: the latest ``$set``, else the first ``$set_once``, else the last one."""
        if self.latest_set is not None:
            return self.latest_set
        if self.first_once is not None and self.first_once != DEAD:
            return self.first_once
        return self.last_once

    def store(self, record: PersonRecord, name: str) -> None:
        """Write the state back in its canonical form (nothing beyond the visible value when nothing more
        is needed: properties that were never unset and got one ``$set_once`` cost no extra field)."""
        shown = self.visible()
        _put(record.props, name, shown)
        first, last = self.first_once, self.last_once
        _put(record.first_onces, name, first if first != shown else None)
        _put(record.last_onces, name, last if last != shown and last != first else None)
        if self.unset_at is None:
            record.unsets.pop(name, None)
        else:
            record.unsets[name] = self.unset_at

    def add(self, kind: str, stored: str, ms: int) -> None:
        """Join one operation (``stored`` is the value as stored: ``<kind><ms>;<JSON>``)."""
        floor = self.unset_at
        if kind == UNSET:
            self.unset_at = ms if floor is None or ms > floor else floor
            self._bury()
        elif floor is not None and ms <= floor:
            if kind == SET_ONCE:  # the first $set_once came before the unset: it stays spent
                self.first_once = DEAD
        elif kind == SET:
            if self.latest_set is None or after(stored, self.latest_set):
                self.latest_set = stored
        else:
            first = self.first_once
            if first is None or (first != DEAD and after(first, stored)):
                self.first_once = stored
            if self.last_once is None or after(stored, self.last_once):
                self.last_once = stored

    def join(self, other: PropState) -> None:
        """Take ``other``'s operations too (a merge of two persons)."""
        if other.unset_at is not None:
            self.add(UNSET, "", other.unset_at)
        if other.first_once == DEAD:
            self.first_once = DEAD
        for stored in (other.latest_set, other.first_once, other.last_once):
            if stored is not None and stored != DEAD:
                self.add(stored[0], stored, _ms_of(stored))

    def forget_unset(self) -> None:
        """Drop the tombstone (past the lateness window); a spent first ``$set_once`` gives way to the
        last one (the visible value stays)."""
        self.unset_at = None
        if self.first_once == DEAD:
            self.first_once = self.last_once

    def _bury(self) -> None:
        floor = self.unset_at
        assert floor is not None
        if self.latest_set is not None and _ms_of(self.latest_set) <= floor:
            self.latest_set = None
        first = self.first_once
        if first is not None and first != DEAD and _ms_of(first) <= floor:
            self.first_once = DEAD
        if self.last_once is not None and _ms_of(self.last_once) <= floor:
            self.last_once = None


def _put(fields: dict[str, str], name: str, value: str | None) -> None:
    if value is None:
        fields.pop(name, None)
    else:
        fields[name] = value


def decode_value(stored: str) -> Any:
    return msgspec.json.decode(stored[stored.index(";") + 1 :])


class PersonRecord(msgspec.Struct, omit_defaults=True):
    """One person (or group) in Python: the embedded store's row and the tests' oracle."""

    props: dict[str, str] = msgspec.field(default_factory=dict)  # JSON name -> "<kind><ms>;<JSON>"
    buckets: dict[str, int] = msgspec.field(default_factory=dict)  # token + level + bucket -> count
    merged_into: str | None = None
    trim_at: int = 0  # when ``maintain`` next rolls buckets up (the Redis hash's '_t')
    identified: bool = False  # the target of an $identify or $create_alias (the Redis hash's '_i')

    unsets: dict[str, int] = msgspec.field(default_factory=dict)  # JSON name -> newest $unset ms ('u')
    first_onces: dict[str, str] = msgspec.field(default_factory=dict)  # shadowed first $set_once ('f')
    last_onces: dict[str, str] = msgspec.field(default_factory=dict)  # shadowed last $set_once ('l')

    def apply(self, write: EventWrite, *, now: int, retention: int) -> None:
        """Apply one event's property operations and counters (deduplication is the caller's)."""
        props = self.props
        ms = write.ms
        for op in write.ops:
            name = op.name
            stored = props.get(name)
            value = f"{op.kind}{ms};{op.value}"
            # The common case, a $set on a property with nothing but an older $set (or nothing) stored.
            if (
                op.kind == SET
                and (stored is None or stored[0] == SET)
                and name not in self.unsets
                and name not in self.first_onces
            ):
                if stored is None or after(value, stored):
                    props[name] = value
                continue
            state = PropState.of(self, name)
            state.add(op.kind, value, ms)
            state.store(self, name)
        second = ms // 1000
        level = level_for(second, now, retention)
        if level is None:
            return
        bucket = second // LEVELS[level].seconds
        for token in write.tokens:
            field = f"{token}{level}{bucket}"
            self.buckets[field] = self.buckets.get(field, 0) + 1

    def new_names(self, writes: Iterable[EventWrite]) -> int:
        """How many properties ``writes`` may add that this record does not have."""
        names = {op.name for w in writes for op in w.ops if op.kind != UNSET and op.name not in self.props}
        return len(names)

    def absorb(self, other: PersonRecord, max_props: int | None = None) -> None:
        """Take ``other``'s property operations (``PropState.join``) and add its counts; with ``max_props``,
        a property only ``other`` shows joins while this record is under the limit."""
        props = self.props
        limit = max_props if max_props is not None else len(props) + len(other.props)
        for name in {**other.props, **other.first_onces, **other.unsets}:
            state = PropState.of(self, name)
            shown = state.visible()
            state.join(PropState.of(other, name))
            if shown is None and state.visible() is not None and len(props) >= limit:
                continue
            state.store(self, name)
        for field, count in other.buckets.items():
            self.buckets[field] = self.buckets.get(field, 0) + count
        self.trim_at = 0

    def maintain(self, now: int, retention: int, lateness: int | None = None) -> None:
        """Roll buckets up at most every ``TRIM_EVERY`` seconds (as the Redis store does on a write); with
        ``lateness`` (seconds), forget tombstones older than that then too."""
        if now >= self.trim_at:
            self.trim(now, retention)
            if lateness is not None:
                self.forget_unsets((now - lateness) * 1000)
            self.trim_at = now + TRIM_EVERY

    def forget_unsets(self, before_ms: int) -> None:
        """Drop tombstones of ``$unset``s stamped before ``before_ms`` (``PropState.forget_unset``)."""
        for name in [n for n, ms in self.unsets.items() if ms < before_ms]:
            state = PropState.of(self, name)
            state.forget_unset()
            state.store(self, name)

    def trim(self, now: int, retention: int) -> None:
        """Roll buckets older than their level keeps up into coarser ones (``store.persons.windows``)."""
        buckets = self.buckets
        stale = [f for f in buckets if expired(int(f[8]), int(f[9:]), now, retention)]
        for field in stale:
            count = buckets.pop(field)
            target = rolled_up(int(field[8]), int(field[9:]), now, retention)
            if target is not None:
                into = f"{field[:8]}{target[0]}{target[1]}"
                buckets[into] = buckets.get(into, 0) + count

    def properties(self) -> dict[str, Any]:
        return {msgspec.json.decode(name): decode_value(v) for name, v in self.props.items()}

    def count(self, query: BehaviourQuery, *, now: int) -> int:
        """The query's count as of ``now``: buckets entirely inside the window, at every level."""
        first = firsts(query, now)
        token = counter_token(query.counter)
        total = 0
        for field, count in self.buckets.items():
            if field.startswith(token) and int(field[9:]) >= first[int(field[8])]:
                total += count
        return total


def group_key(group_type: str, key: str) -> tuple[str, str]:
    return (group_type, key)


def properties_of(props: Mapping[str, str]) -> dict[str, Any]:
    """Decoded properties from stored ``JSON name -> value`` entries."""
    return {msgspec.json.decode(name): decode_value(v) for name, v in props.items()}
