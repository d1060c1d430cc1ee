"""The README's limits at their documented numbers, with the server's default ``Limits()``: exactly at each
limit a request is served, one past it gets the documented 4xx naming the limit (the other limit tests pass
a small ``Limits`` of their own, so they would pass whatever the defaults were)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from flagd.limits import Limits
from store.catalog import Catalog, build_project_state
from tests.flagd.sdk_support import SECRET_A, TOKEN_A, client, flag, make_app, project_data

MIB = 1024 * 1024


def _catalog() -> Catalog:
    """Project A with one flag that matches a distinct id of exactly 200 "x" characters."""
    by_id = flag(
        1,
        "id-200",
        [
            {
                "properties": [{"key": "distinct_id", "value": "x" * 200, "type": "person"}],
                "rollout_percentage": 100,
            }
        ],
    )
    catalog = Catalog()
    catalog.replace_all({1: build_project_state(project_data(1, TOKEN_A, SECRET_A, [by_id]))})
    return catalog


async def _post(path: str, body: bytes | dict[str, Any], **kwargs: Any) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    async with client(make_app(_catalog())) as http:
        return await http.post(path, content=content, **kwargs)


def _padded(size: int, **fields: Any) -> bytes:
    """A /flags JSON body of exactly ``size`` bytes (a padding property fills it)."""
    base = {"api_key": TOKEN_A, "distinct_id": "u", **fields, "person_properties": {"pad": ""}}
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["person_properties"] = {"pad": "p" * (size - empty)}
    raw = json.dumps(base, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


def test_the_defaults_are_the_documented_numbers() -> None:
    """Limits() carries the README's numbers (the behaviour tests below check each one is enforced)."""
    limits = Limits()
    assert limits.max_body_bytes == MIB
    assert limits.max_event_body_bytes == 5 * MIB
    assert limits.max_distinct_id_chars == 200
    assert (limits.max_properties, limits.max_groups, limits.max_flag_keys) == (1000, 50, 1000)
    assert (limits.max_property_value_chars, limits.max_batch_events) == (10_000, 1000)


async def test_a_body_of_exactly_1_mib_is_served_and_one_byte_more_is_413() -> None:
    """Body limit 1 MiB: 1,048,576 bytes are accepted, 1,048,577 get 413 naming max_body_bytes.

    (The padding is one property value, so the per-value limit is lifted for this test alone.)"""
    raw = _padded(MIB)
    big_values = Limits(max_property_value_chars=2 * MIB)
    async with client(make_app(_catalog(), limits=big_values)) as http:
        assert (await http.post("/flags?v=2", content=raw)).status_code == 200
        over = await http.post("/flags?v=2", content=_padded(MIB + 1))
    assert over.status_code == 413
    assert f"max_body_bytes={MIB}" in over.json()["detail"]


async def test_the_body_limit_applies_again_after_gzip_decoding() -> None:
    """A small gzip body inflating to 1 MiB + 1 byte gets 413; inflating to exactly 1 MiB it is served."""
    big_values = Limits(max_property_value_chars=2 * MIB)
    async with client(make_app(_catalog(), limits=big_values)) as http:
        fits = gzip.compress(_padded(MIB))
        over = gzip.compress(_padded(MIB + 1))
        assert len(over) < 100_000
        headers = {"Content-Encoding": "gzip"}
        assert (await http.post("/flags?v=2", content=fits, headers=headers)).status_code == 200
        response = await http.post("/flags?v=2", content=over, headers=headers)
    assert response.status_code == 413
    assert f"max_body_bytes={MIB}" in response.json()["detail"]


async def test_a_distinct_id_is_cut_to_200_characters() -> None:
    """Ids longer than 200 characters are cut to 200 (as PostHog does), not refused."""
    for distinct_id, enabled in (("x" * 200, True), ("x" * 200 + "tail", True), ("x" * 199, False)):
        response = await _post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": distinct_id})
        assert response.status_code == 200
        assert response.json()["flags"]["id-200"]["enabled"] is enabled, len(distinct_id)


@pytest.mark.parametrize(
    ("at_limit", "over_limit", "name"),
    [
        (
            {"person_properties": {f"p{i}": i for i in range(1000)}},
            {"person_properties": {f"p{i}": i for i in range(1001)}},
            "max_properties=1000",
        ),
        (
            {"groups": {"company": "c"}, "group_properties": {"company": {f"p{i}": i for i in range(1000)}}},
            {"groups": {"company": "c"}, "group_properties": {"company": {f"p{i}": i for i in range(1001)}}},
            "max_properties=1000",
        ),
        (
            {"groups": {f"g{i}": "x" for i in range(50)}},
            {"groups": {f"g{i}": "x" for i in range(51)}},
            "max_groups=50",
        ),
        (
            {"flag_keys_to_evaluate": [f"k{i}" for i in range(1000)]},
            {"flag_keys_to_evaluate": [f"k{i}" for i in range(1001)]},
            "max_flag_keys=1000",
        ),
        (
            {"person_properties": {"email": "e" * 10_000}},
            {"person_properties": {"email": "e" * 10_001}},
            "max_property_value_chars=10000",
        ),
    ],
    ids=["person-properties", "group-properties", "groups", "flag-keys", "value-chars"],
)
async def test_each_request_limit_at_its_documented_number(
    at_limit: dict[str, Any], over_limit: dict[str, Any], name: str
) -> None:
    """At the documented number the request is served; one more gets 400 limit_exceeded naming the limit."""
    ok = await _post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": "u", **at_limit})
    assert ok.status_code == 200, ok.text
    over = await _post("/flags?v=2", {"api_key": TOKEN_A, "distinct_id": "u", **over_limit})
    assert over.status_code == 400
    assert over.json()["code"] == "limit_exceeded"
    assert name in over.json()["detail"]


EVENT = {"event": "$pageview", "distinct_id": "u1", "properties": {}}


async def test_a_batch_of_1000_events_is_accepted_and_1001_is_400() -> None:
    """Event batches hold up to 1,000 events; 1,001 get 400 naming max_batch_events."""
    assert (await _post("/batch/", {"api_key": TOKEN_A, "batch": [EVENT] * 1000})).status_code == 200
    over = await _post("/batch/", {"api_key": TOKEN_A, "batch": [EVENT] * 1001})
    assert over.status_code == 400
    assert "max_batch_events=1000" in over.json()["detail"]


async def test_event_bodies_may_reach_5_mib_and_no_more() -> None:
    """The event intake takes bodies of up to 5 MiB (above the 1 MiB /flags limit); more gets 413."""

    def batch_of(size: int) -> bytes:
        base = {"api_key": TOKEN_A, "batch": [{**EVENT, "properties": {"pad": ""}}]}
        empty = len(json.dumps(base, separators=(",", ":")).encode())
        base["batch"][0]["properties"]["pad"] = "p" * (size - empty)
        raw = json.dumps(base, separators=(",", ":")).encode()
        assert len(raw) == size
        return raw

    assert (await _post("/batch/", batch_of(5 * MIB))).status_code == 200
    over = await _post("/batch/", batch_of(5 * MIB + 1))
    assert over.status_code == 413
    assert f"max_event_body_bytes={5 * MIB}" in over.json()["detail"]
