"""An admin edit over REST reaches the SDK's next ``/flags`` answer on the real server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, distributed_env, flags_requests_by_worker, server_env, wait_until
from tests.servers import PostgresServer

pytestmark = pytest.mark.e2e


def _enabled(server: FlagdServer, key: str, distinct_id: str = "user-1") -> bool | None:
    record = server.flags(distinct_id)["flags"].get(key)
    return None if record is None else bool(record["enabled"])


def test_embedded_edit_is_served_on_the_next_request(flagd_embedded: FlagdServer) -> None:
    """In embedded mode a created, disabled, re-targeted or deleted flag shows in the next /flags answer."""
    server = flagd_embedded
    flag = server.create_flag("checkout")
    assert _enabled(server, "checkout") is True
    flag = server.update_flag(flag, active=False)
    assert _enabled(server, "checkout") is False
    targeted = {
        "groups": [
            {"properties": [{"key": "plan", "type": "person", "value": "pro"}], "rollout_percentage": 100}
        ]
    }
    flag = server.update_flag(flag, active=True, filters=targeted)
    assert _enabled(server, "checkout") is False
    pro = server.flags("user-1", person_properties={"plan": "pro"})["flags"]["checkout"]
    assert pro["enabled"] is True
    assert pro["metadata"]["version"] == flag["version"]
    server.admin(
        "DELETE",
        f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/",
        json={"version": flag["version"]},
    )
    assert _enabled(server, "checkout") is None


def test_stale_edit_is_rejected_and_not_served(flagd_embedded: FlagdServer) -> None:
    """A PATCH with an old version gets 409 with the current version, and /flags keeps the newer value."""
    server = flagd_embedded
    first = server.create_flag("banner")
    server.update_flag(first, active=False)
    conflict = server.admin(
        "PATCH",
        f"/api/projects/{server.project_id}/feature_flags/{first['id']}/",
        json={"active": True, "version": first["version"]},
        expect=409,
    )
    assert conflict["current_version"] == first["version"] + 1
    assert _enabled(server, "banner") is False


@pytest.mark.integration
def test_distributed_edit_reaches_the_sdk(flagd_distributed: FlagdServer) -> None:
    """On PostgreSQL + Redis an edit goes through the change log and syncer to the node's next answers."""
    server = flagd_distributed
    flag = server.create_flag("search-v2")
    wait_until(lambda: _enabled(server, "search-v2") is True, timeout=5)
    server.update_flag(flag, active=False)
    wait_until(lambda: _enabled(server, "search-v2") is False, timeout=5)


@pytest.mark.integration
@pytest.mark.slow
def test_edit_on_one_node_reaches_the_other(flagd_cluster: list[FlagdServer]) -> None:
    """Two nodes share PostgreSQL and Redis: a flag written through node A is served by node B."""
    a, b = flagd_cluster
    flag = a.create_flag("shared")
    wait_until(lambda: _enabled(b, "shared") is True, timeout=5)
    a.update_flag(flag, active=False)
    wait_until(lambda: _enabled(b, "shared") is False, timeout=5)
    assert _enabled(a, "shared") is False


@pytest.mark.slow
def test_embedded_workers_converge_on_an_edit(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path
) -> None:
    """With two embedded workers, an edit made through one reaches every worker: both workers, each seen
    answering through its own metrics file, answer the edited flag as off."""
    metrics_dir = tmp_path / "metrics"
    env = server_env(
        FLAGD_DATA_PATH=str(tmp_path / "workers.db"),
        FLAGD_EMBEDDED_POLL_SECONDS="0.2",
        FLAGD_METRICS_DIR=str(metrics_dir),
    )
    server = start_flagd(env=env, args=("--workers", "2"))
    flag = server.create_flag("everywhere")
    server.update_flag(flag, active=False)
    asked = 0

    def answer(distinct_id: str) -> bool | None:
        nonlocal asked
        asked += 1
        return _enabled(server, "everywhere", distinct_id)

    def all_answers_off() -> bool:
        # Fresh connections spread over both workers.
        return all(answer(f"user-{i}") is False for i in range(12))

    def published() -> dict[str, float] | None:
        counts = flags_requests_by_worker(metrics_dir)  # every /flags answer so far, by worker
        return counts if sum(counts.values()) == asked else None

    wait_until(all_answers_off, timeout=5)
    # Then keep asking on fresh connections until each of the two workers has answered more: every answer
    # is off, whichever worker gave it.
    before = wait_until(published, timeout=10)
    deadline = time.monotonic() + 30
    n = 0
    while True:
        n += 1
        assert answer(f"later-{n}") is False
        now = wait_until(published, timeout=10)
        grown = [pid for pid, count in now.items() if count > before.get(pid, 0)]
        if len(grown) >= 2:
            break
        assert time.monotonic() < deadline, f"only one worker answered after the edit: {before} -> {now}"


@pytest.mark.integration
@pytest.mark.slow
def test_flags_keep_serving_while_postgresql_is_down(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, own_postgres: PostgresServer, redis_url: str
) -> None:
    """With PostgreSQL stopped /flags answers from the snapshot and admin writes get 503, then recover."""
    server = start_flagd(env=distributed_env(tmp_path, own_postgres.url, redis_url))
    server.create_flag("resilient")
    wait_until(lambda: _enabled(server, "resilient") is True, timeout=5)
    own_postgres.stop()
    assert _enabled(server, "resilient") is True
    url = f"/api/projects/{server.project_id}/feature_flags/"
    body = {"key": "later", "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}
    down = server.admin("POST", url, json=body, expect=503)
    assert down["code"] == "store_unavailable"
    own_postgres.start()
    wait_until(lambda: server.request("POST", url, json=body).status_code == 201, timeout=15)
    wait_until(lambda: _enabled(server, "later") is True, timeout=10)


@pytest.mark.integration
@pytest.mark.slow
def test_separate_sync_process_feeds_nodes_without_syncers(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """With FLAGD_SYNCER=0 on two workers, a separate `flagd sync` process carries edits to them."""
    env = {**distributed_env(tmp_path, database_url, redis_url), "FLAGD_SYNCER": "0"}
    syncer = subprocess.Popen(
        [sys.executable, "-m", "flagd", "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        server = start_flagd(env=env, args=("--workers", "2"))
        flag = server.create_flag("via-sync")
        wait_until(lambda: all(_enabled(server, "via-sync", f"u{i}") is True for i in range(6)), timeout=10)
        server.update_flag(flag, active=False)
        wait_until(lambda: all(_enabled(server, "via-sync", f"u{i}") is False for i in range(6)), timeout=10)
        health = httpx.get(f"{server.url}/readyz", timeout=5).json()
        assert "syncer" not in health
    finally:
        syncer.send_signal(signal.SIGTERM)
        _, err = syncer.communicate(timeout=10)
    assert syncer.returncode == 0, err.decode()
