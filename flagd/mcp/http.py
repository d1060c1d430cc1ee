"""``/mcp``: the MCP server over streamable HTTP, on the admin API's port, behind the admin API's keys.

``McpEndpoint`` authenticates ``Authorization: Bearer <personal API key>`` on every request exactly as the
admin API does (``flagd.admin.access.caller``: 401 with the same body when missing, unknown or revoked),
records the caller in the ASGI scope for the tools, and hands the request to the SDK's streamable HTTP
handler. Sessions are the SDK's (stateful: the client's ``clientInfo`` from ``initialize`` names the agent
in the audit log; clients speaking the 2026-07-28 protocol send it with every request instead). The app's
lifespan must run ``server.session_manager.run()`` (``flagd.app`` does).

DNS-rebinding protection (a Host/Origin allow-list) is off: it defends servers that trust ambient
credentials, and ``/mcp`` takes only bearer keys, like the rest of the admin API.
"""

from __future__ import annotations

from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from flagd.admin.access import Caller, caller
from flagd.admin.errors import ApiError, api_error
from flagd.mcp.server import FlagdMCP, build_server

PATH = "/mcp"
_CALLER = "flagd.mcp.caller"


class HttpCallers:
    """The caller of an HTTP message: what ``McpEndpoint`` authenticated for its request."""

    transport = "http"

    def caller(self, request: Any) -> Caller:
        found = request.scope.get(_CALLER) if request is not None else None
        if not isinstance(found, Caller):
            raise RuntimeError("an MCP message arrived without an authenticated request")
        return found


class McpEndpoint:
    """ASGI: the admin API's bearer-key check, then the MCP SDK's streamable HTTP handler."""

    def __init__(self, handler: ASGIApp) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            who = await caller(request)
        except ApiError as exc:
            response = await api_error(request, exc)
            await response(scope, receive, send)
            return
        scope[_CALLER] = who
        await self._handler(scope, receive, send)


def mcp_route() -> tuple[Route, FlagdMCP]:
    """The ``/mcp`` route (for the admin app) and its server (whose ``session_manager`` the lifespan runs)."""
    server = build_server(HttpCallers())
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    handler = next(r.endpoint for r in app.routes if isinstance(r, Route) and r.path == PATH)
    return Route(PATH, McpEndpoint(handler), methods=["GET", "POST", "DELETE"]), server
