"""OpenFeature Remote Evaluation Protocol: ``POST /ofrep/v1/evaluate/flags/{key}`` and bulk ``.../flags``.

Auth: the project token as ``Authorization: Bearer <phc_...>`` (or ``X-API-Key``). Body ``{"context":
{...}}``: ``targetingKey`` becomes the distinct id; ``groups`` ({type: key}) and ``groupProperties`` /
``group_properties`` ({type: {prop: value}}) feed group flags; ``$device_id`` (or ``device_id``) is the
device id that ``bucketing_identifier: "device_id"`` flags hash; every other attribute (those two included)
is a person property.

Reasons map from PostHog's: ``flag_disabled`` → ``DISABLED``; ``condition_match`` → ``STATIC`` when the flag
answers the same to every context (no properties, no rollout, no variants), else ``SPLIT`` when a variant
was picked, else ``TARGETING_MATCH``; ``super_condition_value`` → ``TARGETING_MATCH``;
``holdout_condition_value`` and ``out_of_rollout_bound`` → ``SPLIT``; ``no_condition_match``,
``no_group_type`` → ``DEFAULT``; a decision with an error → ``ERROR``. The value is the variant key for
multivariate flags, else the boolean; metadata carries ``flagId``, ``version``, the PostHog ``reasonCode``
and the ``payload`` (JSON text) when there is one.

Errors (``{"key", "errorCode", "errorDetails"}``): 400 ``PARSE_ERROR`` (body not JSON / wrong types), 400
``INVALID_CONTEXT`` (context not an object, over a limit), 400 ``TARGETING_KEY_MISSING``, 401 (no or unknown
token), 404 ``FLAG_NOT_FOUND``, 400 ``GENERAL`` for a flag that failed to evaluate. Bulk answers carry an
``ETag`` (a hash of the body); a matching ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from evaluator import Context, Decision
from flagd.errors import LimitExceeded, RequestRejected, Unauthorized
from flagd.limits import Limits
from flagd.metrics import Metrics
from flagd.sdk.bodies import check_properties, check_structure, stringify_id
from flagd.sdk.definitions import bearer
from flagd.sdk.http import JSON, Answer, Request
from flagd.sdk.persons import Persons
from flagd.sdk.projects import project_for
from store.catalog import Catalog, ProjectState

PREFIX = "/ofrep/v1/evaluate/flags/"
_encode = msgspec.json.encode
# A flag key quoted in an error is cut to this many characters (the path may carry a key of any length).
MAX_QUOTED_KEY_CHARS = 200


class OfrepBody(msgspec.Struct):
    """An OFREP evaluation body: ``{"context": {...}}`` (other top-level keys are ignored)."""

    context: dict[str, Any] = {}


_decoder = msgspec.json.Decoder(OfrepBody)
_SPECIAL = frozenset({"targetingKey", "groups", "groupProperties", "group_properties"})


class OfrepError(RequestRejected):
    """An OFREP error answer: ``errorCode`` in the body, ``status`` on the wire."""

    def __init__(self, status: int, error_code: str, detail: str) -> None:
        super().__init__(detail, code=error_code)
        self.status = status


def reason_of(d: Decision, static: bool = False) -> str:
    """The OFREP reason for a PostHog decision; ``static``: the flag answers this to every context."""
    if d.error is not None:
        return "ERROR"
    code = d.reason
    if code == "condition_match" and static:
        return "STATIC"
    if code == "condition_match":
        return "SPLIT" if d.variant is not None else "TARGETING_MATCH"
    if code == "flag_disabled":
        return "DISABLED"
    if code in ("holdout_condition_value", "out_of_rollout_bound"):
        return "SPLIT"
    if code == "super_condition_value":
        return "TARGETING_MATCH"
    return "DEFAULT"


def is_static(state: ProjectState, d: Decision) -> bool:
    """Whether ``d`` is the flag's request-independent answer (the evaluator shares that one Decision)."""
    flag = state.snapshot.flag(d.key)
    return flag is not None and getattr(flag, "static", None) is d


def success(d: Decision, static: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"reasonCode": d.reason}
    if d.flag_id is not None:
        metadata["flagId"] = d.flag_id
    if d.version is not None:
        metadata["version"] = d.version
    if d.payload is not None and d.enabled:
        metadata["payload"] = d.payload
    return {
        "key": d.key,
        "value": d.value,
        "reason": reason_of(d, static),
        "variant": d.variant if d.variant is not None else ("true" if d.enabled else "false"),
        "metadata": metadata,
    }


def failure(d: Decision) -> dict[str, Any]:
    return {"key": d.key, "errorCode": "GENERAL", "errorDetails": f"flag failed to evaluate: {d.error}"}


def error_body(exc: RequestRejected, key: str | None) -> bytes:
    """The OFREP error JSON for a rejected request."""
    if isinstance(exc, OfrepError):
        code = exc.code
    elif exc.status == 400:
        code = "PARSE_ERROR" if exc.code in ("invalid_json", "invalid_body") else "INVALID_CONTEXT"
    else:
        code = "GENERAL"
    body: dict[str, Any] = {"errorCode": code, "errorDetails": exc.detail}
    if key is not None:
        body = {"key": key[:MAX_QUOTED_KEY_CHARS], **body}
    return _encode(body)


