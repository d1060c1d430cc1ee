"""In-process admin API clients for tests: ``create_app`` on an embedded SQLite file in tmp_path, with its
lifespan run for real (bootstrap included) and httpx talking to it through ``ASGITransport``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from flagd.app import create_app
from flagd.settings import Settings

PROJECT_TOKEN = "phc_test000000000000000000000000000000token"
PROJECT_SECRET = "phs_test00000000000000000000000000000secret"
ADMIN_KEY = "phx_test000000000000000000000000000000admin"


def admin_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Embedded settings with deterministic bootstrap credentials (no auth caching: revocation is instant)."""
    base = Settings(
        data_path=tmp_path / "flagd.db",
        bootstrap_project_token=PROJECT_TOKEN,
        bootstrap_project_secret=PROJECT_SECRET,
        bootstrap_admin_key=ADMIN_KEY,
        limits={"auth_cache_seconds": 0.0},
    )
    return base.replace(**changes)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan: startup before the block, shutdown after (failures raise)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    started = await asyncio.wait_for(outbox.get(), timeout=20)
    if started["type"] != "lifespan.startup.complete":
        task.cancel()
        raise RuntimeError(f"startup failed: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        done = await asyncio.wait_for(outbox.get(), timeout=20)
        await task
        assert done["type"] == "lifespan.shutdown.complete", done


class Admin:
    """An httpx client on the app, authenticated as ``key`` (the bootstrap admin by default)."""

    def __init__(self, client: httpx.AsyncClient, project_id: int) -> None:
        self.client = client
        self.project_id = project_id

    def as_key(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(transport=self.client._transport, base_url="http://flagd", headers=headers)

    @property
    def flags_url(self) -> str:
        return f"/api/projects/{self.project_id}/feature_flags/"

    async def create_flag(self, key: str, **fields: Any) -> dict[str, Any]:
        body = {
            "key": key,
            "name": key,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]},
        }
        response = await self.client.post(self.flags_url, json={**body, **fields})
        assert response.status_code == 201, response.text
        flag: dict[str, Any] = response.json()
        return flag

    async def evaluate(self, distinct_id: str = "u1", **body: Any) -> dict[str, Any]:
        """What an SDK gets from ``/flags`` right now."""
        response = await self.client.post(
            "/flags/?v=2", json={"api_key": PROJECT_TOKEN, "distinct_id": distinct_id, **body}
        )
        assert response.status_code == 200, response.text
        flags: dict[str, Any] = response.json()["flags"]
        return flags


@contextlib.asynccontextmanager
async def running_admin(settings: Settings) -> AsyncIterator[Admin]:
    """The whole app on ``settings``, started; an ``Admin`` client for the bootstrap project."""
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://flagd", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            projects = (await client.get("/api/projects/")).json()["results"]
            project_id = next(p["id"] for p in projects if p["api_token"] == PROJECT_TOKEN)
            yield Admin(client, project_id)
