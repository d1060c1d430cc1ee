"""Person store benchmarks: ingestion, event -> visible on another node, /flags with vs without the person
read, memory per person in Redis. One run, side by side.

Run: ``.venv/bin/python -m bench.persons [--duration 10] [--connections 16]``

* **Ingestion**: validate-and-drop (``FLAGD_PERSON_STORE=0``) as the baseline, then ``wrk`` posting
  ``/batch/`` bodies of 100 events (10k persons, 6 event names, a
  ``$current_url``, every tenth event with a ``$set`` of 3 properties, a unique ``uuid`` per event) to one
  node with 2 Granian workers and 20 behavioural cohorts (10 ``performed_event_multiple`` on plain events, 10
  ``performed_event`` with ``event_filters``) in use; embedded (SQLite) and distributed (PostgreSQL + Redis).
* **Event -> visible on another node**: two distributed nodes; ``POST /batch/`` (one event for a fresh person)
  to node A, then ``POST /flags`` to node B for a flag whose cohort needs that event; the time from sending
  the event to node B's answer, and how often node B did not see it yet (read-your-writes says never).
* **/flags with vs without the person read**: one distributed node, 2 workers, the 50-flag workload of
  ``bench/load.py`` plus the 20 behavioural flags; ``FLAGD_PERSON_STORE=1`` (every request reads Redis once,
  coalesced per loop turn) vs ``=0`` (no read); saturation req/s and p50.
* **Memory per person in Redis**: 10,000 persons written through ``RedisPersonStore`` with 10 properties and
  events on 5 behavioural counters each; ``used_memory`` delta per person (with and without the 24-hour uuid
  dedupe sets), extrapolated to 10M persons.

Everything binds to 127.0.0.1 and is bounded by ``--duration``; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.load import ADMIN_KEY, TOKEN, flagd_bodies, flagd_server, run_wrk
from bench.load_workload import posthog_flags, users
from tests.servers import postgres_server, redis_server

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ("$pageview", "ev0", "ev1", "ev2", "ev3", "ev4")


def cohorts() -> list[dict[str, Any]]:
    """20 behavioural cohorts: 10 counting plain events, 10 with event filters."""
    out = []
    for i in range(20):
        if i < 10:
            leaf = {
                "type": "behavioral",
                "key": f"ev{i % 5}",
                "value": "performed_event_multiple",
                "event_type": "events",
                "operator": "gte",
                "operator_value": i % 3 + 1,
                "time_value": (i % 4 + 1) * 5,
                "time_interval": "minute",
            }
        else:
            leaf = {
                "type": "behavioral",
                "key": "$pageview",
                "value": "performed_event",
                "event_type": "events",
                "time_value": 1 + i % 7,
                "time_interval": "day",
                "event_filters": [
                    {
                        "key": "$current_url",
                        "operator": "icontains",
                        "value": f"/page{i % 5}",
                        "type": "event",
                    }
                ],
            }
        out.append({"name": f"bc-{i}", "filters": {"properties": {"type": "AND", "values": [leaf]}}})
    return out


def setup_project(base: str) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        for i, cohort in enumerate(cohorts()):
            created = client.post("/api/projects/@current/cohorts/", json=cohort)
            created.raise_for_status()
            prop = {"key": "id", "type": "cohort", "value": created.json()["id"]}
            flag = {
                "key": f"bc-{i}",
                "filters": {"groups": [{"properties": [prop], "rollout_percentage": 100}]},
            }
            client.post("/api/projects/@current/feature_flags/", json=flag).raise_for_status()
        for flag in posthog_flags(50):
            client.post("/api/projects/@current/feature_flags/", json=flag).raise_for_status()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = httpx.post(f"{base}/flags/?v=2", json={"api_key": TOKEN, "distinct_id": "probe"}, timeout=5)
        if r.status_code == 200 and len(r.json().get("flags", {})) >= 70:
            return
        time.sleep(0.2)
    raise RuntimeError("flags never showed up in /flags")


def batch_bodies(count: int = 200, size: int = 100, seed: int = 11) -> list[str]:
    """Bodies of ``size`` events; ``R-0000`` in each uuid is replaced per request by wrk (unique uuids)."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        events = []
        for i in range(size):
            props: dict[str, Any] = {"$current_url": f"https://shop.example/page{rng.randrange(8)}"}
            if i % 10 == 0:
                props["$set"] = {"plan": rng.choice(["free", "pro"]), "age": rng.randrange(80), "seen": True}
            events.append(
                {
                    "event": rng.choice(EVENTS),
                    "distinct_id": f"user-{rng.randrange(10_000)}",
                    "uuid": f"R-0000-{i:04d}",
                    "properties": props,
                }
            )
        bodies.append(json.dumps({"api_key": TOKEN, "batch": events}, separators=(",", ":")))
    return bodies


