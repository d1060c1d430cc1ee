"""Behavioural cohort leaves (PostHog's JSON): "performed ``$pageview`` at least 3 times in the last 5 min".

A leaf compiles once into a ``Leaf``: the ``EventCounter`` ingestion keeps (event name + compiled
``event_filters``), the ``BehaviourQuery`` a flag check reads, and a check comparing the count the store
answered (``Context.behaviour[query.key]``) with the threshold. Shape::

    {"type": "behavioral", "key": "<event>", "value": "performed_event" | "performed_event_multiple",
     "event_type": "events", "time_value": 5, "time_interval": "minute",     # or "explicit_datetime": "-5M"
     "operator": "gte", "operator_value": 3,                                # performed_event_multiple only
     "event_filters": [{"key": "$current_url", "operator": "icontains", "value": "/pricing"}],
     "negation": false}

Semantics: ``performed_event`` is count >= 1; ``performed_event_multiple`` compares the count with
``operator_value`` (``gte lte gt lt``; ``eq`` and ``exact`` are equality). Windows: ``time_value`` of
``minute hour day week month year`` (month = 30 days, year = 365 days), or ``explicit_datetime``, which wins
when both are given (as in PostHog): relative ``-30d`` (``M`` minutes, ``h d w``, ``m`` = 30 days,
``q`` = 90 days, ``y`` = 365 days) is a window, an absolute ISO-8601 instant a ``since``. ``negation``
inverts the leaf. A missing count raises ``BehaviourUnavailableError``: the flag answers
``store_unavailable``.
Unknown keys, and every behaviour PostHog has that flagd does not count (sequences, first time, regularly,
stopped/restarted, actions, HogQL event filters), are definition errors; ``conditionHash`` and ``bytecode``,
which PostHog derives for its own pipeline, are accepted and ignored.
"""

from __future__ import annotations

import math
import operator as op
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

import msgspec

from evaluator.behaviour import BehaviourQuery, EventCounter, counter_id, query
from evaluator.errors import BehaviourUnavailableError
from evaluator.issues import Problems
from evaluator.model import Context, Decision
from evaluator.operators import OPERATORS, Clock, never
from evaluator.values import to_instant

Check = Callable[[Mapping[str, Any], Context, dict[str, Decision]], bool]

MAX_BEHAVIOURAL_LEAVES: Final = 20  # behavioural conditions in one cohort's own tree
MAX_EVENT_FILTERS: Final = 20  # event_filters in one behavioural condition
MAX_WINDOW_SECONDS: Final = 2 * 365 * 86400  # the longest window a condition may look back
MAX_EVENT_NAME: Final = 400
_MAX_DAYS: Final = MAX_WINDOW_SECONDS // 86400

INTERVALS: Final[dict[str, int]] = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
_RELATIVE_UNITS: Final[dict[str, int]] = {
    "M": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "m": 30 * 86400,
    "q": 90 * 86400,
    "y": 365 * 86400,
}
_RELATIVE: Final = re.compile(r"-([0-9]{1,6})([Mhdwmqy])")
COUNT_OPERATORS: Final[dict[str, Callable[[int, int], bool]]] = {
    "gte": op.ge,
    "lte": op.le,
    "gt": op.gt,
    "lt": op.lt,
    "eq": op.eq,
    "exact": op.eq,
}
SUPPORTED: Final = ("performed_event", "performed_event_multiple")
UNSUPPORTED: Final = frozenset(
    {
        "performed_event_first_time",
        "performed_event_sequence",
        "performed_event_regularly",
        "stopped_performing_event",
        "restarted_performing_event",
    }
)
LEAF_KEYS: Final = frozenset(
    {
        "type",
        "key",
        "value",
        "event_type",
        "time_value",
        "time_interval",
        "explicit_datetime",
        "operator",
        "operator_value",
        "event_filters",
        "negation",
        # Derived by PostHog's real-time cohort pipeline and present in cohorts exported from it; ignored.
        "conditionHash",
        "bytecode",
    }
)
EVENT_FILTER_KEYS: Final = frozenset({"key", "value", "operator", "type", "negation"})
_encode = msgspec.json.Encoder(order="sorted").encode
_Test = tuple[str, Callable[[Any], bool], bool, bool]  # key, test, flip, result when missing


