"""Bare Granian apps that answer every request with fixed bytes: the ceiling the load test compares against.

``FLAGD_STUB_BODY`` names a file holding the response (the load test saves a real ``/flags`` answer there),
so the stubs move exactly the bytes flagd moves, with no parsing, evaluation, metrics or logging.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

_BODY = open(os.environ.get("FLAGD_STUB_BODY", os.devnull), "rb").read()  # noqa: SIM115
_ASGI_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
_RSGI_HEADERS = [("content-type", "application/json")]


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _ASGI_HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


async def rsgi_app(scope: Any, protocol: Any) -> None:
    await protocol()
    protocol.response_bytes(200, _RSGI_HEADERS, _BODY)
