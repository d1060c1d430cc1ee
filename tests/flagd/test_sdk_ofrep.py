"""OFREP: single and bulk evaluation shapes, reasons, errors, auth and ETag/304."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluator import Context
from store.catalog import Catalog, build_project_state
from tests.flagd.sdk_support import (
    FLAGS_A,
    SECRET_A,
    TOKEN_A,
    TOKEN_B,
    client,
    flag,
    make_app,
    make_catalog,
    project_data,
)

URL = "/ofrep/v1/evaluate/flags"


async def post(path: str, body: Any, token: str | None = TOKEN_A, **headers: str) -> Any:
    if token is not None:
        headers = {"Authorization": f"Bearer {token}", **headers}
    async with client(make_app()) as http:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await http.post(path, content=content, headers=headers)


def snapshot_decision(key: str, targeting_key: str, **props: Any) -> Any:
    state = make_catalog().by_token(TOKEN_A)
    assert state is not None
    return state.snapshot.evaluate(Context(distinct_id=targeting_key, person_properties=props))[key]


async def test_single_flag_success_shape() -> None:
    """A boolean flag answers key, value, reason, variant and metadata (flag id, version, payload)."""
    response = await post(f"{URL}/always-on", {"context": {"targetingKey": "u1"}})
    assert response.status_code == 200
    body = response.json()
    assert body["key"] == "always-on"
    assert body["value"] is True
    assert body["reason"] == "STATIC"  # on for everyone, whatever the context
    assert body["variant"] == "true"
    assert body["metadata"]["flagId"] == 1
    assert body["metadata"]["version"] == 3
    assert json.loads(body["metadata"]["payload"]) == {"color": "blue"}


async def test_multivariate_value_is_the_variant_and_reason_split() -> None:
    """A multivariate flag's value is the variant the evaluator picked, with reason SPLIT."""
    for user in ("u1", "u2", "u3", "u4"):
        body = (await post(f"{URL}/checkout-test", {"context": {"targetingKey": user}})).json()
        expected = snapshot_decision("checkout-test", user)
        assert body["value"] == expected.variant
        assert body["variant"] == expected.variant
        assert body["reason"] == "SPLIT"


async def test_attributes_are_person_properties() -> None:
    """Context attributes other than targetingKey target like person properties."""
    hit = (
        await post(f"{URL}/beta-by-email", {"context": {"targetingKey": "u", "email": "a@example.com"}})
    ).json()
    miss = (
        await post(f"{URL}/beta-by-email", {"context": {"targetingKey": "u", "email": "a@other.org"}})
    ).json()
    assert (hit["value"], hit["reason"]) == (True, "TARGETING_MATCH")
    assert (miss["value"], miss["reason"]) == (False, "DEFAULT")


async def test_disabled_flag_reason() -> None:
    """An inactive flag answers false with reason DISABLED."""
    body = (await post(f"{URL}/disabled-flag", {"context": {"targetingKey": "u"}})).json()
    assert (body["value"], body["reason"]) == (False, "DISABLED")


async def test_groups_in_context_drive_group_flags() -> None:
    """groups and groupProperties in the context reach group flags."""
    ctx = {
        "targetingKey": "u",
        "groups": {"company": "acme"},
        "groupProperties": {"company": {"plan": "enterprise"}},
    }
    assert (await post(f"{URL}/company-flag", {"context": ctx})).json()["value"] is True


async def test_unknown_flag_is_404_flag_not_found() -> None:
    """Asking for a flag the project does not have is 404 FLAG_NOT_FOUND."""
    response = await post(f"{URL}/no-such-flag", {"context": {"targetingKey": "u"}})
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"key", "errorCode", "errorDetails"}
    assert (body["key"], body["errorCode"]) == ("no-such-flag", "FLAG_NOT_FOUND")
    assert "no-such-flag" in body["errorDetails"]


