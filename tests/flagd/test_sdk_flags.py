"""POST /flags and /decide: response versions, body encodings, tokens, errors and limits, in process."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest

from evaluator import Context
from flagd.limits import Limits
from flagd.metrics import Metrics
from tests.flagd.sdk_support import TOKEN_A, TOKEN_B, client, make_app, make_catalog

BODY = {"api_key": TOKEN_A, "distinct_id": "user-1", "person_properties": {"email": "ann@example.com"}}


async def post(path: str, body: Any, **kwargs: Any) -> Any:
    async with client(
        make_app(
            kwargs.pop("catalog", None),
            limits=kwargs.pop("limits", None),
            metrics=kwargs.pop("metrics", None),
        )
    ) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(path, content=content, **kwargs)


def expected(distinct_id: str, **ctx: Any) -> dict[str, Any]:
    """What the snapshot itself decides, to compare the wire answer against."""
    state = make_catalog().by_token(TOKEN_A)
    assert state is not None
    return state.snapshot.evaluate(Context(distinct_id=distinct_id, **ctx))


async def test_flags_v4_detailed_records_match_the_evaluator() -> None:
    """Every flag comes back as a detailed record with the snapshot's value, variant, reason, payload."""
    response = await post("/flags/?v=4", BODY)
    assert response.status_code == 200
    body = response.json()
    decisions = expected("user-1", person_properties={"email": "ann@example.com"})
    assert set(body["flags"]) == set(decisions)
    for key, d in decisions.items():
        record = body["flags"][key]
        assert record["key"] == key
        assert record["metadata"]["id"] == d.flag_id
        assert record["metadata"]["version"] == d.version
        assert record["reason"] == {
            "code": d.reason,
            "condition_index": d.condition_index,
            "description": d.description,
        }
        if d.error is None:
            assert record["enabled"] == d.enabled
            assert record["variant"] == d.variant
            assert record["value"] == d.value
            assert record["metadata"]["payload"] == (d.payload if d.enabled else None)
            assert "failed" not in record
        else:
            assert record["failed"] is True
            assert record["enabled"] is False
    assert body["flags"]["always-on"]["enabled"] is True
    assert json.loads(body["flags"]["always-on"]["metadata"]["payload"]) == {"color": "blue"}
    assert body["flags"]["disabled-flag"]["enabled"] is False
    assert body["flags"]["beta-by-email"]["enabled"] is True
    assert body["errorsWhileComputingFlags"] == any(d.error for d in decisions.values())
    assert body["requestId"] == response.headers["x-request-id"]
    assert abs(body["evaluatedAt"] - time.time() * 1000) < 60_000


async def test_failed_flag_is_marked_and_reported() -> None:
    """A flag whose dependency is missing keeps its record, marked failed, and errors are reported."""
    decisions = expected("user-1")
    failed = [k for k, d in decisions.items() if d.error is not None]
    assert failed, "the fixture project should contain a flag that fails to evaluate"
    body = (await post("/flags?v=2", BODY)).json()
    for key in failed:
        assert body["flags"][key]["failed"] is True
        assert body["flags"][key]["enabled"] is False
    assert body["errorsWhileComputingFlags"] is True


async def test_client_request_id_is_echoed() -> None:
    """A client-supplied X-Request-Id is used for the response header and requestId."""
    response = await post("/flags?v=2", BODY, headers={"X-Request-Id": "trace-abc-123"})
    assert response.headers["x-request-id"] == "trace-abc-123"
    assert response.json()["requestId"] == "trace-abc-123"


@pytest.mark.parametrize(
    ("path", "typed"),
    [
        ("/flags?v=2", False),
        ("/flags/?v=3", False),
        ("/decide/?v=4", False),
        ("/decide?v=5", False),
        ("/flags/?v=4", True),
    ],
)
async def test_detailed_shape_versions(path: str, typed: bool) -> None:
    """/flags v2+ and /decide v4+ answer the detailed shape; only /flags v4+ records carry a typed value."""
    body = (await post(path, BODY)).json()
    record = body["flags"]["always-on"]
    assert record["enabled"] is True
    assert ("value" in record) is typed


