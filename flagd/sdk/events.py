"""Event intake: ``POST /batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/`` (with or without the trailing slash).

PostHog SDKs send ``$feature_flag_called`` and every captured event here. Accepted bodies (JSON, gzip, or a
base64 form): ``{"api_key", "batch": [event, ...]}``, a single event object, or a bare list of events
(posthog-js). The project token comes from the body (``api_key``/``token``/``$token``), ``?token=``, or the
first event's ``properties.token``. Each event needs a non-empty string ``event`` and a ``distinct_id`` (top
level or in ``properties``). A valid body is applied to the person store (``flagd.sdk.persons``: properties,
identity merges, groups, behaviour counts) and answered ``{"status": 1}`` like PostHog only once applied, so
the next flag check on any node sees it. Nothing is applied from a body with any invalid event (400 naming the
field); a person over ``max_person_properties`` is a 400 ``limit_exceeded``; a store failure is a 503
``store_unavailable`` (retry: event uuids make retries count once).

Bodies decode into typed structures (``Envelope`` or a list of ``Event``), within ``max_json_depth`` and
``max_event_json_elements`` (``flagd.sdk.bodies.check_structure``), so a body of the wrong shape is refused at
its first wrong element (``batch[0]``) without building the rest. The ``Event`` structs are handed on as they
are (``store.persons.ingest`` reads their attributes): event-level keys other than those of ``Event`` are
dropped.
"""

from __future__ import annotations

from functools import partial

import msgspec

from flagd.errors import BadRequest, LimitExceeded, PayloadTooLarge, StoreFailed, Unauthorized
from flagd.limits import Limits
from flagd.sdk.bodies import check_prefix, decode, unwrap
from flagd.sdk.http import JSON, Answer, Headers, Request, parse_query
from flagd.sdk.persons import Persons
from flagd.sdk.projects import project_for
from store.catalog import Catalog, ProjectState
from store.errors import PersonLimitExceeded, StoreError, ValidationFailed
from store.persons.ingest import Event


class Envelope(Event):
    """A body that is an object: ``{"api_key", "batch": [...]}``, or a single event (``Event``'s fields)."""

    dollar_token: str | None = msgspec.field(default=None, name="$token")
    batch: list[Event] | None = None


_decoder = msgspec.json.Decoder(Envelope | list[Event])
_OK = b'{"status":1}'
HEADERS: Headers = JSON  # CORS is added to every SDK answer by SdkApp.respond


def _token_of(payload: Envelope | list[Event], events: list[Event], query: dict[str, str]) -> str | None:
    if isinstance(payload, Envelope):
        for value in (payload.api_key, payload.token, payload.dollar_token):
            if value:
                return value
    if query.get("token"):
        return query["token"]
    if events:
        props = events[0].properties
        if props is not None:
            value = props.get("token") or props.get("api_key")
            if isinstance(value, str):
                return value
        return events[0].api_key
    return None


def events_of(payload: Envelope | list[Event]) -> tuple[list[Event], str]:
    """The events in a body and the path prefix naming them in errors."""
    if isinstance(payload, list):
        return payload, ""
    if payload.batch is not None:
        return payload.batch, "batch"
    if payload.event is not None:
        return [payload], ""
    raise BadRequest("body has neither 'batch' nor 'event'", code="invalid_body", attr="batch")


def _at(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def check_event(event: Event, path: str) -> None:
    """Raise ``BadRequest`` naming the field (``batch[3].distinct_id``) when an event is malformed (the
    typed decode already refused fields of the wrong type: ``properties`` is an object or absent)."""
    if not event.event:
        where = _at(path, "event")
        raise BadRequest(f"{where} must be a non-empty string", code="invalid_event", attr=where)
    distinct_id = event.distinct_id
    if distinct_id is None and event.properties:
        distinct_id = event.properties.get("distinct_id")
    if distinct_id is None or distinct_id == "" or isinstance(distinct_id, dict | list | bool):
        where = _at(path, "distinct_id")
        raise BadRequest(f"{where} is required (a string or number)", code="invalid_event", attr=where)


async def apply_events(persons: Persons, state: ProjectState, events: list[Event], paths: list[str]) -> None:
    """Apply well-formed ``events`` to the person store, translating store outcomes into HTTP answers."""
    try:
        await persons.ingest(state, events, paths)
    except ValidationFailed as exc:
        issue = exc.issues[0]
        raise BadRequest(f"{issue.path}: {issue.message}", code="invalid_event", attr=issue.path) from exc
    except PersonLimitExceeded as exc:
        raise LimitExceeded(str(exc), attr="batch") from exc
    except StoreError as exc:
        raise StoreFailed(f"the person store did not apply the batch: {exc}") from exc


class EventsEndpoint:
    """Validates event batches, applies them to the person store (when there is one) and acknowledges them."""

    __slots__ = ("_catalog", "_limits", "_persons", "_probe")

    def __init__(self, catalog: Catalog, limits: Limits, persons: Persons | None = None) -> None:
        self._catalog = catalog
        self._limits = limits
        self._probe = partial(
            check_prefix, max_elements=limits.max_event_json_elements, name="max_event_json_elements"
        )
        self._persons = persons

    async def __call__(self, request: Request, request_id: str) -> Answer:
        limits = self._limits
        limit = limits.max_event_body_bytes
        query = parse_query(request.query_string)
        try:
            raw = await request.body(limit)
            unwrapped = unwrap(raw, query, request.headers, limit, self._probe)
        except PayloadTooLarge as exc:
            # The shared body readers name the /flags limit; this endpoint's limit is another one.
            detail = exc.detail.replace("max_body_bytes=", "max_event_body_bytes=")
            raise PayloadTooLarge(detail) from None
        payload = decode(
            _decoder,
            unwrapped,
            limits.max_json_depth,
            limits.max_event_json_elements,
            "max_event_json_elements",
        )
        events, prefix = events_of(payload)
        token = _token_of(payload, events, query)
        if not token:
            raise Unauthorized("No project API key was provided: send it as api_key in the body.")
        state = project_for(self._catalog, token, "Project API key invalid.")
        if len(events) > limits.max_batch_events:
            raise LimitExceeded(
                f"batch has {len(events)} events; the limit is max_batch_events={limits.max_batch_events}",
                attr="batch",
            )
        if not events:
            raise BadRequest("batch has no events", code="invalid_body", attr="batch")
        single = isinstance(payload, Envelope) and prefix == ""
        paths = [""] if single else [f"{prefix}[{index}]" for index in range(len(events))]
        for event, path in zip(events, paths, strict=True):
            check_event(event, path)
        if self._persons is not None:
            await apply_events(self._persons, state, events, paths)
        return 200, _OK, HEADERS
