"""The real posthog client in local-evaluation mode: definitions from a real flagd serve, same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from posthog import Posthog

from tests.e2e.conftest import FlagdServer

pytestmark = pytest.mark.e2e

FLAGS: dict[str, dict[str, Any]] = {
    "everyone": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "payloads": {"true": json.dumps({"a": 1})},
    },
    "pro-users": {
        "groups": [
            {
                "properties": [
                    {"key": "plan", "type": "person", "value": ["pro", "enterprise"], "operator": "exact"}
                ],
                "rollout_percentage": 100,
            }
        ]
    },
    "gradual": {"groups": [{"properties": [], "rollout_percentage": 37}]},
    "email-beta": {
        "groups": [
            {
                "properties": [
                    {"key": "email", "type": "person", "value": "@example.com", "operator": "icontains"}
                ],
                "rollout_percentage": 60,
            }
        ]
    },
    "experiment": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "multivariate": {
            "variants": [
                {"key": "a", "rollout_percentage": 20},
                {"key": "b", "rollout_percentage": 30},
                {"key": "c", "rollout_percentage": 50},
            ]
        },
        "payloads": {"b": json.dumps({"b": True})},
    },
    "company-flag": {
        "aggregation_group_type_index": 0,
        "groups": [{"properties": [], "rollout_percentage": 50}],
    },
    # Flag dependencies: SDKs evaluate these locally only with a dependency_chain in the definitions.
    "follows-gradual": {
        "groups": [
            {
                "properties": [
                    {"key": "gradual", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
                ],
                "rollout_percentage": 100,
            }
        ]
    },
    "beta-after-experiment": {
        "groups": [
            {
                "properties": [
                    {"key": "experiment", "type": "flag", "value": "c", "operator": "flag_evaluates_to"},
                    {
                        "key": "follows-gradual",
                        "type": "flag",
                        "value": False,
                        "operator": "flag_evaluates_to",
                    },
                ],
                "rollout_percentage": 100,
            }
        ]
    },
}
USERS = [
    (
        f"user-{n}",
        {"plan": ["free", "pro", "enterprise"][n % 3], "email": f"u{n}@{['example.com', 'corp.io'][n % 2]}"},
    )
    for n in range(60)
]


@pytest.fixture
def server(flagd_embedded: FlagdServer) -> FlagdServer:
    s = flagd_embedded
    s.admin("PATCH", f"/api/projects/{s.project_id}/", json={"group_type_mapping": {"0": "company"}})
    for key, filters in FLAGS.items():
        s.create_flag(key, filters, bucketing="posthog")
    s.create_flag(
        "server-only", {"groups": [{"properties": [], "rollout_percentage": 50}]}, bucketing="murmur3"
    )
    return s


@pytest.fixture
def local_client(server: FlagdServer) -> Iterator[Posthog]:
    client = Posthog(
        server.project_token,
        host=server.url,
        secret_key=server.project_secret,
        poll_interval=300,
        feature_flags_request_timeout_seconds=5,
        send=False,
    )
    try:
        client.load_feature_flags()
        yield client
    finally:
        client.shutdown()  # stops the poller thread


def remote(server: FlagdServer, distinct_id: str, props: dict[str, Any], **body: Any) -> dict[str, Any]:
    # The SDK adds distinct_id to person properties before evaluating locally, and sends it remotely too.
    return server.flags(distinct_id, person_properties={**props, "distinct_id": distinct_id}, **body)["flags"]


def test_definitions_hold_only_sdk_reproducible_flags(server: FlagdServer) -> None:
    """The definitions the SDK fetches contain the posthog-bucketed flags and not the murmur3 one."""
    response = httpx.get(
        f"{server.url}/flags/definitions?token={server.project_token}&send_cohorts",
        headers={"Authorization": f"Bearer {server.project_secret}"},
    )
    assert response.status_code == 200
    keys = {f["key"] for f in response.json()["flags"]}
    assert keys == set(FLAGS)
    again = httpx.get(
        f"{server.url}/flags/definitions?token={server.project_token}",
        headers={
            "Authorization": f"Bearer {server.project_secret}",
            "If-None-Match": response.headers["etag"],
        },
    )
    assert again.status_code == 304


def test_local_evaluation_equals_remote(server: FlagdServer, local_client: Posthog) -> None:
    """For every user and flag, the SDK's local answer (and payload) equals flagd's remote answer."""
    for distinct_id, props in USERS:
        local = local_client.evaluate_flags(distinct_id, person_properties=props, only_evaluate_locally=True)
        wire = remote(server, distinct_id, props)
        for key in FLAGS:
            if key == "company-flag":
                continue
            record = wire[key]
            assert local.get_flag(key) == (record["variant"] or record["enabled"]), (key, distinct_id)
            expected = json.loads(record["metadata"]["payload"]) if record["metadata"]["payload"] else None
            assert local.get_flag_payload(key) == expected, (key, distinct_id)


def test_local_group_flags_equal_remote(server: FlagdServer, local_client: Posthog) -> None:
    """Group flags evaluated locally (bucketed by the group key) equal the remote answers."""
    on = 0
    for n in range(40):
        groups = {"company": f"company-{n}"}
        local = local_client.evaluate_flags("u1", groups=groups, only_evaluate_locally=True)
        wire = server.flags(
            "u1",
            groups=groups,
            person_properties={"distinct_id": "u1"},
            group_properties={"company": {"$group_key": f"company-{n}"}},
        )["flags"]
        assert local.get_flag("company-flag") == wire["company-flag"]["enabled"]
        on += bool(wire["company-flag"]["enabled"])
    assert 0 < on < 40


def test_server_only_flags_are_not_evaluated_locally(server: FlagdServer, local_client: Posthog) -> None:
    """A murmur3 flag is absent from local definitions, so a local-only evaluation cannot answer it."""
    local = local_client.evaluate_flags("u1", only_evaluate_locally=True)
    assert "server-only" not in local.keys
    assert local.get_flag("server-only") is None
    assert "server-only" in server.flags("u1")["flags"]


def test_wrong_secret_loads_nothing(server: FlagdServer, local_client: Posthog) -> None:
    """With a wrong secret the running server answers 401 and the SDK has no local flags, while the right
    secret on the same server loads them."""
    url = f"{server.url}/api/feature_flag/local_evaluation?token={server.project_token}"
    assert httpx.get(url, headers={"Authorization": "Bearer phs_wrong_secret"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {server.project_secret}"}).status_code == 200
    local_client.load_feature_flags()
    assert local_client.feature_flags
    client = Posthog(
        server.project_token,
        host=server.url,
        secret_key="phs_wrong_secret",
        poll_interval=300,
        send=False,
    )
    try:
        client.load_feature_flags()
        assert not client.feature_flags
    finally:
        client.shutdown()


def test_personal_api_key_with_read_scope_loads_definitions(server: FlagdServer) -> None:
    """A read-only personal API key made over the admin API works as the SDK's secret."""
    created = server.admin(
        "POST", f"/api/projects/{server.project_id}/api_keys/", json={"label": "sdk poller", "scope": "read"}
    )
    client = Posthog(
        server.project_token, host=server.url, secret_key=created["key"], poll_interval=300, send=False
    )
    try:
        client.load_feature_flags()
        assert {f["key"] for f in client.feature_flags or []} == set(FLAGS)
        wire = remote(server, "user-5", {"plan": "pro"})
        local = client.evaluate_flags("user-5", person_properties={"plan": "pro"}, only_evaluate_locally=True)
        assert local.get_flag("gradual") == wire["gradual"]["enabled"]
    finally:
        client.shutdown()
