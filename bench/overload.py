"""Overload: ``POST /flags`` at 3× the saturating rate, three servers side by side, same run.

Run: ``.venv/bin/python -m bench.overload [--workers 2] [--duration 15] [--connections 1000] [--factor 3]
[--rounds 3] [--backpressure 256] [--server LABEL:FLAGD_X=value,... ...]``

Servers (all up for the whole run; rounds alternate between them, so drifting machine load hits all alike):
shedding on with ``FLAGD_BACKPRESSURE=--backpressure``; shedding on with Granian's backpressure; shedding
off (``FLAGD_SHED_TARGET_DELAY=0``, ``FLAGD_SHED_MAX_IN_FLIGHT`` = 10⁶) with Granian's backpressure. Or, with
``--server`` (repeatable), exactly the servers named, each with its own ``FLAGD_*`` environment
(``PYTHONPATH`` too, to run another checkout's code beside this one's).

1. **Peak** of each: ``wrk`` closed loop (64 connections, as ``bench/load.py``); the largest is "peak".
2. **Overload**: ``wrk`` with ``--connections`` connections and exponential think time aimed at ``--factor`` ×
   peak (a connection whose answer came back quickly sends its next request sooner, so the offered load holds
   while requests are shed; it is still a closed system: 1,000 connections cannot offer more than
   1,000 / (think + latency)). Goodput = 200 answers per second. Alongside, a probe client sends one request
   at a time and records the client-side latency of each answer by status: the latency of *admitted*
   requests (wrk's own percentiles mix 200s and 503s, and count only connections that were served at all).
   Per round: the 1-minute load average and the CPU wrk itself used (cores), to tell a starved generator
   from a starved server.

Everything binds to 127.0.0.1, every run is bounded by ``--duration``, and every process started is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx

from bench.load import _lua_bodies, flagd_bodies, flagd_server, load_flags, run_wrk
from bench.load_workload import users

SHED_OFF = {"FLAGD_SHED_TARGET_DELAY": "0", "FLAGD_SHED_MAX_IN_FLIGHT": "1000000"}
GRANIAN_DEFAULT = {"FLAGD_BACKPRESSURE": "0"}  # Granian's own cap: backlog / workers = 1,024 per worker


def parse_server(spec: str) -> tuple[str, dict[str, str]]:
    """``LABEL:VAR=value,VAR=value`` (``--server``): a server's label and its extra environment."""
    label, sep, assignments = spec.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if "=" in pair)
    if not sep or not label or not all(name.startswith(("FLAGD_", "PYTHON")) for name in env):
        raise argparse.ArgumentTypeError(f"expected LABEL:FLAGD_X=value[,FLAGD_Y=value], got {spec!r}")
    return label, env


def configs(backpressure: int) -> dict[str, dict[str, str]]:
    """The servers compared in one run by default, by label: their extra environment."""
    return {
        f"shedding on, backpressure {backpressure}": {"FLAGD_BACKPRESSURE": str(backpressure)},
        "shedding on, Granian's backpressure (1,024)": GRANIAN_DEFAULT,
        "shedding off, Granian's backpressure (1,024)": {**SHED_OFF, **GRANIAN_DEFAULT},
    }


