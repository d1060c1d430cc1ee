"""README promises about edits, against the real server: a poll with the pre-edit ETag gets the edited
definitions (a server stuck on 304 would fail), and concurrent requests see the old or the new flags, never a
mix, while a cohort that several flags use is edited."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, wait_until

pytestmark = pytest.mark.e2e


def test_a_poll_with_the_old_etag_gets_the_edited_definitions(flagd_embedded: FlagdServer) -> None:
    """After an admin edit, polling local_evaluation with the ETag from before gets 200 and the new
    definitions; the new ETag then gets 304."""
    server = flagd_embedded
    pro = {
        "groups": [
            {"properties": [{"key": "plan", "value": "pro", "type": "person"}], "rollout_percentage": 100}
        ]
    }
    flag = server.create_flag("etag-flag", pro, bucketing="posthog")
    url = f"{server.url}/api/feature_flag/local_evaluation?token={server.project_token}"
    auth = {"Authorization": f"Bearer {server.project_secret}"}
    first = wait_until(lambda: _with_flag(httpx.get(url, headers=auth), "etag-flag"), timeout=10)
    old_etag = first.headers["etag"]
    assert httpx.get(url, headers={**auth, "If-None-Match": old_etag}).status_code == 304
    enterprise = {
        "groups": [
            {
                "properties": [{"key": "plan", "value": "enterprise", "type": "person"}],
                "rollout_percentage": 100,
            }
        ]
    }
    server.update_flag(flag, filters=enterprise)

    def edited() -> httpx.Response | None:
        response = httpx.get(url, headers={**auth, "If-None-Match": old_etag})
        assert response.status_code in (200, 304)
        return response if response.status_code == 200 else None

    polled = wait_until(edited, timeout=10)
    assert polled.headers["etag"] != old_etag
    (definition,) = [f for f in polled.json()["flags"] if f["key"] == "etag-flag"]
    assert definition["filters"]["groups"][0]["properties"][0]["value"] == "enterprise"
    assert httpx.get(url, headers={**auth, "If-None-Match": polled.headers["etag"]}).status_code == 304


def _with_flag(response: httpx.Response, key: str) -> httpx.Response | None:
    assert response.status_code == 200
    return response if any(f["key"] == key for f in response.json()["flags"]) else None


FLAGS = [f"cohort-flag-{n}" for n in range(6)]


def test_concurrent_requests_see_old_or_new_flags_never_a_mix(flagd_embedded: FlagdServer) -> None:
    """Six flags target one cohort; while the cohort is edited, every /flags answer from four concurrent
    clients has all six on (old cohort) or all six off (new cohort), never old again after new, and both
    states are seen."""
    server = flagd_embedded
    cohorts_url = f"/api/projects/{server.project_id}/cohorts/"
    rule = {"properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "value": "pro"}]}}
    cohort = server.admin("POST", cohorts_url, json={"name": "Pros", "filters": rule})
    in_cohort = {"key": "id", "type": "cohort", "value": cohort["id"], "operator": "in"}
    for key in FLAGS:
        server.create_flag(key, {"groups": [{"properties": [in_cohort], "rollout_percentage": 100}]})
    body = {"api_key": server.project_token, "distinct_id": "u", "person_properties": {"plan": "pro"}}
    wait_until(lambda: _states(httpx.post(f"{server.url}/flags/?v=2", json=body)) == {True}, timeout=10)

    seen: list[set[bool]] = []
    failures: list[str] = []
    done = threading.Event()

    def hammer() -> None:
        new_seen = False
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not done.is_set():
                states = _states(http.post("/flags/?v=2", json=body))
                seen.append(states)
                if len(states) != 1:
                    failures.append(f"a mix of old and new answers: {states}")
                    return
                if new_seen and states == {True}:
                    failures.append("the old flags came back after the new ones were served")
                    return
                new_seen = states == {False}

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(seen) >= 20, timeout=20)
        rule["properties"]["values"][0]["value"] = "enterprise"
        server.admin(
            "PATCH", f"{cohorts_url}{cohort['id']}/", json={"filters": rule, "version": cohort["version"]}
        )
        wait_until(lambda: failures or seen[-1] == {False}, timeout=20)
        count = len(seen)
        wait_until(lambda: failures or len(seen) >= count + 20, timeout=20)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert {True} in seen
    assert {False} in seen
    assert seen[-1] == {False}


def _states(response: httpx.Response) -> set[bool]:
    assert response.status_code == 200, response.text
    flags: dict[str, Any] = response.json()["flags"]
    return {bool(flags[key]["enabled"]) for key in FLAGS}
