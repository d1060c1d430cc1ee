"""SDK endpoints over a real Redis person store: events apply before 200, flag checks read only when needed,
and a store failure fails only the flags that needed it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from flagd.sdk.app import SdkApp
from flagd.sdk.persons import Persons
from store.catalog import Catalog, ProjectData, build_project_state
from store.persons.redis import RedisPersonStore
from tests.flagd.sdk_support import TOKEN_A, client, make_app
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

CLICKS = {
    "type": "behavioral",
    "key": "clicked",
    "value": "performed_event_multiple",
    "event_type": "events",
    "operator": "gte",
    "operator_value": 2,
    "time_value": 10,
    "time_interval": "minute",
}


def _flag(flag_id: int, key: str, properties: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": flag_id,
        "key": key,
        "active": True,
        "deleted": False,
        "version": 1,
        "bucketing": "posthog",
        "filters": {"groups": [{"properties": properties, "rollout_percentage": 100}]},
    }


def _catalog() -> Catalog:
    data = ProjectData(
        project_id=1,
        api_token=TOKEN_A,
        secret_token_hash="0" * 64,
        group_type_mapping={"0": "company"},
        version=1,
        flags=[
            _flag(1, "plain", []),
            _flag(2, "clickers", [{"key": "id", "type": "cohort", "value": 9}]),
            _flag(3, "pro", [{"key": "plan", "type": "person", "value": "pro", "operator": "exact"}]),
        ],
        cohorts=[
            {
                "id": 9,
                "name": "clickers",
                "deleted": False,
                "is_static": False,
                "version": 1,
                "filters": {"properties": {"type": "AND", "values": [{"type": "AND", "values": [CLICKS]}]}},
            }
        ],
    )
    catalog = Catalog()
    catalog.replace_all({1: build_project_state(data)})
    return catalog


def _app(store: RedisPersonStore) -> SdkApp:
    # These tests check answers, not timing: a generous store deadline (the 25 ms default is tested in
    # tests/flagd/test_store_faults.py), as this machine is shared and a cold connection can take longer.
    return make_app(_catalog(), persons=Persons(store, history_seconds=86400, deadline_seconds=1.0))


async def _flags(http: httpx.AsyncClient, user: str, keys: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"api_key": TOKEN_A, "distinct_id": user}
    if keys is not None:
        body["flag_keys_to_evaluate"] = keys
    response = await http.post("/flags/?v=2", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _batch(http: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    return await http.post("/batch/", json={"api_key": TOKEN_A, "batch": events})


def test_events_are_applied_before_the_batch_is_answered(redis_srv: RedisServer) -> None:
    """After /batch answers 200, the very next /flags sees the clicks and the $set."""

    async def main() -> None:
        store = RedisPersonStore(redis_srv.url)
        async with client(_app(store)) as http:
            clicks = [{"event": "clicked", "distinct_id": "u1"}] * 2
            assert (
                await _batch(http, [*clicks, {"event": "x", "distinct_id": "u1", "$set": {"plan": "pro"}}])
            ).status_code == 200
            flags = (await _flags(http, "u1"))["flags"]
            assert flags["clickers"]["enabled"] is True
            assert flags["pro"]["enabled"] is True
        await store.close()

    asyncio.run(main())


def test_flag_checks_read_the_store_only_when_the_flags_need_it(redis_srv: RedisServer) -> None:
    """Evaluating only a flag with no stored inputs makes no Redis call; a behavioural flag makes one."""

    async def main() -> None:
        store = RedisPersonStore(redis_srv.url)
        async with client(_app(store)) as http:
            await _flags(http, "u2", ["plain"])
            assert store.flushes == 0
            await _flags(http, "u2", ["clickers"])
            assert store.flushes == 1
        await store.close()

    asyncio.run(main())


def test_a_store_failure_fails_only_the_flags_that_needed_it(own_redis: RedisServer) -> None:
    """With Redis down, /flags answers 200 (behavioural flag failed, plain one served, errors flagged) and
    /batch answers 503 store_unavailable."""

    async def main() -> None:
        store = RedisPersonStore(own_redis.url)
        async with client(_app(store)) as http:
            own_redis.stop()
            answer = await _flags(http, "u3", ["plain", "clickers"])
            assert answer["errorsWhileComputingFlags"] is True
            assert answer["flags"]["plain"]["enabled"] is True
            assert answer["flags"]["clickers"]["failed"] is True
            refused = await _batch(http, [{"event": "clicked", "distinct_id": "u3"}])
            assert refused.status_code == 503
            assert refused.json()["code"] == "store_unavailable"
        await store.close()

    asyncio.run(main())


def test_ofrep_and_decide_use_stored_properties_and_counts(redis_srv: RedisServer) -> None:
    """OFREP (single and bulk) and /decide answer from the stored $set and clicks, like /flags."""

    async def main() -> None:
        store = RedisPersonStore(redis_srv.url)
        async with client(_app(store)) as http:
            clicks = [{"event": "clicked", "distinct_id": "u4"}] * 2
            setter = {"event": "x", "distinct_id": "u4", "properties": {"$set": {"plan": "pro"}}}
            assert (await _batch(http, [*clicks, setter])).status_code == 200
            auth = {"Authorization": f"Bearer {TOKEN_A}"}
            body = {"context": {"targetingKey": "u4"}}
            one = await http.post("/ofrep/v1/evaluate/flags/pro", json=body, headers=auth)
            assert one.status_code == 200, one.text
            assert one.json()["value"] is True
            bulk = await http.post("/ofrep/v1/evaluate/flags", json=body, headers=auth)
            values = {f["key"]: f.get("value") for f in bulk.json()["flags"]}
            assert values["clickers"] is True
            assert values["pro"] is True
            decide = await http.post("/decide/?v=3", json={"api_key": TOKEN_A, "distinct_id": "u4"})
            assert decide.json()["featureFlags"]["clickers"] is True
        await store.close()

    asyncio.run(main())
