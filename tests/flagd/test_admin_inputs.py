"""Hostile admin input: path ids, nesting depth, NUL characters, group type indexes, unexpected errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from flagd.admin import create_admin_app
from flagd.admin.inputs import MAX_DEPTH, parse_id
from store.sql.writes import MAX_STATIC_MEMBERS
from tests.flagd.admin_client import Admin, admin_settings, running_admin
from tests.flagd.strategies import INT64_MAX, bad_ids, nested


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def _audit_count(admin: Admin) -> int:
    response = await admin.client.get(f"/api/projects/{admin.project_id}/audit_log/")
    count: int = response.json()["count"]
    return count


def _id_urls(admin: Admin, raw: str) -> list[tuple[str, str]]:
    """Every admin route with an id in its path, that id replaced by ``raw`` (method, url)."""
    p = f"/api/projects/{admin.project_id}"
    bad = quote(raw, safe="")
    return [
        ("GET", f"/api/projects/{bad}/"),
        ("PATCH", f"/api/projects/{bad}/"),
        ("POST", f"/api/projects/{bad}/rotate_secret/"),
        ("GET", f"/api/projects/{bad}/feature_flags/"),
        ("GET", f"{p}/feature_flags/{bad}/"),
        ("PATCH", f"{p}/feature_flags/{bad}/"),
        ("DELETE", f"{p}/feature_flags/{bad}/"),
        ("POST", f"{p}/feature_flags/{bad}/explain/"),
        ("GET", f"{p}/feature_flags/{bad}/activity/"),
        ("GET", f"{p}/cohorts/{bad}/"),
        ("PATCH", f"{p}/cohorts/{bad}/"),
        ("DELETE", f"{p}/cohorts/{bad}/"),
        ("DELETE", f"{p}/api_keys/{bad}/"),
    ]


def test_parse_id_accepts_exactly_int64_in_ascii_digits() -> None:
    """The one id parser takes 0..int64 max in ASCII digits and nothing else."""
    assert parse_id("0", "id") == 0
    assert parse_id(str(INT64_MAX), "id") == INT64_MAX
    for raw in (str(INT64_MAX + 1), "²", "١٢", "+1", " 1", "1_0", "", "9" * 5000):
        assert parse_id(raw, "id") is None, raw


def test_every_id_route_answers_404_for_ids_that_are_not_int64(tmp_path: Path) -> None:
    """Ids past int64, Unicode digits and 5,000-digit ids are a 404 on every route, and nothing is written."""
    with asyncio.Runner() as runner:
        context = running_admin(admin_settings(tmp_path))
        admin = runner.run(context.__aenter__())
        flag = runner.run(admin.create_flag("kept"))
        audit_before = runner.run(_audit_count(admin))

        @settings(max_examples=25, deadline=None)
        @given(raw=bad_ids())
        def probe(raw: str) -> None:
            async def run() -> None:
                for method, url in _id_urls(admin, raw):
                    response = await admin.client.request(method, url, json={"name": "x", "version": 1})
                    assert response.status_code == 404, (method, url[:80], response.text[:200])
                    assert len(response.content) < 1000  # the id is not echoed in full

            runner.run(run())

        try:
            probe()
            assert runner.run(_audit_count(admin)) == audit_before
            kept = runner.run(admin.client.get(f"{admin.flags_url}{flag['id']}/")).json()
            assert kept["version"] == 1
        finally:
            runner.run(context.__aexit__(None, None, None))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 50_000])
async def test_deeply_nested_bodies_are_400_naming_the_limit(admin: Admin, depth: int) -> None:
    """A flag, cohort or project body nested past the limit is a 400 naming it, never a 500."""
    audit_before = await _audit_count(admin)
    deep = "[" * depth + "1" + "]" * depth
    cohorts = f"/api/projects/{admin.project_id}/cohorts/"
    for method, url, body in [
        ("POST", admin.flags_url, '{"key": "deep", "filters": {"payloads": {"true": %s}}}'),
        ("POST", cohorts, '{"name": "deep", "filters": %s}'),
        ("PATCH", f"/api/projects/{admin.project_id}/", '{"name": %s}'),
    ]:
        raw = (body % deep).encode()
        headers = {"Content-Type": "application/json"}
        response = await admin.client.request(method, url, content=raw, headers=headers)
        assert response.status_code == 400, response.text[:300]
        assert f"{MAX_DEPTH} levels" in response.json()["detail"]
    assert await _audit_count(admin) == audit_before


async def test_nesting_up_to_the_limit_is_accepted(admin: Admin) -> None:
    """A payload nested just within the limit is stored as given."""
    payload = nested(MAX_DEPTH - 4)  # body -> filters -> payloads -> true -> payload
    body = {"key": "nested-ok", "filters": {"groups": [{"properties": []}], "payloads": {"true": payload}}}
    response = await admin.client.post(admin.flags_url, json=body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("url_of", "body"),
    [
        (lambda a: f"/api/projects/{a.project_id}/", {"name": "a\x00b"}),
        (lambda a: "/api/projects/", {"name": "evil\x00"}),
        (lambda a: a.flags_url, {"key": "nul", "name": "x\x00"}),
        (
            lambda a: a.flags_url,
            {"key": "nul", "filters": {"groups": [{"properties": [{"key": "k", "value": "\x00"}]}]}},
        ),
        (lambda a: f"/api/projects/{a.project_id}/cohorts/", {"name": "c", "members": ["a\x00"]}),
    ],
)
async def test_nul_characters_are_400_and_nothing_is_written(
    admin: Admin, url_of: Any, body: dict[str, Any]
) -> None:
    """A NUL anywhere in a body (names, filter values, members) is a 400, not a store error."""
    audit_before = await _audit_count(admin)
    url = url_of(admin)
    method = "PATCH" if url.endswith(f"/{admin.project_id}/") else "POST"
    response = await admin.client.request(method, url, json=body)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["detail"]
    assert await _audit_count(admin) == audit_before


@pytest.mark.parametrize("index", ["00", "01", "²", "٣", "5", "-1", " 1", "1.0"])
async def test_group_type_index_must_be_a_canonical_0_to_4(admin: Admin, index: str) -> None:
    """A group_type_mapping key other than '0'..'4' (leading zeros, Unicode digits) is a 400 naming it."""
    url = f"/api/projects/{admin.project_id}/"
    response = await admin.client.patch(url, json={"group_type_mapping": {index: "company"}})
    assert response.status_code == 400, response.text
    assert response.json()["attr"] == f"group_type_mapping.{index}"
    assert (await admin.client.get(url)).json()["group_type_mapping"] == {}


async def test_an_unexpected_error_is_one_json_500_logged_once() -> None:
    """An exception in an admin handler is answered with a JSON 500 and logged once (nothing re-raises it)."""

    async def boom(request: Request) -> Response:
        raise RuntimeError("kaput")

    app = create_admin_app()
    app.router.routes.append(Route("/boom", boom))
    with capture_logs() as logs:
        transport = httpx.ASGITransport(app=app)  # raises if the app lets the exception out
        async with httpx.AsyncClient(transport=transport, base_url="http://flagd") as client:
            response = await client.get("/boom", headers={"X-Request-Id": "r-1"})
    assert response.status_code == 500
    assert response.json()["type"] == "server_error"
    assert "kaput" not in response.text
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == "r-1"


async def test_a_static_cohort_over_the_member_limit_is_400(admin: Admin) -> None:
    """A static cohort over MAX_STATIC_MEMBERS members is refused naming the limit; one at it is accepted."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    over = [f"u{i}" for i in range(MAX_STATIC_MEMBERS + 1)]
    response = await admin.client.post(url, json={"name": "huge", "is_static": True, "members": over})
    assert response.status_code == 400, response.text[:300]
    assert response.json()["attr"] == "members"
    assert str(MAX_STATIC_MEMBERS) in response.json()["detail"]
    assert (await admin.client.get(url)).json()["count"] == 0
    at = over[:MAX_STATIC_MEMBERS]
    accepted = await admin.client.post(url, json={"name": "big", "is_static": True, "members": at})
    assert accepted.status_code == 201, accepted.text[:300]
