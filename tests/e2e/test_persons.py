"""Events captured with the real ``posthog`` SDK on one node change flag answers on another (person store)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog

from tests import npm
from tests.e2e.conftest import FlagdServer, server_env, wait_until

pytestmark = pytest.mark.e2e

BUYERS = {
    "properties": {
        "type": "AND",
        "values": [
            {
                "type": "AND",
                "values": [
                    {
                        "type": "behavioral",
                        "key": "clicked_buy",
                        "value": "performed_event_multiple",
                        "event_type": "events",
                        "operator": "gte",
                        "operator_value": 2,
                        "time_value": 5,
                        "time_interval": "minute",
                    }
                ],
            }
        ],
    }
}
PRICING = {
    "properties": {
        "type": "OR",
        "values": [
            {
                "type": "AND",
                "values": [
                    {
                        "type": "behavioral",
                        "key": "$pageview",
                        "value": "performed_event",
                        "event_type": "events",
                        "time_value": 1,
                        "time_interval": "day",
                        "event_filters": [
                            {
                                "key": "$current_url",
                                "operator": "icontains",
                                "value": "/pricing",
                                "type": "event",
                            }
                        ],
                    }
                ],
            }
        ],
    }
}


def _flag(client: Posthog, key: str, distinct_id: str, **options: Any) -> Any:
    """The flag's value as the SDK's evaluate_flags snapshot gives it (None when it cannot tell)."""
    return client.evaluate_flags(distinct_id, flag_keys=[key], **options).get_flag(key)


def _cohort_flag(server: FlagdServer, key: str, filters: dict[str, Any]) -> None:
    cohort = server.admin(
        "POST", f"/api/projects/{server.project_id}/cohorts/", json={"name": key, "filters": filters}
    )
    server.create_flag(
        key,
        {
            "groups": [
                {
                    "properties": [{"key": "id", "type": "cohort", "value": cohort["id"]}],
                    "rollout_percentage": 100,
                }
            ]
        },
        bucketing="posthog",
    )


def _setup(server: FlagdServer) -> None:
    _cohort_flag(server, "buyers", BUYERS)
    _cohort_flag(server, "pricing-visitors", PRICING)
    server.create_flag(
        "pro-feature",
        {
            "groups": [
                {
                    "properties": [{"key": "plan", "type": "person", "value": ["pro"], "operator": "exact"}],
                    "rollout_percentage": 100,
                }
            ]
        },
    )


@pytest.fixture
def clients(flagd_cluster: list[FlagdServer]) -> Iterator[tuple[Posthog, Posthog, list[FlagdServer]]]:
    """A capturing client on node A and a flag-asking client on node B (remote evaluation)."""
    a, b = flagd_cluster
    _setup(a)
    writer = Posthog(a.project_token, host=a.url, sync_mode=True, disable_geoip=True)
    reader = Posthog(b.project_token, host=b.url, disable_geoip=True, feature_flags_request_timeout_seconds=5)
    # Node B serves the flags created through node A once the change feed brings them.
    wait_until(lambda: "pro-feature" in b.flags("probe")["flags"], timeout=15)
    yield writer, reader, flagd_cluster
    writer.shutdown()
    reader.shutdown()


def test_behaviour_captured_on_one_node_is_seen_on_another(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """Two clicks captured through node A put the person in a 'did it twice in 5 minutes' cohort on node B."""
    writer, reader, _ = clients
    user = f"user-{uuid.uuid4().hex[:8]}"
    assert _flag(reader, "buyers", user) is False
    writer.capture("clicked_buy", distinct_id=user)
    assert _flag(reader, "buyers", user) is False
    writer.capture("clicked_buy", distinct_id=user)
    assert _flag(reader, "buyers", user) is True


def test_event_filters_and_set_properties_apply_without_sending_them(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """A pageview on /pricing and a $set through node A make node B answer from stored state alone."""
    writer, reader, _ = clients
    user = f"user-{uuid.uuid4().hex[:8]}"
    writer.capture("$pageview", distinct_id=user, properties={"$current_url": "https://x.io/docs"})
    assert _flag(reader, "pricing-visitors", user) is False
    writer.capture("$pageview", distinct_id=user, properties={"$current_url": "https://x.io/Pricing?a=1"})
    assert _flag(reader, "pricing-visitors", user) is True
    assert _flag(reader, "pro-feature", user) is False
    writer.set(distinct_id=user, properties={"plan": "pro"})
    assert _flag(reader, "pro-feature", user) is True
    # The request still wins key by key over what is stored.
    assert _flag(reader, "pro-feature", user, person_properties={"plan": "free"}) is False


def test_identify_merges_anonymous_behaviour(clients: tuple[Posthog, Posthog, list[FlagdServer]]) -> None:
    """A click as an anonymous id and one after $identify count together for the identified user."""
    writer, reader, _ = clients
    anon, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    writer.capture("clicked_buy", distinct_id=anon)
    writer.capture("$identify", distinct_id=user, properties={"$anon_distinct_id": anon})
    writer.capture("clicked_buy", distinct_id=user)
    assert _flag(reader, "buyers", user) is True
    assert _flag(reader, "buyers", anon) is True


def test_retried_event_counts_once(clients: tuple[Posthog, Posthog, list[FlagdServer]]) -> None:
    """The same event uuid sent twice (an SDK retry) counts once."""
    writer, reader, servers = clients
    user = f"user-{uuid.uuid4().hex[:8]}"
    event_id = str(uuid.uuid4())
    writer.capture("clicked_buy", distinct_id=user, uuid=event_id)
    writer.capture("clicked_buy", distinct_id=user, uuid=event_id)
    assert _flag(reader, "buyers", user) is False
    body = {"api_key": servers[0].project_token, "batch": [{"event": "clicked_buy", "distinct_id": user}]}
    assert httpx.post(f"{servers[1].url}/batch/", json=body, timeout=10).status_code == 200
    assert _flag(reader, "buyers", user) is True


def test_local_evaluation_falls_back_to_the_server_for_behavioural_flags(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """An SDK in local-evaluation mode answers a behavioural flag (PostHog bucketing, so only the cohort keeps
    it from evaluating locally) with the server's answer."""
    writer, _, servers = clients
    node = servers[1]
    local = Posthog(
        node.project_token,
        host=node.url,
        secret_key=node.project_secret,
        poll_interval=300,
        send=False,
        disable_geoip=True,
        feature_flags_request_timeout_seconds=5,
    )
    try:
        local.load_feature_flags()  # type: ignore[no-untyped-call]
        user = f"user-{uuid.uuid4().hex[:8]}"
        writer.capture("clicked_buy", distinct_id=user)
        writer.capture("clicked_buy", distinct_id=user)
        assert _flag(local, "buyers", user) is True
        assert _flag(local, "buyers", user, only_evaluate_locally=True) is None
    finally:
        local.shutdown()


