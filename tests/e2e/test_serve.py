"""``flagd serve`` on first start: prints the credentials and a curl line that works as printed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, distributed_env, server_env

pytestmark = pytest.mark.e2e


def _first_start_env(tmp_path: Path) -> dict[str, str]:
    env = server_env(FLAGD_DATA_PATH=str(tmp_path / "fresh.db"))
    for name in ("FLAGD_BOOTSTRAP_PROJECT_SECRET", "FLAGD_BOOTSTRAP_ADMIN_KEY"):
        env.pop(name)
    return env


def test_first_start_prints_credentials_and_a_working_curl_line(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path
) -> None:
    """A fresh server prints its project token, a generated admin key and a curl line answering /flags."""
    server = start_flagd(env=_first_start_env(tmp_path), args=("--demo",))
    out = server.stdout()
    assert server.project_token in out
    admin_key = re.search(r"admin API key[^:]*:\s*(phx_\S+)", out)
    assert admin_key, out
    listing = httpx.get(
        f"{server.url}/api/projects/{server.project_id}/feature_flags/",
        headers={"Authorization": f"Bearer {admin_key.group(1)}"},
    )
    assert listing.status_code == 200
    assert listing.json()["count"] >= 3  # the demo flags
    curl = next(
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith("curl") and "/flags/" in line and "Authorization" not in line
    )
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(["sh", "-c", curl], capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert "new-checkout" in answer["flags"]
    assert answer["errorsWhileComputingFlags"] is False


def test_second_start_reuses_the_project(start_flagd: Callable[..., FlagdServer], tmp_path: Path) -> None:
    """Restarting on the same file keeps the project and its token, and creates no second admin key."""
    env = server_env(FLAGD_DATA_PATH=str(tmp_path / "again.db"))
    first = start_flagd(env=env)
    first.create_flag("kept")
    first.stop()
    second = start_flagd(env=env)
    assert second.project_id == first.project_id
    assert "kept" in second.flags("u1")["flags"]
    projects = second.admin("GET", "/api/projects/")["results"]
    assert len(projects) == 1


@pytest.mark.integration
def test_nodes_starting_at_once_on_an_empty_database_create_one_project(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """Three nodes started together on an empty PostgreSQL, with no fixed project token, share one project."""
    env = distributed_env(tmp_path, database_url, redis_url)
    for name in ("FLAGD_BOOTSTRAP_PROJECT_TOKEN", "FLAGD_BOOTSTRAP_PROJECT_SECRET"):
        env.pop(name)
    with ThreadPoolExecutor(max_workers=3) as pool:
        nodes = list(pool.map(lambda _: start_flagd(env=env), range(3)))
    assert len({node.project_token for node in nodes}) == 1
    for node in nodes:
        assert len(node.admin("GET", "/api/projects/")["results"]) == 1
