"""posthog-node (from npm) and posthog-python against a real flagd: what flagd offers for local evaluation,
both SDKs reproduce; remote and local answers agree for the same users.

The flags cover what used to split the SDKs: integer ``exact`` values (served as text, so posthog-node
evaluates them locally instead of asking the server for every flag), ``exact false`` (truthiness, property
matching version 1), device-id bucketing, non-ISO dates, feature enrollment (withheld: posthog-node ignores
it), a flag dependency, a group flag and a multivariate flag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog

from tests import npm
from tests.e2e.conftest import FlagdServer

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).parent / "node" / "posthog_node_check.cjs"


def _condition(*props: dict[str, Any], rollout: int = 100) -> dict[str, Any]:
    return {"properties": list(props), "rollout_percentage": rollout}


def _person(key: str, operator: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": "person", "operator": operator, "value": value}


OFFERED: dict[str, dict[str, Any]] = {
    "everyone": {"groups": [_condition()], "payloads": {"true": json.dumps({"a": 1})}},
    "gradual": {"groups": [_condition(rollout=40)]},
    "plan-five": {"groups": [_condition(_person("plan_id", "exact", 5))]},
    "plans-five-or-seven": {"groups": [_condition(_person("plan_id", "is_not", [5, 7]))]},
    "beta-off": {"groups": [_condition(_person("beta", "exact", False))]},
    "beta-on": {"groups": [_condition(_person("beta", "exact", ["true"]))]},
    "early": {"groups": [_condition(_person("signup", "is_date_before", "2024-01-01"))]},
    "experiment": {
        "groups": [_condition(rollout=80)],
        "multivariate": {
            "variants": [{"key": "a", "rollout_percentage": 30}, {"key": "b", "rollout_percentage": 70}]
        },
    },
    "follows-gradual": {
        "groups": [
            _condition({"key": "gradual", "type": "flag", "value": True, "operator": "flag_evaluates_to"})
        ]
    },
    "company-half": {"aggregation_group_type_index": 0, "groups": [_condition(rollout=50)]},
}
DEVICE_FLAG = {"groups": [_condition(rollout=50)]}
WITHHELD: dict[str, dict[str, Any]] = {
    "enrollment": {"groups": [_condition(rollout=0)], "feature_enrollment": True},
    "prose-date": {"groups": [_condition(_person("signup", "is_date_after", "June 1, 2023"))]},
}
SIGNUPS = ["2023-05-01", "2024-03-01T10:00:00Z", "2023-12-31T23:59:59+00:00", "June 1, 2023", "2025-01-02"]
BETAS: list[Any] = [True, False, "true", "false", "TRUE", 0, 1, "no"]


def _users() -> list[dict[str, Any]]:
    users = []
    for n in range(80):
        props = {
            "plan_id": str(n % 9),
            "beta": BETAS[n % len(BETAS)],
            "signup": SIGNUPS[n % len(SIGNUPS)],
            "$device_id": f"device-{n % 23}",
            "$feature_enrollment/enrollment": n % 2 == 0,
        }
        users.append(
            {
                "distinct_id": f"user-{n}",
                "person_properties": props,
                "groups": {"company": f"company-{n % 17}"},
                "group_properties": {"company": {"size": n}},
            }
        )
    return users


@pytest.fixture
def server(flagd_embedded: FlagdServer) -> FlagdServer:
    s = flagd_embedded
    s.admin("PATCH", f"/api/projects/{s.project_id}/", json={"group_type_mapping": {"0": "company"}})
    for key, filters in {**OFFERED, **WITHHELD}.items():
        s.create_flag(key, filters, bucketing="posthog")
    s.create_flag("by-device", DEVICE_FLAG, bucketing="posthog", bucketing_identifier="device_id")
    return s


def _run_node(server: FlagdServer, users: list[dict[str, Any]]) -> dict[str, Any]:
    payload = {
        "sdk": str(npm.package(npm.POSTHOG_NODE)),
        "host": server.url,
        "token": server.project_token,
        "secret": server.project_secret,
        "users": users,
        "payload_flags": ["everyone", "gradual"],
    }
    return npm.run_script(SCRIPT, payload)


def _value(record: dict[str, Any]) -> Any:
    return record["variant"] or record["enabled"]


def test_both_sdks_reproduce_every_flag_flagd_offers(server: FlagdServer) -> None:
    """Definitions hold exactly the flags both SDKs reproduce; posthog-node decides each of them locally for
    every user (integer exact values included) and agrees with /flags, and so does posthog-python whenever
    it decides; withheld flags still answer remotely."""
    definitions = httpx.get(
        f"{server.url}/flags/definitions?token={server.project_token}&send_cohorts",
        headers={"Authorization": f"Bearer {server.project_secret}"},
    ).json()
    offered = {f["key"] for f in definitions["flags"]}
    assert offered == {*OFFERED, "by-device"}
    assert definitions["property_matching_version"] == 1
    users = _users()
    node = _run_node(server, users)
    assert node["errors"] == []
    python = Posthog(
        server.project_token, host=server.url, secret_key=server.project_secret, poll_interval=300, send=False
    )
    python_decided = 0
    try:
        python.load_feature_flags()
        for user, answers in zip(users, node["users"], strict=True):
            wire = server.flags(
                user["distinct_id"],
                person_properties={**user["person_properties"], "distinct_id": user["distinct_id"]},
                groups=user["groups"],
                group_properties={"company": {**user["group_properties"]["company"], "$group_key": "x"}},
            )["flags"]
            remote = {key: _value(record) for key, record in wire.items()}
            assert answers["remote"] == remote, user["distinct_id"]
            assert set(answers["local"]) == offered, user["distinct_id"]  # decided locally, every one
            assert answers["local"] == {key: remote[key] for key in offered}, user["distinct_id"]
            local = python.evaluate_flags(
                user["distinct_id"],
                person_properties=user["person_properties"],
                groups=user["groups"],
                group_properties=user["group_properties"],
                device_id=user["person_properties"]["$device_id"],
                only_evaluate_locally=True,
            )
            for key in offered:
                decided = local.get_flag(key)
                if decided is not None:
                    python_decided += 1
                    assert decided == remote[key], (key, user["distinct_id"])
            assert remote["enrollment"] is user["person_properties"]["$feature_enrollment/enrollment"]
    finally:
        python.shutdown()
    assert python_decided > len(users) * (len(offered) - 2)  # python leaves only non-ISO dates to the server


def test_remote_config_payload(server: FlagdServer) -> None:
    """posthog-node's getRemoteConfigPayload gets the flag's payload, parsed; null for a flag without one."""
    node = _run_node(server, [])
    assert node["payloads"] == {"everyone": {"a": 1}, "gradual": None}
