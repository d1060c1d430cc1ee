"""Prometheus metrics for the SDK endpoints, cheap enough for the hot path, correct with several workers.

Series (namespace ``flagd``):

- ``flagd_request_duration_seconds{route}`` — histogram, buckets from 50 µs to 5 s, fine enough below a
  millisecond to read p50/p99 of ``/flags``.
- ``flagd_requests_total{route,status}`` — every answered request.
- ``flagd_flag_evaluations_total{reason}`` — flag decisions by PostHog reason code.
- ``flagd_shed_total{route}`` — requests answered 503 by the load shedder.
- ``flagd_store_errors_total{operation}`` — a hook for the store side (``Metrics.store_error``).
- ``flagd_store_reads_total{store}``, ``flagd_store_hedges_total{store}`` (a second, hedged read was
  sent because the first was slow), ``flagd_store_hedges_won_total{store}`` (the hedge answered first),
  ``flagd_store_hedge_budget_exhausted_total{store}`` (a slow read not hedged: the budget was empty),
  ``flagd_store_deadline_misses_total{store}`` (a read gave up at its deadline) and
  ``flagd_store_breaker_state{store}`` (0 closed, 1 half-open, 2 open) — fed by the person store's
  ``HedgedReader`` (``flagd.store_metrics``), ``store`` being each server's ``host:port``; zero until used.
- ``flagd_snapshot_version``, ``flagd_snapshot_lag_seconds``, ``flagd_snapshot_stale`` (1: serving a
  snapshot nothing keeps current), ``flagd_store_up`` (0: the node's last store operation failed) and
  ``flagd_syncer_active`` (1: this node runs the syncer) — read from ``health()`` when scraped.

The status page (``flagd.status``) is fed from the same local tallies: every flush also moves the latencies
since the last one into the worker's open 1-second slice (``Recorder``), so the hot path pays one list append.

Multi-worker: Granian runs several processes. ``prepare_multiprocess(dir)`` (called by the CLI before the
workers start) points prometheus_client at a shared directory; each worker then writes its values to mmap
files there and ``/metrics`` on any worker aggregates them all (``MultiProcessCollector``). Without it,
values are per process.

Cost: the per-request methods only add to local tallies (a bisect and a few dict updates); the tallies move
into the Prometheus series every ``flush_every`` requests (64), within ``flush_seconds`` (1 s) of the first
unflushed request, and before every render. So a worker's numbers can trail by up to 64 requests or a second.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flagd.status.slices import Recorder

LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00015,
    0.0002,
    0.0003,
    0.0004,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_ENV = "PROMETHEUS_MULTIPROC_DIR"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
STORES = ("redis", "postgres")


def prepare_multiprocess(directory: str | os.PathLike[str]) -> Path:
    """Make every metric created from now on (here and in the workers started later) shared across processes.

    Empties ``directory`` (stale files from a previous run would be summed in), sets
    ``PROMETHEUS_MULTIPROC_DIR`` for the workers, and switches prometheus_client's value class even if it
    was imported already.
    """
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[_ENV] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


class _RouteMetrics:
    """One route's latency histogram child and status counters, with local tallies between flushes."""

    __slots__ = (
        "bounds",
        "buckets",
        "counters",
        "failed",
        "latency",
        "route",
        "samples",
        "shed",
        "statuses",
        "total",
    )

    def __init__(self, route: str, latency: Any) -> None:
        self.route = route
        self.samples: list[float] = []  # latencies since the last flush, for the status page's sketch
        self.failed = 0  # answers >= 500 since the last flush
        self.shed = 0
        self.latency = latency
        self.bounds: tuple[float, ...] = tuple(latency._upper_bounds)  # the buckets' upper bounds, +Inf last
        self.buckets = [0] * len(self.bounds)
        self.total = 0.0
        self.statuses: dict[int, int] = {}
        self.counters: dict[int, Any] = {}


