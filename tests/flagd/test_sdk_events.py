"""Event intake (/batch/, /capture/, /e/, /i/v0/e/): validation, encodings, limits, PostHog's answer."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any
from urllib.parse import quote

import pytest

from flagd.limits import Limits
from tests.flagd.sdk_support import TOKEN_A, client, make_app

EVENT = {
    "event": "$feature_flag_called",
    "distinct_id": "u1",
    "properties": {"$feature_flag": "always-on", "$feature_flag_response": True},
}


async def post(path: str, body: Any, limits: Limits | None = None, **kwargs: Any) -> Any:
    async with client(make_app(limits=limits)) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(path, content=content, **kwargs)


@pytest.mark.parametrize(
    "path", ["/batch/", "/batch", "/capture/", "/capture", "/e/", "/e", "/i/v0/e/", "/i/v0/e"]
)
async def test_valid_batch_is_acknowledged_like_posthog(path: str) -> None:
    """A valid batch on any intake path gets 200 {"status": 1}."""
    response = await post(path, {"api_key": TOKEN_A, "batch": [EVENT, {**EVENT, "event": "signed_up"}]})
    assert response.status_code == 200
    assert response.json() == {"status": 1}


async def test_single_event_and_bare_list_forms() -> None:
    """A single event object and a bare list of events (token in properties) are both accepted."""
    single = await post("/capture/", {"api_key": TOKEN_A, **EVENT})
    assert single.status_code == 200
    listed = await post("/e/", [{**EVENT, "properties": {"token": TOKEN_A, "distinct_id": "u2"}}])
    assert listed.status_code == 200


async def test_gzip_and_base64_bodies() -> None:
    """Gzip (the Python SDK's option) and base64 forms (posthog-js) decode before validation."""
    raw = json.dumps({"api_key": TOKEN_A, "batch": [EVENT]}).encode()
    zipped = await post("/batch/", gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert zipped.status_code == 200
    form = ("data=" + quote(base64.b64encode(raw).decode())).encode()
    formed = await post("/e/?compression=base64", form)
    assert formed.status_code == 200


async def test_distinct_id_may_live_in_properties() -> None:
    """posthog-js puts distinct_id in properties; that counts."""
    event = {"event": "pageview", "properties": {"distinct_id": "u9"}}
    assert (await post("/batch/", {"api_key": TOKEN_A, "batch": [event]})).status_code == 200


@pytest.mark.parametrize(
    ("batch", "attr"),
    [
        ([EVENT, {"distinct_id": "u1"}], "batch[1].event"),
        ([EVENT, EVENT, {"event": "x"}], "batch[2].distinct_id"),
        ([{"event": "", "distinct_id": "u"}], "batch[0].event"),
        ([{"event": "x", "distinct_id": {"a": 1}}], "batch[0].distinct_id"),
        ([{"event": "x", "distinct_id": "u", "properties": []}], "batch[0].properties"),
        (["not an event"], "batch[0]"),
        ([], "batch"),
    ],
)
async def test_malformed_events_are_400_naming_the_field(batch: list[Any], attr: str) -> None:
    """An event without a name or distinct_id (or of the wrong type) gets 400 naming batch[i].field."""
    response = await post("/batch/", {"api_key": TOKEN_A, "batch": batch})
    assert response.status_code == 400
    assert response.json()["attr"] == attr


async def test_batch_must_be_a_list() -> None:
    """A batch that is not a list is a 400."""
    response = await post("/batch/", {"api_key": TOKEN_A, "batch": {"event": "x"}})
    assert response.status_code == 400
    assert response.json()["attr"] == "batch"


@pytest.mark.parametrize("body", [{"api_key": "phc_nope", "batch": [EVENT]}, {"batch": [EVENT]}])
async def test_unknown_or_missing_token_is_401(body: dict[str, Any]) -> None:
    """Events for an unknown project (or none) are refused with 401."""
    response = await post("/batch/", body)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


async def test_too_many_events_is_400_naming_the_limit() -> None:
    """More events than max_batch_events gets 400 limit_exceeded."""
    response = await post(
        "/batch/", {"api_key": TOKEN_A, "batch": [EVENT] * 4}, limits=Limits(max_batch_events=3)
    )
    assert response.status_code == 400
    assert "max_batch_events=3" in response.json()["detail"]


async def test_event_body_over_its_limit_is_413() -> None:
    """An intake body over max_event_body_bytes is refused with 413 (also after gzip)."""
    body = {"api_key": TOKEN_A, "batch": [{**EVENT, "properties": {"blob": "x" * 5000}}]}
    limits = Limits(max_event_body_bytes=1000)
    assert (await post("/batch/", body, limits=limits)).status_code == 413
    zipped = gzip.compress(json.dumps(body).encode())
    assert len(zipped) < 1000
    response = await post("/batch/", zipped, limits=limits, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
