"""PostHog ``/flags`` and ``/decide`` response shapes, per protocol version, rendered from cached fragments.

Versions (``v`` query parameter):

- ``DETAILED`` — ``/flags`` v>=2 and ``/decide`` v>=4: ``{"flags": {key: record}, "errorsWhileComputingFlags",
  "requestId", "evaluatedAt"}``; each record has ``key, enabled, variant, reason{code, condition_index,
  description}, metadata{id, version, description, payload}`` and, for ``/flags`` v>=4, a typed ``value``.
  A flag that failed to evaluate keeps its record with ``"failed": true, "enabled": false``.
- ``LEGACY`` — ``/flags`` v1 and ``/decide`` v3: ``featureFlags {key: bool|variant}`` +
``featureFlagPayloads``.
- ``ENABLED_ONLY`` — ``/decide`` v2: ``featureFlags`` with only the enabled flags.
- ``KEYS`` — ``/decide`` v1: ``featureFlags`` is the list of enabled keys.
Failed flags are left out of the legacy shapes (clients keep their previous value), and every shape reports
``errorsWhileComputingFlags``.

The evaluator shares one ``Decision`` object per possible outcome of a flag, so a record's JSON is
encoded once
and then reused by identity (``RecordCache``): rendering 50 flags is a join of 50 cached byte strings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import msgspec

from evaluator import Decision

_encode = msgspec.json.encode


class Shape(enum.Enum):
    DETAILED = "detailed"
    DETAILED_TYPED = "detailed_typed"
    LEGACY = "legacy"
    ENABLED_ONLY = "enabled_only"
    KEYS = "keys"


def shape_for(path_kind: str, version: int) -> Shape:
    """The response shape for ``/flags`` (``path_kind="flags"``) or ``/decide`` at protocol version
    ``version``."""
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
    """Encoded ``"key":{record}`` fragments by decision identity (bounded; cleared when full)."""

    __slots__ = ("_plain", "_size", "_typed")

    def __init__(self, size: int = 200_000) -> None:
        self._plain: dict[int, tuple[Decision, bytes]] = {}
        self._typed: dict[int, tuple[Decision, bytes]] = {}
        self._size = size

    def detailed(self, decisions: Iterable[Decision], typed: bool) -> list[bytes]:
        cache = self._typed if typed else self._plain
        get = cache.get
        out: list[bytes] = []
        append = out.append
        for d in decisions:
            hit = get(id(d))
            if hit is None or hit[0] is not d:
                if len(cache) >= self._size:
                    cache.clear()
                hit = cache[id(d)] = (d, _record(d, typed))
            append(hit[1])
        return out


def render(
    shape: Shape,
    decisions: dict[str, Decision],
    cache: RecordCache,
    request_id: str,
    evaluated_at: int,
    errors: bool,
) -> bytes:
    """The complete response body."""
    tail = (
        b',"errorsWhileComputingFlags":'
        + (b"true" if errors else b"false")
        + b',"requestId":'
        + _encode(request_id)
        + b',"evaluatedAt":'
        + str(evaluated_at).encode()
        + b"}"
    )
    if shape is Shape.DETAILED or shape is Shape.DETAILED_TYPED:
        parts = cache.detailed(decisions.values(), shape is Shape.DETAILED_TYPED)
        return b'{"flags":{' + b",".join(parts) + b"}" + tail
    live = [d for d in decisions.values() if d.error is None]
    if shape is Shape.KEYS:
        head = _encode([d.key for d in live if d.enabled])
    elif shape is Shape.ENABLED_ONLY:
        head = _encode({d.key: d.value for d in live if d.enabled})
    else:
        head = _encode({d.key: d.value for d in live})
    payloads = _encode({d.key: d.payload for d in live if d.enabled and d.payload is not None})
    return b'{"featureFlags":' + head + b',"featureFlagPayloads":' + payloads + tail


def render_disabled(shape: Shape, request_id: str, evaluated_at: int) -> bytes:
    """The answer to ``disable_flags: true``: no flags, nothing evaluated."""
    return render(shape, {}, RecordCache(1), request_id, evaluated_at, False)
