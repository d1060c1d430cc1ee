"""Turn a batch of (already well-formed) PostHog events into the ``Steps`` a person store applies.

Pure: no I/O. Per event it reads, in PostHog's terms (PROTOCOLS.md §4):

- ``$set`` / ``$set_once`` (objects) and ``$unset`` (a list of names), in ``properties`` and at the top level;
- ``$identify`` with ``properties.$anon_distinct_id`` and ``$create_alias`` with ``properties.alias``: a
  ``Merge`` of the other id's person into ``distinct_id``'s, before the event's own changes;
- ``$groupidentify``: ``$group_type``, ``$group_key``, ``$group_set`` (group properties);
- ``properties.$groups`` (``{type: key}``) and ``$group_type``: group types to register;
- behaviour: the plain counter ``e:<event>`` always, and each ``EventCounter`` on the event's name whose
  ``matches`` accepts the event's properties.

The event time is ``timestamp`` (ISO 8601), else ``now - offset`` (milliseconds, posthog-js), else now; a time
in the future is clamped to now. Events older than the retention change properties but count nothing.
Malformed person/group fields raise ``ValidationFailed`` naming the field, before anything is written.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from evaluator.behaviour import EventCounter, counter_id
from store.errors import Issue, ValidationFailed
from store.persons.model import SET, SET_ONCE, UNSET, EventWrite, Merge, PropOp, Step, Writes
from store.persons.windows import counter_token

__all__ = ["Event", "Ingested", "ingest", "plain_token"]

_encode = msgspec.json.Encoder().encode


class Event(msgspec.Struct):
    """One captured event as decoded from a body: the fields flagd reads (others, like ``type`` or
    ``library``, are dropped). ``ingest`` reads these attributes directly (no dict per event)."""

    event: str | None = None
    distinct_id: str | int | float | None = None
    properties: dict[str, Any] | None = None
    timestamp: str | int | float | None = None
    uuid: str | None = None
    offset: int | float | None = None
    set: dict[str, Any] | None = msgspec.field(default=None, name="$set")
    set_once: dict[str, Any] | None = msgspec.field(default=None, name="$set_once")
    unset: list[str] | dict[str, Any] | None = msgspec.field(default=None, name="$unset")
    api_key: str | None = None
    token: str | None = None


class Ingested(msgspec.Struct):
    steps: list[Step]
    group_types: list[str]  # in order of first appearance
    events: int


@functools.lru_cache(maxsize=4096)
def plain_token(event: str) -> str:
    """The counter token of ``e:<event>`` (cached: event names repeat)."""
    return counter_token(counter_id(event))


_token = functools.lru_cache(maxsize=4096)(counter_token)  # filtered counters repeat too


@functools.lru_cache(maxsize=4096)
def _name(name: str) -> str:
    return _encode(name).decode()


def _uuid_digest(uuid: str) -> str:
    """64 bits of blake2b, 11 characters: what the dedupe sets keep instead of the 36-character uuid."""
    digest = hashlib.blake2b(uuid.encode(), digest_size=8).digest()
    # base64url of the 8 bytes, without the padding (binascii: C, ~5x cheaper than base64.urlsafe_b64encode)
    return binascii.b2a_base64(digest, newline=False)[:11].translate(_URLSAFE).decode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _at(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _json(value: Any, where: str, max_chars: int) -> str:
    text = _encode(value).decode()
    if len(text) > max_chars:
        raise ValidationFailed([Issue(where, f"value is {len(text)} characters; the limit is {max_chars}")])
    return text


def _event_ms(event: Event, now_ms: int, where: str) -> int:
    raw = event.timestamp
    if isinstance(raw, str) and raw:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise ValidationFailed(
                [Issue(_at(where, "timestamp"), "must be an ISO 8601 date-time")]
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = int(parsed.timestamp() * 1000)
        return min(ms, now_ms)
    offset = event.offset
    if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
        return now_ms - offset
    return now_ms


def _ops(event: Event, props: Mapping[str, Any], where: str, max_chars: int, max_props: int) -> list[PropOp]:
    ops: list[PropOp] = []
    in_props, top = _at(where, "properties"), where
    for kind, name, values_top in ((SET, "$set", event.set), (SET_ONCE, "$set_once", event.set_once)):
        for values, base in ((props.get(name), in_props), (values_top, top)):
            if values is None:
                continue
            path = _at(base, name)
            if not isinstance(values, dict):
                raise ValidationFailed([Issue(path, "must be an object")])
            if len(values) > max_props:
                raise ValidationFailed(
                    [
                        Issue(
                            path,
                            f"has {len(values)} properties; the limit is max_person_properties={max_props}",
                        )
                    ]
                )
            for key, value in values.items():
                ops.append(PropOp(kind, _name(key), _json(value, f"{path}.{key}", max_chars)))
    for names, base in ((props.get("$unset"), in_props), (event.unset, top)):
        if names is None:
            continue
        path = _at(base, "$unset")
        if isinstance(names, dict):  # posthog-js sends {"name": ...} in some versions
            names = list(names)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValidationFailed([Issue(path, "must be a list of property names")])
        ops.extend(PropOp(UNSET, _name(n)) for n in names)
    return ops


def _id(value: Any, max_chars: int) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value[:max_chars] or None
    if isinstance(value, int | float):
        return str(value)[:max_chars]
    return None


def ingest(
    events: Sequence[Event],
    paths: Sequence[str],
    counters: Mapping[str, Sequence[EventCounter]],
    *,
    now_ms: int,
    oldest_ms: int,
    max_distinct_id_chars: int,
    max_value_chars: int,
    max_person_properties: int,
) -> Ingested:
    """The steps for ``events`` (``paths[i]`` names event ``i`` in errors); ``counters`` by event name."""
    steps: list[Step] = []
    writes = Writes()
    group_types: dict[str, None] = {}
    for event, where in zip(events, paths, strict=True):
        name = event.event or ""
        props: Mapping[str, Any] = event.properties or {}
        raw_id = event.distinct_id
        if type(raw_id) is str:  # the usual case, without _id's type tests
            distinct_id: str | None = raw_id[:max_distinct_id_chars] or None
        else:
            distinct_id = _id(props.get("distinct_id") if raw_id is None else raw_id, max_distinct_id_chars)
        if distinct_id is None:
            raise ValidationFailed([Issue(_at(where, "distinct_id"), "is required (a string or number)")])
        ms = now_ms if event.timestamp is None and event.offset is None else _event_ms(event, now_ms, where)
        raw_uuid = event.uuid
        uuid = _uuid_digest(raw_uuid) if raw_uuid else ""
        source = None
        if name == "$identify":
            source = _id(props.get("$anon_distinct_id"), max_distinct_id_chars)
        elif name == "$create_alias":
            source = _id(props.get("alias"), max_distinct_id_chars)
        if source is not None and source != distinct_id:
            if writes:
                steps.append(writes)
                writes = Writes()
            steps.append(Merge(source, distinct_id, identify=name == "$identify"))
        groups = props.get("$groups")
        if isinstance(groups, dict):
            for group_type in groups:
                if isinstance(group_type, str) and group_type:
                    group_types.setdefault(group_type)
        if name == "$groupidentify":
            group_type = props.get("$group_type")
            key = _id(props.get("$group_key"), max_distinct_id_chars)
            if not isinstance(group_type, str) or not group_type or key is None:
                raise ValidationFailed(
                    [Issue(_at(where, "properties"), "$groupidentify needs $group_type and $group_key")]
                )
            group_types.setdefault(group_type)
            group_set = props.get("$group_set") or {}
            path = _at(where, "properties.$group_set")
            if not isinstance(group_set, dict):
                raise ValidationFailed([Issue(path, "must be an object")])
            if len(group_set) > max_person_properties:
                raise ValidationFailed(
                    [Issue(path, f"has {len(group_set)} properties; the limit is {max_person_properties}")]
                )
            gops = [
                PropOp(SET, _name(k), _json(v, f"{path}.{k}", max_value_chars)) for k, v in group_set.items()
            ]
            writes.groups.setdefault((group_type, key), []).append(EventWrite("", ms, gops, []))
        # Most events change no property: skip the operation parsing unless a field is there.
        ops = (
            _ops(event, props, where, max_value_chars, max_person_properties)
            if event.set is not None
            or event.set_once is not None
            or event.unset is not None
            or "$set" in props
            or "$set_once" in props
            or "$unset" in props
            else []
        )
        tokens: list[str] = []
        if ms >= oldest_ms:
            tokens.append(plain_token(name))
            filtered = counters.get(name)
            if filtered:
                tokens.extend(_token(c.id) for c in filtered if c.filters and c.matches(props))
        writes.persons.setdefault(distinct_id, []).append(EventWrite(uuid, ms, ops, tokens))
    if writes:
        steps.append(writes)
    return Ingested(steps, list(group_types), len(events))


def counters_by_event(counters: Sequence[EventCounter]) -> dict[str, list[EventCounter]]:
    """Filtered counters grouped by event name (plain ones are counted for every event anyway)."""
    grouped: dict[str, list[EventCounter]] = {}
    for counter in counters:
        if counter.filters:
            grouped.setdefault(counter.event, []).append(counter)
    return grouped
