"""npm packages the tests run (posthog-node, posthog-js), installed on first use into a cache under the
repository (``.cache/npm/<name>-<version>``, gitignored), pinned, the way the Python tests use the pinned
``posthog`` wheel. Needs ``node`` and ``npm`` on PATH (``make test`` checks: ``.ci/check-binaries``)."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "npm"
POSTHOG_NODE = ("posthog-node", "5.70.0")
POSTHOG_JS = ("posthog-js", "1.449.2")
HINT = "install Node.js 20+ with npm (apt-get install -y nodejs npm, or nodejs.org)"


def node() -> str:
    """The ``node`` executable; the test fails naming what to install when there is none."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        pytest.fail(f"node and npm are needed for this test: {HINT}")
    return found


def package(spec: tuple[str, str]) -> Path:
    """The installed package directory of ``(name, version)``, installing it once (concurrent test runs
    wait for each other on a lock file)."""
    node()
    name, version = spec
    prefix = CACHE / f"{name}-{version}"
    installed = prefix / "node_modules" / name
    marker = prefix / ".installed"
    if marker.exists():
        return installed
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(prefix),
                 f"{name}@{version}"],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                pytest.fail(f"npm install {name}@{version} failed:\n{result.stdout}\n{result.stderr}")
            marker.touch()
    return installed


def run_script(script: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Run a Node script with ``payload`` as JSON on stdin; its JSON stdout (fails with its stderr)."""
    result = subprocess.run(
        [node(), str(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out