def _batch_script(bodies: list[str]) -> str:
    lines = ["local bodies = {"]
    lines += [f"  {json.dumps(b)}," for b in bodies]
    lines += [
        "}",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        "local n, counter, prefix = #bodies, 0, ''",
        "init = function(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6));"
        " prefix = tostring(math.random(1, 1e9)) end",
        "request = function()",
        "  counter = counter + 1",
        "  local body = string.gsub(bodies[math.random(n)], 'R%-0000', prefix .. '-' .. counter)",
        "  return wrk.format(nil, nil, nil, body)",
        "end",
    ]
    return "\n".join(lines) + "\n"


def flagd(env: dict[str, str], workers: int) -> contextlib.AbstractContextManager[str]:
    """A ``flagd serve`` (``bench.load.flagd_server``) with ``env``, logging warnings only."""
    return flagd_server(workers, {"FLAGD_LOG_LEVEL": "warning", **env})


def distributed_env(pg_url: str, redis_url: str) -> dict[str, str]:
    env = {"FLAGD_DATABASE_URL": pg_url, "FLAGD_REDIS_URL": redis_url}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "flagd"), "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


def ingestion(base: str, args: argparse.Namespace) -> dict[str, float]:
    script = _batch_script(batch_bodies())
    run_wrk(f"{base}/batch/", script, connections=args.connections, duration=2)
    result = run_wrk(f"{base}/batch/", script, connections=args.connections, duration=args.duration)
    # Only answered-200 batches count (a shed batch is a 503 the SDK retries later).
    result["ok_rps"] = result["rps"] - result["non2xx"] / args.duration
    result["events"] = result["ok_rps"] * 100
    return result


def visibility(node_a: str, node_b: str, rounds: int) -> dict[str, float]:
    """Send one event to A, ask B: round trip (ms) of event + flag check, and B's misses."""
    times, batch_times, misses = [], [], 0
    with httpx.Client(timeout=10) as a, httpx.Client(timeout=10) as b:
        for i in range(rounds):
            user = f"fresh-{i}-{random.randrange(1 << 30)}"
            event = {"api_key": TOKEN, "batch": [{"event": "ev0", "distinct_id": user}]}
            ask = {"api_key": TOKEN, "distinct_id": user, "flag_keys_to_evaluate": ["bc-0"]}
            start = time.perf_counter()
            a.post(f"{node_a}/batch/", json=event).raise_for_status()
            applied = time.perf_counter()
            answer = b.post(f"{node_b}/flags/?v=2", json=ask).json()
            end = time.perf_counter()
            misses += answer["flags"]["bc-0"]["enabled"] is not True
            times.append((end - start) * 1000)
            batch_times.append((applied - start) * 1000)
    q = statistics.quantiles(times, n=100)
    qb = statistics.quantiles(batch_times, n=100)
    return {"p50": q[49], "p99": q[98], "batch_p50": qb[49], "batch_p99": qb[98], "misses": misses}