def test_posthog_node_capture_on_one_node_and_flags_on_another(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """posthog-node: two clicks captured through node A turn a behavioural flag on for posthog-node asking
    node B remotely; a local-evaluation client gives the server's answer (it cannot decide it locally)."""
    _, _, servers = clients
    a, b = servers
    payload = {
        "sdk": str(npm.package(npm.POSTHOG_NODE)),
        "writer": a.url,
        "reader": b.url,
        "token": a.project_token,
        "secret": a.project_secret,
        "user": f"node-{uuid.uuid4().hex[:8]}",
        "event": "clicked_buy",
        "flag": "buyers",
    }
    out = npm.run_script(Path(__file__).parent / "node" / "posthog_node_persons.cjs", payload)
    assert out["errors"] == []
    assert (out["before"], out["after"]) == (False, True)
    assert out["local"] is True
    assert out["only_local"] is None


def test_explain_reads_the_person_store(clients: tuple[Posthog, Posthog, list[FlagdServer]]) -> None:
    """Admin explain on node B shows a behavioural flag matching from the clicks captured through node A
    (the stored count, not store_unavailable)."""
    writer, _, servers = clients
    b = servers[1]
    user = f"user-{uuid.uuid4().hex[:8]}"
    writer.capture("clicked_buy", distinct_id=user)
    writer.capture("clicked_buy", distinct_id=user)
    flag = next(f for f in b.admin("GET", f"/api/projects/{b.project_id}/feature_flags/")["results"]
                if f["key"] == "buyers")  # fmt: skip
    url = f"/api/projects/{b.project_id}/feature_flags/{flag['id']}/explain/"
    answer = b.admin("POST", url, json={"distinct_id": user})
    explanation = answer["explanation"]
    assert explanation["decision"]["enabled"] is True
    (behaviour,) = explanation["conditions"][0]["filters"][0]["behaviour"]
    assert (behaviour["count"], behaviour["threshold"], behaviour["result"]) == (2, 2, True)


def test_bad_person_fields_are_rejected_naming_the_field(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """A batch whose $set is not an object is a 400 naming batch[1].properties.$set; none of it applies."""
    _, reader, servers = clients
    user = f"user-{uuid.uuid4().hex[:8]}"
    body = {
        "api_key": servers[0].project_token,
        "batch": [
            {"event": "clicked_buy", "distinct_id": user},
            {"event": "clicked_buy", "distinct_id": user, "properties": {"$set": ["plan"]}},
        ],
    }
    response = httpx.post(f"{servers[0].url}/batch/", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["attr"] == "batch[1].properties.$set"
    body["batch"] = body["batch"][:1]
    assert httpx.post(f"{servers[0].url}/batch/", json=body, timeout=10).status_code == 200
    assert _flag(reader, "buyers", user) is False


def test_group_types_seen_in_events_are_registered(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """An event with $groups {"team": ...} adds 'team' to the project's group_type_mapping on every node."""
    writer, _, servers = clients
    a, b = servers
    writer.capture("clicked_buy", distinct_id="g-user", groups={"team": "red"})
    project = a.admin("GET", f"/api/projects/{a.project_id}/")
    assert "team" in project["group_type_mapping"].values()

    def served_by_b() -> bool:
        answer = httpx.get(
            f"{b.url}/flags/definitions?token={b.project_token}",
            timeout=5,
            headers={"Authorization": f"Bearer {b.project_secret}"},
        )
        return "team" in answer.json()["group_type_mapping"].values()

    wait_until(served_by_b, timeout=15)


@pytest.mark.slow
def test_embedded_workers_share_the_person_store(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path
) -> None:
    """With two embedded workers, an event taken by either worker is seen by a flag check on either."""
    env = server_env(FLAGD_DATA_PATH=str(tmp_path / "workers.db"), FLAGD_EMBEDDED_POLL_SECONDS="0.2")
    server = start_flagd(env=env, args=("--workers", "2"))
    _setup(server)
    # Fresh connections spread over both workers; wait until every worker has compiled the new flags.
    wait_until(lambda: all("buyers" in server.flags(f"probe-{i}")["flags"] for i in range(12)), timeout=10)
    for i in range(6):
        user = f"user-{i}"
        for _ in range(2):
            body = {"api_key": server.project_token, "batch": [{"event": "clicked_buy", "distinct_id": user}]}
            assert httpx.post(f"{server.url}/batch/", json=body, timeout=10).status_code == 200
        assert all(server.flags(user)["flags"]["buyers"]["enabled"] for _ in range(4))


def test_cohort_records_say_since_when_filtered_conditions_are_counted(
    clients: tuple[Posthog, Posthog, list[FlagdServer]],
) -> None:
    """A cohort with event_filters has tracking_since (about when it was created); one without has null."""
    from datetime import UTC, datetime, timedelta

    _, _, servers = clients
    a = servers[0]
    cohorts = {c["name"]: c for c in a.admin("GET", f"/api/projects/{a.project_id}/cohorts/")["results"]}
    assert cohorts["buyers"]["tracking_since"] is None
    since = datetime.fromisoformat(cohorts["pricing-visitors"]["tracking_since"])
    created = datetime.fromisoformat(cohorts["pricing-visitors"]["created_at"])
    assert created - timedelta(seconds=2) <= since <= datetime.now(UTC)
