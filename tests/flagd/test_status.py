"""GET /status and /status.json on the SDK app: the page, the document's shape, what it counts and hides."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx

from flagd.metrics import Metrics
from flagd.shedding import LoadShedder
from flagd.status.board import redact
from tests.flagd.sdk_support import FLAGS_A, SECRET_A, TOKEN_A, TOKEN_B, Health, client, make_app

ROUTE_FIELDS = {"count", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "shed"}


async def _document_when(http: httpx.AsyncClient, done: Any) -> dict[str, Any]:
    """Poll /status.json until ``done(document)`` holds (slices close when their second is over)."""
    deadline = time.monotonic() + 5.0
    while True:
        response = await http.get("/status.json")
        assert response.status_code == 200
        document: dict[str, Any] = response.json()
        if done(document):
            return document
        assert time.monotonic() < deadline, f"condition not met; last document: {document}"
        await asyncio.sleep(0.1)


async def _flags(http: httpx.AsyncClient, distinct_id: str = "u") -> httpx.Response:
    return await http.post("/flags?v=2", content=json.dumps({"api_key": TOKEN_A, "distinct_id": distinct_id}))


async def test_status_page_is_one_self_contained_html_page() -> None:
    """/status is HTML with its script and styles inline: no external request, nothing to build."""
    async with client(make_app()) as http:
        response = await http.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script src" not in page
    assert 'rel="stylesheet"' not in page
    assert "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace is a name, never fetched
    assert "status.json" in page


async def test_status_json_counts_every_request_with_the_issue_shape() -> None:
    """After 40 /flags requests, the 1-minute figures count exactly 40 with p50 <= p90 <= p99 in ms."""
    async with client(make_app()) as http:
        for n in range(40):
            assert (await _flags(http, f"user-{n}")).status_code == 200
        document = await _document_when(http, lambda d: "flags" in d["routes"])
    assert document["window_seconds"] == 60
    flags = document["routes"]["flags"]
    assert set(flags) == ROUTE_FIELDS
    assert flags["count"] == 40
    assert flags["errors"] == 0
    assert flags["shed"] == 0
    assert 0 < flags["p50_ms"] <= flags["p90_ms"] <= flags["p99_ms"]
    assert flags["rps"] > 0
    for span in ("300", "900"):
        assert document["windows"][span]["routes"]["flags"]["count"] == 40
    chart = document["chart"]["routes"]["flags"]
    assert sum(chart["count"]) == 40
    assert set(document["node"]) >= {"role", "uptime_seconds", "workers", "version", "lag_seconds", "stale"}
    assert document["projects"]["count"] == 2
    assert [p["project_id"] for p in document["projects"]["items"]] == [1, 2]


async def test_projects_show_their_own_propagation_lag() -> None:
    """A project's last change lag from the node's health is shown in ms per project; unknown lag is null."""
    health = Health()
    health.state["project_lag_seconds"] = {1: 0.0123}
    async with client(make_app(health=health)) as http:
        document = await _document_when(http, lambda d: d["projects"]["count"] == 2)
    lags = {p["project_id"]: p["lag_ms"] for p in document["projects"]["items"]}
    assert lags == {1: 12.3, 2: None}


async def test_shed_and_failed_answers_are_counted_per_route() -> None:
    """Requests the shedder refuses show up as shed (and as 5xx errors) on their route."""
    shedder = LoadShedder(max_in_flight=1)
    async with client(make_app(shedder=shedder)) as http:
        shedder.in_flight = 1  # the node is full: the next requests are shed
        for _ in range(3):
            assert (await _flags(http)).status_code == 503
        shedder.in_flight = 0
        assert (await _flags(http)).status_code == 200
        document = await _document_when(http, lambda d: "flags" in d["routes"])
    flags = document["routes"]["flags"]
    assert (flags["count"], flags["shed"], flags["errors"]) == (4, 3, 3)


async def test_store_events_appear_on_the_status_document() -> None:
    """Hedges, deadline misses and reads recorded by the store show in the last-minute store figures."""
    metrics = Metrics()
    async with client(make_app(metrics=metrics)) as http:
        metrics.store_read("redis")
        metrics.store_read("redis")
        metrics.store_hedge("redis")
        metrics.store_deadline_miss("redis")
        metrics.store_breaker("open")
        document = await _document_when(http, lambda d: d["store"]["last_60s"]["reads"] == 2)
    store = document["store"]
    assert store["last_60s"] == {"reads": 2, "hedges": 1, "deadline_misses": 1, "errors": 0}
    assert store["breaker"] == "open"


async def test_status_reveals_no_token_secret_flag_or_store_password() -> None:
    """Neither the page nor the document carries project tokens, secrets, flag keys or a store URL."""
    health = Health()
    health.state["last_error"] = "Error connecting to redis://:hunter2@10.0.0.5:6379/0 (token phc_leak123)"
    async with client(make_app(health=health)) as http:
        await _flags(http)
        document = await _document_when(http, lambda d: "flags" in d["routes"])
        body = (await http.get("/status.json")).text + (await http.get("/status")).text
    for secret in (TOKEN_A, TOKEN_B, SECRET_A, "hunter2", "phc_leak123", *(f["key"] for f in FLAGS_A)):
        assert secret not in body, secret
    assert document["store"]["reachable"] is False
    assert "<url>" in document["store"]["error"]


def test_redact_cuts_urls_and_tokens_and_bounds_the_length() -> None:
    """A store error is shown without URLs (which may hold passwords) or tokens, at most 200 characters."""
    assert redact(None) is None
    message = redact("postgresql://flagd:pw@db/flagd refused; key phx_abcdef " + "x" * 500)
    assert message is not None
    assert "pw@" not in message
    assert "phx_abcdef" not in message
    assert len(message) == 200


def test_health_gauges_follow_the_node_state() -> None:
    """/metrics reports store up/down, a stale snapshot and the syncer role from the node's health."""
    metrics = Metrics()

    def value(name: str) -> float:
        line = next(x for x in metrics.render().decode().splitlines() if x.startswith(name + " "))
        return float(line.split()[-1])

    assert value("flagd_store_up") == 1
    metrics.set_health({"stale": True, "last_error": "redis down", "syncer": {"role": "active"}})
    assert (value("flagd_store_up"), value("flagd_snapshot_stale"), value("flagd_syncer_active")) == (0, 1, 1)
    metrics.set_health({"stale": False, "last_error": None, "syncer": {"role": "standby"}})
    assert (value("flagd_store_up"), value("flagd_snapshot_stale"), value("flagd_syncer_active")) == (1, 0, 0)
