"""Tool failures: every error a tool meets becomes an ``isError`` result carrying the admin API's own error
body (the REST handler for that exception builds it), so an agent reads the same ``attr`` (field path),
``detail`` and ``current_version`` a REST client would. Unexpected errors are logged and answered with the
admin API's 500 body; nothing of their text reaches the agent.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import structlog
from mcp_types import CallToolResult, TextContent

from flagd.admin.errors import EXCEPTION_HANDLERS, ApiError, invalid

_log = structlog.get_logger("flagd.mcp")


def success(result: Any) -> CallToolResult:
    """A structured result (and its JSON as text for clients that read only text)."""
    structured = msgspec.to_builtins(result)
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured, ensure_ascii=False))],
        structured_content=structured,
    )


def failure(status: int, body: dict[str, Any]) -> CallToolResult:
    shown = {"status": status, **body}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(shown, ensure_ascii=False))],
        structured_content=shown,
        is_error=True,
    )


async def tool_error(exc: Exception) -> CallToolResult:
    """The REST answer to ``exc`` as a tool error."""
    handler = None
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in EXCEPTION_HANDLERS:
            handler = EXCEPTION_HANDLERS[cls]
            break
    if handler is None:
        _log.error("mcp.tool_failed", exc_info=exc)
        return failure(
            500,
            {
                "type": "server_error",
                "code": "error",
                "detail": "an unexpected error occurred; see the server log",
                "attr": None,
            },
        )
    response = await handler(None, exc)
    return failure(response.status_code, json.loads(bytes(response.body)))


def unknown_arguments(tool: str, unknown: list[str], known: list[str]) -> CallToolResult:
    """Arguments the tool does not take are refused (like unknown fields in admin bodies), not ignored."""
    exc: ApiError = invalid(unknown[0], f"unknown argument for {tool}; it takes: {', '.join(known)}")
    body: dict[str, Any] = {"type": exc.type, "code": exc.code, "detail": exc.detail, "attr": exc.attr}
    body["errors"] = [{"attr": name, "detail": "unknown argument"} for name in unknown]
    return failure(exc.status, body)
