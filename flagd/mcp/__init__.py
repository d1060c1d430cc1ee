"""flagd for agents: an MCP server (official ``mcp`` SDK) with flag, cohort, explain, what-if and audit tools.

Served at ``/mcp`` (streamable HTTP, admin API keys: ``flagd.mcp.http``) and by ``flagd mcp`` over stdio
(``flagd.mcp.stdio``). Tools live in ``flagd.mcp.tools`` (flags) and ``flagd.mcp.insight`` (explain,
what_if, cohorts, audit log); both call the admin API's repository and ``flagd.admin.reasoning``, so every
write has one path, one validation and one audit trail.
"""

from flagd.mcp.server import TOOLS, WRITE_TOOLS, build_server

__all__ = ["TOOLS", "WRITE_TOOLS", "build_server"]
