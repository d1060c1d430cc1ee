"""Admin API authentication and scope: 401 without a valid key, 403 outside its scope, @current."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.flagd.admin_client import PROJECT_TOKEN, Admin, admin_settings, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def _new_project(admin: Admin, name: str) -> dict[str, object]:
    response = await admin.client.post("/api/projects/", json={"name": name})
    assert response.status_code == 201, response.text
    project: dict[str, object] = response.json()
    return project


async def _key(admin: Admin, project_id: int, scope: str) -> str:
    response = await admin.client.post(
        f"/api/projects/{project_id}/api_keys/", json={"label": scope, "scope": scope}
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@pytest.mark.parametrize(
    "authorization", [None, "Bearer phx_not_a_real_key_0000000000000000", "Basic dXNlcjpwYXNz", "Bearer "]
)
async def test_missing_or_unknown_key_is_401(admin: Admin, authorization: str | None) -> None:
    """Without a valid bearer key every admin route answers 401 with an authentication_error."""
    headers = {"Authorization": authorization} if authorization else {}
    async with admin.as_key(None) as anonymous:
        for path in ("/api/projects/", admin.flags_url, f"/api/projects/{admin.project_id}/audit_log/"):
            response = await anonymous.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.json()["type"] == "authentication_error"


async def test_read_only_key_can_read_but_not_write(admin: Admin) -> None:
    """A read-scoped key lists flags but gets 403 creating, changing or deleting one."""
    flag = await admin.create_flag("guarded")
    reader_key = await _key(admin, admin.project_id, "read")
    async with admin.as_key(reader_key) as reader:
        assert (await reader.get(admin.flags_url)).status_code == 200
        assert (await reader.post(admin.flags_url, json={"key": "nope"})).status_code == 403
        assert (
            await reader.patch(f"{admin.flags_url}{flag['id']}/", json={"active": False})
        ).status_code == 403
        assert (await reader.delete(f"{admin.flags_url}{flag['id']}/")).status_code == 403
        explain = await reader.post(f"{admin.flags_url}{flag['id']}/explain/", json={"distinct_id": "u"})
        assert explain.status_code == 200  # explaining reads
    assert (await admin.client.get(f"{admin.flags_url}{flag['id']}/")).json()["active"] is True


async def test_project_key_cannot_reach_another_project(admin: Admin) -> None:
    """A key scoped to project A gets 403 on project B's flags and sees only A in the project list."""
    other = await _new_project(admin, "Other team")
    other_flag = (
        await admin.client.post(f"/api/projects/{other['id']}/feature_flags/", json={"key": "theirs"})
    ).json()
    key = await _key(admin, admin.project_id, "write")
    async with admin.as_key(key) as scoped:
        assert (await scoped.get(f"/api/projects/{other['id']}/feature_flags/")).status_code == 403
        assert (
            await scoped.get(f"/api/projects/{other['id']}/feature_flags/{other_flag['id']}/")
        ).status_code == 403
        blocked = await scoped.post(f"/api/projects/{other['id']}/feature_flags/", json={"key": "sneaky"})
        assert blocked.status_code == 403
        visible = (await scoped.get("/api/projects/")).json()["results"]
        assert [p["id"] for p in visible] == [admin.project_id]
        # A flag id from project B is not found through project A either.
        assert (await scoped.get(f"{admin.flags_url}{other_flag['id']}/")).status_code == 404
    listing = (await admin.client.get(f"/api/projects/{other['id']}/feature_flags/")).json()
    assert [f["key"] for f in listing["results"]] == ["theirs"]


async def test_current_resolves_to_the_keys_project(admin: Admin) -> None:
    """@current means the key's own project; for a key reaching every project it needs a single project."""
    await admin.create_flag("mine")
    key = await _key(admin, admin.project_id, "read")
    async with admin.as_key(key) as scoped:
        listing = (await scoped.get("/api/projects/@current/feature_flags/")).json()
        assert [f["key"] for f in listing["results"]] == ["mine"]
    only_project = await admin.client.get("/api/projects/@current/")
    assert only_project.json()["id"] == admin.project_id
    await _new_project(admin, "Second")
    ambiguous = await admin.client.get("/api/projects/@current/feature_flags/")
    assert ambiguous.status_code == 400
    assert ambiguous.json()["attr"] == "project_id"


async def test_revoked_key_stops_working(admin: Admin) -> None:
    """After DELETE on an API key, requests with it are 401."""
    key = await _key(admin, admin.project_id, "write")
    keys = (await admin.client.get(f"/api/projects/{admin.project_id}/api_keys/")).json()["results"]
    key_id = next(k["id"] for k in keys if key.startswith(k["key_prefix"]))
    async with admin.as_key(key) as holder:
        assert (await holder.get(admin.flags_url)).status_code == 200
        revoked = await admin.client.delete(f"/api/projects/{admin.project_id}/api_keys/{key_id}/")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert (await holder.get(admin.flags_url)).status_code == 401


async def test_only_global_write_keys_create_projects(admin: Admin) -> None:
    """A project-scoped key gets 403 creating a project; the global admin key may."""
    key = await _key(admin, admin.project_id, "write")
    async with admin.as_key(key) as scoped:
        assert (await scoped.post("/api/projects/", json={"name": "Nope"})).status_code == 403
    created = await _new_project(admin, "Yes")
    assert str(created["secret_token"]).startswith("phs_")
    assert created["api_token"] != PROJECT_TOKEN


async def test_keys_are_listed_without_their_secret(admin: Admin) -> None:
    """The raw key appears only in the creation response; listings show a prefix."""
    key = await _key(admin, admin.project_id, "read")
    listing = await admin.client.get(f"/api/projects/{admin.project_id}/api_keys/")
    assert key not in listing.text
    assert any(key.startswith(k["key_prefix"]) for k in listing.json()["results"])


async def test_authenticator_caches_lookups_until_invalidated(tmp_path: Path) -> None:
    """Repeated checks of one key reach the repository once per TTL; invalidate() forces a fresh lookup."""
    from flagd.auth import Authenticator
    from store.records import ApiKey
    from store.stream.embedded import EmbeddedBackend

    backend = await EmbeddedBackend.open(tmp_path / "auth.db")
    try:
        created = await backend.repository.create_api_key(
            label="x", scope="read", project_id=None, actor="test"
        )
        lookups: list[str] = []

        async def counted(raw: str) -> ApiKey | None:
            lookups.append(raw)
            return await backend.repository.authenticate(raw)

        authenticate = Authenticator(counted, ttl=60)
        assert (await authenticate(created.raw_key)) is not None
        assert (await authenticate(created.raw_key)) is not None
        assert await authenticate("phx_unknown_key_000000000000") is None
        assert await authenticate("phx_unknown_key_000000000000") is None
        assert len(lookups) == 2
        await backend.repository.revoke_api_key(created.api_key.id, actor="test")
        assert (await authenticate(created.raw_key)) is not None  # still cached
        authenticate.invalidate()
        assert await authenticate(created.raw_key) is None
        assert len(lookups) == 3
    finally:
        await backend.close()


async def test_unknown_project_is_404(admin: Admin) -> None:
    """A key that reaches every project still gets 404 for a project id that does not exist."""
    for path in ("/api/projects/999/", "/api/projects/999/feature_flags/", "/api/projects/999/audit_log/"):
        assert (await admin.client.get(path)).status_code == 404, path
    created = await admin.client.post("/api/projects/999/feature_flags/", json={"key": "orphan"})
    assert created.status_code == 404
