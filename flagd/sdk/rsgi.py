"""``RsgiApp``: ``SdkApp`` served over Granian's RSGI interface (what ``flagd serve`` runs).

SDK paths are answered natively: the body is read from the protocol (``await protocol()`` when a
``Content-Length`` within the limit is declared, else chunk by chunk with a cut-off), ``SdkApp.respond``
computes the answer, and one ``protocol.response_bytes`` sends it. Everything else — the admin API — goes to
``SdkApp.fallback`` (an ASGI app) through a small RSGI→ASGI bridge: an ASGI ``http`` scope (method, path,
query string, headers, client, server, lifespan state), ``receive`` streaming the body then waiting for the
disconnect, and ``send`` answering with ``response_bytes`` (one body message) or a response stream.

The ASGI lifespan of the fallback (which opens the store) runs in ``__rsgi_init__`` (startup, on the
worker's loop before it serves) and ``__rsgi_del__`` (shutdown), as Granian's ASGI worker would do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable
from typing import Any, Protocol

import structlog
from granian._granian import RSGIProtocolClosed, RSGIProtocolError

from flagd.errors import ClientDisconnected
from flagd.sdk.app import CLIENT_CLOSED, ASGIApp, SdkApp
from flagd.sdk.http import Message, Request, check_declared, too_large

_log = structlog.get_logger("flagd.sdk.rsgi")
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_BRIDGE_ERROR = b'{"type":"server_error","code":"error","detail":"internal error","attr":null}'


class RsgiHeaders(Protocol):
    def items(self) -> list[tuple[str, str]]: ...


class RsgiScope(Protocol):
    """The parts of Granian's RSGI scope flagd reads."""

    proto: str
    http_version: str
    client: str
    server: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> RsgiHeaders: ...


class RsgiStream(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class RsgiProtocol(Protocol):
    """The parts of Granian's RSGI HTTP protocol flagd uses."""

    def __call__(self) -> Awaitable[bytes]: ...

    def __aiter__(self) -> Any: ...

    def client_disconnect(self) -> Awaitable[None]: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> RsgiStream: ...


def _str_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


class RsgiRequest(Request):
    """A ``Request`` over RSGI: the body comes from the protocol."""

    __slots__ = ("_protocol",)

    def __init__(self, scope: RsgiScope, protocol: RsgiProtocol, headers: dict[bytes, bytes]) -> None:
        super().__init__(scope.path, scope.query_string.encode(), headers)
        self._protocol = protocol

    async def _read(self, limit: int) -> bytes:
        try:
            if check_declared(self.headers, limit):
                # The server holds the body to the declared length, which is within the limit.
                return await self._protocol()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self._protocol:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
            return b"".join(chunks)
        except (RSGIProtocolClosed, RSGIProtocolError) as exc:  # Granian: the connection ended mid-body
            raise ClientDisconnected(
                f"the client disconnected before its request body was complete: {exc}"
            ) from exc


def _address(raw: str) -> tuple[str, int] | None:
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class _Exchange:
    """One ASGI ``http`` request carried over an RSGI protocol."""

    __slots__ = ("_chunks", "_done", "_headers", "_protocol", "_status", "_stream", "started")

    def __init__(self, protocol: RsgiProtocol) -> None:
        self._protocol = protocol
        self._chunks = protocol.__aiter__()
        self._done = False
        self._status = 200
        self._headers: list[tuple[str, str]] = []
        self._stream: RsgiStream | None = None
        self.started = False

    async def receive(self) -> Message:
        if not self._done:
            try:
                chunk: bytes = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self._protocol.client_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._headers = _str_headers(message.get("headers", []))
            return
        if kind != "http.response.body":
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self._stream is None:
            if not more:
                self.started = True
                self._protocol.response_bytes(self._status, self._headers, body)
                return
            self.started = True
            self._stream = self._protocol.response_stream(self._status, self._headers)
        if body:
            await self._stream.send_bytes(body)


class RsgiApp:
    """Granian RSGI target wrapping an ``SdkApp`` (see the module docstring)."""

    __slots__ = ("_lifespan", "_respond", "_route_for", "sdk")

    def __init__(self, sdk: SdkApp) -> None:
        self.sdk = sdk
        self._route_for = sdk.route_for
        self._respond = sdk.respond
        self._lifespan = Lifespan(sdk.fallback)

    async def __rsgi__(self, scope: RsgiScope, protocol: RsgiProtocol) -> None:
        if scope.proto != "http":
            return  # websockets are off
        route = self._route_for(scope.path)
        if route is None:
            await self._bridge(scope, protocol)
            return
        headers = {name.encode("latin-1"): value.encode("latin-1") for name, value in scope.headers.items()}
        status, body, extra = await self._respond(route, scope.method, RsgiRequest(scope, protocol, headers))
        if status != CLIENT_CLOSED:  # nobody to answer
            protocol.response_bytes(status, _str_headers(extra), body)

    async def _bridge(self, scope: RsgiScope, protocol: RsgiProtocol) -> None:
        asgi_scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": scope.http_version,
            "method": scope.method,
            "scheme": scope.scheme,
            "path": scope.path,
            "query_string": scope.query_string.encode("latin-1"),
            "root_path": "",
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in scope.headers.items()
            ],
            "client": _address(scope.client),
            "server": _address(scope.server),
            "state": dict(self._lifespan.state),
        }
        exchange = _Exchange(protocol)
        try:
            await self.sdk.fallback(asgi_scope, exchange.receive, exchange.send)
        except Exception:
            _log.exception("request failed", path=scope.path)
            if not exchange.started:
                protocol.response_bytes(500, [("content-type", "application/json")], _BRIDGE_ERROR)
            return
        if not exchange.started:
            _log.error("the app returned without answering", path=scope.path)
            protocol.response_bytes(500, [("content-type", "application/json")], _BRIDGE_ERROR)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_until_complete(self._lifespan.startup())
        except Exception:
            _log.exception("lifespan startup failed")
            sys.exit(1)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_until_complete(self._lifespan.shutdown())
        except Exception:
            _log.exception("lifespan shutdown failed")


class LifespanError(Exception):
    """The app reported ``lifespan.startup.failed`` / ``lifespan.shutdown.failed``."""


class Lifespan:
    """Drives an ASGI app's lifespan protocol: ``startup()`` before serving, ``shutdown()`` after."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}

        async def send(message: Message) -> None:
            await self._outbox.put(message)

        await self._app(scope, self._inbox.get, send)

    async def _reply(self) -> Message | None:
        """The app's next message, or None when it returned (or raised) without one."""
        assert self._task is not None
        getter = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait((getter, self._task), return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        exc = self._task.exception()
        if exc is not None:
            raise exc
        return None

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flagd-lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.startup.failed":
            raise LifespanError(reply.get("message", "lifespan startup failed"))

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            raise LifespanError(reply.get("message", "lifespan shutdown failed"))
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


__all__ = ["Lifespan", "RsgiApp", "RsgiRequest"]
