"""Keys that reach every project have a home: listed and revoked over the API and with `flagd keys`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flagd.bootstrap import bootstrap
from flagd.cli import main
from flagd.limits import Limits
from store.stream.embedded import EmbeddedBackend
from tests.flagd.admin_client import ADMIN_KEY, PROJECT_SECRET, Admin, admin_settings, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def _new_key(admin: Admin, scope: str) -> str:
    url = f"/api/projects/{admin.project_id}/api_keys/"
    created = await admin.client.post(url, json={"label": "ci", "scope": scope})
    assert created.status_code == 201, created.text
    raw: str = created.json()["key"]
    return raw


async def test_global_keys_are_listed_and_revocable_over_the_api(admin: Admin) -> None:
    """GET /api/api_keys/ lists the bootstrap key; DELETE revokes it and it is refused from then on."""
    listing = await admin.client.get("/api/api_keys/")
    assert listing.status_code == 200, listing.text
    globals_ = [k for k in listing.json()["results"] if k["project_id"] is None]
    assert [k["label"] for k in globals_] == ["bootstrap admin"]
    bootstrap_id = globals_[0]["id"]
    scoped_route = await admin.client.delete(f"/api/projects/{admin.project_id}/api_keys/{bootstrap_id}/")
    assert scoped_route.status_code == 404
    assert "/api/api_keys/" in scoped_route.json()["detail"]
    revoked = await admin.client.delete(f"/api/api_keys/{bootstrap_id}/")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert (await admin.client.get("/api/projects/")).status_code == 401


async def test_only_global_keys_see_every_key_and_only_global_write_keys_revoke(
    admin: Admin, tmp_path: Path
) -> None:
    """A project-scoped key gets 403 on /api/api_keys/; a global read-only key may list but not revoke."""
    scoped = await _new_key(admin, "write")
    async with admin.as_key(scoped) as client:
        assert (await client.get("/api/api_keys/")).status_code == 403
        assert (await client.delete("/api/api_keys/1/")).status_code == 403
    reader = await asyncio.to_thread(_global_read_key, tmp_path / "flagd.db")
    async with admin.as_key(reader) as client:
        assert (await client.get("/api/api_keys/")).status_code == 200
        assert (await client.delete("/api/api_keys/1/")).status_code == 403
    assert (await admin.client.delete("/api/api_keys/999/")).status_code == 404


def _global_read_key(db: Path) -> str:
    """A global read key, made the way `flagd create-key` makes them (the repository, in its own process)."""

    async def make() -> str:
        backend = await EmbeddedBackend.open(db)
        try:
            created = await backend.repository.create_api_key(
                label="reader", scope="read", project_id=None, actor="test"
            )
            return created.raw_key
        finally:
            await backend.close()

    return asyncio.run(make())


def test_cli_lists_and_revokes_global_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`flagd keys list` shows the bootstrap key with reach "all"; `flagd keys revoke ID` revokes it."""
    monkeypatch.setenv("FLAGD_DATA_PATH", str(tmp_path / "cli.db"))
    monkeypatch.setenv("FLAGD_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
    assert main(["export"]) == 0  # bootstraps: default project + the admin key
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()[1:]]
    [row] = [r for r in rows if r[2] == "all"]
    assert row[6] == "bootstrap admin"
    assert row[5] == "-"
    assert main(["keys", "revoke", row[0]]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert next(line.split("\t")[5] for line in listed.strip().splitlines()[1:]) != "-"
    assert main(["keys", "revoke", "999"]) == 2
    with pytest.raises(SystemExit):
        main(["keys", "revoke", "²"])

    async def authenticate() -> object:
        backend = await EmbeddedBackend.open(tmp_path / "cli.db")
        try:
            return await backend.repository.authenticate(ADMIN_KEY)
        finally:
            await backend.close()

    assert asyncio.run(authenticate()) is None
    assert main(["export"]) == 0  # a restart with the same environment does not bring it back
    assert asyncio.run(authenticate()) is None


async def test_start_up_never_prints_values_from_the_environment(tmp_path: Path) -> None:
    """With FLAGD_BOOTSTRAP_ADMIN_KEY / _PROJECT_SECRET set, the banner names the variables, not values."""
    settings = admin_settings(tmp_path)
    backend = await EmbeddedBackend.open(tmp_path / "flagd.db")
    try:
        for _ in range(2):  # the first start and any later one
            banner = (await bootstrap(backend.repository, settings)).banner("http://x")
            assert ADMIN_KEY not in banner
            assert PROJECT_SECRET not in banner
            assert "$FLAGD_BOOTSTRAP_ADMIN_KEY" in banner
    finally:
        await backend.close()


def test_the_key_cache_bound_cannot_exceed_a_second() -> None:
    """FLAGD_LIMIT_AUTH_CACHE_SECONDS above 1 is refused: it is the documented revocation bound."""
    assert Limits().auth_cache_seconds <= 1
    with pytest.raises(ValueError, match="at most 1"):
        Limits(auth_cache_seconds=5)