@pytest.mark.parametrize("path", ["/flags", "/flags/?v=1", "/decide/?v=3", "/decide?v=3"])
async def test_legacy_shape_has_values_and_payloads(path: str) -> None:
    """/flags v1 and /decide v3 answer featureFlags (bool or variant) and payloads of enabled flags."""
    body = (await post(path, BODY)).json()
    decisions = expected("user-1", person_properties={"email": "ann@example.com"})
    live = {k: d for k, d in decisions.items() if d.error is None}
    assert body["featureFlags"] == {k: d.value for k, d in live.items()}
    assert body["featureFlagPayloads"] == {k: d.payload for k, d in live.items() if d.enabled and d.payload}
    assert body["featureFlags"]["disabled-flag"] is False


async def test_decide_v2_lists_only_enabled_flags_and_v1_only_keys() -> None:
    """/decide v2 keeps enabled flags only; /decide v1 is the list of enabled keys."""
    decisions = expected("user-1", person_properties={"email": "ann@example.com"})
    enabled = {k: d.value for k, d in decisions.items() if d.enabled and d.error is None}
    v2 = (await post("/decide/?v=2", BODY)).json()
    assert v2["featureFlags"] == enabled
    v1 = (await post("/decide/", BODY)).json()
    assert sorted(v1["featureFlags"]) == sorted(enabled)


def _project_a(response: Any) -> None:
    """The answer is project A's flags (always-on is on there; b-only-flag exists only in project B)."""
    assert response.status_code == 200, response.text
    flags = response.json()["flags"]
    assert "b-only-flag" not in flags
    assert flags["always-on"]["enabled"] is True


@pytest.mark.parametrize("field", ["api_key", "token", "$token"])
async def test_token_may_come_from_any_body_field(field: str) -> None:
    """The project token is read from api_key, token or $token, and selects that project's flags."""
    _project_a(await post("/flags?v=2", {field: TOKEN_A, "distinct_id": "u"}))
    other = (await post("/flags?v=2", {field: TOKEN_B, "distinct_id": "u"})).json()["flags"]
    assert other["b-only-flag"]["enabled"] is True
    assert other["always-on"]["enabled"] is False


async def test_token_may_come_from_the_query() -> None:
    """?token= works when the body has none, and selects that project's flags."""
    _project_a(await post(f"/flags?v=2&token={TOKEN_A}", {"distinct_id": "u"}))


def _values(body: dict[str, Any]) -> dict[str, Any]:
    return {k: (r["enabled"], r["variant"]) for k, r in body["flags"].items()}


