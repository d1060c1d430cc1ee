"""Shared material for the SDK endpoint tests: two real projects compiled into a real Catalog, and the app."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from flagd.limits import Limits
from flagd.metrics import Metrics
from flagd.sdk.app import SdkApp
from flagd.sdk.persons import Persons
from flagd.shedding import LoadShedder
from store.catalog import Catalog, ProjectData, build_project_state
from store.records import ApiKey

TOKEN_A = "phc_project_a_token_000000000000000000"
SECRET_A = "phs_project_a_secret_00000000000000000"
TOKEN_B = "phc_project_b_token_000000000000000000"
SECRET_B = "phs_project_b_secret_00000000000000000"
PERSONAL_A = "phx_personal_key_for_project_a_000000"  # read, project A only
PERSONAL_ALL = "phx_personal_key_for_every_project_00"  # read, every project
PERSONAL_REVOKED = "phx_personal_key_revoked_0000000000000"


def flag(
    flag_id: int,
    key: str,
    groups: list[dict[str, Any]],
    *,
    project: int = 1,
    active: bool = True,
    bucketing: str = "posthog",
    **filters: Any,
) -> dict[str, Any]:
    """A flag definition in PostHog's shape (as ``FlagRecord.definition()`` gives it)."""
    return {
        "id": flag_id,
        "team_id": project,
        "key": key,
        "name": f"{key} flag",
        "active": active,
        "deleted": False,
        "version": 3,
        "bucketing": bucketing,
        "ensure_experience_continuity": False,
        "filters": {"groups": groups, **filters},
    }


EVERYONE = [{"properties": [], "rollout_percentage": 100}]
FLAGS_A = [
    flag(1, "always-on", EVERYONE, payloads={"true": json.dumps({"color": "blue"})}),
    flag(2, "disabled-flag", EVERYONE, active=False),
    flag(
        3,
        "beta-by-email",
        [
            {
                "properties": [
                    {"key": "email", "value": "@example.com", "operator": "icontains", "type": "person"}
                ],
                "rollout_percentage": 100,
            }
        ],
    ),
    flag(
        4,
        "checkout-test",
        EVERYONE,
        multivariate={
            "variants": [
                {"key": "control", "name": "Control", "rollout_percentage": 50},
                {"key": "test", "name": "Test", "rollout_percentage": 50},
            ]
        },
        payloads={"control": json.dumps({"steps": 3}), "test": json.dumps({"steps": 1})},
    ),
    flag(5, "half-rollout", [{"properties": [], "rollout_percentage": 50}]),
    flag(
        6,
        "company-flag",
        [
            {
                "properties": [
                    {
                        "key": "plan",
                        "value": ["enterprise"],
                        "operator": "exact",
                        "type": "group",
                        "group_type_index": 0,
                    }
                ],
                "rollout_percentage": 100,
            }
        ],
        aggregation_group_type_index=0,
    ),
    flag(7, "murmur-flag", [{"properties": [], "rollout_percentage": 30}], bucketing="murmur3"),
    flag(
        8,
        "depends-on-missing",
        [
            {
                "properties": [
                    {"key": "999", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
                ],
                "rollout_percentage": 100,
            }
        ],
    ),
]
FLAGS_B = [
    flag(101, "b-only-flag", EVERYONE, project=2),
    flag(102, "always-on", [{"properties": [], "rollout_percentage": 0}], project=2),
]


def project_data(project_id: int, token: str, secret: str, flags: list[dict[str, Any]]) -> ProjectData:
    return ProjectData(
        project_id=project_id,
        api_token=token,
        secret_token_hash=hashlib.sha256(secret.encode()).hexdigest(),
        group_type_mapping={"0": "company"},
        version=7 + project_id,
        flags=flags,
        cohorts=[],
    )


def make_catalog() -> Catalog:
    catalog = Catalog()
    catalog.replace_all(
        {
            1: build_project_state(project_data(1, TOKEN_A, SECRET_A, FLAGS_A)),
            2: build_project_state(project_data(2, TOKEN_B, SECRET_B, FLAGS_B)),
        }
    )
    return catalog


def _key(key_id: int, project: int | None, revoked: bool = False) -> ApiKey:
    now = datetime.now(UTC)
    return ApiKey(
        id=key_id,
        label="k",
        key_prefix="phx_",
        project_id=project,
        scope="read",
        created_at=now,
        created_by="test",
        revoked_at=now if revoked else None,
    )


class KeyBook:
    """The ``authenticate`` seam backed by a dict (the real one is ``AdminRepository.authenticate``; e2e tests
    use that), counting lookups so tests can see the cache at work."""

    def __init__(self, delay: float = 0.0, gate: asyncio.Event | None = None) -> None:
        self.keys = {PERSONAL_A: _key(1, 1), PERSONAL_ALL: _key(2, None), PERSONAL_REVOKED: _key(3, 1, True)}
        self.calls = 0
        self.delay = delay
        self.gate = gate  # when set, every lookup waits for it: an admitted request held in flight
        self.entered = asyncio.Event()  # set by the first lookup

    async def __call__(self, raw_key: str) -> ApiKey | None:
        self.calls += 1
        self.entered.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.gate is not None:
            await self.gate.wait()
        return self.keys.get(raw_key)


async def fallback_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """Stands in for the admin API: answers 404 ``{"fallback": true}`` and completes the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"fallback":true}'})


class Health:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {"ready": True, "version": 9, "lag": 0.002, "source": "embedded"}

    def __call__(self) -> dict[str, Any]:
        return dict(self.state)


def make_app(
    catalog: Catalog | None = None,
    *,
    limits: Limits | None = None,
    shedder: LoadShedder | None = None,
    keys: KeyBook | None = None,
    health: Health | None = None,
    metrics: Metrics | None = None,
    persons: Persons | None = None,
) -> SdkApp:
    return SdkApp(
        catalog=catalog or make_catalog(),
        fallback=fallback_app,
        authenticate=keys or KeyBook(),
        health=health or Health(),
        limits=limits or Limits(),
        shedder=shedder or LoadShedder(),
        metrics=metrics or Metrics(),
        persons=persons,
    )


def client(app: SdkApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flagd.test")
