"""The tools that reason about flags (explain, what_if), cohorts, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from flagd.admin.audit import ENTITY_TYPES
from flagd.admin.changes import proposed_fields
from flagd.admin.errors import invalid
from flagd.admin.impact import DEFAULT_LIMIT
from flagd.admin.reasoning import check_ids, check_limit, described_cohort, find_flag
from flagd.admin.reasoning import explain as explain_flag
from flagd.admin.reasoning import what_if as flag_what_if
from flagd.mcp.agent import Agent
from flagd.mcp.tools import DryRun, FlagKey, ProjectId, Result, run


async def explain(
    ctx: Context,
    key: FlagKey,
    distinct_id: Annotated[str, Field(min_length=1, max_length=200)],
    person_properties: Annotated[
        dict[str, Any] | None, Field(description="as a /flags request sends them; they win over stored ones")
    ] = None,
    groups: Annotated[dict[str, str] | None, Field(description="group type -> group key")] = None,
    group_properties: dict[str, dict[str, Any]] | None = None,
    device_id: Annotated[
        str | None, Field(description='what flags with bucketing_identifier "device_id" hash', max_length=200)
    ] = None,
    project_id: ProjectId = None,
) -> Result:
    """The decision /flags gives this person and why: the deciding condition, every filter with the value
    used (from the request or the person store), the bucketing input, bucket value and threshold."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        services = agent.caller.services
        flag = await find_flag(services, pid, key)
        return await explain_flag(
            services,
            flag,
            distinct_id=distinct_id,
            person_properties=person_properties,
            groups=groups,
            group_properties=group_properties,
            device_id=device_id,
        )

    return await run(ctx, body)


async def what_if(
    ctx: Context,
    key: FlagKey,
    rollout_percentage: Annotated[
        float | None,
        Field(
            description="proposed rollout (0-100) for every condition, or only condition_index's",
            ge=0,
            le=100,
        ),
    ] = None,
    condition_index: int | None = None,
    filters: Annotated[
        dict[str, Any] | None, Field(description="proposed filters, merged key by key (null removes a key)")
    ] = None,
    variants: Annotated[
        list[dict[str, Any]] | None,
        Field(description="proposed multivariate variants [{key, rollout_percentage}]"),
    ] = None,
    active: bool | None = None,
    distinct_ids: Annotated[
        list[str] | None,
        Field(description="evaluate these ids instead of the persons seen in the last 7 days"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="ids listed per category")] = DEFAULT_LIMIT,
    project_id: ProjectId = None,
) -> Result:
    """Who exactly turns on or off if the proposed change were made, over the persons seen in the last 7 days
    (or distinct_ids): evaluated, turns_on, turns_off, unchanged, variant changes and a summary. Writes
    nothing. Variants use their own hash: changing variant percentages reassigns persons (reported)."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        services = agent.caller.services
        flag = await find_flag(services, pid, key)
        proposal: dict[str, Any] = {}
        if rollout_percentage is not None:
            proposal["rollout_percentage"] = rollout_percentage
            if condition_index is not None:
                proposal["condition_index"] = condition_index
        others = {"filters": filters, "variants": variants, "active": active}
        proposal.update({name: value for name, value in others.items() if value is not None})
        changes = proposed_fields(flag, **proposal)
        return await flag_what_if(
            services,
            flag,
            changes,
            actor=agent.actor,
            distinct_ids=check_ids(distinct_ids),
            limit=check_limit(limit),
        )

    return await run(ctx, body)


async def list_cohorts(
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    offset: Annotated[int, Field(ge=0)] = 0,
    project_id: ProjectId = None,
) -> Result:
    """List the project's live cohorts."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        page = await agent.caller.services.repository.list_cohorts(pid, limit=limit, offset=offset)
        return {"count": page.total, "results": page.items}

    return await run(ctx, body)


async def create_cohort(
    ctx: Context,
    name: str,
    description: str | None = None,
    filters: Annotated[
        dict[str, Any] | None,
        Field(description='{"properties": {"type": "AND"|"OR", "values": [...]}} (PostHog cohort filters)'),
    ] = None,
    is_static: bool | None = None,
    members: Annotated[list[str] | None, Field(description="static cohorts: the distinct ids")] = None,
    dry_run: DryRun = False,
    project_id: ProjectId = None,
) -> Result:
    """Create a cohort (property, behavioural or static) that flags can target."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=True)
        given = {
            "name": name,
            "description": description,
            "filters": filters,
            "is_static": is_static,
            "members": members,
        }
        data = {k: v for k, v in given.items() if v is not None}
        services = agent.caller.services
        cohort = await services.repository.create_cohort(pid, data, actor=agent.actor, dry_run=dry_run)
        return described_cohort(cohort, dry_run=dry_run)

    return await run(ctx, body)


async def audit_log(
    ctx: Context,
    entity_type: Literal["flag", "cohort", "project", "api_key"] | None = None,
    key: Annotated[str | None, Field(description="only this flag's entries (key or id)")] = None,
    entity_id: int | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    offset: Annotated[int, Field(ge=0)] = 0,
    project_id: ProjectId = None,
) -> Result:
    """Who changed what, newest first: actor (API key, or mcp:<client> for agents), action, before/after."""

    async def body(agent: Agent) -> Any:
        pid = await agent.project(project_id, write=False)
        services = agent.caller.services
        kind, ident = entity_type, entity_id
        if key is not None:
            if kind not in (None, "flag"):
                raise invalid("key", "names a flag: use it without entity_type, or with entity_type flag")
            kind, ident = "flag", (await find_flag(services, pid, key)).id
        if kind is not None and kind not in ENTITY_TYPES:
            raise invalid("entity_type", f"must be one of {', '.join(ENTITY_TYPES)}")
        page = await services.repository.audit_log(
            pid, entity_type=kind, entity_id=ident, limit=limit, offset=offset
        )
        return {"count": page.total, "results": page.items}

    return await run(ctx, body)