class OfrepEndpoint:
    """One endpoint object serves both the single-flag and the bulk route (``bulk`` picks which)."""

    __slots__ = ("_bulk", "_catalog", "_limits", "_metrics", "_persons")

    def __init__(
        self,
        catalog: Catalog,
        limits: Limits,
        metrics: Metrics,
        *,
        bulk: bool,
        persons: Persons | None = None,
    ) -> None:
        self._persons = persons
        self._catalog = catalog
        self._limits = limits
        self._metrics = metrics
        self._bulk = bulk

    def _project(self, headers: dict[bytes, bytes]) -> ProjectState:
        token = bearer(headers)
        if token is None:
            raw = headers.get(b"x-api-key")
            token = raw.decode("latin-1").strip() if raw else None
        if not token:
            raise Unauthorized("Send the project token as 'Authorization: Bearer <token>' or X-API-Key.")
        return project_for(self._catalog, token, "Project token invalid.")

    def _context(self, raw: bytes) -> Context:
        limits = self._limits
        if raw.strip():
            try:
                check_structure(raw, limits.max_json_depth, limits.max_json_elements)
            except LimitExceeded as exc:
                raise OfrepError(400, "PARSE_ERROR", exc.detail) from exc
            try:
                context = _decoder.decode(raw).context
            except msgspec.ValidationError as exc:
                code = "INVALID_CONTEXT" if str(exc).endswith("`$.context`") else "PARSE_ERROR"
                raise OfrepError(400, code, f"invalid request body: {exc}") from exc
            except msgspec.DecodeError as exc:
                raise OfrepError(400, "PARSE_ERROR", f"request body is not valid JSON: {exc}") from exc
        else:
            context = {}
        key = context.get("targetingKey")
        if key is None or key == "":
            raise OfrepError(400, "TARGETING_KEY_MISSING", "context.targetingKey is required")
        if not isinstance(key, str | int | float) or isinstance(key, bool):
            raise OfrepError(400, "INVALID_CONTEXT", "context.targetingKey must be a string")
        groups = context.get("groups") or {}
        group_props = context.get("groupProperties", context.get("group_properties")) or {}
        if not isinstance(groups, dict) or not all(isinstance(v, str | int) for v in groups.values()):
            raise OfrepError(400, "INVALID_CONTEXT", "context.groups must map group types to keys")
        if not isinstance(group_props, dict) or not all(isinstance(v, dict) for v in group_props.values()):
            raise OfrepError(
                400, "INVALID_CONTEXT", "context.groupProperties must map group types to objects"
            )
        person = {k: v for k, v in context.items() if k not in _SPECIAL}
        try:
            check_properties(person, "context", limits)
            if len(groups) > limits.max_groups:
                raise LimitExceeded(
                    f"context.groups has {len(groups)} entries; the limit is max_groups={limits.max_groups}"
                )
            for name, props in group_props.items():
                check_properties(props, f"context.groupProperties.{name}", limits)
        except LimitExceeded as exc:
            raise OfrepError(400, "INVALID_CONTEXT", exc.detail) from exc
        device = context.get("$device_id", context.get("device_id"))
        return Context(
            distinct_id=stringify_id(key, limits.max_distinct_id_chars),
            person_properties=person,
            groups={str(k): str(v) for k, v in groups.items()},
            group_properties=group_props,
            device_id=device if isinstance(device, str) and device else None,
        )

    async def __call__(self, request: Request, request_id: str) -> Answer:
        headers = request.headers
        state = self._project(headers)
        raw = await request.body(self._limits.max_body_bytes)
        ctx = self._context(raw)
        if not self._bulk:
            key = request.path[len(PREFIX) :]
            one = (
                state.snapshot.evaluate(ctx, keys=(key,))
                if self._persons is None
                else await self._persons.evaluate(state, ctx, (key,))
            )
            decision = one.get(key)
            if decision is None:
                raise OfrepError(
                    404, "FLAG_NOT_FOUND", f"flag {quoted_key(key)} does not exist in this project"
                )
            self._metrics.tally_reasons((decision.reason,))
            if decision.error is not None:
                return 400, _encode(failure(decision)), JSON
            return 200, _encode(success(decision, is_static(state, decision))), JSON
        decisions = (
            state.snapshot.evaluate(ctx, keys=None)
            if self._persons is None
            else await self._persons.evaluate(state, ctx, None)
        )
        items = [
            failure(d) if d.error is not None else success(d, is_static(state, d)) for d in decisions.values()
        ]
        self._metrics.tally_reasons(d.reason for d in decisions.values())
        body = _encode({"flags": items})
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        inm = headers.get(b"if-none-match")
        if inm is not None and etag.encode() in [t.strip() for t in inm.split(b",")]:
            return 304, b"", [(b"etag", etag.encode())]
        return 200, body, [*JSON, (b"etag", etag.encode())]


def quoted_key(key: str) -> str:
    """``key`` in quotes for an error message, cut to ``MAX_QUOTED_KEY_CHARS`` (saying how long it was)."""
    if len(key) <= MAX_QUOTED_KEY_CHARS:
        return repr(key)
    return f"{key[:MAX_QUOTED_KEY_CHARS]!r}... ({len(key)} characters)"


def flag_key_of(path: str) -> str | None:
    """The flag key in a single-flag OFREP path, or None when the path is not one."""
    if path.startswith(PREFIX) and len(path) > len(PREFIX):
        return path[len(PREFIX) :]
    return None
