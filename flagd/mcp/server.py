"""The flagd MCP server: the tools, their annotations, and who may see and call which.

``build_server(source)`` registers every tool on an ``MCPServer`` (the official SDK). ``source`` says who a
call acts for (``flagd.mcp.http``: the request's bearer key; ``flagd.mcp.stdio``: the local process). A
middleware in front of every message hides write tools from read-only callers (``tools/list``), refuses
them if called anyway (403 body, as the admin API), and refuses arguments a tool does not take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp_types import ListToolsResult, ToolAnnotations

from flagd.admin.access import Caller
from flagd.admin.errors import forbidden
from flagd.mcp import insight, tools
from flagd.mcp.agent import Agent, client_name
from flagd.mcp.errors import tool_error, unknown_arguments

INSTRUCTIONS = """flagd feature flags. Read before you write: get_flag gives the version every write needs;
what_if shows exactly which persons (seen in the last 7 days) a change turns on or off; explain says why a
person gets what they get. Writes take dry_run; create_flag creates flags inactive unless active=true. A
stale version fails with the current version: read again, re-check, retry. Every write returns the change
in words (widens / narrows, how many persons are served)."""

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
CREATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
CHANGE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

# name -> (function, annotations); the write tools are those not read-only.
TOOLS: dict[str, tuple[Callable[..., Any], ToolAnnotations]] = {
    "list_flags": (tools.list_flags, READ),
    "get_flag": (tools.get_flag, READ),
    "create_flag": (tools.create_flag, CREATE),
    "update_flag": (tools.update_flag, CHANGE),
    "set_rollout": (tools.set_rollout, CHANGE),
    "toggle_flag": (tools.toggle_flag, CHANGE),
    "delete_flag": (tools.delete_flag, CHANGE),
    "list_cohorts": (insight.list_cohorts, READ),
    "create_cohort": (insight.create_cohort, CREATE),
    "explain": (insight.explain, READ),
    "what_if": (insight.what_if, READ),
    "audit_log": (insight.audit_log, READ),
}
WRITE_TOOLS = frozenset(name for name, (_, notes) in TOOLS.items() if not notes.read_only_hint)


class CallerSource(Protocol):
    """Who a message acts for, from the transport's request (None over stdio)."""

    transport: str

    def caller(self, request: Any) -> Caller:
        """The authenticated caller (raises when there is none)."""
        ...


class FlagdMCP(MCPServer):
    """``MCPServer`` that knows who its callers are (``agent_of``)."""

    def __init__(self, source: CallerSource) -> None:
        super().__init__("flagd", instructions=INSTRUCTIONS, version="1", warn_on_duplicate_tools=True)
        self.source = source
        self._arguments: dict[str, list[str]] | None = None
        self.middleware.append(self._guard)

    def agent_of(self, ctx: Context) -> Agent:
        request = ctx.request_context.request
        return Agent(self.source.caller(request), client_name(ctx), self.source.transport)

    def _may_write(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        try:
            return self.source.caller(ctx.request).key.scope == "write"
        except Exception:
            return False

    async def _known_arguments(self) -> dict[str, list[str]]:
        if self._arguments is None:
            listed = await self.list_tools()
            self._arguments = {
                t.name: sorted(p for p in (t.input_schema.get("properties") or {}) if p != "ctx")
                for t in listed
            }
        return self._arguments

    async def _guard(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            if self._may_write(ctx):
                return result
            if isinstance(result, ListToolsResult):
                kept = [t for t in result.tools if t.name not in WRITE_TOOLS]
                return result.model_copy(update={"tools": kept})
            if isinstance(result, dict) and isinstance(result.get("tools"), list):  # the wire form
                wire = [
                    t for t in result["tools"] if not (isinstance(t, dict) and t.get("name") in WRITE_TOOLS)
                ]
                return {**result, "tools": wire}
            return result
        if ctx.method == "tools/call" and isinstance(ctx.params, dict):
            name = ctx.params.get("name")
            if name in WRITE_TOOLS and not self._may_write(ctx):
                return await tool_error(forbidden("this API key is read-only: it may only use read tools"))
            known = (await self._known_arguments()).get(str(name))
            arguments = ctx.params.get("arguments")
            if known is not None and isinstance(arguments, dict):
                unknown = sorted(str(a) for a in arguments if a not in known)
                if unknown:
                    return unknown_arguments(str(name), unknown, known)
        return await call_next(ctx)


def build_server(source: CallerSource) -> FlagdMCP:
    """An MCP server with every flagd tool, acting for the callers ``source`` names."""
    server = FlagdMCP(source)
    for name, (fn, notes) in TOOLS.items():
        server.add_tool(fn, name=name, annotations=notes, structured_output=True)
    return server
