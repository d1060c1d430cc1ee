"""What the status page costs: the hot path (per request) and the reader (per /status.json).

Run: ``.venv/bin/python -m bench.status_overhead [--requests 20000] [--repeats 7]``

1. **Per request, in process, A/B.** ``SdkApp.respond`` for ``POST /flags`` (50 flags, a fresh user each time,
   every production feature on) with today's ``Metrics`` against ``BaselineMetrics`` — ``observe``/``flush``/
   ``count_shed`` exactly as they were before the status page (no latency list, no sketch, no slice). Both
   run in the same process, alternating, ``--repeats`` times; medians are reported. The difference is the
   whole per-request cost of the page: the list append in ``observe`` and the sketch insert at flush.
2. **The parts, per call:** the sketch insert per latency, and the once-a-second ticker work (close a slice
   of 3 routes, write it, rewrite the beat) — the latter spread over a second of traffic.
3. **The reader**, with 2 workers × 15 minutes of slices on disk (3 routes, 300 requests per route and
   second): a late-started worker's catch-up (``refresh(budget=0.02)`` per tick until nothing is pending:
   total, and the longest single tick, i.e. the longest event-loop stall), then per second the ticker's
   refresh (the two new files) plus one page poll (figures over 1/5/15 min, chart, beats).
4. **``Metrics.observe`` alone** (the hot-path hook, with its amortized flush), today's vs the baseline's:
   the deterministic part of (1), which machine noise can hide in the A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.load_workload import posthog_flags
from flagd.metrics import Metrics
from flagd.sdk.http import Request
from flagd.status.sketch import Sketch
from flagd.status.slices import Recorder, WorkerBeat
from flagd.status.window import Window
from store.catalog import Catalog, build_project_state
from tests.flagd.sdk_support import SECRET_A, TOKEN_A, flag, make_app, project_data


class BaselineMetrics(Metrics):
    """``Metrics`` as it was before the status page: observe/flush/count_shed without the status feed."""

    def observe(self, route: Any, status: int, seconds: float) -> None:
        route.buckets[bisect_left(route.bounds, seconds)] += 1
        route.total += seconds
        statuses = route.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self._pending_requests += 1
        if self._pending_requests >= self._flush_every:
            self.flush()
        elif not self._timer_armed:
            self._arm_timer()

    def flush(self) -> None:
        self._pending_requests = 0
        for route in self._routes.values():
            if route.statuses:
                buckets = route.latency._buckets
                for index, count in enumerate(route.buckets):
                    if count:
                        buckets[index].inc(count)
                        route.buckets[index] = 0
                route.latency._sum.inc(route.total)
                route.total = 0.0
                for status, count in route.statuses.items():
                    counter = route.counters.get(status)
                    if counter is None:
                        counter = route.counters[status] = self._requests.labels(route.route, str(status))
                    counter.inc(count)
                route.statuses.clear()
        for source in self._sources:
            self._pending.update(source())
        pending = self._pending
        if pending:
            self.count_evaluations(pending)
            pending.clear()

    def count_shed(self, route: str) -> None:
        child = self._shed_children.get(route)
        if child is None:
            child = self._shed_children[route] = self._shed.labels(route)
        child.inc()


class _Body(Request):
    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        super().__init__("/flags", b"v=2", {b"content-type": b"application/json"})
        self._body = body

    async def body(self, limit: int) -> bytes:
        return self._body


def _catalog() -> Catalog:
    definitions = []
    for i, spec in enumerate(posthog_flags(50)):
        filters = dict(spec["filters"])
        groups = filters.pop("groups")
        definitions.append(flag(i + 1, spec["key"], groups, **filters))
    catalog = Catalog()
    catalog.replace_all({1: build_project_state(project_data(1, TOKEN_A, SECRET_A, definitions))})
    return catalog


async def _per_request(metrics: Metrics, bodies: list[bytes]) -> float:
    app = make_app(_catalog(), metrics=metrics)
    route = app.route_for("/flags")
    assert route is not None
    respond = app.respond
    for body in bodies[:500]:  # warm up
        status, _, _ = await respond(route, "POST", _Body(body))
        assert status == 200
    start = time.perf_counter()
    for body in bodies:
        await respond(route, "POST", _Body(body))
    return (time.perf_counter() - start) / len(bodies)


def _median_us(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats)) * 1e6


def _beat(pid: int, now: float) -> WorkerBeat:
    return WorkerBeat(
        pid=pid,
        started_at=now - 900,
        mode="distributed",
        role="follower",
        ready=True,
        version=1,
        lag_seconds=0.01,
        stale=False,
        source="redis",
        store_error=None,
        breaker="closed",
    )


def _tick_on_disk(samples: list[float]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        now = [1_700_000_000.0]
        recorder = Recorder(Path(tmp), clock=lambda: now[0], pid=1)
        took = []
        for _ in range(120):
            for route in ("flags", "decide", "definitions"):
                recorder.add(route, samples[:300], 300, 0, 0)
            now[0] += 1
            start = time.perf_counter()
            recorder.rotate()
            recorder.beat(_beat(1, now[0]))
            took.append(time.perf_counter() - start)
        return statistics.median(took) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    bodies = [
        json.dumps({"api_key": TOKEN_A, "distinct_id": f"user-{n}"}).encode() for n in range(args.requests)
    ]

    loop = asyncio.new_event_loop()
    with_page: list[float] = []
    baseline: list[float] = []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        baseline.append(loop.run_until_complete(_per_request(BaselineMetrics(), bodies)))
        with_page.append(loop.run_until_complete(_per_request(Metrics(), bodies)))
    loop.close()
    base_us, page_us = statistics.median(baseline) * 1e6, statistics.median(with_page) * 1e6

    samples = [0.0002 + (i % 97) * 1e-5 for i in range(10_000)]

    def observe(cls: type[Metrics]) -> Callable[[], float]:
        def run() -> float:
            metrics = cls()
            route = metrics.route("flags")
            call = metrics.observe
            start = time.perf_counter()
            for value in samples:
                call(route, 200, value)
            metrics.flush()
            return (time.perf_counter() - start) / len(samples)

        return run

    observe_base = _median_us(observe(BaselineMetrics), args.repeats * 3)
    observe_page = _median_us(observe(Metrics), args.repeats * 3)

    def sketch_insert() -> float:
        sketch = Sketch()
        start = time.perf_counter()
        sketch.add_all(samples)
        return (time.perf_counter() - start) / len(samples)

    # Where `flagd serve` puts it (a tmpfs when there is one; see flagd/cli.py), and on the disk for contrast.
    disk_tick = _tick_on_disk(samples)
    memory = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=memory) as tmp:
        directory = Path(tmp)
        clock_now = [1_700_000_000.0]

        def clock() -> float:
            return clock_now[0]

        recorders = [Recorder(directory, clock=clock, pid=pid) for pid in (1, 2)]

        def one_second() -> float:
            """Every worker: a second of traffic in, then the ticker's close + write + beat (timed)."""
            took = 0.0
            for recorder in recorders:
                for route in ("flags", "decide", "definitions"):
                    recorder.add(route, samples[:300], 300, 0, 0)
            clock_now[0] += 1
            for pid, recorder in enumerate(recorders, 1):
                start = time.perf_counter()
                recorder.rotate()
                recorder.beat(_beat(pid, clock_now[0]))
                took += time.perf_counter() - start
            return took / len(recorders)

        tick = statistics.median(one_second() for _ in range(900)) * 1e6  # also fills 15 minutes of slices
        window = Window(directory, clock=clock)
        chunks = []
        while True:
            start = time.perf_counter()
            window.refresh(budget=0.02)
            chunks.append(time.perf_counter() - start)
            if not window.pending:
                break
        catch_up, stall = sum(chunks) * 1e3, max(chunks) * 1e3

        def poll() -> float:
            start = time.perf_counter()
            window.refresh(budget=0.02)  # the ticker's, once a second
            window.beats()
            window.routes(started_at=clock_now[0] - 900)
            window.events()
            window.chart()
            return time.perf_counter() - start

        polls = []
        for _ in range(60):
            one_second()
            polls.append(poll())
        warm = statistics.median(polls) * 1e3
        files = len(list(directory.iterdir()))

    print(f"per /flags request (50 flags), in process, median of {args.repeats} × {args.requests}:")
    print(f"  baseline (no status page)  {base_us:8.2f} µs")
    extra = f"(+{page_us - base_us:.2f} µs, {page_us / base_us:.3f}×)"
    print(f"  with the status page       {page_us:8.2f} µs   {extra}")
    print(
        f"Metrics.observe + flush      {observe_base:8.3f} µs baseline, {observe_page:.3f} µs with the page"
    )
    print(f"sketch insert per latency    {_median_us(sketch_insert, args.repeats):8.3f} µs")
    print(
        f"ticker per worker-second     {tick:8.1f} µs   (3 routes × 300 requests: close, write, beat; tmpfs)"
    )
    print(f"  the same on the disk       {disk_tick:8.1f} µs   ({tempfile.gettempdir()})")
    print(f"reader, 2 workers × 15 min on disk ({files} files):")
    print(
        f"  catch-up of a late worker  {catch_up:8.1f} ms in {len(chunks)} ticks, longest tick {stall:.1f} ms"
    )
    print(f"  per second (tick + poll)   {warm:8.2f} ms")


if __name__ == "__main__":
    main()
