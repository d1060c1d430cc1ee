"""Revocation and secret rotation reach every worker and node: at once for the admin API, within the
documented bound (``auth_cache_seconds``, at most 1 s) for ``/flags/definitions``."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from flagd.limits import Limits
from tests.e2e.conftest import FlagdServer, wait_until

pytestmark = pytest.mark.e2e

BOUND = Limits().auth_cache_seconds  # the documented bound (README, flagd/limits.py)


def _write_key(server: FlagdServer) -> tuple[int, str]:
    created = server.admin(
        "POST", f"/api/projects/{server.project_id}/api_keys/", json={"label": "leak", "scope": "write"}
    )
    return created["id"], created["key"]


def _write_with(server: FlagdServer, key: str, n: int) -> int:
    """Create flag ``n`` with ``key``; the status."""
    return httpx.post(
        f"{server.url}/api/projects/{server.project_id}/feature_flags/",
        json={"key": f"leaked-{n}"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).status_code


def _definitions_with(server: FlagdServer, key: str) -> int:
    return httpx.get(
        f"{server.url}/flags/definitions?token={server.project_token}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).status_code


def test_a_revoked_key_writes_nothing_on_any_worker(start_flagd: Callable[..., FlagdServer]) -> None:
    """With 2 workers, every write with a key after its DELETE answered is a 401 (each worker gets some)."""
    server = start_flagd(args=("--workers", "2"))
    key_id, key = _write_key(server)
    assert all(_write_with(server, key, n) == 201 for n in range(10))  # both workers know the key
    assert all(_definitions_with(server, key) == 200 for _ in range(10))  # and cache it
    server.admin("DELETE", f"/api/projects/{server.project_id}/api_keys/{key_id}/")
    revoked_at = time.monotonic()
    assert [_write_with(server, key, 100 + n) for n in range(30)] == [401] * 30
    time.sleep(max(0.0, BOUND + 0.05 - (time.monotonic() - revoked_at)))
    assert [_definitions_with(server, key) for _ in range(20)] == [401] * 20
    listed = server.admin("GET", f"/api/projects/{server.project_id}/feature_flags/", params={"limit": 500})
    assert [f["key"] for f in listed["results"] if len(f["key"]) == len("leaked-100")] == []


@pytest.mark.integration
def test_revocation_and_rotation_reach_the_other_node(flagd_cluster: list[FlagdServer]) -> None:
    """A key revoked on one node is refused by the other at once; a rotated secret works there soon after."""
    first, second = flagd_cluster
    key_id, key = _write_key(first)
    assert _write_with(second, key, 1) == 201
    first.admin("DELETE", f"/api/projects/{first.project_id}/api_keys/{key_id}/")
    assert _write_with(second, key, 2) == 401
    rotated = first.admin("POST", f"/api/projects/{first.project_id}/rotate_secret/")["secret_token"]
    wait_until(lambda: _definitions_with(second, rotated) == 200, timeout=10)
    assert _definitions_with(second, first.project_secret) == 401
