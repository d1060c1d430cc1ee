"""The person store on one Redis vs a 3-shard Redis Cluster (keys tagged per person on both), in process,
side by side in one run: batches of 100 events (100 distinct persons, every tenth event with a ``$set``)
applied per second, coalesced flag-time reads (64 persons per loop turn, 2 behavioural queries each) per
second, and ``$identify`` merges per second. Wall time on a shared 2-core machine, where the servers and the
client share the cores: read the ratios, not the absolutes.

Run: ``.venv/bin/python -m bench.persons_cluster [--seconds 3]`` (throwaway servers from ``tests/``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from evaluator.behaviour import counter_id, query
from store.persons import ReadRequest
from store.persons.ingest import ingest
from store.persons.redis import RedisPersonStore
from tests.redis_topology import redis_cluster
from tests.servers import redis_server

NOW = 1_800_000_000
STAMP = "2027-01-15T08:00:00Z"  # NOW (the events count in every window)
PERSONS = 10_000
QUERIES = tuple(query(counter_id(e), window_seconds=86400 * d) for e, d in (("$pageview", 1), ("ev0", 7)))
_uuids = itertools.count()


def _batch(first: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for i in range(100):
        person = f"u{(first + i) % PERSONS}"
        props: dict[str, object] = {"$set": {"plan": "pro", "n": i}} if i % 10 == 0 else {}
        events.append(
            {
                "event": "$pageview" if i % 2 else "ev0",
                "distinct_id": person,
                "properties": props,
                "uuid": f"e{next(_uuids)}",
                "timestamp": STAMP,
            }
        )
    return events


async def _apply(store: RedisPersonStore, events: list[dict[str, object]]) -> None:
    ingested = ingest(
        events,
        [f"b[{i}]" for i in range(len(events))],
        {},
        now_ms=NOW * 1000,
        oldest_ms=(NOW - 86400 * 30) * 1000,
        max_distinct_id_chars=200,
        max_value_chars=10_000,
        max_person_properties=1000,
    )
    await store.apply(1, ingested.steps, now=NOW, retention=86400 * 30)


async def _rate(seconds: float, step: Callable[[int], Awaitable[int]]) -> float:
    done, n, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += await step(n)
        n += 1
    return done / (time.perf_counter() - start)


async def measure(url: str, seconds: float) -> dict[str, float]:
    store = RedisPersonStore(url)
    try:
        await store.warm()
        for first in range(0, PERSONS, 100):  # every person exists: the steady state
            await _apply(store, _batch(first))

        async def write(n: int) -> int:
            await _apply(store, _batch(n * 100))
            return 100

        async def read(n: int) -> int:
            reads = [
                store.read(
                    ReadRequest(1, f"u{(n * 64 + i) % PERSONS}", (), QUERIES), now=NOW, retention=86400
                )
                for i in range(64)
            ]
            await asyncio.gather(*reads)
            return 64

        async def merge(n: int) -> int:
            event = {
                "event": "$identify",
                "distinct_id": f"known{n}",
                "uuid": f"m{n}",
                "properties": {"$anon_distinct_id": f"u{n % PERSONS}"},
                "timestamp": STAMP,
            }
            await _apply(store, [event])
            return 1

        return {
            "events/s": await _rate(seconds, write),
            "reads/s": await _rate(seconds, read),
            "merges/s": await _rate(seconds, merge),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with redis_server() as single, redis_cluster(3, 0) as cluster:
        one = asyncio.run(measure(single.url, args.seconds))
        many = asyncio.run(measure(cluster.url, args.seconds))
    print(f"{'':10} {'one Redis':>12} {'3-shard Cluster':>16} {'ratio':>7}")
    for key in one:
        print(f"{key:10} {one[key]:12.0f} {many[key]:16.0f} {many[key] / one[key]:7.2f}")


if __name__ == "__main__":
    main()
