"""Both stores gone (README "How it works"): with Redis AND PostgreSQL stopped, a distributed node keeps
serving its last snapshot and says so in /readyz and /metrics; when they come back it is current again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, distributed_env, wait_until
from tests.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


def _readyz(server: FlagdServer) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{server.url}/readyz", timeout=5)
    return response.status_code, response.json()


def _stale_gauge(server: FlagdServer) -> float | None:
    for line in httpx.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("flagd_snapshot_stale"):
            return float(line.split()[-1])
    return None


def _enabled(server: FlagdServer, key: str) -> bool | None:
    record = server.flags("user-1")["flags"].get(key)
    return None if record is None else bool(record["enabled"])


def test_with_redis_and_postgresql_down_the_node_serves_its_snapshot_and_says_it_is_stale(
    start_flagd: Callable[..., FlagdServer],
    tmp_path: Path,
    own_postgres: PostgresServer,
    own_redis: RedisServer,
) -> None:
    """Stopping both stores leaves /flags answering from the last snapshot while /readyz and /metrics
    report staleness; restarting them clears it and edits flow again."""
    server = start_flagd(env=distributed_env(tmp_path, own_postgres.url, own_redis.url))
    flag = server.create_flag("survivor")
    wait_until(lambda: _enabled(server, "survivor") is True, timeout=15)
    wait_until(lambda: _readyz(server)[1]["stale"] is False, timeout=15)
    assert _stale_gauge(server) == 0

    own_redis.stop()
    own_postgres.stop()
    wait_until(lambda: _readyz(server)[1]["stale"] is True, timeout=15)
    status, health = _readyz(server)
    assert status == 200  # still ready: it has a snapshot to serve
    assert health["loaded"] is True
    assert health["last_error"]
    assert _stale_gauge(server) == 1
    for _ in range(5):
        assert _enabled(server, "survivor") is True
    assert server.request("GET", f"/api/projects/{server.project_id}/feature_flags/").status_code == 503

    own_postgres.start()
    own_redis.start()
    wait_until(lambda: _readyz(server)[1]["stale"] is False, timeout=30)
    assert _stale_gauge(server) == 0
    wait_until(
        lambda: (
            server.request(
                "PATCH",
                f"/api/projects/{server.project_id}/feature_flags/{flag['id']}/",
                json={"active": False, "version": flag["version"]},
            ).status_code
            == 200
        ),
        timeout=30,
    )
    wait_until(lambda: _enabled(server, "survivor") is False, timeout=15)