class Leaf(NamedTuple):
    """A compiled behavioural condition."""

    event: str
    counter: EventCounter
    query: BehaviourQuery
    operator: str  # how the count is compared: gte, lte, gt, lt, eq
    threshold: int
    negation: bool
    check: Check

    def answered(self, ctx: Context) -> int | None:
        """The count the store answered for this leaf, or None when it is missing."""
        counts = ctx.behaviour
        return None if counts is None else counts.get(self.query.key)


def is_behavioural(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("type") == "behavioral"


def compile_leaf(raw: dict[str, Any], path: str, problems: Problems, clock: Clock) -> Leaf | None:
    """Compile one behavioural leaf; None (and issues at their paths) when it is invalid."""
    before = len(problems.fatal)
    for name in raw:
        if name not in LEAF_KEYS:
            problems.error(f"{path}.{name}", f"unknown key {name!r} in a behavioural condition")
    event = raw.get("key")
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT_NAME:
        problems.error(f"{path}.key", f"must be an event name (1-{MAX_EVENT_NAME} characters)")
        event = ""
    event_type = raw.get("event_type")
    if event_type is not None and event_type != "events":
        problems.error(f"{path}.event_type", 'must be "events" (actions are not supported)')
    negation = problems.negation(raw, path)
    compare, threshold = _threshold(raw, path, problems)
    window = _window(raw, path, problems)
    canonical, matches = compile_event_filters(
        raw.get("event_filters"), f"{path}.event_filters", problems, clock
    )
    if len(problems.fatal) > before or window is None:
        return None
    counter = EventCounter(counter_id(event, canonical), event, canonical, matches)
    seconds, since = window
    found = query(counter.id, window_seconds=seconds, since=since)
    check = _check(found.key, COUNT_OPERATORS[compare], threshold, negation)
    return Leaf(event, counter, found, compare, threshold, negation, check)


def _threshold(raw: dict[str, Any], path: str, problems: Problems) -> tuple[str, int]:
    kind = raw.get("value")
    if kind == "performed_event":
        for name in ("operator", "operator_value"):
            if raw.get(name) is not None:
                problems.error(f"{path}.{name}", "only performed_event_multiple takes an operator")
        return "gte", 1
    if kind != "performed_event_multiple":
        what = "is not supported" if kind in UNSUPPORTED else "is unknown"
        problems.error(f"{path}.value", f"{kind!r} {what}; expected one of {', '.join(SUPPORTED)}")
        return "gte", 1
    compare = raw.get("operator")
    if not isinstance(compare, str) or compare not in COUNT_OPERATORS:
        problems.error(f"{path}.operator", f"must be one of {', '.join(COUNT_OPERATORS)}")
        compare = "gte"
    value = _whole(raw.get("operator_value"))
    if value is None or value > 1_000_000_000:
        problems.error(f"{path}.operator_value", "must be a whole number from 0 to 1000000000")
        value = 1
    return ("eq" if compare == "exact" else compare), value


def _whole(value: Any) -> int | None:
    """A non-negative int from an int or a digit string (PostHog's UI sends both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and 0 < len(value) <= 12 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _window(raw: dict[str, Any], path: str, problems: Problems) -> tuple[int | None, int | None] | None:
    """``(window_seconds, None)`` or ``(None, since)``; None when invalid. With ``explicit_datetime``,
    ``time_value`` and ``time_interval`` may be absent, but when present they must still be valid."""
    explicit = raw.get("explicit_datetime")
    amount, interval = raw.get("time_value"), raw.get("time_interval")
    count = _whole(amount)
    if (explicit is None or amount is not None) and not count:
        problems.error(f"{path}.time_value", "must be a whole number of at least 1")
    if (explicit is None or interval is not None) and not (
        isinstance(interval, str) and interval in INTERVALS
    ):
        problems.error(f"{path}.time_interval", f"must be one of {', '.join(INTERVALS)}")
        interval = None
    if explicit is not None:
        return _explicit(explicit, f"{path}.explicit_datetime", problems)
    if not count or interval is None:
        return None
    relative = count * INTERVALS[interval]
    if relative > MAX_WINDOW_SECONDS:
        problems.error(f"{path}.time_value", f"windows are at most {_MAX_DAYS} days")
        return None
    return relative, None


def _explicit(value: Any, path: str, problems: Problems) -> tuple[int | None, int | None] | None:
    if not isinstance(value, str) or not value.strip():
        problems.error(path, 'must be a relative date ("-30d") or an ISO-8601 instant')
        return None
    match = _RELATIVE.fullmatch(value.strip())
    if match is not None:
        seconds = int(match.group(1)) * _RELATIVE_UNITS[match.group(2)]
        if seconds == 0 or seconds > MAX_WINDOW_SECONDS:
            problems.error(path, f"windows are from 1 minute to {_MAX_DAYS} days")
            return None
        return seconds, None
    instant = to_instant(value) if not value.strip().lstrip("-").isdigit() else None
    if instant is None or not math.isfinite(instant) or instant < 0:
        problems.error(
            path, f'{value!r} is neither a relative date ("-30d", "-24h", "-15M") nor an ISO-8601 instant'
        )
        return None
    return None, math.floor(instant)


def compile_event_filters(
    raw: Any, path: str, problems: Problems, clock: Clock
) -> tuple[str, Callable[[Mapping[str, Any]], bool]]:
    """The canonical JSON text of ``event_filters`` ("" for none) and a total test over event properties.

    Canonical: each filter reduced to ``key, operator, value, negation`` (defaults spelled out), the list
    sorted, compact key-sorted JSON; so reordering filters, or spelling a default, keeps the counter."""
    if raw is None or raw == []:
        return "", _everything
    if not isinstance(raw, list):
        problems.error(path, "must be a list of event property filters")
        return "", _everything
    if len(raw) > MAX_EVENT_FILTERS:
        problems.error(path, f"at most {MAX_EVENT_FILTERS} event filters per condition")
        return "", _everything
    tests: list[_Test] = []
    canonical: list[bytes] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            problems.error(where, "must be an event property filter")
            continue
        for name in item:
            if name not in EVENT_FILTER_KEYS:
                problems.error(f"{where}.{name}", f"unknown key {name!r} in an event filter")
        if item.get("type", "event") != "event":
            problems.error(f"{where}.type", 'must be "event" (HogQL and element filters are not supported)')
        key = item.get("key")
        if not isinstance(key, str) or not key:
            problems.error(f"{where}.key", "must be a non-empty string")
            continue
        operator = item.get("operator") or "exact"
        spec = OPERATORS.get(operator) if isinstance(operator, str) else None
        if spec is None:
            problems.error(f"{where}.operator", f"unknown operator {operator!r}")
            continue
        negation = item.get("negation")
        if negation is None:
            negation = False
        elif not isinstance(negation, bool):
            problems.error(f"{where}.negation", "must be true or false")
            continue
        expected = item.get("value")
        try:
            canonical.append(
                _encode({"key": key, "operator": operator, "value": expected, "negation": negation})
            )
        except (TypeError, ValueError, OverflowError):
            problems.error(f"{where}.value", "must be a JSON value")
            continue
        test = spec.factory(expected, problems, f"{where}.value", clock)
        tests.append((key, test, spec.inverted is not negation, spec.on_missing is not negation))
        if test is never:
            tests[-1] = (key, never, False, False)
    text = b"[" + b",".join(sorted(canonical)) + b"]"
    return text.decode(), _matcher(tuple(tests))


def _everything(properties: Mapping[str, Any]) -> bool:
    return True


_MISSING: Final = object()


def _matcher(tests: tuple[_Test, ...]) -> Callable[[Mapping[str, Any]], bool]:
    def matches(properties: Any) -> bool:
        if not isinstance(properties, Mapping):
            return False
        try:
            for key, test, flip, on_missing in tests:
                value = properties.get(key, _MISSING)
                if value is _MISSING:
                    if not on_missing:
                        return False
                elif bool(test(value)) is flip:
                    return False
        except Exception:  # bad data means "no match", never a failed ingest
            return False
        return True

    return matches


def _check(key: str, compare: Callable[[int, int], bool], threshold: int, negation: bool) -> Check:
    def performed(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        counts = ctx.behaviour
        count = counts.get(key) if counts is not None else None
        if count is None:
            raise BehaviourUnavailableError(key)
        return compare(count, threshold) is not negation

    return performed


__all__ = [
    "COUNT_OPERATORS",
    "INTERVALS",
    "MAX_BEHAVIOURAL_LEAVES",
    "MAX_EVENT_FILTERS",
    "MAX_WINDOW_SECONDS",
    "Leaf",
    "compile_event_filters",
    "compile_leaf",
    "is_behavioural",
]
