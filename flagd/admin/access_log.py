"""A log line per admin request (writes at info, reads at debug), with a request id echoed back.

Plain ASGI middleware on the admin app only: the SDK hot path never passes through it. It is also where an
unexpected exception ends: logged once, with its traceback and request id, and answered with a JSON 500.
Nothing re-raises it (Starlette's own error middleware would, and the server would log it a second time).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagd.admin.errors import SERVER_ERROR_BODY

_log = structlog.get_logger("flagd.admin")
_JSON = [(b"content-type", b"application/json")]
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AdminAccessLog:
    """Times each HTTP request, tags it with ``X-Request-Id`` (the client's, or a new one) and logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:128] if incoming.isprintable() and incoming else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()
        answered = False

        async def tagged(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        except Exception as exc:
            status = 500
            _log.error(
                "admin.unhandled_error",
                method=scope["method"],
                path=scope["path"],
                request_id=request_id,
                exc_info=exc,
            )
            if not answered:
                await tagged({"type": "http.response.start", "status": 500, "headers": _JSON})
                await tagged({"type": "http.response.body", "body": SERVER_ERROR_BODY})
        finally:
            method = scope["method"]
            fields: dict[str, Any] = {
                "method": method,
                "path": scope["path"],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": request_id,
            }
            if method in _WRITES or status >= 500:
                _log.info("admin.request", **fields)
            else:
                _log.debug("admin.request", **fields)
