"""``POST /flags`` and ``/decide`` (any ``v``): remote evaluation for PostHog SDKs.

The project token travels in the body (``api_key``, ``token`` or ``$token``; ``?token=`` also works). The
body is decoded into ``FlagsBody`` by a prebuilt decoder, checked against ``Limits``, turned into an
evaluator ``Context``, evaluated against the project's in-process snapshot, and rendered in the shape the
version asks for (``flagd.sdk.responses``). Nothing here waits on a database; the person store is read only
when the flags asked for need stored data (``flagd.sdk.persons.Persons.enrich``).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import msgspec

from evaluator import Context, Decision
from flagd.errors import BadRequest, LimitExceeded, Unauthorized
from flagd.limits import Limits
from flagd.metrics import Metrics
from flagd.sdk.bodies import check_prefix, check_properties, decode, stringify_id, unwrap
from flagd.sdk.http import JSON, Answer, Headers, Request, parse_query
from flagd.sdk.persons import Persons
from flagd.sdk.projects import project_for
from flagd.sdk.responses import RecordCaches, render, render_disabled, shape_for
from store.catalog import Catalog

FLAGS_HEADERS: Headers = JSON  # CORS is added to every SDK answer by SdkApp.respond


class FlagsBody(msgspec.Struct):
    """The ``/flags`` fields flagd reads; others (``geoip_disable``, ``sent_at``, ...) are ignored."""

    distinct_id: str | int | float | None = None
    api_key: str | None = None
    token: str | None = None
    dollar_token: str | None = msgspec.field(default=None, name="$token")
    groups: dict[str, str | int | float | None] | None = None
    person_properties: dict[str, Any] | None = None
    group_properties: dict[str, dict[str, Any]] | None = None
    flag_keys_to_evaluate: list[str] | None = None
    flag_keys: list[str] | None = None
    disable_flags: bool | None = None
    device_id: str | None = None
    dollar_device_id: str | None = msgspec.field(default=None, name="$device_id")


_decoder = msgspec.json.Decoder(FlagsBody)
_EMPTY: dict[str, Any] = {}


# The highest response version either path distinguishes (``flagd.sdk.responses.shape_for``): a higher ``v``
# gets this one's shape, so any ``v`` maps onto one of a handful of shapes.
MAX_VERSION = 4


def version_of(query: dict[str, str]) -> int:
    """The response version ``?v=`` asks for, clamped to ``0..MAX_VERSION`` (absent or not a number: 1)."""
    raw = query.get("v")
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return 1
    # Compare lengths first: int() of thousands of digits is slow (and over 4,300 digits it raises).
    return MAX_VERSION if len(raw) > 2 else min(int(raw), MAX_VERSION)


def context_from(body: FlagsBody, limits: Limits) -> Context:
    """The evaluator context for a decoded body, enforcing every per-request limit."""
    if body.distinct_id is None:
        raise BadRequest("distinct_id is required", code="missing_distinct_id", attr="distinct_id")
    person = body.person_properties
    if person:
        check_properties(person, "person_properties", limits)
    groups = body.groups
    if groups:
        if len(groups) > limits.max_groups:
            raise LimitExceeded(
                f"groups has {len(groups)} entries; the limit is max_groups={limits.max_groups}",
                attr="groups",
            )
        # Numbers become strings; a group sent as null is treated as absent.
        groups = {
            name: key if type(key) is str else stringify_id(key, limits.max_distinct_id_chars)
            for name, key in groups.items()
            if key is not None
        }
    group_props = body.group_properties
    if group_props:
        if len(group_props) > limits.max_groups:
            raise LimitExceeded(
                f"group_properties has {len(group_props)} entries; "
                f"the limit is max_groups={limits.max_groups}",
                attr="group_properties",
            )
        for name, props in group_props.items():
            check_properties(props, f"group_properties.{name}", limits)
    return Context(
        distinct_id=stringify_id(body.distinct_id, limits.max_distinct_id_chars),
        person_properties=person or _EMPTY,
        groups=groups or _EMPTY,  # type: ignore[arg-type]  # stringified above
        group_properties=group_props or _EMPTY,
        device_id=body.device_id or body.dollar_device_id,
    )


class FlagsEndpoint:
    """Answers ``/flags`` (``kind="flags"``) or ``/decide`` (``kind="decide"``)."""

    __slots__ = ("_cache", "_catalog", "_kind", "_limits", "_metrics", "_persons", "_probe", "_shapes")

    def __init__(
        self,
        kind: str,
        catalog: Catalog,
        limits: Limits,
        metrics: Metrics,
        cache: RecordCaches,
        persons: Persons | None = None,
    ) -> None:
        self._persons = persons
        self._kind = kind
        self._catalog = catalog
        self._limits = limits
        self._metrics = metrics
        self._cache = cache
        self._probe = partial(check_prefix, max_elements=limits.max_json_elements)
        self._shapes = tuple(shape_for(kind, version) for version in range(MAX_VERSION + 1))

    async def __call__(self, request: Request, request_id: str) -> Answer:
        limits = self._limits
        query = parse_query(request.query_string)
        raw = await request.body(limits.max_body_bytes)
        body = decode(
            _decoder,
            unwrap(raw, query, request.headers, limits.max_body_bytes, self._probe),
            limits.max_json_depth,
            limits.max_json_elements,
        )
        token = body.api_key or body.token or body.dollar_token or query.get("token")
        if not token:
            raise Unauthorized("No project API key was provided: send it as api_key (or token) in the body.")
        state = project_for(
            self._catalog,
            token,
            "Project API key invalid. You can find your project API key in flagd's admin API.",
        )
        ctx = context_from(body, limits)
        shape = self._shapes[version_of(query)]
        now_ms = int(time.time() * 1000)
        if body.disable_flags:
            return 200, render_disabled(shape, request_id, now_ms), FLAGS_HEADERS
        keys = body.flag_keys_to_evaluate or body.flag_keys
        if keys is not None and len(keys) > limits.max_flag_keys:
            raise LimitExceeded(
                f"flag_keys_to_evaluate has {len(keys)} keys; "
                f"the limit is max_flag_keys={limits.max_flag_keys}",
                attr="flag_keys_to_evaluate",
            )
        decisions: dict[str, Decision] = (
            state.snapshot.evaluate(ctx, keys=keys)
            if self._persons is None
            else await self._persons.evaluate(state, ctx, keys)
        )
        return 200, render(shape, decisions, self._cache.for_state(state), request_id, now_ms), FLAGS_HEADERS
