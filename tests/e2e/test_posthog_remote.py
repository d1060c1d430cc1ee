"""The real ``posthog`` Python client in remote-evaluation mode against a real ``flagd serve`` process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog

from tests.e2e.conftest import FlagdServer, flags_requests_by_worker, server_env, wait_until

pytestmark = pytest.mark.e2e

TARGETED = {
    "groups": [
        {
            "properties": [
                {"key": "plan", "type": "person", "value": ["pro", "enterprise"], "operator": "exact"}
            ],
            "rollout_percentage": 100,
        }
    ]
}
SPLIT = {
    "groups": [{"properties": [], "rollout_percentage": 100}],
    "multivariate": {
        "variants": [
            {"key": "control", "rollout_percentage": 34},
            {"key": "blue", "rollout_percentage": 33},
            {"key": "green", "rollout_percentage": 33},
        ]
    },
    "payloads": {"blue": json.dumps({"hex": "#00f"}), "green": json.dumps({"hex": "#0f0"})},
}
ROLLOUT = {
    "groups": [{"properties": [], "rollout_percentage": 40}],
    "payloads": {"true": json.dumps([1, 2, 3])},
}
COMPANY = {
    "aggregation_group_type_index": 0,
    "groups": [
        {
            "properties": [
                {"key": "seats", "type": "group", "group_type_index": 0, "value": 50, "operator": "gte"}
            ],
            "rollout_percentage": 100,
        }
    ],
}


@pytest.fixture
def server(flagd_embedded: FlagdServer) -> FlagdServer:
    s = flagd_embedded
    s.admin("PATCH", f"/api/projects/{s.project_id}/", json={"group_type_mapping": {"0": "company"}})
    s.create_flag("pro-feature", TARGETED)
    s.create_flag("button-color", SPLIT)
    s.create_flag("slow-rollout", ROLLOUT)
    s.create_flag("company-feature", COMPANY)
    s.create_flag("switched-off", active=False)
    return s


@pytest.fixture
def posthog(server: FlagdServer) -> Iterator[Posthog]:
    client = Posthog(
        server.project_token, host=server.url, flush_interval=0.05, feature_flags_request_timeout_seconds=5
    )
    try:
        yield client
    finally:
        client.shutdown()  # flushes $feature_flag_called events to /batch/ and joins the consumer thread


def raw_flags(server: FlagdServer, distinct_id: str, **body: Any) -> dict[str, Any]:
    return server.flags(distinct_id, **body)["flags"]


def test_boolean_targeting_through_the_client(server: FlagdServer, posthog: Posthog) -> None:
    """Flags follow person properties: on for pro users, off otherwise; disabled flags are off."""
    pro = posthog.evaluate_flags("u1", person_properties={"plan": "pro"})
    free = posthog.evaluate_flags("u1", person_properties={"plan": "free"})
    assert pro.get_flag("pro-feature") is True
    assert pro.is_enabled("pro-feature") is True
    assert free.get_flag("pro-feature") is False
    assert pro.get_flag("switched-off") is False
    assert set(pro.keys) >= {
        "pro-feature",
        "button-color",
        "slow-rollout",
        "company-feature",
        "switched-off",
    }


def test_deprecated_single_flag_calls_still_work(server: FlagdServer, posthog: Posthog) -> None:
    """The older get_feature_flag / get_feature_flag_payload calls get the same answers from flagd."""
    with pytest.deprecated_call():
        value = posthog.get_feature_flag("pro-feature", "u1", person_properties={"plan": "pro"})
    assert value is True
    wire = raw_flags(server, "u3")["button-color"]
    with pytest.deprecated_call():
        assert posthog.get_feature_flag("button-color", "u3") == wire["variant"]
    with pytest.deprecated_call():
        payload = posthog.get_feature_flag_payload("button-color", "u3")
    assert payload == (json.loads(wire["metadata"]["payload"]) if wire["metadata"]["payload"] else None)


def test_variants_and_payloads_match_the_wire_answer(server: FlagdServer, posthog: Posthog) -> None:
    """The client's variant and decoded payload equal what /flags says for the same user."""
    seen = set()
    for n in range(30):
        user = f"user-{n}"
        wire = raw_flags(server, user)["button-color"]
        flags = posthog.evaluate_flags(user)
        variant = flags.get_flag("button-color")
        assert variant == wire["variant"]
        seen.add(variant)
        expected = json.loads(wire["metadata"]["payload"]) if wire["metadata"]["payload"] else None
        assert flags.get_flag_payload("button-color") == expected
    assert seen == {"control", "blue", "green"}


def test_rollout_share_and_payload(server: FlagdServer, posthog: Posthog) -> None:
    """A 40 % rollout is on for roughly 40 % of users, and its payload arrives decoded for those users."""
    on = 0
    for n in range(200):
        flags = posthog.evaluate_flags(f"r-{n}", flag_keys=["slow-rollout"])
        if flags.get_flag("slow-rollout"):
            on += 1
            assert flags.get_flag_payload("slow-rollout") == [1, 2, 3]
        else:
            assert flags.get_flag_payload("slow-rollout") is None
    assert 50 <= on <= 110


