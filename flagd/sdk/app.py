"""``SdkApp``: the raw ASGI front of flagd. SDK paths are answered here; everything else goes to ``fallback``.

``respond`` holds everything but the wire: it takes a ``Request`` and returns the ``Answer`` to send.
``__call__`` is the thin ASGI shell around it; ``flagd.sdk.rsgi.RsgiApp`` is the RSGI one (what ``flagd
serve`` runs).

Every decision is made in ``__init__``: the route table is a dict from exact path to a prebuilt ``_Route``
(endpoint, allowed method, whether it may be shed, how errors are rendered, its metric children), so a
request costs one dict lookup before its endpoint runs — no Starlette routing, no middleware stack on this
path. Per request the app: picks the request id, reads the whole body of a route that takes one (within its
byte limit and ``body_timeout_seconds``: 408 past it; a client that disconnects mid-body gets no answer and
is counted as status 499, logged at debug), and only then admits or sheds it (``LoadShedder``; probes are
never shed) — so a slow upload never holds an evaluation slot — runs the endpoint, turns a
``RequestRejected`` into the protocol's error JSON, sends the answer with ``X-Request-Id``, and records
latency and status. Logging follows the policy in ``flagd.limits``: nothing per request unless it is slow,
sampled, an error or shed.

Every answer of an SDK route (errors, 405s and shed requests included) carries
``Access-Control-Allow-Origin: *``, added in one place (``respond``), and ``OPTIONS`` preflights are answered:
browsers call these routes from other origins.

Routes: ``POST /flags[/]``, ``/decide[/]`` · ``GET /flags/definitions[/]``,
``/api/feature_flag/local_evaluation[/]`` · ``POST /batch[/]``, ``/capture[/]``, ``/e[/]``, ``/i/v0/e[/]`` ·
``POST /ofrep/v1/evaluate/flags[/{key}]`` · ``GET /array/<token>/config[.js]``, ``/api/surveys[/]``,
``/api/early_access_features[/]`` (posthog-js) · ``GET /api/projects/<id>/feature_flags/<key>/remote_config``
· ``GET /healthz``, ``/readyz``, ``/metrics``, ``/status``, ``/status.json`` (``flagd.status``; no CORS).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from flagd.errors import (
    BodyTimeout,
    ClientDisconnected,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    RequestRejected,
)
from flagd.limits import Limits
from flagd.logging import RequestIds
from flagd.metrics import Metrics
from flagd.sdk import browser, ofrep, payloads
from flagd.sdk.definitions import Authenticate, DefinitionsEndpoint
from flagd.sdk.events import EventsEndpoint
from flagd.sdk.flags import FlagsEndpoint
from flagd.sdk.http import (
    CORS,
    JSON,
    Answer,
    AsgiRequest,
    Headers,
    Receive,
    Request,
    Scope,
    Send,
    UploadWatch,
)
from flagd.sdk.persons import Persons
from flagd.sdk.probes import Health, Probes
from flagd.sdk.responses import RecordCaches
from flagd.shedding import LoadShedder
from flagd.status.board import StatusBoard
from store.catalog import Catalog

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Endpoint = Callable[[Request, str], Awaitable[Answer]]
ErrorRenderer = Callable[[RequestRejected, str], bytes]  # (error, request path) -> body

_encode = msgspec.json.encode
_log = structlog.get_logger("flagd.sdk")
_SLOW_LINES_PER_SECOND = 10
# The status recorded (never sent) for a client that went away before its request body was complete, as
# nginx logs it.
CLIENT_CLOSED = 499
_SERVER_ERROR_BODY = _encode(
    {"type": "server_error", "code": "error", "detail": "internal error", "attr": None}
)
_PREFLIGHT: Headers = [
    *CORS,
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    # "*" does not cover Authorization (OFREP web providers send it): name it.
    (b"access-control-allow-headers", b"authorization, content-type, x-request-id, *"),
    (b"access-control-max-age", b"86400"),
]


def posthog_error(exc: RequestRejected, path: str) -> bytes:
    """PostHog's error shape: ``{"type", "code", "detail", "attr"}``."""
    return _encode({"type": exc.type, "code": exc.code, "detail": exc.detail, "attr": exc.attr})


def ofrep_error(exc: RequestRejected, path: str) -> bytes:
    return ofrep.error_body(exc, ofrep.flag_key_of(path))