@dataclass
class Probe:
    """One request at a time against ``url`` until stopped; latencies (ms) by status."""

    url: str
    body: str
    by_status: dict[int, list[float]] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    status = http.post(self.url, content=self.body).status_code
                except httpx.HTTPError:
                    self.errors += 1
                    continue
                self.by_status.setdefault(status, []).append((time.perf_counter() - start) * 1000)
                time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def overload(base: str, bodies: list[str], rate: float, connections: int, duration: int) -> dict[str, float]:
    think = connections * 1000.0 / rate
    url = f"{base}/flags/?v=2"
    probe = Probe(url, bodies[0])
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = run_wrk(
            url,
            _lua_bodies(bodies, method="POST", headers={"Content-Type": "application/json"}, think_ms=think),
            connections=connections,
            duration=duration,
        )
    finally:
        probe.stop()
        thread.join(timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cores = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / duration
    ok = probe.by_status.get(200, [])
    shed = probe.by_status.get(503, [])
    total = result["rps"] * duration
    return {
        "offered": rate,
        "answered": result["rps"],
        "goodput": (total - result["non2xx"]) / duration,
        "p50_ok": pct(ok, 0.50),
        "p99_ok": pct(ok, 0.99),
        "probe_ok": len(ok),
        "probe_shed": len(shed),
        "p50_shed": pct(shed, 0.50),
        "p99_shed": pct(shed, 0.99),
        "probe_errors": probe.errors,
        "wrk_errors": result["errors"],
        "wrk_cores": wrk_cores,
        "wrk_p50": result["p50"],
        "wrk_p99": result["p99"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--backpressure", type=int, default=256, help="FLAGD_BACKPRESSURE of the first server")
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating on/off rounds (the machine's load drifts)"
    )
    ap.add_argument(
        "--server",
        action="append",
        type=parse_server,
        default=[],
        metavar="LABEL:VAR=value,...",
        help="compare these servers instead of the default three (repeat; 'shedding off' env: "
        "FLAGD_SHED_TARGET_DELAY=0,FLAGD_SHED_MAX_IN_FLIGHT=1000000)",
    )
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    bodies = flagd_bodies(users(1000))
    script = _lua_bodies(bodies, method="POST", headers={"Content-Type": "application/json"}, think_ms=None)
    servers = dict(args.server) if args.server else configs(args.backpressure)
    rows: list[tuple[str, dict[str, float]]] = []
    with contextlib.ExitStack() as stack:
        bases = {
            label: stack.enter_context(flagd_server(args.workers, env)) for label, env in servers.items()
        }
        for base in bases.values():
            load_flags(base)
        first = next(iter(bases.values()))
        run_wrk(f"{first}/flags/?v=2", script, connections=64, duration=2)  # warm-up
        print(f"load average before peak: {os.getloadavg()[0]:.2f}")
        peaks = []
        for base in bases.values():  # the peak of each (backpressure must not cost throughput)
            sat = run_wrk(f"{base}/flags/?v=2", script, connections=64, duration=args.duration)
            peaks.append(sat["rps"] - sat["non2xx"] / args.duration)
        peak = max(peaks)
        print(
            "peak (64 connections, closed loop): "
            + ", ".join(f"{label}: {p:,.0f}" for label, p in zip(servers, peaks, strict=True))
            + " req/s of 200"
        )
        for _ in range(args.rounds):
            for label, base in bases.items():
                row = overload(base, bodies, args.factor * peak, args.connections, args.duration)
                row["load"] = os.getloadavg()[0]
                rows.append((label, row))
    print()
    print(
        "| flagd | offered req/s | answered req/s | goodput (200/s) | goodput ÷ peak | admitted p50 / p99 ms "
        "| shed p50 / p99 ms | wrk p50 / p99 ms (all answers) | probe 200 / 503 / errors | wrk socket errors "
        "| wrk CPU (cores) "
        "| load avg (1 min) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['offered']:,.0f} | {r['answered']:,.0f} | {r['goodput']:,.0f} | "
            f"{r['goodput'] / peak:.0%} | {r['p50_ok']:.2f} / {r['p99_ok']:.2f} | "
            f"{r['p50_shed']:.2f} / {r['p99_shed']:.2f} | {r['wrk_p50']:.1f} / {r['wrk_p99']:.1f} | "
            f"{r['probe_ok']} / {r['probe_shed']} / {r['probe_errors']} | "
            f"{r['wrk_errors']:.0f} | {r['wrk_cores']:.2f} | {r['load']:.1f} |"
        )
    print()
    for label in servers:
        mine = [r for name, r in rows if name == label]
        print(
            f"{label}: median goodput {statistics.median(r['goodput'] for r in mine):,.0f}/s "
            f"({statistics.median(r['goodput'] for r in mine) / peak:.0%} of peak), median admitted p99 "
            f"{statistics.median(r['p99_ok'] for r in mine):.1f} ms; socket errors "
            f"{sum(r['wrk_errors'] for r in mine):.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