async def test_numeric_distinct_id_is_stringified() -> None:
    """A numeric distinct_id evaluates like its string form."""
    by_number = (await post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": 12345})).json()
    by_string = (await post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": "12345"})).json()
    assert _values(by_number) == _values(by_string)


async def test_long_distinct_id_is_cut_to_200_characters() -> None:
    """Ids longer than 200 characters evaluate exactly like their first 200 characters."""
    for n in range(20):
        long_id = f"user-{n}-" + "x" * 300
        body = (await post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": long_id})).json()
        cut = expected(long_id[:200])
        assert {k: (r["enabled"], r["variant"]) for k, r in body["flags"].items() if not r.get("failed")} == {
            k: (d.enabled, d.variant) for k, d in cut.items() if d.error is None
        }


async def test_group_flags_use_groups_and_group_properties() -> None:
    """A group flag is on only when the request names the group and its properties match."""
    with_group = {
        **BODY,
        "groups": {"company": "acme"},
        "group_properties": {"company": {"plan": "enterprise"}},
    }
    assert (await post("/flags?v=2", with_group)).json()["flags"]["company-flag"]["enabled"] is True
    without = (await post("/flags?v=2", BODY)).json()["flags"]["company-flag"]
    assert without["enabled"] is False
    assert without["reason"]["code"] == "no_group_type"


async def test_numeric_group_keys_are_accepted() -> None:
    """A group key sent as a number is used as its string form."""
    body = {**BODY, "groups": {"company": 42}, "group_properties": {"company": {"plan": "enterprise"}}}
    response = await post("/flags?v=2", body)
    assert response.status_code == 200
    assert response.json()["flags"]["company-flag"]["enabled"] is True


async def test_null_group_keys_count_as_absent() -> None:
    """A group sent as null is ignored rather than rejected."""
    body = {**BODY, "groups": {"company": None}}
    response = await post("/flags?v=2", body)
    assert response.status_code == 200
    assert response.json()["flags"]["company-flag"]["reason"]["code"] == "no_group_type"


async def test_flag_keys_to_evaluate_limits_the_answer() -> None:
    """Only the requested flags are evaluated and returned; unknown keys are simply absent."""
    for field in ("flag_keys_to_evaluate", "flag_keys"):
        body = {**BODY, field: ["always-on", "half-rollout", "no-such-flag"]}
        flags = (await post("/flags?v=2", body)).json()["flags"]
        assert set(flags) == {"always-on", "half-rollout"}


async def test_disable_flags_returns_no_flags() -> None:
    """disable_flags: true answers an empty flag map."""
    body = (await post("/flags?v=2", {**BODY, "disable_flags": True})).json()
    assert body["flags"] == {}
    assert body["errorsWhileComputingFlags"] is False


async def test_project_tokens_are_isolated() -> None:
    """Project B's token sees exactly project B's flags, with B's results, never A's."""
    body = (await post("/flags?v=2", {"api_key": TOKEN_B, "distinct_id": "user-1"})).json()
    assert set(body["flags"]) == {"b-only-flag", "always-on"}
    assert body["flags"]["always-on"]["enabled"] is False  # B's always-on is at 0 %
    assert body["flags"]["always-on"]["metadata"]["id"] == 102


@pytest.mark.parametrize("body", [{"api_key": "phc_nope", "distinct_id": "u"}, {"distinct_id": "u"}])
async def test_unknown_or_missing_token_is_401_in_posthog_shape(body: dict[str, Any]) -> None:
    """A bad or absent token gets 401 with PostHog's authentication_error body."""
    response = await post("/flags?v=2", body)
    assert response.status_code == 401
    payload = response.json()
    assert payload["type"] == "authentication_error"
    assert payload["code"] == "invalid_api_key"
    assert payload["detail"]


async def test_missing_distinct_id_is_400() -> None:
    """Without distinct_id the answer is 400 naming the field."""
    response = await post("/flags?v=2", {"api_key": TOKEN_A})
    assert response.status_code == 400
    assert response.json()["attr"] == "distinct_id"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (json.dumps({"api_key": TOKEN_A, "distinct_id": "u", "groups": ["x"]}).encode(), "$.groups"),
        (json.dumps({"api_key": TOKEN_A, "distinct_id": True}).encode(), "$.distinct_id"),
        (
            json.dumps({"api_key": TOKEN_A, "distinct_id": "u", "person_properties": 3}).encode(),
            "$.person_properties",
        ),
        (json.dumps([1, 2]).encode(), "object"),
    ],
)
async def test_malformed_bodies_are_400_saying_what_is_wrong(raw: bytes, needle: str) -> None:
    """Bad JSON or wrong field types get 400 whose detail names the problem."""
    response = await post("/flags?v=2", raw)
    assert response.status_code == 400
    assert needle in response.json()["detail"]


async def test_body_over_the_limit_is_413() -> None:
    """A body larger than max_body_bytes is refused with 413."""
    big = {**BODY, "person_properties": {"blob": "x" * 5000}}
    response = await post("/flags?v=2", big, limits=Limits(max_body_bytes=2000))
    assert response.status_code == 413
    assert "max_body_bytes=2000" in response.json()["detail"]


async def test_gzip_bomb_hits_the_body_limit() -> None:
    """A tiny gzip body that inflates past max_body_bytes is refused with 413, not inflated into memory."""
    bomb_json = (
        b'{"api_key":"' + TOKEN_A.encode() + b'","distinct_id":"u","pad":"' + b"0" * 50_000_000 + b'"}'
    )
    bomb = gzip.compress(bomb_json, compresslevel=9)
    assert len(bomb) < 100_000
    response = await post("/flags?v=2", bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]


async def test_corrupt_gzip_is_400() -> None:
    """A body announced as gzip that is not gzip gets 400."""
    response = await post("/flags?v=2", b"\x1f\x8bnot really gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("limits", "body", "limit_name"),
    [
        (Limits(max_properties=3), {"person_properties": {f"p{i}": i for i in range(4)}}, "max_properties"),
        (
            Limits(max_properties=3),
            {"group_properties": {"company": {f"p{i}": i for i in range(4)}}},
            "max_properties",
        ),
        (Limits(max_groups=2), {"groups": {"a": "1", "b": "2", "c": "3"}}, "max_groups"),
        (Limits(max_flag_keys=2), {"flag_keys_to_evaluate": ["a", "b", "c"]}, "max_flag_keys"),
        (
            Limits(max_property_value_chars=10),
            {"person_properties": {"email": "x" * 11}},
            "max_property_value_chars",
        ),
        (
            Limits(max_property_value_chars=10),
            {"person_properties": {"tags": ["abcdef", "ghijkl"]}},
            "max_property_value_chars",
        ),
    ],
)
async def test_each_limit_is_a_400_naming_it(limits: Limits, body: dict[str, Any], limit_name: str) -> None:
    """Going over any per-request limit gets 400 limit_exceeded whose detail names the limit."""
    response = await post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": "u", **body}, limits=limits)
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "limit_exceeded"
    assert limit_name in payload["detail"]


@pytest.mark.parametrize("path", ["/flags?v=2", "/flags?v=4", "/decide?v=3", "/decide?v=1"])
async def test_evaluations_are_counted_by_reason(path: str) -> None:
    """Each answered request, in any shape, adds its decisions to the evaluations-by-reason counter."""
    metrics = Metrics()
    await post(path, BODY, metrics=metrics)
    decisions = expected("user-1", person_properties={"email": "ann@example.com"})
    text = metrics.render().decode()
    for reason in {d.reason for d in decisions.values()}:
        count = sum(1 for d in decisions.values() if d.reason == reason)
        assert f'flagd_flag_evaluations_total{{reason="{reason}"}} {float(count)}' in text


async def test_wrong_method_is_405_and_preflight_is_204() -> None:
    """GET on /flags is 405 with Allow; a CORS preflight gets 204 with the allow headers."""
    async with client(make_app()) as http:
        wrong = await http.get("/flags")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        preflight = await http.options("/flags/")
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"


async def test_unknown_paths_go_to_the_fallback_app() -> None:
    """Paths the SDK app does not own are passed to the fallback ASGI app untouched."""
    async with client(make_app()) as http:
        response = await http.get("/api/projects/")
        assert response.status_code == 404
        assert response.json() == {"fallback": True}


async def test_a_new_snapshot_is_served_at_once_and_counts_survive_the_swap() -> None:
    """After the catalog installs a changed project, /flags answers from it (no stale cached records)."""
    from store.catalog import build_project_state
    from tests.flagd.sdk_support import FLAGS_A, SECRET_A, flag, project_data

    catalog = make_catalog()
    metrics = Metrics()
    async with client(make_app(catalog, metrics=metrics)) as http:
        before = (await http.post("/flags?v=2", content=json.dumps(BODY))).json()["flags"]
        assert before["always-on"]["enabled"] is True
        changed = [f for f in FLAGS_A if f["key"] != "always-on"] + [
            {**flag(1, "always-on", [{"properties": [], "rollout_percentage": 0}]), "version": 4}
        ]
        assert catalog.install(build_project_state(project_data(1, TOKEN_A, SECRET_A, changed)))
        after = (await http.post("/flags?v=2", content=json.dumps(BODY))).json()["flags"]
    assert after["always-on"]["enabled"] is False
    assert after["always-on"]["metadata"]["version"] == 4
    text = metrics.render().decode()
    total = sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("flagd_flag_evaluations_total{")
    )
    assert total == len(before) + len(after)
