"""The flag tools: list, get, create, update, set_rollout, toggle, delete.

Arguments are the admin API's fields. Every write goes through the admin repository (same validation, audit
and change log as REST), takes ``version`` (optimistic concurrency: a stale one fails with the current
version) and ``dry_run``, and returns the flag with the change in words (``flagd.admin.reasoning``).
``update_flag`` sends only the fields given: everything else stays as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from flagd.admin.changes import merged_filters, proposed_fields
from flagd.admin.errors import invalid
from flagd.admin.reasoning import described, find_flag
from flagd.mcp.agent import Agent
from flagd.mcp.errors import success, tool_error

Result = Annotated[CallToolResult, dict[str, Any]]
AgentOf = Callable[[Context], Agent]

ProjectId = Annotated[
    int | None, Field(description="the project (default: the API key's project, or the only project)")
]
FlagKey = Annotated[str, Field(description="the flag's key (or its numeric id, as text)")]
Version = Annotated[int, Field(description="the flag version you last read; a stale one is refused", ge=1)]
DryRun = Annotated[bool, Field(description="validate and describe the change, write nothing")]
Filters = Annotated[
    dict[str, Any] | None,
    Field(description="PostHog filters: groups (conditions), multivariate, payloads, holdout, ..."),
]


async def run(ctx: Context, body: Callable[[Agent], Awaitable[Any]]) -> CallToolResult:
    """Run a tool body for the calling agent; any failure becomes the admin API's error as a tool error."""
    try:
        agent_of: AgentOf = ctx.mcp_server.agent_of  # type: ignore[attr-defined]  # FlagdMCP
        return success(await body(agent_of(ctx)))
    except Exception as exc:
        return await tool_error(exc)


async def list_flags(
    ctx: Context,
    search: Annotated[str | None, Field(description="match key or name (case-insensitive)")] = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    offset: Annotated[int, Field(ge=0)] = 0,
    project_id: ProjectId = None,
) -> Result:
    """List the project's live flags (newest definitions, ordered by id)."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        page = await agent.caller.services.repository.list_flags(
            pid, search=search, limit=limit, offset=offset
        )
        return {"count": page.total, "results": page.items}

    return await run(ctx, body)


async def get_flag(ctx: Context, key: FlagKey, project_id: ProjectId = None) -> Result:
    """One flag with its filters and version (send that version back with any write)."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        return await find_flag(agent.caller.services, pid, key)

    return await run(ctx, body)


async def create_flag(
    ctx: Context,
    key: Annotated[str, Field(description="letters, digits, '_', '.' or '-' (1-400)")],
    name: str | None = None,
    filters: Filters = None,
    active: Annotated[bool, Field(description="created inactive unless true")] = False,
    bucketing: Literal["murmur3", "posthog"] | None = None,
    ensure_experience_continuity: bool | None = None,
    dry_run: DryRun = False,
    project_id: ProjectId = None,
) -> Result:
    """Create a flag. It is created INACTIVE (serving no one) unless active=true."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=True)
        data: dict[str, Any] = {"key": key, "active": active}
        optional = {
            "name": name,
            "filters": filters,
            "bucketing": bucketing,
            "ensure_experience_continuity": ensure_experience_continuity,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        services = agent.caller.services
        flag = await services.repository.create_flag(pid, data, actor=agent.actor, dry_run=dry_run)
        return await described(services, None, flag, dry_run=dry_run)

    return await run(ctx, body)


async def _update(
    agent: Agent,
    project_id: int | None,
    key: str,
    version: int,
    dry_run: bool,
    changes_of: Callable[[Any], dict[str, Any]],
) -> Any:
    pid = await agent.project(project_id, write=True)
    services = agent.caller.services
    before = await find_flag(services, pid, key)
    after = await services.repository.update_flag(
        pid, before.id, changes_of(before), actor=agent.actor, expected_version=version, dry_run=dry_run
    )
    return await described(services, before, after, dry_run=dry_run)


async def update_flag(
    ctx: Context,
    key: FlagKey,
    version: Version,
    new_key: Annotated[str | None, Field(description="rename the flag")] = None,
    name: str | None = None,
    filters: Filters = None,
    active: bool | None = None,
    bucketing: Literal["murmur3", "posthog"] | None = None,
    ensure_experience_continuity: bool | None = None,
    dry_run: DryRun = False,
    project_id: ProjectId = None,
) -> Result:
    """Change some fields of a flag; every field not sent keeps its value. ``filters`` is merged key by key
    (groups, multivariate, payloads, aggregation_group_type_index, ...): a key not sent is kept, null removes
    it."""

    def changes(flag: Any) -> dict[str, Any]:
        given = {
            "key": new_key,
            "name": name,
            "filters": merged_filters(flag.filters, filters) if filters is not None else None,
            "active": active,
            "bucketing": bucketing,
            "ensure_experience_continuity": ensure_experience_continuity,
        }
        sent = {k: v for k, v in given.items() if v is not None}
        if not sent:
            raise invalid("", "nothing to change: send at least one field")
        return sent

    return await run(ctx, lambda agent: _update(agent, project_id, key, version, dry_run, changes))


async def set_rollout(
    ctx: Context,
    key: FlagKey,
    version: Version,
    rollout_percentage: Annotated[
        float | None, Field(description="0-100 (null: 100); every condition unless condition_index")
    ],
    condition_index: Annotated[int | None, Field(description="only this condition (0-based)")] = None,
    dry_run: DryRun = False,
    project_id: ProjectId = None,
) -> Result:
    """Set the rollout percentage of a flag's conditions."""

    def changes(flag: Any) -> dict[str, Any]:
        return proposed_fields(flag, rollout_percentage=rollout_percentage, condition_index=condition_index)

    return await run(ctx, lambda agent: _update(agent, project_id, key, version, dry_run, changes))


async def toggle_flag(
    ctx: Context,
    key: FlagKey,
    version: Version,
    active: Annotated[bool, Field(description="true: serve by its conditions; false: serve no one")],
    dry_run: DryRun = False,
    project_id: ProjectId = None,
) -> Result:
    """Turn a flag on or off."""
    return await run(
        ctx, lambda agent: _update(agent, project_id, key, version, dry_run, lambda _: {"active": active})
    )


async def delete_flag(
    ctx: Context, key: FlagKey, version: Version, dry_run: DryRun = False, project_id: ProjectId = None
) -> Result:
    """Soft-delete a flag: SDKs stop getting it (refused while live flags depend on it)."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=True)
        services = agent.caller.services
        before = await find_flag(services, pid, key)
        after = await services.repository.delete_flag(
            pid, before.id, actor=agent.actor, expected_version=version, dry_run=dry_run
        )
        return await described(services, before, after, dry_run=dry_run)

    return await run(ctx, body)
