"""Shedding by queueing delay at the HTTP layer (README "Load shedding"): when work queued on the worker's
event loop makes new requests wait longer than the target, /flags answers 503 + Retry-After (OFREP 429), a
"shedding load" line is logged, and once the queue is gone requests are admitted again.

The queue is real: a callback that blocks the loop for 0.3 s, six times the 0.05 s target. A busy machine
only adds delay, so every wait below is for a condition, bounded, never a duration assertion."""

from __future__ import annotations

import asyncio
import json
import time

from structlog.testing import capture_logs

from flagd.metrics import Metrics
from flagd.shedding import LoadShedder
from tests.flagd.sdk_support import TOKEN_A, client, make_app

BODY = json.dumps({"api_key": TOKEN_A, "distinct_id": "u1"})
OFREP = "/ofrep/v1/evaluate/flags/always-on"


def _stall() -> None:
    time.sleep(0.3)  # work already queued on the loop: every request arriving now waits behind it


async def test_queueing_delay_sheds_with_503_logs_it_and_recovers() -> None:
    """A backed-up event loop turns /flags answers into 503 + Retry-After (429 for OFREP) with a log line;
    after the backlog is gone, requests get 200 again."""
    shedder = LoadShedder(
        target_delay=0.05, interval=0.05, probe_period=0.005, retry_after=3, chance=lambda: 0.0
    )
    metrics = Metrics()
    app = make_app(shedder=shedder, metrics=metrics)
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        async with client(app) as http:
            assert (await http.post("/flags?v=2", content=BODY)).status_code == 200
            shed = None
            for _ in range(50):
                loop.call_soon(_stall)
                await asyncio.sleep(0.01)  # hand the loop over: the stall runs, the lag probe fires late
                response = await http.post("/flags?v=2", content=BODY)
                if response.status_code == 503:
                    shed = response
                    break
                assert response.status_code == 200
            assert shed is not None, "a 0.3 s loop stall never made the worker shed"
            assert shed.headers["retry-after"] == "3"
            assert shed.json()["code"] == "overloaded"
            assert shedder.overloaded
            ofrep = await http.post(
                OFREP, headers={"Authorization": f"Bearer {TOKEN_A}"}, content=b'{"context": {}}'
            )
            assert ofrep.status_code == 429
            assert (await http.get("/healthz")).status_code == 200  # probes are never shed

            # No more stalls: the probe keeps measuring an idle loop and the shedder leaves overload.
            for _ in range(400):
                if not shedder.overloaded:
                    break
                await asyncio.sleep(0.01)
            assert not shedder.overloaded
            assert (await http.post("/flags?v=2", content=BODY)).status_code == 200
    lines = [entry for entry in logs if entry["event"] == "shedding load"]
    assert lines
    assert lines[0]["log_level"] == "warning"
    assert lines[0]["overloaded"] is True
    assert lines[0]["shed"] >= 1
    assert 'flagd_shed_total{route="flags"}' in metrics.render().decode()
