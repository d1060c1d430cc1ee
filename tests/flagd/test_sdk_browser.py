"""What browsers need from the SDK routes: CORS on every answer (errors too), posthog-js's remote config,
and empty survey / early-access lists."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest

from flagd.limits import Limits
from tests.flagd.sdk_support import FLAGS_A, SECRET_A, TOKEN_A, client, make_app

ORIGIN = {"Origin": "http://app.example"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/flags/?v=2", {"api_key": TOKEN_A, "distinct_id": "u"}, 200),
        ("POST", "/flags/?v=2", {"api_key": "phc_typo", "distinct_id": "u"}, 401),
        ("POST", "/flags/?v=2", b"{not json", 400),
        ("POST", "/flags/?v=2", {"api_key": TOKEN_A, "distinct_id": "u", "pad": "x" * 4096}, 413),
        ("GET", "/flags/?v=2", None, 405),
        ("POST", "/i/v0/e/", {"api_key": "phc_typo", "event": "e", "distinct_id": "u"}, 401),
        ("POST", "/ofrep/v1/evaluate/flags/nope", {"context": {"targetingKey": "u"}}, 401),
        ("GET", f"/array/{TOKEN_A}/config", None, 200),
        ("GET", "/array/phc_unknown/config", None, 404),
        ("GET", f"/api/surveys/?token={TOKEN_A}", None, 200),
        ("GET", "/api/early_access_features/?token=phc_unknown", None, 401),
        ("GET", f"/flags/definitions?token={TOKEN_A}", None, 401),
    ],
)
async def test_every_sdk_answer_carries_cors_errors_included(
    method: str, path: str, body: Any, status: int
) -> None:
    """A token typo, a bad body, a too-large body, a wrong method: the page still reads the answer (status
    and JSON) instead of an opaque CORS failure that posthog-js counts towards its circuit breaker."""
    content = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    async with client(make_app(limits=Limits(max_body_bytes=2048))) as http:
        response = await http.request(method, path, content=content, headers=ORIGIN)
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"


async def test_preflight_names_authorization_for_ofrep_web_providers() -> None:
    """An OPTIONS preflight on any SDK route allows GET/POST and, explicitly, the Authorization header
    (which a ``*`` in Access-Control-Allow-Headers does not cover)."""
    async with client(make_app()) as http:
        for path in ("/flags/", "/ofrep/v1/evaluate/flags/always-on", f"/array/{TOKEN_A}/config"):
            answer = await http.options(path, headers=ORIGIN)
            assert answer.status_code == 204
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "authorization" in answer.headers["access-control-allow-headers"]


async def test_remote_config_json_says_what_flagd_supports() -> None:
    """``/array/<token>/config``: gzip compression, feature flags on, the events endpoint, and session
    recording, heatmaps and site apps off, surveys absent."""
    async with client(make_app()) as http:
        config = (await http.get(f"/array/{TOKEN_A}/config")).json()
    assert config["supportedCompression"] == ["gzip", "gzip-js"]
    assert config["hasFeatureFlags"] is True
    assert config["analytics"] == {"endpoint": "/i/v0/e/"}
    assert (config["sessionRecording"], config["heatmaps"]) == (False, False)
    assert "surveys" not in config  # posthog-js would fetch a surveys bundle flagd does not serve
    assert config["siteApps"] == []


async def test_remote_config_script_assigns_the_config_for_the_token() -> None:
    """``/array/<token>/config.js`` is JavaScript setting ``window._POSTHOG_REMOTE_CONFIG[token]`` to
    ``{config, siteApps}``, the same config as the JSON route."""
    async with client(make_app()) as http:
        script = await http.get(f"/array/{TOKEN_A}/config.js")
        config = (await http.get(f"/array/{TOKEN_A}/config")).json()
    assert script.headers["content-type"].startswith("application/javascript")
    match = re.search(r"window\._POSTHOG_REMOTE_CONFIG\[(\"[^\"]+\")\] = (\{.*\});", script.text)
    assert match is not None
    assert json.loads(match.group(1)) == TOKEN_A
    assert json.loads(match.group(2)) == {"config": config, "siteApps": []}


async def test_surveys_and_early_access_features_are_empty_lists() -> None:
    """posthog-js's getSurveys / getEarlyAccessFeatures get empty lists in the shape they read."""
    async with client(make_app()) as http:
        surveys = await http.get("/api/surveys/", params={"token": TOKEN_A})
        features = await http.get("/api/early_access_features/", params={"token": TOKEN_A, "stage": "beta"})
    assert surveys.json() == {"surveys": []}
    assert features.json() == {"earlyAccessFeatures": []}


async def test_gzip_js_events_are_accepted() -> None:
    """Events posthog-js compresses as ``gzip-js`` (what the config offers) are accepted."""
    batch = [{"event": "$pageview", "distinct_id": "u", "properties": {"token": TOKEN_A}}]
    async with client(make_app()) as http:
        answer = await http.post(
            "/i/v0/e/?compression=gzip-js&ver=1.0", content=gzip.compress(json.dumps(batch).encode())
        )
    assert answer.status_code == 200, answer.text


async def test_remote_config_payload_for_server_sdks() -> None:
    """posthog-node's getRemoteConfigPayload: the flag's "true" payload as a JSON string, by key or id,
    with the project secret; null without a payload; 404 for an unknown flag; 401 without a secret."""
    auth = {"Authorization": f"Bearer {SECRET_A}"}
    base = "/api/projects/@current/feature_flags"
    async with client(make_app()) as http:
        by_key = await http.get(f"{base}/always-on/remote_config", params={"token": TOKEN_A}, headers=auth)
        by_id = await http.get(
            "/api/projects/1/feature_flags/1/remote_config/", params={"token": TOKEN_A}, headers=auth
        )
        none = await http.get(f"{base}/half-rollout/remote_config", params={"token": TOKEN_A}, headers=auth)
        missing = await http.get(f"{base}/nope/remote_config", params={"token": TOKEN_A}, headers=auth)
        anonymous = await http.get(f"{base}/always-on/remote_config", params={"token": TOKEN_A})
    payload = FLAGS_A[0]["filters"]["payloads"]["true"]
    assert (by_key.status_code, by_key.json()) == (200, payload)
    assert by_id.json() == payload
    assert (none.status_code, none.json()) == (200, None)
    assert missing.status_code == 404
    assert anonymous.status_code == 401