async def test_other_projects_flags_are_not_found() -> None:
    """Project B's token cannot evaluate project A's flags."""
    response = await post(f"{URL}/beta-by-email", {"context": {"targetingKey": "u"}}, token=TOKEN_B)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", "PARSE_ERROR"),
        (b"[1]", "PARSE_ERROR"),
        (json.dumps({"context": "x"}).encode(), "INVALID_CONTEXT"),
        (json.dumps({"context": {"email": "x"}}).encode(), "TARGETING_KEY_MISSING"),
        (b"{}", "TARGETING_KEY_MISSING"),
        (json.dumps({"context": {"targetingKey": {"a": 1}}}).encode(), "INVALID_CONTEXT"),
        (json.dumps({"context": {"targetingKey": "u", "groups": ["x"]}}).encode(), "INVALID_CONTEXT"),
    ],
)
async def test_bad_requests_carry_ofrep_error_codes(body: bytes, code: str) -> None:
    """Malformed bodies and contexts are 400 with the OFREP errorCode and the flag key."""
    response = await post(f"{URL}/always-on", body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["errorCode"] == code
    assert payload["key"] == "always-on"
    assert payload["errorDetails"]


async def test_failed_flag_is_general_error() -> None:
    """A flag that fails to evaluate answers 400 GENERAL (the provider falls back to its default)."""
    response = await post(f"{URL}/depends-on-missing", {"context": {"targetingKey": "u"}})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "GENERAL"


@pytest.mark.parametrize("token", [None, "phc_unknown"])
async def test_missing_or_unknown_token_is_401(token: str | None) -> None:
    """Without a known project token the answer is 401."""
    response = await post(f"{URL}/always-on", {"context": {"targetingKey": "u"}}, token=token)
    assert response.status_code == 401
    assert response.json()["errorDetails"]


async def test_x_api_key_header_is_accepted() -> None:
    """The project token may also come as X-API-Key."""
    response = await post(
        f"{URL}/always-on", {"context": {"targetingKey": "u"}}, token=None, **{"X-API-Key": TOKEN_A}
    )
    assert response.status_code == 200


async def test_bulk_lists_every_flag_with_etag_and_304() -> None:
    """Bulk evaluation returns every flag (failures as error items), an ETag, and 304 when unchanged."""
    ctx = {"context": {"targetingKey": "u1", "email": "a@example.com"}}
    response = await post(URL, ctx)
    assert response.status_code == 200
    items = {item["key"]: item for item in response.json()["flags"]}
    state = make_catalog().by_token(TOKEN_A)
    assert state is not None
    assert set(items) == set(state.snapshot.keys())
    assert items["beta-by-email"]["value"] is True
    assert items["depends-on-missing"]["errorCode"] == "GENERAL"
    etag = response.headers["etag"]
    again = await post(URL, ctx, **{"If-None-Match": etag})
    assert again.status_code == 304
    changed = await post(
        URL, {"context": {"targetingKey": "u1", "email": "a@other.org"}}, **{"If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_context_over_a_limit_is_invalid_context() -> None:
    """A context with more attributes than max_properties is 400 INVALID_CONTEXT naming the limit."""
    from flagd.limits import Limits

    async with client(make_app(limits=Limits(max_properties=2))) as http:
        response = await http.post(
            f"{URL}/always-on",
            headers={"Authorization": f"Bearer {TOKEN_A}"},
            content=json.dumps({"context": {"targetingKey": "u", "a": 1, "b": 2, "c": 3}}),
        )
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert "max_properties=2" in response.json()["errorDetails"]


async def test_device_id_context_attribute_buckets_device_flags() -> None:
    """``$device_id`` / ``device_id`` in the OFREP context is what a device-bucketed flag hashes: one answer
    per device whatever the targeting key, and the same as /flags gives for that device."""
    flags = [
        *FLAGS_A,
        {
            **flag(9, "by-device", [{"properties": [], "rollout_percentage": 50}]),
            "bucketing_identifier": "device_id",
        },
    ]
    catalog = Catalog()
    catalog.replace_all({1: build_project_state(project_data(1, TOKEN_A, SECRET_A, flags))})
    headers = {"Authorization": f"Bearer {TOKEN_A}"}
    seen = set()
    async with client(make_app(catalog)) as http:
        for n in range(16):
            answers = set()
            for attr, user in (("$device_id", "a"), ("device_id", "b"), ("$device_id", "c")):
                ctx = {"targetingKey": f"{user}-{n}", attr: f"device-{n}"}
                body = (await http.post(f"{URL}/by-device", json={"context": ctx}, headers=headers)).json()
                answers.add(body["value"])
            remote = await http.post(
                "/flags/?v=2", json={"api_key": TOKEN_A, "distinct_id": "z", "$device_id": f"device-{n}"}
            )
            answers.add(remote.json()["flags"]["by-device"]["enabled"])
            assert len(answers) == 1
            seen |= answers
    assert seen == {True, False}  # the rollout really splits devices
