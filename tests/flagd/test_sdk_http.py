"""Raw ASGI plumbing: streamed bodies against the limit, declared lengths, and unexpected failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from flagd.errors import ClientDisconnected, PayloadTooLarge
from flagd.sdk.http import read_body
from tests.flagd.sdk_support import TOKEN_A, Health, client, make_app


def chunks(*parts: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
    ]
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    receive.calls = received  # type: ignore[attr-defined]
    return receive


async def test_streamed_body_is_joined() -> None:
    """A body sent in several chunks is read whole."""
    assert await read_body(chunks(b"ab", b"cd", b"ef"), {}, 100) == b"abcdef"


async def test_streamed_body_stops_at_the_limit() -> None:
    """Reading stops with 413 as soon as the chunks pass the limit, without reading the rest."""
    receive = chunks(b"x" * 60, b"x" * 60, b"x" * 60, b"x" * 60)
    with pytest.raises(PayloadTooLarge):
        await read_body(receive, {}, 100)
    assert len(receive.calls) == 2


async def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    """A Content-Length over the limit is refused without reading a byte."""
    receive = chunks(b"{}")
    with pytest.raises(PayloadTooLarge):
        await read_body(receive, {b"content-length": b"5000"}, 100)
    assert receive.calls == []


async def test_client_disconnect_mid_body_is_its_own_outcome() -> None:
    """A disconnect mid-body is ClientDisconnected, not a truncated body handed to the JSON decoder."""
    messages = [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    with pytest.raises(ClientDisconnected, match="after 2 bytes"):
        await read_body(receive, {}, 100)


async def test_unexpected_failure_is_a_logged_500_and_the_app_keeps_serving() -> None:
    """An endpoint that crashes answers 500 with an error log line; the next request is served normally."""

    class Broken(Health):
        def __call__(self) -> dict[str, Any]:
            raise RuntimeError("health source exploded")

    with capture_logs() as logs:
        async with client(make_app(health=Broken())) as http:
            response = await http.get("/readyz")
            assert response.status_code == 500
            assert response.json()["type"] == "server_error"
            ok = await http.post("/flags?v=2", content=json.dumps({"api_key": TOKEN_A, "distinct_id": "u"}))
            assert ok.status_code == 200
    failures = [entry for entry in logs if entry["event"] == "request failed"]
    assert failures
    assert failures[0]["log_level"] == "error"
    assert failures[0]["route"] == "readyz"
