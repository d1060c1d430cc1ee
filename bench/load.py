"""HTTP load test: ``POST /flags`` with 50 flags on flagd vs ``POST /proxy`` on ``@unleash/proxy``, same run.

Run: ``.venv/bin/python -m bench.load [--duration 15] [--connections 64] [--skip-unleash]``

For flagd with 1 and 2 Granian workers (every production feature on: auth, metrics, shedding, request ids,
logging at its production default) and for ``@unleash/proxy`` (Node, serving the equivalent 50 flags from a
local upstream), it measures:

* saturation: ``wrk`` closed loop, ``--connections`` connections, requests/s and p50/p90/p99;
* half load: the same connections with exponentially distributed think time (wrk's ``delay()``), aiming at
  half the measured saturation rate with random arrivals; p50/p90/p99 of what was served.

In the same run, bare Granian ASGI and RSGI stubs (``bench/stubs.py``) answer every request with the
bytes of a real flagd answer: the ceiling of the server itself here, with ``wrk`` on the same cores; and a
bare RSGI handler does the same work as ``/flags`` (decode, the same 50 flags with the same evaluator build,
render) with nothing around it: flagd's serving costs the gap between the two.

Everything binds to 127.0.0.1, every run is bounded by ``--duration``, and every process started is stopped.
Needs ``wrk`` (``apt-get install -y wrk``) and, for the peer, ``node``/``npm`` (installs
``@unleash/proxy`` into ``bench/.peers`` on first use).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.load_workload import posthog_flags, unleash_features, users
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
UNLEASH_PROXY_VERSION = "1.4.19"
TOKEN = "phc_loadtest_project_token_000000000000"
SECRET = "phs_loadtest_project_secret_0000000000000"
ADMIN_KEY = "phx_loadtest_admin_key_000000000000000000"
CLIENT_KEY = "loadtest-client-key"


@dataclass
class Result:
    target: str
    mode: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


# --------------------------------------------------------------------------------------------- wrk


def _lua_bodies(bodies: list[str], *, method: str, headers: dict[str, str], think_ms: float | None) -> str:
    lines = ["local bodies = {"]
    lines += [f"  {json.dumps(b)}," for b in bodies]
    lines.append("}")
    lines.append(f'wrk.method = "{method}"')
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    lines.append("local n = #bodies")
    lines.append("request = function()")
    lines.append("  return wrk.format(nil, nil, nil, bodies[math.random(n)])")
    lines.append("end")
    if think_ms is not None:
        # Exponential think time per connection: with responses far shorter than the think time the
        # arrivals approach a Poisson process at connections * 1000 / think_ms per second.
        lines.append("delay = function()")
        lines.append(f"  return math.floor(-math.log(1 - math.random()) * {think_ms})")
        lines.append("end")
    lines.append("init = function(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end")
    return "\n".join(lines) + "\n"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, script: str, *, connections: int, duration: int, threads: int = 2) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "--timeout",
                "5s",
                "-s",
                path,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(path)
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": pct.get("50", float("nan")),
        "p90": pct.get("90", float("nan")),
        "p99": pct.get("99", float("nan")),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "errors": float(sum(int(x) for x in errs.groups())) if errs else 0.0,
    }


def measure(
    target: str,
    url: str,
    bodies: list[str],
    *,
    method: str,
    headers: dict[str, str],
    connections: int,
    duration: int,
) -> list[Result]:
    # Warm up (JIT-free, but caches, connection pools and the first-request paths).
    run_wrk(
        url,
        _lua_bodies(bodies, method=method, headers=headers, think_ms=None),
        connections=connections,
        duration=2,
    )
    sat = run_wrk(
        url,
        _lua_bodies(bodies, method=method, headers=headers, think_ms=None),
        connections=connections,
        duration=duration,
    )
    half_rate = sat["rps"] / 2
    think = connections * 1000.0 / half_rate
    half = run_wrk(
        url,
        _lua_bodies(bodies, method=method, headers=headers, think_ms=think),
        connections=connections,
        duration=duration,
    )
    return [
        Result(
            target,
            "saturation",
            sat["rps"],
            sat["p50"],
            sat["p90"],
            sat["p99"],
            int(sat["non2xx"]),
            int(sat["errors"]),
        ),
        Result(
            target,
            f"~half ({half_rate:.0f}/s target, random arrivals)",
            half["rps"],
            half["p50"],
            half["p90"],
            half["p99"],
            int(half["non2xx"]),
            int(half["errors"]),
        ),
    ]


# ------------------------------------------------------------------------------------------- flagd


@contextlib.contextmanager
def flagd_server(workers: int, env_extra: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="flagd-load-"))
    env = {
        **os.environ,
        "FLAGD_DATA_PATH": str(workdir / "flagd.db"),
        "FLAGD_BOOTSTRAP_PROJECT_TOKEN": TOKEN,
        "FLAGD_BOOTSTRAP_PROJECT_SECRET": SECRET,
        "FLAGD_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "FLAGD_LOG_FORMAT": "json",
        **(env_extra or {}),
    }
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "flagd"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "stderr.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{base} never became ready")


def load_flags(base: str) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
        for flag in posthog_flags(50):
            r = client.post("/api/projects/@current/feature_flags/", json=flag)
            r.raise_for_status()
    # Wait until the new flags are served (all workers share the store; give them time to follow).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = httpx.post(f"{base}/flags/?v=2", json={"api_key": TOKEN, "distinct_id": "probe"}, timeout=5)
        if r.status_code == 200 and len(r.json().get("flags", {})) >= 50:
            return
        time.sleep(0.2)
    raise RuntimeError("flags never showed up in /flags")


def flagd_bodies(people: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps(
            {
                "api_key": TOKEN,
                "distinct_id": p["distinct_id"],
                "person_properties": {"plan": p["plan"], "email": p["email"], "age": p["age"]},
            },
            separators=(",", ":"),
        )
        for p in people
    ]


@contextlib.contextmanager
def granian_stub(interface: str, body: bytes, workers: int, app: str | None = None) -> Iterator[str]:
    """A bare Granian app (``bench/stubs.py``): ``<interface>_app`` answering every request with ``body``,
    or ``app`` (``rsgi_work_app``: the bare work of ``/flags``)."""
    workdir = Path(tempfile.mkdtemp(prefix="flagd-stub-"))
    (workdir / "body.json").write_bytes(body)
    port = free_port()
    env = {
        **os.environ,
        "FLAGD_STUB_BODY": str(workdir / "body.json"),
        "FLAGD_STUB_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "granian"),
            "--interface",
            interface,
            "--workers",
            str(workers),
            "--port",
            str(port),
            "--no-ws",
            "--log-level",
            "error",
            f"bench.stubs:{app or interface + '_app'}",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ unleash


class _Upstream(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:  # client registration and metrics
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _ensure_unleash_proxy() -> Path:
    entry = PEERS / "node_modules" / "@unleash" / "proxy" / "dist" / "start.js"
    if not entry.exists():
        PEERS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--prefix", str(PEERS), f"@unleash/proxy@{UNLEASH_PROXY_VERSION}"],
            check=True,
            timeout=600,
        )
    return entry


@contextlib.contextmanager
def unleash_proxy() -> Iterator[str]:
    entry = _ensure_unleash_proxy()
    _Upstream.body = json.dumps(unleash_features(50)).encode()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "UNLEASH_URL": f"http://127.0.0.1:{upstream.server_port}/api/",
        "UNLEASH_API_TOKEN": "load:development.token",
        "UNLEASH_PROXY_CLIENT_KEYS": CLIENT_KEY,
        "LOG_LEVEL": "error",
        "NODE_ENV": "production",
    }
    proc = subprocess.Popen(
        ["node", str(entry)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait for the first fetch from the upstream
            r = httpx.post(
                f"{base}/proxy",
                json={"context": {"userId": "probe"}},
                headers={"Authorization": CLIENT_KEY},
                timeout=5,
            )
            if r.status_code == 200 and len(r.json().get("toggles", [])) >= 10:
                break
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        upstream.shutdown()


def unleash_bodies(people: list[dict[str, Any]]) -> list[str]:
    return [
        json.dumps(
            {
                "context": {
                    "userId": p["distinct_id"],
                    "properties": {"plan": p["plan"], "email": p["email"], "age": str(p["age"])},
                }
            },
            separators=(",", ":"),
        )
        for p in people
    ]


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=15, help="seconds per measurement (default 15)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", default="1,2", help="flagd worker counts to measure (default 1,2)")
    ap.add_argument("--skip-unleash", action="store_true")
    ap.add_argument("--skip-stubs", action="store_true", help="skip the bare Granian stubs (the ceilings)")
    ap.add_argument("--only-work-stub", action="store_true", help="of the stubs, run only the same-work one")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    people = users(1000)
    bodies = flagd_bodies(people)
    results: list[Result] = []
    sample = b""

    def post_flags(target: str, url: str) -> list[Result]:
        return measure(
            target,
            url,
            bodies,
            method="POST",
            headers={"Content-Type": "application/json"},
            connections=args.connections,
            duration=args.duration,
        )

    for workers in (int(w) for w in args.workers.split(",")):
        with flagd_server(workers) as base:
            load_flags(base)
            sample = httpx.post(f"{base}/flags/?v=2", content=bodies[0], timeout=5).content
            results += post_flags(f"flagd, {workers} worker(s)", f"{base}/flags/?v=2")
    if not args.skip_stubs:
        workers = max(int(w) for w in args.workers.split(","))
        with granian_stub("rsgi", sample, workers, app="rsgi_work_app") as base:
            answer = httpx.post(f"{base}/flags/", content=bodies[0], timeout=5).json()
            assert len(answer["flags"]) == 50, answer
            results += post_flags(
                f"bare Granian RSGI handler, {workers} worker(s), same work", f"{base}/flags/"
            )
        for interface in () if args.only_work_stub else ("asgi", "rsgi"):
            with granian_stub(interface, sample, workers) as base:
                results += post_flags(
                    f"bare Granian {interface.upper()} stub, {workers} worker(s), same bytes",
                    f"{base}/flags/",
                )
    if not args.skip_unleash:
        with unleash_proxy() as base:
            results += measure(
                "@unleash/proxy " + UNLEASH_PROXY_VERSION,
                f"{base}/proxy",
                unleash_bodies(people),
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": CLIENT_KEY},
                connections=args.connections,
                duration=args.duration,
            )
    print("| target | load | req/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.target} | {r.mode} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.non_2xx} | {r.errors} |"
        )
    sats = {r.target: r.rps for r in results if r.mode == "saturation"}
    peer = next((v for k, v in sats.items() if k.startswith("@unleash")), None)
    print()
    for k, v in sats.items():
        if k.startswith("flagd") and peer:
            print(f"{k}: {v / peer:.1f}x the throughput of @unleash/proxy")
        for stub, ceiling in sats.items():
            if k.startswith("flagd") and stub.startswith("bare"):
                print(f"{k}: {v / ceiling:.0%} of the {stub.split(',')[0]}")
    halves = {r.target: r.p99_ms for r in results if r.mode.startswith("~half")}
    work = next((v for k, v in halves.items() if k.endswith("same work")), None)
    for k, v in halves.items():
        if k.startswith("flagd") and work is not None:
            print(
                f"{k}: p99 at half load {v:.2f} ms = the same-work handler's {work:.2f} ms {v - work:+.2f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
