"""Plumbing shared by the SDK endpoints: the ``Request`` they read, query parsing, body limits, answers.

Endpoints see a ``Request`` (path, raw query string, headers as a ``dict[bytes, bytes]``, ``await
request.body(limit)``) and return an ``Answer``; ``AsgiRequest`` here and ``flagd.sdk.rsgi.RsgiRequest``
carry it over either interface, so no endpoint knows which server protocol it is answering.

Everything here is chosen to cost little per request: header lists are prebuilt byte pairs, the query string
parser is memoised (SDKs send a handful of distinct query strings), and the body loop stops as soon as the
limit is passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from flagd.errors import ClientDisconnected, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
# What an endpoint returns: status, body, extra headers (content type included).
Answer = tuple[int, bytes, Headers]

JSON: Headers = [(b"content-type", b"application/json")]
# Every SDK answer carries it, errors included (``SdkApp.respond``): browsers (posthog-js, OFREP web
# providers) call flagd from other origins, and an error without it reaches the page as an opaque status 0.
CORS: Headers = [(b"access-control-allow-origin", b"*")]
TEXT: Headers = [(b"content-type", b"text/plain; charset=utf-8")]


@lru_cache(maxsize=512)
def parse_query(raw: bytes) -> dict[str, str]:
    """``a=1&b=x%20y&flag`` → ``{"a": "1", "b": "x y", "flag": ""}``; the first of repeated names wins."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name not in out:
            out[name] = unquote_plus(value)
    return out


class Request:
    """What an endpoint sees of a request, whichever interface carried it.

    ``SdkApp`` reads the body of a body-carrying route (``load``) before the request is admitted, so an
    endpoint's ``await request.body(limit)`` returns bytes already read."""

    __slots__ = ("_body", "headers", "path", "query_string")

    def __init__(self, path: str, query_string: bytes, headers: dict[bytes, bytes]) -> None:
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self._body: bytes | None = None

    async def body(self, limit: int) -> bytes:
        """The whole body; ``PayloadTooLarge`` (413) past ``limit`` bytes, without buffering past it;
        ``ClientDisconnected`` when the client goes away before it is complete."""
        if self._body is None:
            self._body = await self._read(limit)
        return self._body

    async def load(self, limit: int) -> None:
        """Read the whole body now (``body`` then returns it)."""
        if self._body is None:
            self._body = await self._read(limit)

    async def _read(self, limit: int) -> bytes:
        raise NotImplementedError


class AsgiRequest(Request):
    """A ``Request`` over ASGI: the body comes from ``receive``."""

    __slots__ = ("_receive",)

    def __init__(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]) -> None:
        super().__init__(scope["path"], scope["query_string"], headers)
        self._receive = receive

    async def _read(self, limit: int) -> bytes:
        # The common case (one message, small body) without the read_body loop.
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client disconnected before sending the request body")
        raw: bytes = message.get("body", b"")
        if not message.get("more_body", False) and len(raw) <= limit:
            return raw
        return await read_body(self._receive, self.headers, limit, first=raw)


def check_declared(headers: dict[bytes, bytes], limit: int) -> bool:
    """Whether a ``Content-Length`` is declared; ``PayloadTooLarge`` when it is over ``limit``."""
    declared = headers.get(b"content-length")
    if declared is None or not declared.isdigit():
        return False
    if int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes is over max_body_bytes={limit}")
    return True


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is over max_body_bytes={limit}")


async def read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int, first: bytes | None = None
) -> bytes:
    """The whole request body, refusing (413) anything over ``limit`` bytes without buffering past it.

    ``first``: the body of the first ``http.request`` message when the caller already received it."""
    check_declared(headers, limit)
    if first is None:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client disconnected before sending the request body")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
    else:
        body, more = first, True
    if len(body) > limit:
        raise too_large(limit)
    if not more:
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected(f"the client disconnected after {size} bytes of the request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class UploadWatch:
    """Bounds body reads in time without a timer per request (``asyncio.timeout`` costs several µs each).

    ``start()`` registers the current task with its deadline; a sweep that runs every ``period`` seconds
    while uploads are registered cancels the tasks past their deadline, and ``expired(task)`` then tells that
    cancellation apart from any other. A body is cut off between ``seconds`` and ``seconds + period`` after
    its request began."""

    __slots__ = ("_armed", "_deadlines", "_expired", "period", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.period = min(1.0, seconds / 4)
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._armed = False

    def start(self) -> asyncio.Task[object] | None:
        """Watch the current task's upload; returns the task to pass to ``stop``."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            return None
        self._deadlines[task] = time.monotonic() + self.seconds
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_later(self.period, self._sweep)
        return task

    def stop(self, task: asyncio.Task[object] | None) -> bool:
        """The upload of ``task`` is over; whether it was cut off for its deadline."""
        if task is None:  # pragma: no cover
            return False
        self._deadlines.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            asyncio.get_running_loop().call_later(self.period, self._sweep)
        else:
            self._armed = False
