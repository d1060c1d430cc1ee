"""Admin API for projects, cohorts, the audit log and the OpenAPI document (in process, embedded store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.routing import Route

from flagd.admin.routes import admin_routes
from tests.flagd.admin_client import ADMIN_KEY, PROJECT_TOKEN, Admin, admin_settings, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def test_project_rename_and_group_types(admin: Admin) -> None:
    """PATCH on a project renames it and sets its group type mapping; bad mappings name the entry."""
    url = f"/api/projects/{admin.project_id}/"
    renamed = await admin.client.patch(url, json={"name": "Shop", "group_type_mapping": {"0": "company"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Shop"
    assert renamed.json()["group_type_mapping"] == {"0": "company"}
    bad = await admin.client.patch(url, json={"group_type_mapping": {"zero": "company"}})
    assert bad.status_code == 400
    assert bad.json()["attr"] == "group_type_mapping.zero"
    unknown = await admin.client.patch(url, json={"colour": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["attr"] == "colour"
    assert (await admin.client.get(url)).json()["name"] == "Shop"


async def test_group_flag_uses_the_projects_group_types(admin: Admin) -> None:
    """With group type 0 = company, a group flag is on for a request carrying that group."""
    await admin.client.patch(
        f"/api/projects/{admin.project_id}/", json={"group_type_mapping": {"0": "company"}}
    )
    filters = {"aggregation_group_type_index": 0, "groups": [{"properties": [], "rollout_percentage": 100}]}
    await admin.create_flag("team-feature", filters=filters)
    assert (await admin.evaluate(groups={"company": "acme"}))["team-feature"]["enabled"] is True
    assert (await admin.evaluate())["team-feature"]["enabled"] is False


async def test_cohort_crud_and_use_in_a_flag(admin: Admin) -> None:
    """A property cohort can be created, targeted by a flag, updated with its version, and deleted."""
    cohorts_url = f"/api/projects/{admin.project_id}/cohorts/"
    body = {
        "name": "Pro users",
        "filters": {
            "properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "value": "pro"}]}
        },
    }
    created = await admin.client.post(cohorts_url, json=body)
    assert created.status_code == 201, created.text
    cohort = created.json()
    cohort_filter = {"key": "id", "type": "cohort", "value": cohort["id"], "operator": "in"}
    await admin.create_flag(
        "for-pros", filters={"groups": [{"properties": [cohort_filter], "rollout_percentage": 100}]}
    )
    assert (await admin.evaluate(person_properties={"plan": "pro"}))["for-pros"]["enabled"] is True
    assert (await admin.evaluate(person_properties={"plan": "free"}))["for-pros"]["enabled"] is False
    url = f"{cohorts_url}{cohort['id']}/"
    stale = await admin.client.patch(url, json={"name": "x", "version": 99})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 1
    renamed = await admin.client.patch(url, json={"name": "Paying users", "version": 1})
    assert renamed.json()["name"] == "Paying users"
    listing = (await admin.client.get(cohorts_url)).json()
    assert [c["name"] for c in listing["results"]] == ["Paying users"]


async def test_invalid_cohort_is_400_and_not_created(admin: Admin) -> None:
    """A cohort with an unknown operator is rejected with its field path, and no cohort exists after."""
    cohorts_url = f"/api/projects/{admin.project_id}/cohorts/"
    body = {
        "name": "Broken",
        "filters": {
            "properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "operator": "nah"}]}
        },
    }
    response = await admin.client.post(cohorts_url, json=body)
    assert response.status_code == 400
    assert any("filters" in e["attr"] for e in response.json()["errors"])
    assert (await admin.client.get(cohorts_url)).json()["count"] == 0


async def test_audit_log_filters_by_entity(admin: Admin) -> None:
    """The project audit log lists every change newest first and filters by entity type and id."""
    first = await admin.create_flag("a")
    await admin.create_flag("b")
    await admin.client.patch(f"{admin.flags_url}{first['id']}/", json={"active": False})
    log_url = f"/api/projects/{admin.project_id}/audit_log/"
    flags_only = (await admin.client.get(log_url, params={"entity_type": "flag"})).json()
    assert flags_only["count"] == 3
    assert flags_only["results"][0]["action"] == "flag.updated"
    one = (await admin.client.get(log_url, params={"entity_type": "flag", "entity_id": first["id"]})).json()
    assert one["count"] == 2
    bad = await admin.client.get(log_url, params={"entity_type": "spaceship"})
    assert bad.status_code == 400
    assert bad.json()["attr"] == "entity_type"


async def test_openapi_document_describes_every_admin_route(admin: Admin) -> None:
    """GET /api/openapi.json is an OpenAPI 3.1 document listing every admin path and method."""
    response = await admin.client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    for route in admin_routes():
        assert isinstance(route, Route)
        if not route.path.endswith("/") or route.path == "/api/openapi.json":
            continue
        assert route.path in document["paths"], route.path
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in document["paths"][route.path], (route.path, method)
    assert "/flags/" in document["paths"]


async def test_unknown_admin_path_is_a_json_404(admin: Admin) -> None:
    """A path nobody serves gets a JSON 404, and a wrong method a JSON 405."""
    missing = await admin.client.get("/api/nothing-here/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = await admin.client.put(admin.flags_url, json={})
    assert wrong.status_code == 405


async def test_admin_responses_carry_a_request_id(admin: Admin) -> None:
    """Every admin answer has X-Request-Id: the client's own when it sent one, else a fresh one."""
    mine = await admin.client.get(admin.flags_url, headers={"X-Request-Id": "trace-123"})
    assert mine.headers["x-request-id"] == "trace-123"
    first = await admin.client.get(admin.flags_url)
    second = await admin.client.get(admin.flags_url)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_readyz_reports_the_embedded_catalog(admin: Admin) -> None:
    """/readyz is 200 once the catalog is loaded, and its version follows admin writes."""
    before = (await admin.client.get("/readyz")).json()
    assert before["ready"] is True
    assert before["mode"] == "embedded"
    await admin.create_flag("bump")
    after = (await admin.client.get("/readyz")).json()
    assert after["version"] > before["version"]
    assert after["projects"] == 1


async def test_property_matching_version_is_a_project_setting(admin: Admin) -> None:
    """PATCH property_matching_version 2 switches ``beta exact false`` from truthiness to text for /flags and
    publishes 2 in the local-evaluation definitions; 3 is refused naming the field; the default is 1."""
    url = f"/api/projects/{admin.project_id}/"
    assert (await admin.client.get(url)).json()["property_matching_version"] == 1
    filters = {"groups": [{"properties": [{"key": "beta", "value": False}], "rollout_percentage": 100}]}
    await admin.create_flag("beta-off", filters=filters, bucketing="posthog")

    async def published() -> int:
        answer = await admin.client.get(
            f"/flags/definitions?token={PROJECT_TOKEN}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        version: int = answer.json()["property_matching_version"]
        return version

    assert (await admin.evaluate(person_properties={"beta": 0}))["beta-off"]["enabled"] is True
    assert await published() == 1
    bad = await admin.client.patch(url, json={"property_matching_version": 3})
    assert (bad.status_code, bad.json()["attr"]) == (400, "property_matching_version")
    changed = await admin.client.patch(url, json={"property_matching_version": 2})
    assert changed.json()["property_matching_version"] == 2
    assert (await admin.evaluate(person_properties={"beta": 0}))["beta-off"]["enabled"] is False
    assert (await admin.evaluate(person_properties={"beta": "false"}))["beta-off"]["enabled"] is True
    assert await published() == 2
