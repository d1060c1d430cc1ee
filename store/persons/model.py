"""What a person store writes and reads, and the rules every backend applies (pure: no I/O).

A batch of events becomes ``Steps`` (``store.persons.ingest``): runs of ``Writes`` (per person and per group:
the events' property operations and the counters they hit) separated by ``Merge`` steps (``$identify``,
``$create_alias``), applied in order. Backends keep a person as:

- properties: ``'p' + <JSON name>`` -> ``<kind><ms>;<JSON value>`` where kind is ``s`` (``$set``) or ``o``
  (``$set_once``) and ``ms`` the event timestamp in milliseconds; the rules below order writes by that
  timestamp, not by arrival;
- counts: ``'b' + <counter token><level><bucket>`` -> occurrences (``store.persons.windows``);
- ``'@'`` -> the distinct id this one was merged into (nothing else is kept under a merged id).

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
    "ReadRequest",
    "Writes",
    "set_once_wins",
    "set_wins",
    "unset_wins",
]

SET, SET_ONCE, UNSET = "s", "o", "u"


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


def set_wins(stored: str | None, ms: int) -> bool:
    """A ``$set`` at ``ms`` replaces the stored value: none, a ``$set_once`` one, or an older ``$set``."""
    return stored is None or stored[0] == SET_ONCE or _ms_of(stored) <= ms


def set_once_wins(stored: str | None, ms: int) -> bool:
    """A ``$set_once`` at ``ms`` applies when nothing is stored or a *later* ``$set_once`` put it there."""
    return stored is None or (stored[0] == SET_ONCE and _ms_of(stored) > ms)


def unset_wins(stored: str | None, ms: int) -> bool:
    """An ``$unset`` at ``ms`` removes a value written at or before ``ms``."""
    return stored is not None and _ms_of(stored) <= ms


def merged_value(mine: str | None, theirs: str) -> str:
    """The value a merged person keeps for a property both had: the one a replay in time order would leave."""
    if mine is None:
        return theirs
    kind = theirs[0]
    ms = _ms_of(theirs)
    if kind == SET:
        return theirs if set_wins(mine, ms) else mine
    return theirs if set_once_wins(mine, ms) else mine


def decode_value(stored: str) -> Any:
    return msgspec.json.decode(stored[stored.index(";") + 1 :])


class PersonRecord(msgspec.Struct, omit_defaults=True):
    """One person (or group) in Python: the embedded store's row and the tests' oracle."""

    props: dict[str, str] = msgspec.field(default_factory=dict)  # JSON name -> "<kind><ms>;<JSON>"
    buckets: dict[str, int] = msgspec.field(default_factory=dict)  # token + level + bucket -> count
    merged_into: str | None = None
    trim_at: int = 0  # when ``maintain`` next rolls buckets up (the Redis hash's '_t')
    identified: bool = False  # the target of an $identify or $create_alias (the Redis hash's '_i')

    def apply(self, write: EventWrite, *, now: int, retention: int) -> None:
        """Apply one event's property operations and counters (deduplication is the caller's)."""
        props = self.props
        ms = write.ms
        for op in write.ops:
            stored = props.get(op.name)
            if op.kind == SET:
                if set_wins(stored, ms):
                    props[op.name] = f"{SET}{ms};{op.value}"
            elif op.kind == SET_ONCE:
                if set_once_wins(stored, ms):
                    props[op.name] = f"{SET_ONCE}{ms};{op.value}"
            elif unset_wins(stored, ms):
                del props[op.name]
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
        """Take ``other``'s properties (time-ordered, see ``merged_value``) and add its counts; with
        ``max_props``, properties only ``other`` has join while this record is under the limit."""
        props = self.props
        limit = max_props if max_props is not None else len(props) + len(other.props)
        for name, value in other.props.items():
            mine = props.get(name)
            if mine is not None or len(props) < limit:
                props[name] = merged_value(mine, value)
        for field, count in other.buckets.items():
            self.buckets[field] = self.buckets.get(field, 0) + count
        self.trim_at = 0

    def maintain(self, now: int, retention: int) -> None:
        """Roll buckets up at most every ``TRIM_EVERY`` seconds (as the Redis store does on a write)."""
        if now >= self.trim_at:
            self.trim(now, retention)
            self.trim_at = now + TRIM_EVERY

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
