"""Who an MCP tool call acts for: an API key (its scope and projects), the admin services, and the agent.

Over HTTP the bearer key is authenticated by ``flagd.mcp.http`` on every request, like the admin API; over
stdio (``flagd mcp``) the local process acts with a key-less write (or, ``--read-only``, read) scope. The
audit log names the agent: ``mcp:<clientInfo.name> (<key:id label>)`` or ``mcp:<clientInfo.name> (stdio)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flagd.admin.access import Caller, resolve_project
from flagd.admin.errors import forbidden
from flagd.auth import actor_for

MAX_CLIENT_NAME = 100


def client_name(ctx: Any) -> str:
    """The MCP client's ``clientInfo.name`` (printable, at most 100 characters), or ``unknown-client``."""
    params = getattr(ctx.request_context.session, "client_params", None)
    info = getattr(params, "client_info", None)
    name = getattr(info, "name", None)
    if not isinstance(name, str) or not name.strip():
        return "unknown-client"
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name.strip())
    return cleaned[:MAX_CLIENT_NAME]


@dataclass(frozen=True, slots=True)
class Agent:
    """One tool call's caller."""

    caller: Caller
    client: str
    transport: str  # "http" or "stdio"

    @property
    def actor(self) -> str:
        via = actor_for(self.caller.key) if self.transport == "http" else "stdio"
        return f"mcp:{self.client} ({via})"

    @property
    def may_write(self) -> bool:
        return self.caller.key.scope == "write"

    async def project(self, project_id: int | None, *, write: bool) -> int:
        """The project a call touches (the key's own when not given), checked like the admin API does."""
        raw = "@current" if project_id is None else str(project_id)
        resolved = await resolve_project(self.caller, raw)
        key = self.caller.key
        if not key.allows(resolved, write=False):
            raise forbidden(f"this API key has no access to project {resolved}")
        if write and not key.allows(resolved, write=True):
            raise forbidden("this API key is read-only")
        await self.caller.services.repository.get_project(resolved)
        return resolved
