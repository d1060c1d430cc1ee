"""Hedged store reads under a stalling Redis, and flag checks with the store gone. One run, side by side.

Run: ``.venv/bin/python -m bench.hedging [--duration 10] [--connections 8] [--think-ms 10]``

Setup: PostgreSQL, a Redis primary and one ``--replicaof`` replica (real processes on free ports), one
``flagd serve`` node (1 Granian worker) with ``FLAGD_REDIS_REPLICA_URLS`` set, the project of
``bench/persons.py`` (20 behavioural cohorts + 50 flags), so **every** ``/flags`` request needs stored data
(one coalesced person read). Load: ``wrk`` with ``--connections`` connections and an exponential think time
of ``--think-ms`` per connection (a steady, non-saturating rate), 1,000 users.

* **Stalling**: a thread sends ``CLIENT PAUSE 300 ALL`` to the primary every 450 ms (stalled 2/3 of the
  time). Measured: with hedging (defaults: deadline 25 ms, hedge delay p95 of recent reads, floor 2 ms,
  budget 10 %), and without (``FLAGD_STORE_HEDGING=0``; the deadline raised to 1 s so the stalls show
  instead of being cut at 25 ms: that is what a read that waits for its server costs). Extra read load =
  hedges sent / reads sent (``/metrics``: ``flagd_store_hedges_total`` / ``flagd_store_reads_total``).
  Failed flags = answers with ``errorsWhileComputingFlags`` in a sample of 200 requests taken during the run.
* **Store gone**: both Redis servers shut down (``SHUTDOWN NOSAVE``) after warm-up; p99 of ``/flags``
  against the 25 ms deadline (the breakers open after a few failures, so most requests don't try at all).

Everything binds to 127.0.0.1 and is bounded by ``--duration``; every process started is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import redis

from bench.load import TOKEN, _lua_bodies, flagd_bodies, run_wrk
from bench.load_workload import users
from bench.persons import distributed_env, flagd, setup_project
from tests.redis_topology import ReplicaSet, kill, replica_set
from tests.servers import postgres_server


@contextlib.contextmanager
def stalling(url: str, pause_ms: int = 300, period: float = 0.45) -> Iterator[None]:
    """Pause the server ``pause_ms`` out of every ``period`` seconds until the block exits."""
    stop = threading.Event()
    client = redis.Redis.from_url(url, socket_timeout=5)

    def run() -> None:
        while not stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(redis.RedisError):
                client.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
            stop.wait(max(0.0, period - (time.monotonic() - started)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        client.close()


def _store_totals(base: str) -> tuple[float, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    totals = {"flagd_store_reads_total": 0.0, "flagd_store_hedges_total": 0.0}
    for name in totals:
        for value in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M):
            totals[name] += float(value)
    return totals["flagd_store_reads_total"], totals["flagd_store_hedges_total"]


def _failed_share(base: str, samples: int = 200) -> float:
    failed = 0
    with httpx.Client(timeout=10) as client:
        for i in range(samples):
            body = {"api_key": TOKEN, "distinct_id": f"sample-{i}"}
            failed += bool(client.post(f"{base}/flags/?v=2", json=body).json()["errorsWhileComputingFlags"])
    return failed / samples


def _load(base: str, args: argparse.Namespace, duration: int) -> dict[str, float]:
    script = _lua_bodies(
        flagd_bodies(users(1000)),
        method="POST",
        headers={"Content-Type": "application/json"},
        think_ms=args.think_ms,
    )
    return run_wrk(f"{base}/flags/?v=2", script, connections=args.connections, duration=duration)


def stalled_run(
    base: str, primary_url: str, args: argparse.Namespace, *, stall: bool = True
) -> dict[str, float]:
    _load(base, args, 2)  # warm-up, no stall
    reads0, hedges0 = _store_totals(base)
    with stalling(primary_url) if stall else contextlib.nullcontext():
        result = _load(base, args, args.duration)
        result["failed_share"] = _failed_share(base)
    reads1, hedges1 = _store_totals(base)
    result["reads"] = reads1 - reads0
    result["hedges"] = hedges1 - hedges0
    return result


def gone_run(base: str, servers: ReplicaSet, args: argparse.Namespace) -> dict[str, float]:
    _load(base, args, 2)
    kill(servers.replicas[0])
    kill(servers.primary)
    result = _load(base, args, args.duration)
    result["failed_share"] = _failed_share(base)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--think-ms", type=float, default=10.0)
    args = ap.parse_args(argv)
    rows: list[tuple[str, dict[str, float]]] = []
    with postgres_server() as pg, replica_set(1) as servers:
        env = {
            **distributed_env(pg.url, servers.primary.url),
            "FLAGD_REDIS_REPLICA_URLS": ",".join(servers.replica_urls),
        }
        with flagd(env, 1) as base:
            setup_project(base)
            baseline = stalled_run(base, servers.primary.url, args, stall=False)
            rows.append(("no stall (baseline: this machine's tail)", baseline))
            rows.append(
                (
                    "primary stalling, hedging on (deadline 25 ms)",
                    stalled_run(base, servers.primary.url, args),
                )
            )
        off = {**env, "FLAGD_STORE_HEDGING": "0", "FLAGD_STORE_DEADLINE_MS": "1000"}
        with flagd(off, 1) as base:
            rows.append(
                ("primary stalling, hedging off (deadline 1 s)", stalled_run(base, servers.primary.url, args))
            )
        with flagd(env, 1) as base:
            rows.append(("store gone (both Redis shut down; deadline 25 ms)", gone_run(base, servers, args)))
    print(
        "| /flags, every request needs stored data | req/s | p50 | p90 | p99 | extra reads (hedges) "
        "| answers with failed flags | non-2xx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        extra = (
            f"{r['hedges'] / r['reads']:.1%} ({r['hedges']:.0f} / {r['reads']:.0f})"
            if r.get("reads")
            else "—"
        )
        print(
            f"| {name} | {r['rps']:,.0f} | {r['p50']:.1f} ms | {r['p90']:.1f} ms | {r['p99']:.1f} ms "
            f"| {extra} | {r['failed_share']:.0%} | {r['non2xx']:.0f} |"
        )
    base_row, on, off_row = rows[0][1], rows[1][1], rows[2][1]
    p50 = statistics.median([on["p50"], off_row["p50"], base_row["p50"]])
    print(
        f"\np99 stalling with / without hedging: {on['p99']:.1f} / {off_row['p99']:.1f} ms "
        f"({on['p99'] / off_row['p99']:.2f}x); baseline p99 {base_row['p99']:.1f} ms; median p50 {p50:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