class Metrics:
    """The server's metrics, built once per worker (see the module docstring)."""

    __slots__ = (
        "_breaker",
        "_breakers",
        "_evaluations",
        "_flush_every",
        "_flush_seconds",
        "_lag",
        "_latency",
        "_multiprocess_dir",
        "_pending",
        "_pending_requests",
        "_reasons",
        "_requests",
        "_routes",
        "_shed",
        "_shed_children",
        "_sources",
        "_stale",
        "_store_budget_exhausted",
        "_store_deadline_misses",
        "_store_errors",
        "_store_hedges",
        "_store_hedges_won",
        "_store_reads",
        "_store_up",
        "_syncer_active",
        "_timer_armed",
        "_version",
        "breaker_state",
        "recorder",
        "registry",
    )

    def __init__(
        self, *, multiprocess_dir: str | None = None, flush_every: int = 64, flush_seconds: float = 1.0
    ) -> None:
        # prometheus_client itself keys multiprocess mode on this variable; we follow it when not told.
        self._multiprocess_dir = multiprocess_dir or os.environ.get(_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._latency = Histogram(
            "flagd_request_duration_seconds",
            "Time to answer an SDK request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._requests = Counter(
            "flagd_requests_total",
            "SDK requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=reg,
        )
        self._evaluations = Counter(
            "flagd_flag_evaluations_total",
            "Flag decisions, by reason code.",
            ["reason"],
            registry=reg,
        )
        self._shed = Counter(
            "flagd_shed_total", "Requests shed with 503 to protect latency.", ["route"], registry=reg
        )
        self._store_errors = Counter(
            "flagd_store_errors_total",
            "Errors talking to PostgreSQL or Redis, by operation.",
            ["operation"],
            registry=reg,
        )
        self._version = Gauge(
            "flagd_snapshot_version",
            "Change sequence of the newest flag snapshot this node serves.",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._lag = Gauge(
            "flagd_snapshot_lag_seconds",
            "Seconds from a change's commit to this node serving it.",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._store_reads = Counter(
            "flagd_store_reads_total",
            "Reads sent to a store server (hedges not included), by store.",
            ["store"],
            registry=reg,
        )
        self._store_hedges_won = Counter(
            "flagd_store_hedges_won_total",
            "Hedged store reads that answered before the read they hedged, by store.",
            ["store"],
            registry=reg,
        )
        self._store_budget_exhausted = Counter(
            "flagd_store_hedge_budget_exhausted_total",
            "Slow store reads left unhedged because the hedge budget was spent, by store.",
            ["store"],
            registry=reg,
        )
        self._store_hedges = Counter(
            "flagd_store_hedges_total",
            "Hedged (second) store reads sent because the first was slow, by store.",
            ["store"],
            registry=reg,
        )
        self._store_deadline_misses = Counter(
            "flagd_store_deadline_misses_total",
            "Store reads abandoned at their deadline, by store.",
            ["store"],
            registry=reg,
        )
        self._breaker = Gauge(
            "flagd_store_breaker_state",
            "The store circuit breaker: 0 closed, 1 half-open, 2 open, by store.",
            ["store"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._stale = Gauge(
            "flagd_snapshot_stale",
            "1 when the node serves a snapshot nothing keeps current (store unreachable or unsynced).",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._store_up = Gauge(
            "flagd_store_up",
            "0 when the node's last store operation failed, else 1.",
            registry=reg,
            multiprocess_mode="livemin",  # every worker sets it each second (the status ticker)
        )
        self._syncer_active = Gauge(
            "flagd_syncer_active",
            "1 when this node holds the syncer role (it feeds the flag store from PostgreSQL).",
            registry=reg,
            multiprocess_mode="livemax",
        )
        for store in STORES:  # zero from the start, so dashboards and rate() see the series before any read
            for counter in (
                self._store_reads,
                self._store_hedges,
                self._store_hedges_won,
                self._store_budget_exhausted,
                self._store_deadline_misses,
            ):
                counter.labels(store)
            self._breaker.labels(store).set(0)
        self._store_up.set(1)  # until health() says otherwise
        self.breaker_state = "closed"  # the worst of every store server's breaker
        self._breakers: dict[str, str] = {}
        self.recorder = Recorder(Path(self._multiprocess_dir) / "status" if self._multiprocess_dir else None)
        self._routes: dict[str, _RouteMetrics] = {}
        self._pending: collections.Counter[str] = collections.Counter()
        self._pending_requests = 0
        self._flush_every = flush_every
        self._sources: list[Callable[[], Mapping[str, int]]] = []
        self._flush_seconds = flush_seconds
        self._timer_armed = False
        self._reasons: dict[str, Any] = {}
        self._shed_children: dict[str, Any] = {}

    # Hot path ---------------------------------------------------------------------------------------------
    def route(self, route: str) -> _RouteMetrics:
        """The prebuilt children for one route (build these once, at app start)."""
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = _RouteMetrics(route, self._latency.labels(route))
        return found

    def observe(self, route: _RouteMetrics, status: int, seconds: float) -> None:
        """One answered request.

        Tallied locally — a bisect and two additions, where Prometheus would take a lock per bucket and
        counter — and moved into Prometheus every ``flush_every`` requests, within ``flush_seconds`` of the
        first unflushed request (a timer on the running event loop, so an idle worker publishes too), and
        whenever metrics are rendered."""
        route.buckets[bisect_left(route.bounds, seconds)] += 1
        route.total += seconds
        route.samples.append(seconds)
        if status >= 500:
            route.failed += 1
        statuses = route.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self._pending_requests += 1
        if self._pending_requests >= self._flush_every:
            self.flush()
        elif not self._timer_armed:
            self._arm_timer()

    def _arm_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): count-based and render-time flushes only
            return
        self._timer_armed = True
        loop.call_later(self._flush_seconds, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer_armed = False
        if self._pending_requests or self._pending:
            self.flush()

    def add_source(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Register a source of evaluation tallies (e.g. the /flags record cache), pulled on every flush."""
        self._sources.append(source)

    def tally_reasons(self, reasons: Iterable[str]) -> None:
        """Count one request's decisions by reason (kept locally until the next flush)."""
        self._pending.update(reasons)

    def flush(self) -> None:
        """Move every local tally (latency, statuses, evaluations by reason) into the Prometheus series."""
        self._pending_requests = 0
        recorder = self.recorder
        for route in self._routes.values():
            if route.statuses:
                samples = route.samples
                recorder.add(route.route, samples, len(samples), route.failed, route.shed)
                samples.clear()
                route.failed = route.shed = 0
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

    def count_evaluations(self, by_reason: Mapping[str, int]) -> None:
        """Add one request's decisions, already tallied by reason."""
        children = self._reasons
        for reason, count in by_reason.items():
            child = children.get(reason)
            if child is None:
                child = children[reason] = self._evaluations.labels(reason)
            child.inc(count)

    def count_shed(self, route: str) -> None:
        tallies = self._routes.get(route)
        if tallies is not None:
            tallies.shed += 1
        child = self._shed_children.get(route)
        if child is None:
            child = self._shed_children[route] = self._shed.labels(route)
        child.inc()

    # Off the hot path -------------------------------------------------------------------------------------
    def store_error(self, operation: str) -> None:
        """Count one failed PostgreSQL/Redis operation (``operation``: a short fixed name, "redis_read")."""
        self._store_errors.labels(operation).inc()
        self.recorder.event("errors")

    def store_read(self, store: str) -> None:
        """Count one read sent to ``store`` (one of ``STORES``)."""
        self._store_reads.labels(store).inc()
        self.recorder.event("reads")

    def store_hedge(self, store: str) -> None:
        """Count one hedged read (a second request sent because the first was slow)."""
        self._store_hedges.labels(store).inc()
        self.recorder.event("hedges")

    def store_deadline_miss(self, store: str) -> None:
        """Count one read abandoned at its deadline."""
        self._store_deadline_misses.labels(store).inc()
        self.recorder.event("deadline_misses")

    def store_hedge_won(self, store: str) -> None:
        """Count one hedged read that answered first."""
        self._store_hedges_won.labels(store).inc()

    def store_budget_exhausted(self, store: str) -> None:
        """Count one slow read that could not be hedged (budget spent)."""
        self._store_budget_exhausted.labels(store).inc()

    def store_breaker(self, state: str, store: str = "redis") -> None:
        """``store``'s circuit breaker moved to ``state`` (a key of ``BREAKER_STATES``); ``breaker_state``
        becomes the worst over every store."""
        self._breaker.labels(store).set(BREAKER_STATES[state])
        self._breakers[store] = state
        self.breaker_state = max(self._breakers.values(), key=BREAKER_STATES.__getitem__)

    def set_health(self, health: Mapping[str, Any]) -> None:
        """Refresh the gauges read from ``health()`` (each render, and each second from the status ticker)."""
        version = health.get("version")
        if isinstance(version, int | float):
            self._version.set(version)
        lag = health.get("lag", health.get("lag_seconds"))
        if isinstance(lag, int | float):
            self._lag.set(lag)
        if "stale" in health:
            self._stale.set(1 if health["stale"] else 0)
        if "last_error" in health:
            self._store_up.set(0 if health["last_error"] else 1)
        syncer = health.get("syncer")
        self._syncer_active.set(1 if isinstance(syncer, Mapping) and syncer.get("role") == "active" else 0)

    def render(self, health: Mapping[str, Any] | None = None) -> bytes:
        """The Prometheus text exposition of every worker's metrics (refreshing the snapshot gauges first).

        In multiprocess mode, other workers' evaluation tallies show up once they flush (every
        ``flush_every`` requests); this worker's are flushed now."""
        self.flush()
        if health:
            self.set_health(health)
        if self._multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def close(self) -> None:
        """Mark this worker dead in multiprocess mode (its live gauges stop being reported)."""
        self.recorder.close()
        if self._multiprocess_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), self._multiprocess_dir)  # type: ignore[no-untyped-call]
