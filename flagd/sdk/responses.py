"""PostHog ``/flags`` and ``/decide`` response shapes, per protocol version, rendered from cached fragments.

Versions (``v`` query parameter):

- ``DETAILED`` — ``/flags`` v>=2 and ``/decide`` v>=4: ``{"flags": {key: record},
  "errorsWhileComputingFlags", "requestId", "evaluatedAt"}``; each record has ``key, enabled, variant,
  reason{code, condition_index, description}, metadata{id, version, description, payload}`` and, for
  ``/flags`` v>=4, a typed ``value``. A flag that failed to evaluate keeps its record with ``"failed": true,
  "enabled": false``.
- ``LEGACY`` — ``/flags`` v1 and ``/decide`` v3: ``featureFlags {key: bool|variant}`` +
  ``featureFlagPayloads``.
- ``ENABLED_ONLY`` — ``/decide`` v2: ``featureFlags`` with only the enabled flags.
- ``KEYS`` — ``/decide`` v1: ``featureFlags`` is the list of enabled keys.

Failed flags are left out of the legacy shapes (clients keep their previous value), and every shape reports
``errorsWhileComputingFlags``.

The evaluator shares one ``Decision`` object per possible outcome of a flag, so a record's JSON is encoded
once and then reused by identity (``RecordCache``, one per project snapshot, see ``RecordCaches``):
rendering 50 flags is a join of 50 cached byte strings. The cache also tallies evaluations by reason.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Collection, Iterable
from operator import attrgetter

import msgspec

from evaluator import Decision
from store.catalog import ProjectState

_encode = msgspec.json.encode


class Shape(enum.Enum):
    DETAILED = "detailed"
    DETAILED_TYPED = "detailed_typed"
    LEGACY = "legacy"
    ENABLED_ONLY = "enabled_only"
    KEYS = "keys"


def shape_for(path_kind: str, version: int) -> Shape:
    """The response shape of ``/flags`` (``path_kind="flags"``) or ``/decide`` at version ``version``."""
    if path_kind == "flags":
        if version >= 4:
            return Shape.DETAILED_TYPED
        return Shape.DETAILED if version >= 2 else Shape.LEGACY
    if version >= 4:
        return Shape.DETAILED
    if version == 3:
        return Shape.LEGACY
    return Shape.ENABLED_ONLY if version == 2 else Shape.KEYS


def _record(d: Decision, typed: bool) -> bytes:
    record: dict[str, object] = {
        "key": d.key,
        "enabled": d.enabled and d.error is None,
        "variant": d.variant if d.error is None else None,
        "reason": {"code": d.reason, "condition_index": d.condition_index, "description": d.description},
        "metadata": {
            "id": d.flag_id,
            "version": d.version,
            "description": None,
            "payload": d.payload if d.error is None and d.enabled else None,
        },
    }
    if d.error is not None:
        record["failed"] = True
    if typed:
        record["value"] = d.value if d.error is None else False
    return _encode(d.key) + b":" + _encode(record)


class RecordCache:
    """Encoded ``"key":{record}`` fragments by decision identity (bounded; cleared when full).

    Keyed by ``id(decision)``: the cache also holds a reference to every decision it has a fragment for, so
    while an entry exists no other object can have that id, and a hit needs no identity check. The lookups run
    as C-level ``map`` calls; only a miss (a decision seen for the first time) runs Python code.
    """

    __slots__ = ("_alive", "_counts", "_failed", "_plain", "_reason_of", "_reasons", "_size", "_typed")

    def __init__(self, size: int = 50_000) -> None:
        self._alive: dict[int, Decision] = {}
        self._plain: dict[int, bytes] = {}
        self._typed: dict[int, bytes] = {}
        self._failed: set[bytes] = set()  # fragments of failed decisions
        self._size = size
        # Evaluations by reason, tallied cheaply: served fragments are counted (bytes cache their hash) and
        # turned into reason counts only when drained.
        self._counts: collections.Counter[bytes] = collections.Counter()
        self._reason_of: dict[bytes, str] = {}
        self._reasons: collections.Counter[str] = collections.Counter()

    def count_reasons(self, reasons: Iterable[str]) -> None:
        """Tally decisions that were rendered without fragments (the legacy shapes)."""
        self._reasons.update(reasons)

    def _settle(self) -> None:
        reason_of = self._reason_of
        reasons = self._reasons
        for frag, count in self._counts.items():
            reasons[reason_of[frag]] += count
        self._counts.clear()

    def drain(self) -> dict[str, int]:
        """Evaluations by reason since the last drain (``Metrics`` pulls this)."""
        self._settle()
        out = dict(self._reasons)
        self._reasons.clear()
        return out

    def _fill(self, decisions: Iterable[Decision], typed: bool) -> list[bytes]:
        cache = self._typed if typed else self._plain
        if len(self._alive) >= self._size:
            self._settle()
            self._alive.clear()
            self._plain.clear()
            self._typed.clear()
            self._failed.clear()
            self._reason_of.clear()
        frags = []
        for d in decisions:
            frag = cache.get(id(d))
            if frag is None:
                self._alive[id(d)] = d
                frag = cache[id(d)] = _record(d, typed)
                self._reason_of[frag] = d.reason
                if d.error is not None:
                    self._failed.add(frag)
            frags.append(frag)
        return frags

    def detailed(self, values: Collection[Decision], typed: bool) -> tuple[list[bytes], bool]:
        """The fragments for these decisions, in order, and whether any of them failed."""
        try:
            frags = list(map((self._typed if typed else self._plain).__getitem__, map(id, values)))
        except KeyError:
            frags = self._fill(values, typed)
        self._counts.update(frags)
        failed = self._failed
        # bytes cache their hash, so this is cheap; and usually no flag has ever failed.
        return frags, bool(failed) and not failed.isdisjoint(frags)


class RecordCaches:
    """One ``RecordCache`` per project, tied to the snapshot it was filled from.

    When a project's snapshot is replaced, its cache is dropped with it (after its evaluation tallies are
    kept), so memory follows the live flags instead of accumulating every past version's decisions."""

    __slots__ = ("_by_project", "_retired", "_size")

    def __init__(self, size: int = 50_000) -> None:
        self._by_project: dict[int, tuple[object, RecordCache]] = {}
        self._retired: collections.Counter[str] = collections.Counter()
        self._size = size

    def for_state(self, state: ProjectState) -> RecordCache:
        """The cache for this project's current snapshot (a fresh one after a change)."""
        entry = self._by_project.get(state.project_id)
        if entry is not None and entry[0] is state.snapshot:
            return entry[1]
        if entry is not None:
            self._retired.update(entry[1].drain())
        cache = RecordCache(self._size)
        self._by_project[state.project_id] = (state.snapshot, cache)
        return cache

    def drain(self) -> dict[str, int]:
        """Evaluations by reason across every project since the last drain."""
        out = self._retired
        self._retired = collections.Counter()
        for _, cache in self._by_project.values():
            out.update(cache.drain())
        return dict(out)


