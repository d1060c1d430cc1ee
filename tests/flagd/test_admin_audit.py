"""The audit log (README "Admin REST API"): cohort and project changes leave entries with the actor and
the state before and after, newest first, filterable by entity; rejected changes leave none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.flagd.admin_client import Admin, admin_settings, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def _entries(admin: Admin, entity_type: str, entity_id: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"entity_type": entity_type}
    if entity_id is not None:
        params["entity_id"] = entity_id
    response = await admin.client.get(f"/api/projects/{admin.project_id}/audit_log/", params=params)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def _rule(plan: str) -> dict[str, Any]:
    return {"properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "value": plan}]}}


async def test_cohort_create_update_delete_are_audited(admin: Admin) -> None:
    """Creating, editing and deleting a cohort leaves three entries, newest first, with before and after."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    created = (await admin.client.post(url, json={"name": "Pros", "filters": _rule("pro")})).json()
    updated = await admin.client.patch(
        f"{url}{created['id']}/", json={"filters": _rule("enterprise"), "version": created["version"]}
    )
    assert updated.status_code == 200, updated.text
    deleted = await admin.client.delete(
        f"{url}{created['id']}/", headers={"If-Match": f'"{updated.json()["version"]}"'}
    )
    assert deleted.status_code in (200, 204), deleted.text
    entries = await _entries(admin, "cohort", created["id"])
    assert [e["action"] for e in entries] == ["cohort.deleted", "cohort.updated", "cohort.created"]
    assert all(e["actor"] for e in entries)
    created_entry, updated_entry = entries[2], entries[1]
    assert created_entry["before"] is None
    assert created_entry["after"]["name"] == "Pros"
    assert _plan(updated_entry["before"]) == "pro"
    assert _plan(updated_entry["after"]) == "enterprise"
    assert entries[0]["before"] is not None
    assert [e["action"] for e in await _entries(admin, "flag")] == []  # filtered by entity type


def _plan(cohort: dict[str, Any]) -> str:
    value: str = cohort["filters"]["properties"]["values"][0]["value"]
    return value


async def test_a_rejected_cohort_change_leaves_no_entry(admin: Admin) -> None:
    """An invalid cohort edit is refused with 400 and adds nothing to the audit log."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    created = (await admin.client.post(url, json={"name": "Pros", "filters": _rule("pro")})).json()
    bad = {"properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "operator": "nah"}]}}
    response = await admin.client.patch(
        f"{url}{created['id']}/", json={"filters": bad, "version": created["version"]}
    )
    assert response.status_code == 400
    assert [e["action"] for e in await _entries(admin, "cohort")] == ["cohort.created"]


async def test_project_changes_are_audited(admin: Admin) -> None:
    """Renaming a project, setting its group types and rotating its secret each leave an entry; the secret
    itself never appears in the log."""
    url = f"/api/projects/{admin.project_id}/"
    before = (await admin.client.get(url)).json()
    assert (await admin.client.patch(url, json={"name": "Shop"})).status_code == 200
    assert (await admin.client.patch(url, json={"group_type_mapping": {"0": "company"}})).status_code == 200
    rotated = await admin.client.post(f"{url}rotate_secret/")
    assert rotated.status_code == 200, rotated.text
    entries = await _entries(admin, "project", admin.project_id)
    assert len(entries) >= 3
    assert [e["action"] for e in entries[:3]] == [
        "project.secret_rotated",
        "project.updated",
        "project.updated",
    ]
    assert all(e["actor"] == "key:1 bootstrap admin" for e in entries[:3])
    rename = entries[2]
    assert (rename["before"]["name"], rename["after"]["name"]) == (before["name"], "Shop")
    assert entries[1]["after"]["group_type_mapping"] == {"0": "company"}
    secret = rotated.json()["secret_token"]
    assert secret.startswith("phs_")
    assert secret not in str(entries)
