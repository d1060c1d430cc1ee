"""Agents on flagd through the real ``mcp`` client: streamable HTTP at ``/mcp`` on a real Granian server, and
``flagd mcp`` over stdio on the same store."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Implementation

from tests.e2e.conftest import ROOT, FlagdServer, wait_until

pytestmark = pytest.mark.e2e

READ_TOOLS = {"list_flags", "get_flag", "list_cohorts", "explain", "what_if", "audit_log"}
WRITE_TOOLS = {"create_flag", "update_flag", "set_rollout", "toggle_flag", "delete_flag", "create_cohort"}
PERSONS = [f"person-{i}" for i in range(150)]


@asynccontextmanager
async def mcp_http(server: FlagdServer, key: str, name: str = "e2e-agent") -> AsyncIterator[ClientSession]:
    """An initialized MCP session over streamable HTTP with a bearer key."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write, client_info=Implementation(name=name, version="1.0")) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def mcp_stdio(server: FlagdServer, name: str, *args: str) -> AsyncIterator[ClientSession]:
    """``flagd mcp`` as a subprocess on the server's store, with an initialized session."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "flagd", "mcp", *args], env=dict(server.env), cwd=str(ROOT)
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, client_info=Implementation(name=name, version="1.0")) as session,
    ):
        await session.initialize()
        yield session


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def refused(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result.structured_content
    assert result.structured_content is not None
    return result.structured_content


def seed_persons(server: FlagdServer) -> None:
    """Every person in PERSONS sends one event (so the person store has seen them), with a plan property."""
    batch = [
        {
            "event": "$pageview",
            "distinct_id": pid,
            "properties": {"$set": {"plan": "pro" if i % 4 else "free"}},
        }
        for i, pid in enumerate(PERSONS)
    ]
    response = httpx.post(f"{server.url}/batch/", json={"api_key": server.project_token, "batch": batch})
    assert response.status_code == 200, response.text


def flags(server: FlagdServer, distinct_id: str) -> dict[str, Any]:
    """``POST /flags/?v=2``; a 503 (load shed on this busy machine) is asked again, as it says to."""
    body = {"api_key": server.project_token, "distinct_id": distinct_id}
    for _ in range(50):
        response = httpx.post(f"{server.url}/flags/?v=2", json=body, timeout=10)
        if response.status_code != 503:
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["flags"]
    return found


def answers(server: FlagdServer, key: str) -> dict[str, Any]:
    """What ``/flags`` says about ``key`` for every person (value: False, True or a variant)."""
    out = {}
    for pid in PERSONS:
        record = flags(server, pid).get(key)
        out[pid] = (record["variant"] or record["enabled"]) if record else False
    return out


def wait_served_version(server: FlagdServer, key: str, version: int) -> None:
    wait_until(lambda: flags(server, PERSONS[0]).get(key, {}).get("metadata", {}).get("version") == version)


@pytest.fixture(params=["flagd_embedded", pytest.param("flagd_distributed", marks=pytest.mark.integration)])
def any_flagd(request: pytest.FixtureRequest) -> FlagdServer:
    """A real server in embedded mode, and one on PostgreSQL + Redis (the Redis person store)."""
    server: FlagdServer = request.getfixturevalue(request.param)
    return server


async def test_agent_script_creates_explains_what_ifs_and_rolls_out(any_flagd: FlagdServer) -> None:
    """An agent creates an inactive flag, turns it on, explains a decision, asks what a rollout 10 → 35 %
    does, is refused on a stale version and recovers, then rolls out: the persons the what-if named are
    exactly those whose /flags answer changed, and the audit log names the agent (embedded SQLite, and
    PostgreSQL + Redis with the Redis person store)."""
    server = any_flagd
    seed_persons(server)
    async with mcp_http(server, server.admin_key, name="rollout-agent") as agent:
        created = ok(
            await agent.call_tool(
                "create_flag",
                {
                    "key": "new-checkout",
                    "filters": {"groups": [{"properties": [], "rollout_percentage": 10}]},
                },
            )
        )
        assert created["flag"]["active"] is False
        assert "inactive" in created["change"]["description"]
        on = ok(await agent.call_tool("toggle_flag", {"key": "new-checkout", "version": 1, "active": True}))
        assert on["change"]["direction"] == "widens"
        served = on["change"]["impact"]["served_after"]
        assert (
            f"about {served} of the {len(PERSONS)} persons seen in the last 7 days"
            in on["change"]["description"]
        )
        wait_served_version(server, "new-checkout", 2)
        before = answers(server, "new-checkout")
        assert sum(before.values()) == served

        why = ok(await agent.call_tool("explain", {"key": "new-checkout", "distinct_id": PERSONS[0]}))
        assert why["decision"]["enabled"] == before[PERSONS[0]]
        condition = why["conditions"][0]
        assert condition["threshold"] == pytest.approx(0.10)
        assert condition["bucketing_id"] == PERSONS[0]
        assert (condition["bucket_value"] <= 0.10) == before[PERSONS[0]]
        assert "new-checkout" in condition["bucket_input"]

        plan = ok(
            await agent.call_tool("what_if", {"key": "new-checkout", "rollout_percentage": 35, "limit": 1000})
        )
        assert plan["evaluated"] == len(PERSONS)
        assert plan["turns_off"] == []
        assert plan["direction"] == "widens"
        assert plan["unchanged"] == len(PERSONS) - plan["turns_on_count"]
        assert "rollout 10 % → 35 %" in plan["summary"]

        stale = refused(
            await agent.call_tool(
                "set_rollout", {"key": "new-checkout", "version": 1, "rollout_percentage": 35}
            )
        )
        assert stale["status"] == 409
        assert stale["current_version"] == 2
        current = ok(await agent.call_tool("get_flag", {"key": "new-checkout"}))
        rolled = ok(
            await agent.call_tool(
                "set_rollout",
                {"key": "new-checkout", "version": current["version"], "rollout_percentage": 35},
            )
        )
        assert rolled["flag"]["version"] == 3
        assert rolled["change"]["impact"]["turns_on_count"] == plan["turns_on_count"]
        wait_served_version(server, "new-checkout", 3)
        after = answers(server, "new-checkout")
        changed = {pid for pid in PERSONS if before[pid] != after[pid]}
        assert changed == set(plan["turns_on"])
        assert all(after[pid] for pid in changed)

        log = ok(await agent.call_tool("audit_log", {"key": "new-checkout"}))
    actors = {entry["actor"] for entry in log["results"]}
    assert actors == {"mcp:rollout-agent (key:1 bootstrap admin)"}, actors
    rest = server.admin("GET", f"/api/projects/{server.project_id}/audit_log/?entity_type=flag")
    assert rest["results"][0]["actor"].startswith("mcp:rollout-agent")


async def test_invalid_filters_are_refused_with_the_field_and_nothing_is_written(
    flagd_embedded: FlagdServer,
) -> None:
    """A write with invalid filters is a tool error naming the field like the REST 400; dry runs and refused
    writes leave the flag, its version and the audit log as they were; filters keys not sent are kept."""
    server = flagd_embedded
    flag = server.create_flag("guarded", filters={"groups": [{"properties": [], "rollout_percentage": 50}]})
    bad = {"groups": [{"properties": [{"key": "plan", "operator": "no_such_op", "value": "x"}]}]}
    rest = server.request(
        "PATCH",
        f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/",
        json={"filters": bad, "version": flag["version"]},
    )
    assert rest.status_code == 400
    async with mcp_http(server, server.admin_key) as agent:
        error = refused(
            await agent.call_tool(
                "update_flag", {"key": "guarded", "version": flag["version"], "filters": bad}
            )
        )
        assert error["status"] == 400
        assert error["attr"] == rest.json()["attr"] == "filters.groups[0].properties[0].operator"
        assert error["errors"] == rest.json()["errors"]
        unknown = refused(await agent.call_tool("get_flag", {"key": "guarded", "verison": 1}))
        assert unknown["attr"] == "verison"
        dry = ok(
            await agent.call_tool(
                "set_rollout", {"key": "guarded", "version": 1, "rollout_percentage": 5, "dry_run": True}
            )
        )
        assert dry["dry_run"] is True
        assert dry["flag"]["version"] == 2
        assert dry["change"]["direction"] in ("narrows", "none")
        payloads = {"true": '{"colour": "green"}'}
        ok(
            await agent.call_tool(
                "create_flag",
                {"key": "kept", "filters": {"groups": [{"rollout_percentage": 10}], "payloads": payloads}},
            )
        )
        narrowed = ok(
            await agent.call_tool(
                "update_flag",
                {"key": "kept", "version": 1, "filters": {"groups": [{"rollout_percentage": 5}]}},
            )
        )
        assert narrowed["flag"]["filters"]["payloads"] == payloads  # not sent, so kept
        assert narrowed["flag"]["filters"]["groups"] == [{"rollout_percentage": 5}]
        gone = ok(await agent.call_tool("delete_flag", {"key": "guarded", "version": 1, "dry_run": True}))
        assert gone["flag"]["deleted"] is True
    now = server.admin("GET", f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/")
    assert now["version"] == 1
    assert now["filters"] == flag["filters"]
    assert not now["deleted"]
    history = server.admin("GET", f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/activity/")
    assert history["count"] == 1


async def test_read_only_key_sees_and_may_call_only_read_tools(flagd_embedded: FlagdServer) -> None:
    """A read-only API key lists only the read tools and a write call is refused (403), while a write key
    lists all twelve with correct annotations; /mcp without a key is a 401 like the admin API."""
    server = flagd_embedded
    read_key = server.admin(
        "POST", f"/api/projects/{server.project_id}/api_keys/", json={"label": "viewer", "scope": "read"}
    )["key"]
    async with mcp_http(server, read_key) as viewer:
        names = {tool.name for tool in (await viewer.list_tools()).tools}
        assert names == READ_TOOLS
        denied = refused(await viewer.call_tool("create_flag", {"key": "sneaky"}))
        assert denied["status"] == 403
    async with mcp_http(server, server.admin_key) as admin:
        listed = {tool.name: tool for tool in (await admin.list_tools()).tools}
    assert set(listed) == READ_TOOLS | WRITE_TOOLS
    for name, tool in listed.items():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READ_TOOLS), name
    assert listed["delete_flag"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert listed["create_flag"].annotations.destructive_hint is False  # type: ignore[union-attr]
    assert server.request("GET", "/api/projects/").status_code == 200
    assert server.request("POST", "/mcp", headers={"Authorization": ""}, json={}).status_code == 401
    assert not any(
        f["key"] == "sneaky" for f in server.admin("GET", "/api/projects/@current/feature_flags/")["results"]
    )


async def test_what_if_over_rest_matches_mcp_and_reports_variant_reshuffles(
    flagd_embedded: FlagdServer,
) -> None:
    """POST .../what_if/ answers what the MCP tool answers; a change of variant percentages is reported as
    persons changing variant, and those are exactly the persons whose /flags variant changes."""
    server = flagd_embedded
    seed_persons(server)
    variants = [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
    flag = server.create_flag(
        "colours",
        filters={
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": variants},
        },
    )
    wait_served_version(server, "colours", 1)
    proposal = [{"key": "a", "rollout_percentage": 20}, {"key": "b", "rollout_percentage": 80}]
    path = f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/what_if/"
    rest = server.admin("POST", path, json={"variants": proposal, "limit": 1000})
    assert server.request("POST", path, json={"variants": proposal, "bogus": 1}).status_code == 400
    documented = server.admin("GET", "/api/openapi.json")["paths"]
    assert "post" in documented["/api/projects/{project_id}/feature_flags/{flag_id}/what_if/"]
    async with mcp_http(server, server.admin_key) as agent:
        tool = ok(await agent.call_tool("what_if", {"key": "colours", "variants": proposal, "limit": 1000}))
    assert tool["variant_changes"] == rest["variant_changes"]
    assert rest["reshuffles_variants"] is True
    assert rest["turns_on"] == rest["turns_off"] == []
    assert "change variant" in rest["summary"]
    before = answers(server, "colours")
    server.update_flag(flag, filters={**flag["filters"], "multivariate": {"variants": proposal}})
    wait_served_version(server, "colours", 2)
    after = answers(server, "colours")
    moved = {pid for pid in PERSONS if before[pid] != after[pid]}
    assert moved == {change["distinct_id"] for change in rest["variant_changes"]}


async def test_stdio_agent_works_on_the_running_servers_store(flagd_embedded: FlagdServer) -> None:
    """``flagd mcp`` over stdio writes to the store the running server serves (SDKs see the flag), the audit
    log names the stdio agent, and --read-only offers only the read tools."""
    server = flagd_embedded
    async with mcp_stdio(server, "local-agent") as agent:
        everyone = {"groups": [{"properties": [], "rollout_percentage": 100}]}
        created = ok(
            await agent.call_tool("create_flag", {"key": "from-stdio", "active": True, "filters": everyone})
        )
        assert created["flag"]["created_by"] == "mcp:local-agent (stdio)"
    wait_until(lambda: flags(server, "anyone").get("from-stdio", {}).get("enabled") is True)
    entries = server.admin("GET", f"/api/projects/{server.project_id}/audit_log/")["results"]
    assert entries[0]["actor"] == "mcp:local-agent (stdio)"
    async with mcp_stdio(server, "viewer", "--read-only") as viewer:
        assert {tool.name for tool in (await viewer.list_tools()).tools} == READ_TOOLS
        listed = ok(await viewer.call_tool("list_flags", {"search": "from-stdio"}))
    assert [f["key"] for f in listed["results"]] == ["from-stdio"]


async def test_explain_shows_request_and_stored_values_and_what_if_reads_stored_properties(
    flagd_embedded: FlagdServer,
) -> None:
    """explain says whether a property came from the request or the person store; a what-if over named ids
    reads their stored properties like /flags, and names exactly the ids whose answer then changes."""
    server = flagd_embedded
    seed_persons(server)
    pro = {"key": "plan", "value": "pro", "operator": "exact", "type": "person"}
    flag = server.create_flag(
        "pro-only", filters={"groups": [{"properties": [pro], "rollout_percentage": 100}]}
    )
    wait_served_version(server, "pro-only", 1)
    free = PERSONS[0]  # every fourth person is on the free plan
    async with mcp_http(server, server.admin_key) as agent:
        stored = ok(await agent.call_tool("explain", {"key": "pro-only", "distinct_id": free}))
        assert stored["properties_used"] == [{"key": "plan", "value": "free", "from": "stored"}]
        assert stored["decision"]["enabled"] is False
        sent = ok(
            await agent.call_tool(
                "explain", {"key": "pro-only", "distinct_id": free, "person_properties": {"plan": "pro"}}
            )
        )
        assert sent["properties_used"] == [{"key": "plan", "value": "pro", "from": "request"}]
        assert sent["decision"]["enabled"] is True
        anyone = {"key": "plan", "operator": "is_set", "type": "person"}
        widened = {"groups": [{"properties": [anyone], "rollout_percentage": 100}]}
        plan = ok(
            await agent.call_tool(
                "what_if",
                {"key": "pro-only", "filters": widened, "distinct_ids": PERSONS[:40], "limit": 1000},
            )
        )
    assert plan["population"] == "the 40 distinct ids given"
    assert set(plan["turns_on"]) == {pid for i, pid in enumerate(PERSONS[:40]) if i % 4 == 0}
    before = answers(server, "pro-only")
    server.update_flag(flag, filters=widened)
    wait_served_version(server, "pro-only", 2)
    after = answers(server, "pro-only")
    assert {pid for pid in PERSONS[:40] if before[pid] != after[pid]} == set(plan["turns_on"])