def _redis_cpu(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def flags_load(base: str, args: argparse.Namespace, redis_url: str) -> dict[str, float]:
    script_bodies = flagd_bodies(users(1000))
    from bench.load import _lua_bodies

    script = _lua_bodies(
        script_bodies, method="POST", headers={"Content-Type": "application/json"}, think_ms=None
    )
    run_wrk(f"{base}/flags/?v=2", script, connections=64, duration=2)
    before = _redis_cpu(redis_url)
    result = run_wrk(f"{base}/flags/?v=2", script, connections=64, duration=args.duration)
    # Redis shares the two cores with the workers and wrk here; say how much of them it took per request.
    result["redis_us"] = (_redis_cpu(redis_url) - before) / (result["rps"] * args.duration) * 1e6
    return result


async def _memory(url: str, persons: int, with_uuids: bool) -> float:
    import msgspec

    from evaluator.behaviour import counter_id
    from store.persons.ingest import Event, ingest
    from store.persons.redis import RedisPersonStore

    client = redis.Redis.from_url(url)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    store = RedisPersonStore(url)
    now = int(time.time())
    rng = random.Random(5)
    # Five behavioural conditions: five event names, each counted (plain counters) a few times.
    for start in range(0, persons, 100):
        events = []
        for p in range(start, start + 100):
            props = {f"prop_{k}": f"value-{rng.randrange(1000)}" for k in range(10)}
            events.append({"event": "$identify", "distinct_id": f"person-{p:08d}", "$set": props})
            for n in range(5):
                for _ in range(2):
                    event = {"event": f"ev{n}", "distinct_id": f"person-{p:08d}"}
                    if with_uuids:
                        event["uuid"] = f"{rng.getrandbits(128):032x}"
                    events.append(event)
        ingested = ingest(
            msgspec.convert(events, list[Event]),
            [f"batch[{i}]" for i in range(len(events))],
            {},
            now_ms=now * 1000,
            oldest_ms=0,
            max_distinct_id_chars=200,
            max_value_chars=10_000,
            max_person_properties=1000,
        )
        await store.apply(1, ingested.steps, now=now, retention=30 * 86400)
    await store.close()
    after = int(client.info("memory")["used_memory"])
    client.close()
    del counter_id
    return (after - before) / persons


async def _worker_cpu(url: str, rounds: int = 200, concurrency: int = 32) -> tuple[float, float]:
    """Worker CPU per flag check (70 flags), without and with the coalesced person read, in-process."""
    from evaluator import Context
    from flagd.sdk.persons import Persons
    from store.catalog import ProjectData, build_project_state
    from store.persons.redis import RedisPersonStore

    cohort_rows = [
        {"id": i + 1, "name": c["name"], "deleted": False, "is_static": False, "version": 1, **c}
        for i, c in enumerate(cohorts())
    ]
    flags = [
        {
            "id": i + 1,
            "key": f"bc-{i}",
            "active": True,
            "deleted": False,
            "version": 1,
            "filters": {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": i + 1}]}]},
        }
        for i in range(20)
    ]
    flags += [
        {"id": 100 + j, "active": True, "deleted": False, "version": 1, **f}
        for j, f in enumerate(posthog_flags(50))
    ]
    state = build_project_state(ProjectData(1, TOKEN, "0" * 64, {}, 1, flags, cohort_rows))
    store = RedisPersonStore(url)
    persons = Persons(store, history_seconds=86400)
    people = users(1000)

    async def plain(n: int) -> None:
        for i in range(n):
            state.snapshot.evaluate(Context(people[i % 1000]["distinct_id"], {"plan": "pro"}))
            await asyncio.sleep(0)

    async def read(n: int) -> None:
        for i in range(n):
            ctx = await persons.enrich(state, Context(people[i % 1000]["distinct_id"], {"plan": "pro"}), None)
            state.snapshot.evaluate(ctx)

    cpu = []
    for run in (plain, read):
        start = time.process_time()
        await asyncio.gather(*(run(rounds) for _ in range(concurrency)))
        cpu.append((time.process_time() - start) / (rounds * concurrency) * 1e6)
    await store.close()
    return cpu[0], cpu[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16, help="wrk connections for /batch/")
    ap.add_argument("--rounds", type=int, default=500, help="event -> visible round trips")
    ap.add_argument("--persons", type=int, default=10_000, help="persons for the memory measurement")
    args = ap.parse_args(argv)
    lines: list[str] = []
    with postgres_server() as pg, redis_server() as rs:
        # The baseline in the same run: /batch validating and dropping (no person store).
        with flagd({"FLAGD_PERSON_STORE": "0"}, 2) as base:
            setup_project(base)
            time.sleep(3)
            drop = ingestion(base, args)
        lines.append(
            "| ingestion, validate-and-drop (FLAGD_PERSON_STORE=0), 2 workers "
            f"| {drop['events']:,.0f} events/s "
            f"({drop['ok_rps']:,.0f} batches/s answered 200) "
            f"| p50 {drop['p50']:.1f} ms, p99 {drop['p99']:.1f} ms "
            f"| shed (503) {drop['non2xx']:.0f} of {drop['rps'] * args.duration:,.0f} |"
        )
        with flagd({}, 2) as base:
            setup_project(base)
            time.sleep(3)  # let every worker finish compiling the 90 changes
            emb = ingestion(base, args)
        lines.append(
            f"| ingestion, embedded (SQLite), 2 workers | {emb['events']:,.0f} events/s "
            f"({emb['ok_rps']:,.0f} batches/s answered 200) "
            f"| p50 {emb['p50']:.1f} ms, p99 {emb['p99']:.1f} ms "
            f"| shed (503) {emb['non2xx']:.0f} of {emb['rps'] * args.duration:,.0f} |"
        )
        env = distributed_env(pg.url, rs.url)
        with flagd(env, 2) as base:
            setup_project(base)
            time.sleep(3)
            dist = ingestion(base, args)
            lines.append(
                f"| ingestion, distributed (Redis), 2 workers | {dist['events']:,.0f} events/s "
                f"({dist['ok_rps']:,.0f} batches/s answered 200) "
                f"| p50 {dist['p50']:.1f} ms, p99 {dist['p99']:.1f} ms "
                f"| shed (503) {dist['non2xx']:.0f} of {dist['rps'] * args.duration:,.0f} |"
            )
        # Fresh servers (no recompiles or ingestion left running), settled, alternating on/off twice; the
        # better of each pair of rounds is reported (the machine is shared, see bench/RESULTS.md).
        runs: dict[str, list[dict[str, float]]] = {"1": [], "0": []}
        for flag in ("1", "0", "1", "0"):
            with flagd({**env, "FLAGD_PERSON_STORE": flag}, 2) as base:
                time.sleep(3)
                runs[flag].append(flags_load(base, args, rs.url))
        with_read = max(runs["1"], key=lambda r: r["rps"])
        without = max(runs["0"], key=lambda r: r["rps"])
        ratio = with_read["rps"] / without["rps"]
        rounds = (
            ", ".join(f"{r['rps']:,.0f}" for r in runs["1"])
            + " vs "
            + ", ".join(f"{r['rps']:,.0f}" for r in runs["0"])
        )
        lines.append(
            "| /flags, 70 flags, with the person read (FLAGD_PERSON_STORE=1) "
            f"| {with_read['rps']:,.0f} req/s | p50 {with_read['p50']:.2f} ms, p99 {with_read['p99']:.2f} ms "
            f"| non-2xx {with_read['non2xx']:.0f}; Redis CPU {with_read['redis_us']:.0f} µs per request |"
        )
        lines.append(
            f"| /flags, same, without (FLAGD_PERSON_STORE=0) | {without['rps']:,.0f} req/s "
            f"| p50 {without['p50']:.2f} ms, p99 {without['p99']:.2f} ms | ratio {ratio:.0%}, "
            f"added p50 {with_read['p50'] - without['p50']:+.2f} ms (rounds: {rounds} req/s) |"
        )
        plain_us, read_us = asyncio.run(_worker_cpu(rs.url))
        lines.append(
            f"| worker CPU per flag check, in-process, 32 concurrent | {plain_us:.1f} µs without the read, "
            f"{read_us:.1f} µs with it | +{read_us - plain_us:.1f} µs per check "
            "| one Redis call per loop turn |"
        )
        with flagd(env, 1) as node_a, flagd({**env, "FLAGD_SYNCER": "0"}, 1) as node_b:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                r = httpx.post(f"{node_b}/flags/?v=2", json={"api_key": TOKEN, "distinct_id": "x"}, timeout=5)
                if "bc-0" in r.json().get("flags", {}):
                    break
                time.sleep(0.2)
            vis = visibility(node_a, node_b, args.rounds)
        lines.append(
            f"| event on node A -> flag on node B ({args.rounds} rounds) | p50 {vis['p50']:.2f} ms, "
            f"p99 {vis['p99']:.2f} ms (the /batch/ alone: p50 {vis['batch_p50']:.2f}, "
            f"p99 {vis['batch_p99']:.2f}) "
            f"| not yet visible: {vis['misses']:.0f} | |"
        )
        with_uuids = asyncio.run(_memory(rs.url, args.persons, True))
        without_uuids = asyncio.run(_memory(rs.url, args.persons, False))
        lines.append(
            f"| Redis memory per person (10 properties, 5 counters x 2 events) | {without_uuids:,.0f} B "
            f"(+ uuid dedupe sets for 24 h: {with_uuids:,.0f} B) | 10M persons: "
            f"{without_uuids * 1e7 / 2**30:,.1f} GiB ({with_uuids * 1e7 / 2**30:,.1f} GiB) | |"
        )
    print("| measurement | result | latency / detail | notes |")
    print("|---|---|---|---|")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
