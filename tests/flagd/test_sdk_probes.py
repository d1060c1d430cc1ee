"""Probes and operational behaviour of SdkApp: /healthz, /readyz, /metrics, shedding, lifespan passthrough."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flagd.metrics import Metrics
from flagd.shedding import LoadShedder
from tests.flagd.sdk_support import PERSONAL_A, TOKEN_A, Health, KeyBook, client, make_app


async def test_healthz_is_always_200() -> None:
    """/healthz answers 200 even when the node is not ready."""
    health = Health()
    health.state["ready"] = False
    async with client(make_app(health=health)) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_readyz_follows_health_and_shows_it() -> None:
    """/readyz is 200 with the health dict when ready, 503 when not."""
    health = Health()
    async with client(make_app(health=health)) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == health.state
        health.state.update(ready=False, source="stale")
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["source"] == "stale"


async def test_metrics_endpoint_exposes_requests_and_snapshot_gauges() -> None:
    """/metrics serves Prometheus text with request counts, latency buckets and the snapshot version."""
    async with client(make_app(metrics=Metrics())) as http:
        await http.post("/flags?v=2", content=json.dumps({"api_key": TOKEN_A, "distinct_id": "u"}))
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'flagd_requests_total{route="flags",status="200"} 1.0' in text
    assert 'flagd_request_duration_seconds_bucket{le="0.0005",route="flags"}' in text
    assert "flagd_snapshot_version 9.0" in text
    assert 'flagd_flag_evaluations_total{reason="condition_match"}' in text


async def test_over_capacity_requests_are_shed_with_503_and_retry_after() -> None:
    """With the one slot busy, the next /flags request gets 503 + Retry-After at once; probes still answer."""
    metrics = Metrics()
    gate = asyncio.Event()
    keys = KeyBook(gate=gate)
    app = make_app(shedder=LoadShedder(max_in_flight=1, retry_after=2), metrics=metrics, keys=keys)
    async with client(app) as http:
        # An admitted request held in flight: its key lookup waits for the gate.
        busy = asyncio.create_task(
            http.get(f"/flags/definitions?token={TOKEN_A}", headers={"Authorization": f"Bearer {PERSONAL_A}"})
        )
        await keys.entered.wait()
        shed = await http.post("/flags?v=2", content=json.dumps({"api_key": TOKEN_A, "distinct_id": "u"}))
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "2"
        assert shed.json()["code"] == "overloaded"
        assert shed.headers["access-control-allow-origin"] == "*"  # a browser can read it
        ofrep = await http.post(
            "/ofrep/v1/evaluate/flags/always-on",
            headers={"Authorization": f"Bearer {TOKEN_A}"},
            content=b'{"context": {"targetingKey": "u"}}',
        )
        assert ofrep.status_code == 429  # what OFREP providers understand as "back off"
        assert ofrep.headers["retry-after"] == "2"
        assert ofrep.headers["access-control-allow-origin"] == "*"
        healthz = await http.get("/healthz")
        assert healthz.status_code == 200
        assert "access-control-allow-origin" not in healthz.headers  # probes are not for browsers
        gate.set()
        assert (await busy).status_code == 200
        after = await http.post("/flags?v=2", content=json.dumps({"api_key": TOKEN_A, "distinct_id": "u"}))
        assert after.status_code == 200
    assert 'flagd_shed_total{route="flags"} 1.0' in metrics.render().decode()


async def test_lifespan_goes_to_the_fallback() -> None:
    """The lifespan protocol is handed to the fallback app (the admin app opens the store there)."""
    app = make_app()
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_before_the_catalog_loads_tokens_get_503_not_401() -> None:
    """Until the node has loaded its flags, unknown tokens get 503 + Retry-After, not 401; then 401."""
    from store.catalog import Catalog

    catalog = Catalog()
    body = json.dumps({"api_key": TOKEN_A, "distinct_id": "u"})
    async with client(make_app(catalog)) as http:
        answers = [
            await http.post("/flags?v=2", content=body),
            await http.post(
                "/batch/",
                content=json.dumps({"api_key": TOKEN_A, "batch": [{"event": "x", "distinct_id": "u"}]}),
            ),
            await http.get(f"/flags/definitions?token={TOKEN_A}", headers={"Authorization": "Bearer phs_x"}),
            await http.post(
                "/ofrep/v1/evaluate/flags/x",
                headers={"Authorization": f"Bearer {TOKEN_A}"},
                content=b'{"context": {"targetingKey": "u"}}',
            ),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
        catalog.replace_all({})
        assert (await http.post("/flags?v=2", content=body)).status_code == 401