class _Route:
    __slots__ = (
        "bind",
        "body_limit",
        "cors",
        "endpoint",
        "errors",
        "method",
        "metrics",
        "name",
        "shed_status",
        "shedding",
    )

    def __init__(
        self,
        name: str,
        method: str,
        endpoint: Endpoint,
        errors: ErrorRenderer,
        metrics: Metrics,
        *,
        shedding: bool = True,
        shed_status: int = 503,
        bind: bool = False,
        body_limit: int | None = None,
        cors: bool = True,
    ) -> None:
        self.name = name
        self.body_limit = body_limit  # read before admission when set (routes that take a body)
        self.cors = cors
        self.method = method
        self.endpoint = endpoint
        self.errors = errors
        self.metrics = metrics.route(name)
        self.shedding = shedding
        self.shed_status = shed_status
        self.bind = bind


class SdkApp:
    """The ASGI application for the SDK hot path (see the module docstring)."""

    __slots__ = (
        "_ids",
        "_last_shed_log",
        "_limits",
        "_metrics",
        "_ofrep_one",
        "_payload",
        "_remote_config",
        "_routes",
        "_sample",
        "_shed_answers",
        "_shed_since_log",
        "_shedder",
        "_slow",
        "_slow_logged",
        "_slow_skipped",
        "_slow_window",
        "_uploads",
        "catalog",
        "fallback",
        "persons",
        "status",
    )

    def __init__(
        self,
        *,
        catalog: Catalog,
        fallback: ASGIApp,
        authenticate: Authenticate,
        health: Health,
        limits: Limits | None = None,
        shedder: LoadShedder | None = None,
        metrics: Metrics | None = None,
        persons: Persons | None = None,
    ) -> None:
        self.catalog = catalog
        self.persons = persons
        self.fallback = fallback
        self._limits = limits = limits or Limits()
        self._shedder = shedder or LoadShedder()
        self._metrics = metrics = metrics or Metrics()
        self._ids = RequestIds(limits.max_request_id_chars)
        self._uploads = UploadWatch(limits.body_timeout_seconds)
        self._slow = limits.slow_request_seconds
        self._sample = limits.log_sample_rate
        self._shed_since_log = 0
        self._shed_answers: dict[str, Answer] = {}
        self._last_shed_log = 0.0
        self._slow_window = 0.0
        self._slow_logged = 0
        self._slow_skipped = 0
        cache = RecordCaches()
        metrics.add_source(cache.drain)
        flags = FlagsEndpoint("flags", catalog, limits, metrics, cache, persons)
        decide = FlagsEndpoint("decide", catalog, limits, metrics, cache, persons)
        definitions = DefinitionsEndpoint(catalog, authenticate, limits)
        events = EventsEndpoint(catalog, limits, persons)
        probes = Probes(health, metrics)
        routes: dict[str, _Route] = {}

        def add(paths: tuple[str, ...], route: _Route) -> None:
            for path in paths:
                routes[path] = route
                if not path.endswith("/"):
                    routes[path + "/"] = route

        body = limits.max_body_bytes
        add(("/flags",), _Route("flags", "POST", flags, posthog_error, metrics, body_limit=body))
        add(("/decide",), _Route("decide", "POST", decide, posthog_error, metrics, body_limit=body))
        add(
            ("/flags/definitions", "/api/feature_flag/local_evaluation"),
            _Route("definitions", "GET", definitions, posthog_error, metrics, bind=True),
        )
        add(
            ("/batch", "/capture", "/e", "/i/v0/e"),
            _Route(
                "events",
                "POST",
                events,
                posthog_error,
                metrics,
                bind=True,
                body_limit=limits.max_event_body_bytes,
            ),
        )
        add(
            ("/ofrep/v1/evaluate/flags",),
            _Route(
                "ofrep_bulk",
                "POST",
                ofrep.OfrepEndpoint(catalog, limits, metrics, bulk=True, persons=persons),
                ofrep_error,
                metrics,
                shed_status=429,
                body_limit=body,
            ),
        )
        add(
            ("/api/surveys",),
            _Route("surveys", "GET", browser.EmptyListEndpoint(catalog, "surveys"), posthog_error, metrics),
        )
        add(
            ("/api/early_access_features",),
            _Route(
                "early_access_features",
                "GET",
                browser.EmptyListEndpoint(catalog, "earlyAccessFeatures"),
                posthog_error,
                metrics,
            ),
        )
        probe = {"shedding": False, "cors": False}
        add(("/healthz",), _Route("healthz", "GET", probes.healthz, posthog_error, metrics, **probe))
        add(("/readyz",), _Route("readyz", "GET", probes.readyz, posthog_error, metrics, **probe))
        add(("/metrics",), _Route("metrics", "GET", probes.metrics, posthog_error, metrics, **probe))
        self.status = status = StatusBoard(metrics, health, catalog)
        add(("/status",), _Route("status", "GET", status.page, posthog_error, metrics, **probe))
        add(("/status.json",), _Route("status_json", "GET", status.json, posthog_error, metrics, **probe))
        self._routes = routes
        self._remote_config = _Route(
            "remote_config", "GET", browser.RemoteConfigEndpoint(catalog), posthog_error, metrics
        )
        self._payload = _Route(
            "remote_config_payload",
            "GET",
            payloads.RemoteConfigPayloadEndpoint(definitions),
            posthog_error,
            metrics,
            bind=True,
        )
        self._ofrep_one = _Route(
            "ofrep_flag",
            "POST",
            ofrep.OfrepEndpoint(catalog, limits, metrics, bulk=False, persons=persons),
            ofrep_error,
            metrics,
            shed_status=429,
            body_limit=body,
        )

    def route_for(self, path: str) -> _Route | None:
        """The SDK route serving ``path``, or None when ``fallback`` should have the request."""
        route = self._routes.get(path)
        if route is not None:
            return route
        if path.startswith(ofrep.PREFIX) and len(path) > len(ofrep.PREFIX):
            return self._ofrep_one
        if path.startswith(browser.PREFIX) and browser.config_token(path) is not None:
            return self._remote_config
        if path.endswith(("/remote_config", "/remote_config/")) and payloads.payload_path(path) is not None:
            return self._payload
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        route = self.route_for(scope["path"])
        if route is None:
            await self.fallback(scope, receive, send)
            return
        request = AsgiRequest(scope, receive, dict(scope["headers"]))
        status, body, headers = await self.respond(route, scope["method"], request)
        if status == CLIENT_CLOSED:
            return  # nobody to answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def respond(self, route: _Route, method: str, request: Request) -> Answer:
        """The answer to ``request`` on ``route``, with CORS on every answer of a browser-facing route."""
        status, body, headers = await self._answer(route, method, request)
        if route.cors and method != "OPTIONS":
            headers = [*headers, *CORS]
        return status, body, headers

    async def _answer(self, route: _Route, method: str, request: Request) -> Answer:
        """The answer to ``request`` on ``route``: admission, the endpoint, errors, metrics and logging."""
        if route.method != method:
            return self._wrong_method(route, method, request.path)
        if not route.shedding:
            return await self._handle(route, request, None)
        shedder = self._shedder
        try:
            if not shedder.arrive():
                return self._shed(route, time.perf_counter())
            return await self._handle(route, request, shedder)
        finally:
            shedder.depart()

    async def _handle(self, route: _Route, request: Request, shedder: LoadShedder | None) -> Answer:
        start = time.perf_counter()
        request_id = self._ids.pick(request.headers.get(b"x-request-id"))
        waited = None
        if route.body_limit is not None:
            unread = await self._read_body(route, request, request_id)
            if unread is not None:
                self._metrics.observe(route.metrics, unread[0], time.perf_counter() - start)
                return unread
            # For a body already sent, how long this request waited for the event loop: its queueing delay.
            waited = time.perf_counter() - start
        if shedder is not None and not shedder.admit(waited):
            return self._shed(route, start)
        status = 500
        try:
            try:
                if route.bind:
                    # Routes that do I/O bind the id for every log line written below them (the store's too);
                    # pure in-memory routes skip the contextvar cost and pass it explicitly.
                    with structlog.contextvars.bound_contextvars(request_id=request_id):
                        status, body, extra = await route.endpoint(request, request_id)
                else:
                    status, body, extra = await route.endpoint(request, request_id)
            except RequestRejected as exc:
                status, body, extra = exc.status, route.errors(exc, request.path), JSON
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is not None:
                    extra = [*JSON, (b"retry-after", str(retry_after).encode())]
                _log.debug(
                    "request rejected",
                    route=route.name,
                    status=status,
                    code=exc.code,
                    detail=exc.detail,
                    request_id=request_id,
                )
            except Exception:
                _log.exception("request failed", route=route.name, path=request.path, request_id=request_id)
                status, body, extra = 500, _SERVER_ERROR_BODY, JSON
            return status, body, [*extra, (b"x-request-id", request_id.encode())]
        finally:
            if shedder is not None:
                shedder.release()
            elapsed = time.perf_counter() - start
            self._metrics.observe(route.metrics, status, elapsed)
            if elapsed > self._slow:
                self._log_slow(route, status, elapsed, request_id)
            elif self._sample and random.random() < self._sample:
                _log.info(
                    "request",
                    route=route.name,
                    status=status,
                    seconds=round(elapsed, 6),
                    request_id=request_id,
                )

    async def _read_body(self, route: _Route, request: Request, request_id: str) -> Answer | None:
        """Read the body before admission; None when it is in, else the answer (408, 413, 499) to give."""
        assert route.body_limit is not None
        watch = self._uploads
        task = watch.start()
        expired = False
        try:
            try:
                await request.load(route.body_limit)
            finally:
                expired = watch.stop(task)
            return None
        except asyncio.CancelledError:
            if not expired:
                raise  # not ours: the server is shutting down
            exc: RequestRejected = BodyTimeout(
                f"the request body did not arrive within body_timeout_seconds={watch.seconds:g}"
            )
        except RequestRejected as rejected:
            exc = rejected
            if isinstance(rejected, PayloadTooLarge) and route.name == "events":
                # The shared body readers name the /flags limit; the event intake has its own.
                exc = PayloadTooLarge(rejected.detail.replace("max_body_bytes=", "max_event_body_bytes="))
        except ClientDisconnected as gone:
            # Routine on the internet (a closed tab, a lost network): no answer can be sent, nothing failed.
            _log.debug("client disconnected", route=route.name, detail=str(gone), request_id=request_id)
            return CLIENT_CLOSED, b"", []
        _log.debug(
            "request rejected", route=route.name, status=exc.status, code=exc.code, request_id=request_id
        )
        body = route.errors(exc, request.path)
        return exc.status, body, [*JSON, (b"x-request-id", request_id.encode())]

    def _log_slow(self, route: _Route, status: int, elapsed: float, request_id: str) -> None:
        # At most _SLOW_LINES_PER_SECOND lines: when everything is slow (overload), logging each request
        # would add load exactly when there is none to spare; the next line says how many were skipped.
        now = time.monotonic()
        if now - self._slow_window >= 1.0:
            self._slow_window, self._slow_logged = now, 0
        if self._slow_logged >= _SLOW_LINES_PER_SECOND:
            self._slow_skipped += 1
            return
        self._slow_logged += 1
        skipped, self._slow_skipped = self._slow_skipped, 0
        _log.warning(
            "slow request",
            route=route.name,
            status=status,
            seconds=round(elapsed, 6),
            request_id=request_id,
            skipped_since_last=skipped,
        )

    def _wrong_method(self, route: _Route, method: str, path: str) -> Answer:
        if method == "OPTIONS" and route.cors:
            return 204, b"", _PREFLIGHT
        exc = MethodNotAllowed(f"{method} is not allowed here; use {route.method}")
        return 405, route.errors(exc, path), [*JSON, (b"allow", route.method.encode())]

    def _shed(self, route: _Route, start: float) -> Answer:
        # The cheapest answer there is: built once per route; counted (flagd_shed_total, and observed like
        # any answer: a bisect and a few additions) and summed into a log line at most once a second.
        self._metrics.count_shed(route.name)
        answer = self._shed_answers.get(route.name)
        if answer is None:
            retry_after = self._shedder.retry_after
            exc = Overloaded(
                "server is overloaded; retry later", retry_after=retry_after, status=route.shed_status
            )
            headers = [*JSON, (b"retry-after", str(retry_after).encode())]
            answer = self._shed_answers[route.name] = (exc.status, route.errors(exc, ""), headers)
        self._metrics.observe(route.metrics, answer[0], time.perf_counter() - start)
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._last_shed_log >= 1.0:
            _log.warning(
                "shedding load",
                shed=self._shed_since_log,
                in_flight=self._shedder.in_flight,
                pending=self._shedder.pending,
                overloaded=self._shedder.overloaded,
            )
            self._shed_since_log = 0
            self._last_shed_log = now
        return answer


__all__ = ["SdkApp"]