def test_get_all_flags_equals_the_wire_answer(server: FlagdServer, posthog: Posthog) -> None:
    """get_all_flags returns every flag with the value /flags gives."""
    props = {"plan": "pro"}
    flags = posthog.get_all_flags("u7", person_properties=props)
    wire = raw_flags(server, "u7", person_properties={**props, "distinct_id": "u7"})
    assert flags == {k: (r["variant"] or r["enabled"]) for k, r in wire.items()}
    assert flags is not None
    assert flags["pro-feature"] is True


def test_group_flags_with_groups_and_group_properties(server: FlagdServer, posthog: Posthog) -> None:
    """A company flag is on for a big company, off for a small one, and off without the group."""
    big = posthog.evaluate_flags(
        "u1", groups={"company": "acme"}, group_properties={"company": {"seats": 120}}
    )
    small = posthog.evaluate_flags(
        "u1", groups={"company": "tiny"}, group_properties={"company": {"seats": 3}}
    )
    none = posthog.evaluate_flags("u1")
    assert big.get_flag("company-feature") is True
    assert small.get_flag("company-feature") is False
    assert none.get_flag("company-feature") is False
    all_big = posthog.get_all_flags(
        "u1", groups={"company": "acme"}, group_properties={"company": {"seats": 99}}
    )
    assert all_big is not None
    assert all_big["company-feature"] is True


def test_feature_flag_called_events_are_accepted(server: FlagdServer) -> None:
    """The client's $feature_flag_called events reach /batch/ and are acknowledged (no errors reported)."""
    errors: list[Any] = []
    client = Posthog(
        server.project_token, host=server.url, sync_mode=True, on_error=lambda e, b: errors.append(e)
    )
    try:
        flags = client.evaluate_flags("u1", person_properties={"plan": "pro"})
        assert flags.get_flag("pro-feature") is True  # fires $feature_flag_called
        client.capture("signed_up", distinct_id="u1", properties={"plan": "pro"}, flags=flags)
    finally:
        client.shutdown()
    assert errors == []


def test_wrong_token_gets_no_flags(server: FlagdServer) -> None:
    """A client with an unknown project token gets None, because the running server answers 401 to that
    token (and the right token, on the same server, gets the flag)."""
    raw = httpx.post(f"{server.url}/flags/?v=2", json={"api_key": "phc_not_a_project", "distinct_id": "u1"})
    assert raw.status_code == 401
    client = Posthog("phc_not_a_project", host=server.url, feature_flags_request_timeout_seconds=5)
    right = Posthog(
        server.project_token, host=server.url, send=False, feature_flags_request_timeout_seconds=5
    )
    try:
        flags = client.evaluate_flags("u1", person_properties={"plan": "pro"})
        assert flags.get_flag("pro-feature") is None
        assert right.evaluate_flags("u1", person_properties={"plan": "pro"}).get_flag("pro-feature") is True
    finally:
        client.shutdown()
        right.shutdown()


@pytest.mark.integration
def test_distributed_node_serves_the_client(request: pytest.FixtureRequest) -> None:
    """On PostgreSQL + Redis, a flag created over the admin API reaches the posthog client via the syncer."""
    pytest.importorskip(
        "store.stream.node", reason="distributed mode needs the node follower (store.stream.node)"
    )
    server: FlagdServer = request.getfixturevalue("flagd_distributed")
    server.create_flag("pro-feature", TARGETED)
    wait_until(lambda: "pro-feature" in server.flags("u1")["flags"], timeout=15)
    client = Posthog(server.project_token, host=server.url, send=False)
    try:
        assert client.evaluate_flags("u1", person_properties={"plan": "pro"}).get_flag("pro-feature") is True
        free = client.evaluate_flags("u1", person_properties={"plan": "free"})
        assert free.get_flag("pro-feature") is False
    finally:
        client.shutdown()


def test_two_workers_count_every_request_in_metrics(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path
) -> None:
    """With 2 Granian workers, both of which served /flags requests, /metrics on any worker adds up every
    request and evaluation."""
    metrics_dir = tmp_path / "metrics"
    env = server_env(FLAGD_DATA_PATH=str(tmp_path / "flagd.db"), FLAGD_METRICS_DIR=str(metrics_dir))
    server = start_flagd(env=env, args=("--workers", "2"))
    server.create_flag("pro-feature", TARGETED)
    sent, returned = 0, 0

    def one_request() -> None:
        nonlocal sent, returned
        body = {"api_key": server.project_token, "distinct_id": f"u{sent}"}
        response = httpx.post(f"{server.url}/flags/?v=2", json=body)  # a fresh connection each time
        assert response.status_code == 200
        sent += 1
        returned += len(response.json()["flags"])

    for _ in range(40):
        one_request()
    deadline = time.monotonic() + 30
    while sum(1 for n in flags_requests_by_worker(metrics_dir).values() if n > 0) < 2:
        assert time.monotonic() < deadline, (
            f"only one worker served /flags: {flags_requests_by_worker(metrics_dir)}"
        )
        one_request()
        time.sleep(0.05)

    served = 'flagd_requests_total{route="flags",status="200"}'
    assert wait_until(lambda: server.metric(served) == sent, timeout=10)
    assert server.metric("flagd_flag_evaluations_total{") == returned
