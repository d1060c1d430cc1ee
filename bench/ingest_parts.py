"""Where a ``/batch`` of 100 events spends its time, in process, per event: decode, validation, ``ingest``
(property operations, counter matching), encoding, the SQLite transaction, the Redis ``WRITE`` script (server
CPU from ``INFO cpu`` and Redis commands per event from ``INFO commandstats``, which count the calls a script
makes). CPU time, not wall time, so a busy machine inflates it less; the in-process rows take the least of
three runs.

Run: ``.venv/bin/python -m bench.ingest_parts [--batches 200]`` (a throwaway Redis from ``tests/servers.py``).
The workload is ``bench/persons.py``'s: 10k persons, 6 event names, every tenth event with a ``$set``, 20
behavioural cohorts (10 with ``event_filters``); the stores are written twice first, so the measured pass
updates existing persons (the steady state), with fresh uuids.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import redis

from bench.persons import batch_bodies, cohorts
from evaluator.behaviour import EventCounter
from evaluator.behavioural import compile_leaf
from evaluator.issues import Problems
from flagd.sdk.events import Envelope, Event, check_event, events_of
from store.persons.ingest import Ingested, counters_by_event, ingest
from store.persons.redis import RedisPersonStore
from store.persons.sqlite import SqlitePersonStore
from tests.servers import redis_server

RETENTION = 30 * 86400


def _counters() -> dict[str, list[EventCounter]]:
    found = []
    for cohort in cohorts():
        for leaf in cohort["filters"]["properties"]["values"]:
            compiled = compile_leaf(leaf, "", Problems(), time.time)
            assert compiled is not None
            found.append(compiled.counter)
    return counters_by_event(found)


def _cpu_per_event(run: Any, batches: int, repeats: int = 3) -> float:
    """The least CPU of ``repeats`` runs (garbage collection included: it is part of the cost)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / (batches * 100) * 1e6


def _ingest_all(payloads: list[Any], counters: dict[str, list[EventCounter]], now_ms: int) -> list[Ingested]:
    paths = [f"batch[{i}]" for i in range(100)]
    return [
        ingest(
            p["batch"],
            paths,
            counters,
            now_ms=now_ms,
            oldest_ms=now_ms - RETENTION * 1000,
            max_distinct_id_chars=200,
            max_value_chars=10_000,
            max_person_properties=1000,
        )
        for p in payloads
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args(argv)
    n: int = args.batches
    counters = _counters()
    raw = {s: [b.replace("R-0000", f"{s}{i}").encode() for i, b in enumerate(batch_bodies(n))] for s in "abc"}
    decoder = msgspec.json.Decoder(Envelope | list[Event])  # what /batch decodes with
    payloads = {s: [{"batch": events_of(decoder.decode(r))[0]} for r in raw[s]] for s in raw}
    now_ms = int(time.time() * 1000)
    now = now_ms // 1000
    rows: list[tuple[str, float]] = []
    generic = msgspec.json.Decoder()
    rows.append(
        (
            "decode (generic msgspec, for reference)",
            _cpu_per_event(lambda: [generic.decode(r) for r in raw["c"]], n),
        )
    )
    rows.append(
        (
            "decode (typed Event structs, what /batch does)",
            _cpu_per_event(lambda: [events_of(decoder.decode(r)) for r in raw["c"]], n),
        )
    )

    def check() -> None:
        for payload in payloads["c"]:
            for i, event in enumerate(payload["batch"]):
                check_event(event, f"batch[{i}]")

    rows.append(("validation (check_event)", _cpu_per_event(check, n)))
    rows.append(
        (
            "ingest (ops, counters, uuids)",
            _cpu_per_event(lambda: _ingest_all(payloads["c"], counters, now_ms), n),
        )
    )
    steps = {s: _ingest_all(payloads[s], counters, now_ms) for s in payloads}
    encode = msgspec.json.Encoder().encode
    rows.append(("encode the steps (JSON)", _cpu_per_event(lambda: [encode(x.steps) for x in steps["c"]], n)))

    async def sqlite() -> float:
        store = await SqlitePersonStore.open(Path(tempfile.mkdtemp(prefix="flagd-parts-")) / "p.db")
        for s in "ab":
            for x in steps[s]:
                await store.apply(1, x.steps, now=now, retention=RETENTION)
        start = time.process_time()
        for x in steps["c"]:
            await store.apply(1, x.steps, now=now + 1, retention=RETENTION)
        cpu = (time.process_time() - start) / (n * 100) * 1e6
        await store.close()
        return cpu

    rows.append(("SQLite transaction (process CPU, incl. its thread)", asyncio.run(sqlite())))
    with redis_server() as server:
        client = redis.Redis.from_url(server.url)

        async def write(s: str, at: int) -> None:
            store = RedisPersonStore(server.url)
            for x in steps[s]:
                await store.apply(1, x.steps, now=at, retention=RETENTION)
            await store.close()

        asyncio.run(write("a", now))
        asyncio.run(write("b", now))
        client.config_resetstat()
        info = client.info("cpu")
        before = info["used_cpu_user"] + info["used_cpu_sys"]
        asyncio.run(write("c", now + 1))
        info = client.info("cpu")
        server_cpu = (info["used_cpu_user"] + info["used_cpu_sys"] - before) / (n * 100) * 1e6
        stats = client.info("commandstats")
        commands = sum(v["calls"] for k, v in stats.items() if "eval" not in k) / (n * 100)
        client.close()
    rows.append(("Redis WRITE script (server CPU)", server_cpu))
    print("| part (per event, batches of 100) | CPU µs |")
    print("|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")
    print(f"| Redis commands per event (inside the script) | {commands:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
