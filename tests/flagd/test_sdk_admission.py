"""Admission and body reading: a request is admitted only once its body is in, the body read is bounded in
time, and a client that goes away mid-body is a quiet, distinct outcome (499), not a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from flagd.limits import Limits
from flagd.metrics import Metrics
from flagd.sdk.app import SdkApp
from flagd.shedding import LoadShedder
from tests.flagd.sdk_support import TOKEN_A, client, make_app

FLAGS_BODY = json.dumps({"api_key": TOKEN_A, "distinct_id": "u"}).encode()
EVENTS_BODY = json.dumps({"api_key": TOKEN_A, "batch": [{"event": "e", "distinct_id": "u"}]}).encode()
# (path, a complete body, extra headers) for every route that takes a body
BODY_ROUTES = [
    ("/flags/", FLAGS_BODY, []),
    ("/decide/", FLAGS_BODY, []),
    ("/batch/", EVENTS_BODY, []),
    ("/e/", EVENTS_BODY, []),
    (
        "/ofrep/v1/evaluate/flags/always-on",
        b'{"context":{"targetingKey":"u"}}',
        [(b"authorization", b"Bearer " + TOKEN_A.encode())],
    ),
    (
        "/ofrep/v1/evaluate/flags",
        b'{"context":{"targetingKey":"u"}}',
        [(b"authorization", b"Bearer " + TOKEN_A.encode())],
    ),
]


class Upload:
    """Drives ``app`` directly with a body sent in two parts: ``first`` at once, the rest only when
    ``finish`` is set (or never, or a disconnect instead, as the test says)."""

    def __init__(self, app: SdkApp, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
        self.parts: list[dict[str, Any]] = [
            {"type": "http.request", "body": body[:1], "more_body": True},
            {"type": "http.request", "body": body[1:], "more_body": False},
        ]
        self.started = asyncio.Event()
        self.finish = asyncio.Event()
        self.disconnect = False
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if len(self.parts) == 2:
            return self.parts.pop(0)
        self.started.set()
        await self.finish.wait()
        if self.disconnect:
            return {"type": "http.disconnect"}
        return self.parts.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self) -> int | None:
        """The status answered, or None when nothing was sent."""
        await self.app(self.scope, self.receive, self.send)  # type: ignore[arg-type]
        return int(self.sent[0]["status"]) if self.sent else None


@pytest.mark.parametrize(("path", "body", "headers"), BODY_ROUTES)
async def test_a_request_still_uploading_holds_no_evaluation_slot(
    path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """With every slot's worth of uploads stalled mid-body, other requests are still admitted and answered."""
    app = make_app(shedder=LoadShedder(max_in_flight=2))
    uploads = [Upload(app, path, body, headers) for _ in range(5)]
    tasks = [asyncio.create_task(upload.run()) for upload in uploads]
    await asyncio.gather(*(upload.started.wait() for upload in uploads))
    async with client(app) as http:
        answer = await http.post("/flags?v=2", content=FLAGS_BODY)
    assert answer.status_code == 200, answer.text
    for upload in uploads:
        upload.finish.set()
    assert await asyncio.gather(*tasks) == [200] * 5


@pytest.mark.parametrize(("path", "body", "headers"), BODY_ROUTES)
async def test_a_body_that_does_not_arrive_in_time_is_408_naming_the_limit(
    path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A body still incomplete body_timeout_seconds after the request began gets 408 naming the limit."""
    metrics = Metrics()
    app = make_app(limits=Limits(body_timeout_seconds=0.05), metrics=metrics)
    upload = Upload(app, path, body, headers)
    assert await asyncio.wait_for(upload.run(), timeout=30) == 408  # without the limit: waits for ever
    answer = json.loads(upload.sent[1]["body"])
    assert "body_timeout_seconds=0.05" in str(answer.get("detail") or answer.get("errorDetails"))
    assert 'status="408"' in metrics.render().decode()


@pytest.mark.parametrize(("path", "body", "headers"), BODY_ROUTES)
async def test_a_client_gone_mid_body_is_499_and_logged_quietly(
    path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    """A disconnect mid-body is counted as 499 and logged at debug: no 500, no error line, no traceback."""
    metrics = Metrics()
    app = make_app(metrics=metrics)
    upload = Upload(app, path, body, headers)
    upload.disconnect = True
    upload.finish.set()
    with capture_logs() as logs:
        assert await upload.run() is None  # nobody to answer
    text = metrics.render().decode()
    assert 'status="499"' in text
    assert 'status="500"' not in text
    assert [entry["log_level"] for entry in logs] == ["debug"]
    assert logs[0]["event"] == "client disconnected"