_error_of = attrgetter("error")
_reason_of = attrgetter("reason")


def render(
    shape: Shape,
    decisions: dict[str, Decision],
    cache: RecordCache,
    request_id: str,
    evaluated_at: int,
) -> bytes:
    """The complete response body."""
    if shape is Shape.DETAILED or shape is Shape.DETAILED_TYPED:
        parts, errors = cache.detailed(decisions.values(), shape is Shape.DETAILED_TYPED)
        return b"".join((b'{"flags":{', b",".join(parts), b"}", _tail(errors, request_id, evaluated_at)))
    values = decisions.values()
    cache.count_reasons(map(_reason_of, values))
    errors = any(map(_error_of, values))
    live = [d for d in values if d.error is None]
    if shape is Shape.KEYS:
        head = _encode([d.key for d in live if d.enabled])
    elif shape is Shape.ENABLED_ONLY:
        head = _encode({d.key: d.value for d in live if d.enabled})
    else:
        head = _encode({d.key: d.value for d in live})
    payloads = _encode({d.key: d.payload for d in live if d.enabled and d.payload is not None})
    return (
        b'{"featureFlags":'
        + head
        + b',"featureFlagPayloads":'
        + payloads
        + _tail(errors, request_id, evaluated_at)
    )


def _tail(errors: bool, request_id: str, evaluated_at: int) -> bytes:
    return (
        (b',"errorsWhileComputingFlags":true' if errors else b',"errorsWhileComputingFlags":false')
        + b',"requestId":'
        + _encode(request_id)
        + b',"evaluatedAt":'
        + str(evaluated_at).encode()
        + b"}"
    )


def render_disabled(shape: Shape, request_id: str, evaluated_at: int) -> bytes:
    """The answer to ``disable_flags: true``: no flags, nothing evaluated."""
    return render(shape, {}, RecordCache(1), request_id, evaluated_at)
