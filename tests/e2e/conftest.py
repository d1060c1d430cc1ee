"""End-to-end fixtures: the REAL ``flagd serve`` process (Granian), started on a free port and stopped after.

``flagd_embedded``  one server on a temporary SQLite file.
``flagd_distributed``  one server on the test's PostgreSQL database and Redis (migrated first).
``flagd_cluster``  two servers sharing that PostgreSQL + Redis (an edit on one must reach the other).

Every server gets deterministic bootstrap credentials, exposed on the fixture object (``.url``,
``.project_token``, ``.project_secret``, ``.admin_key``, ``.project_id``), and helpers for the admin API and
for ``/flags``. When a server fails to start, the error includes its stdout and stderr.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.servers import free_port

PROJECT_TOKEN = "phc_e2e0000000000000000000000000000project"
PROJECT_SECRET = "phs_e2e0000000000000000000000000000secret"
ADMIN_KEY = "phx_e2e0000000000000000000000000000000admin"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a flagd process: ours minus any FLAGD_* (tests choose those), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAGD_", "PROMETHEUS_MULTIPROC"))}
    env.update(
        FLAGD_BOOTSTRAP_PROJECT_TOKEN=PROJECT_TOKEN,
        FLAGD_BOOTSTRAP_PROJECT_SECRET=PROJECT_SECRET,
        FLAGD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
        FLAGD_LOG_FORMAT="json",
        FLAGD_LOG_LEVEL="info",
        # End-to-end tests check answers; the 25 ms store deadline is tested in test_store_faults.py
        # and bench/hedging.py. On a shared, busy machine a read can take longer, failing flags at random.
        FLAGD_STORE_DEADLINE_MS="1000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flagd ...`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "flagd", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll until ``predicate()`` is truthy; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
        value = predicate()
    return value


def flags_requests_by_worker(metrics_dir: Path) -> dict[str, float]:
    """/flags requests each worker process has published so far, read from its own Prometheus multiprocess
    file (``counter_<pid>.db`` in ``FLAGD_METRICS_DIR``): which workers really served requests."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if '"flagd_requests_total"' in key and '"flags"' in key:
                total += value
        counts[path.stem.rsplit("_", 1)[-1]] = total
    return counts


@dataclass
class FlagdServer:
    """One running ``flagd serve`` process and clients for it."""

    port: int
    env: dict[str, str]
    workdir: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    project_id: int = 0
    project_token: str = PROJECT_TOKEN
    project_secret: str = PROJECT_SECRET
    admin_key: str = ADMIN_KEY
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"flagd-{self.port}.out"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"flagd-{self.port}.err"

    def output(self) -> str:
        """Everything the process printed so far (stdout, then stderr)."""
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def start(self, timeout: float = 30.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "flagd",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.workdir, stdout=out, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"flagd exited with {self.proc.returncode} while starting\n{self.output()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"flagd not ready after {timeout}s\n{self.output()}")
            time.sleep(0.05)
        self._credentials_from_output()
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=10.0
        )
        projects = self.admin("GET", "/api/projects/")["results"]
        self.project_id = next(p["id"] for p in projects if p["api_token"] == self.project_token)

    def _credentials_from_output(self) -> None:
        """Without configured bootstrap values, use the ones the first start printed."""
        out = self.stdout()
        if "FLAGD_BOOTSTRAP_ADMIN_KEY" not in self.env:
            found = re.search(r"admin API key[^:]*:\s*(phx_\S+)", out)
            assert found, f"no admin key printed\n{self.output()}"
            self.admin_key = found.group(1)
        if "FLAGD_BOOTSTRAP_PROJECT_TOKEN" not in self.env:
            token = re.search(r"project token[^:]*:\s*(phc_\S+)", out)
            assert token, f"no project token printed\n{self.output()}"
            self.project_token = token.group(1)
        if "FLAGD_BOOTSTRAP_PROJECT_SECRET" not in self.env:
            secret = re.search(r"project secret[^:]*:\s*(phs_\S+)", out)
            self.project_secret = secret.group(1) if secret else ""

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    # Admin API -------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One admin API call as the bootstrap admin, whatever the answer."""
        assert self._client is not None, "server not started"
        return self._client.request(method, path, **kwargs)

    def admin(self, method: str, path: str, *, expect: int | None = None, **kwargs: Any) -> Any:
        """Call the admin API as the bootstrap admin; assert the status (default: 2xx); return the JSON."""
        response = self.request(method, path, **kwargs)
        ok = response.status_code == expect if expect is not None else response.is_success
        assert ok, f"{method} {path} -> {response.status_code}: {response.text}"
        return response.json() if response.content else None

    def create_flag(self, key: str, filters: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Create a flag in the bootstrap project (default: on for everyone)."""
        body = {
            "key": key,
            "name": key,
            "filters": filters or {"groups": [{"properties": [], "rollout_percentage": 100}]},
            **fields,
        }
        flag: dict[str, Any] = self.admin(
            "POST", f"/api/projects/{self.project_id}/feature_flags/", json=body
        )
        return flag

    def update_flag(self, flag: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """PATCH a flag with the version last read."""
        updated: dict[str, Any] = self.admin(
            "PATCH",
            f"/api/projects/{self.project_id}/feature_flags/{flag['id']}/",
            json={**changes, "version": flag["version"]},
        )
        return updated

    def metric(self, prefix: str) -> float:
        """The sum of the ``/metrics`` series whose line starts with ``prefix`` (0 when there is none)."""
        lines = httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))

    # SDK -------------------------------------------------------------------------------------------------
    def flags(self, distinct_id: str, **body: Any) -> dict[str, Any]:
        """``POST /flags/?v=2`` as a PostHog SDK would; the parsed answer."""
        response = httpx.post(
            f"{self.url}/flags/?v=2",
            json={"api_key": self.project_token, "distinct_id": distinct_id, **body},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
def start_flagd(tmp_path: Path) -> Iterator[Callable[..., FlagdServer]]:
    """A factory: ``start_flagd(env=..., args=...)`` starts a server; every one is stopped after the test."""
    started: list[FlagdServer] = []

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> FlagdServer:
        server = FlagdServer(
            port=free_port(),
            env=env or server_env(FLAGD_DATA_PATH=str(tmp_path / "flagd.db")),
            workdir=tmp_path,
            args=args,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def flagd_embedded(start_flagd: Callable[..., FlagdServer]) -> FlagdServer:
    """A real server in embedded mode (SQLite in tmp_path) with deterministic bootstrap credentials."""
    return start_flagd()


def distributed_env(tmp_path: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """Server environment for PostgreSQL + Redis, after running ``flagd migrate`` on that database."""
    env = server_env(
        FLAGD_DATABASE_URL=database_url,
        FLAGD_REDIS_URL=redis_url,
        FLAGD_DATA_PATH=str(tmp_path / "unused.db"),
        FLAGD_RECONCILE_SECONDS="5",
    )
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, f"flagd migrate failed:\n{migrated.stdout}\n{migrated.stderr}"
    return env


@pytest.fixture
def flagd_distributed(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, redis_url: str
) -> FlagdServer:
    """A real server on PostgreSQL + Redis (schema migrated by ``flagd migrate`` first)."""
    return start_flagd(env=distributed_env(tmp_path, database_url, redis_url))


@pytest.fixture
def flagd_cluster(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, redis_url: str
) -> list[FlagdServer]:
    """Two real servers sharing one PostgreSQL and one Redis (both contend for the syncer lock)."""
    env = distributed_env(tmp_path, database_url, redis_url)
    return [start_flagd(env=env), start_flagd(env=env)]
