"""``StatusBoard``: ``GET /status`` (the live page) and ``GET /status.json`` (its data), plus the ticker.

The document (``document()``) has the shape the issue fixed, ``{"window_seconds": 60, "routes": {route:
{"count", "rps", "p50_ms", "p90_ms", "p99_ms", "errors", "shed"}}, ...}`` with the route names of the
Prometheus ``route`` label, and around it: ``windows`` (the same figures over 5 and 15 minutes), ``chart``
(p50/p90/p99 per 10 s over 15 minutes), ``store`` (reachability, breaker, reads/hedges/deadline misses/errors
over 1 and 15 minutes), ``node`` (role, mode, uptime, workers, snapshot version, lag, staleness) and
``projects`` (id, version, when installed, propagation lag of its last change — never a token, never a
flag).

``run()`` is the worker's ticker (started by the app's lifespan): just after every second it refreshes the
health gauges, flushes the metrics' local tallies, closes the open slice and rewrites the worker's beat.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from flagd.metrics import Metrics
from flagd.status.slices import ProjectBeat, WorkerBeat
from flagd.status.window import MINUTE, SPANS, Window
from store.catalog import Catalog

if TYPE_CHECKING:  # flagd.sdk imports this module: its types only, at type-check time
    from flagd.sdk.http import Answer, Request

Health = Callable[[], dict[str, Any]]
MAX_PROJECTS = 100  # projects listed on the page (the count says how many there are)
_MAX_ERROR_CHARS = 200
# Time spent reading slice files per refresh: a worker started late catches up on 15 minutes of history
# over a minute or two of ticks instead of stalling its event loop for a second or more (bench/RESULTS.md).
_READ_BUDGET = 0.02
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_TOKEN = re.compile(r"\b(ph[a-z]_)[A-Za-z0-9_-]+")
_BREAKER_ORDER = ("closed", "half_open", "open")
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
_encoder = msgspec.json.Encoder()
_log = structlog.get_logger("flagd.status")


def redact(message: str | None) -> str | None:
    """A store error as the page may show it: URLs (which can hold passwords) and tokens cut out."""
    if not message:
        return None
    cleaned = _TOKEN.sub(r"\1…", _URL.sub("<url>", message))
    return cleaned[:_MAX_ERROR_CHARS]


def _role(health: dict[str, Any]) -> str:
    if not health.get("loaded") and health.get("status") == "starting":
        return "starting"
    if health.get("mode") == "embedded":
        return "embedded"
    syncer = health.get("syncer")
    return "syncer" if isinstance(syncer, dict) and syncer.get("role") == "active" else "follower"


class StatusBoard:
    """The status endpoints of one worker, reading every worker's slices (see the module docstring)."""

    def __init__(
        self, metrics: Metrics, health: Health, catalog: Catalog, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._catalog = catalog
        self._clock = clock
        self._started_at = clock()
        self._pid = os.getpid()
        recorder = metrics.recorder
        self._window = Window(recorder.directory, clock=clock)
        if recorder.directory is None:
            recorder.sink = self._window.ingest
        self._cached: tuple[int, bytes] | None = None
        self._page = importlib.resources.files("flagd.status").joinpath("page.html").read_bytes()

    # Endpoints (the SDK route signature) --------------------------------------------------------------------
    async def page(self, request: Request, request_id: str) -> Answer:
        return 200, self._page, _HTML

    async def json(self, request: Request, request_id: str) -> Answer:
        # Several open pages cost one document per half second, not one each.
        tick = int(self._clock() * 2)
        if self._cached is None or self._cached[0] != tick:
            self._cached = (tick, _encoder.encode(self.document()))
        return 200, self._cached[1], _JSON

    # The data -----------------------------------------------------------------------------------------------
    def beat(self, health: dict[str, Any] | None = None) -> WorkerBeat:
        """This worker's view of the node, as published to the others."""
        if health is None:
            health = self._health()
        projects = sorted(self._catalog.projects(), key=lambda p: p.project_id)
        lags: dict[int, float] = health.get("project_lag_seconds") or {}
        return WorkerBeat(
            pid=self._pid,
            started_at=self._started_at,
            mode=str(health.get("mode", "")),
            role=_role(health),
            ready=bool(health.get("ready")),
            version=health.get("version"),
            lag_seconds=health.get("lag_seconds", health.get("lag")),
            stale=bool(health.get("stale")),
            source=health.get("source"),
            store_error=redact(health.get("last_error")),
            breaker=self._metrics.breaker_state,
            projects=[
                ProjectBeat(p.project_id, p.version, p.installed_at, lags.get(p.project_id))
                for p in projects[:MAX_PROJECTS]
            ],
            project_count=len(projects),
        )

    def document(self) -> dict[str, Any]:
        """Everything ``/status.json`` answers (see the module docstring)."""
        metrics, window = self._metrics, self._window
        metrics.flush()
        metrics.recorder.rotate()
        window.refresh(budget=_READ_BUDGET)
        own = self.beat()
        beats = [b for b in window.beats() if b.pid != own.pid] + [own]
        started = min(b.started_at for b in beats)
        figures = window.routes(started_at=started)
        events = window.events()
        now = self._clock()
        return {
            "window_seconds": MINUTE,
            "routes": figures[str(MINUTE)],
            "windows": {span: {"routes": figures[span]} for span in map(str, SPANS)},
            "generated_at": round(now, 3),
            "catching_up": window.pending > 0,
            "node": self._node(beats, now - started),
            "store": self._store(beats, events),
            "projects": self._projects(beats, now),
            "chart": window.chart(),
        }

    @staticmethod
    def _node(beats: list[WorkerBeat], uptime: float) -> dict[str, Any]:
        roles = {b.role for b in beats}
        role = next((r for r in ("syncer", "embedded", "follower", "starting") if r in roles), "starting")
        versions = [b.version for b in beats if b.version is not None]
        lags = [b.lag_seconds for b in beats if b.lag_seconds is not None]
        return {
            "role": role,
            "mode": beats[-1].mode,
            "uptime_seconds": round(uptime, 1),
            "workers": len(beats),
            "ready": all(b.ready for b in beats),
            "version": min(versions) if versions else None,
            "lag_seconds": round(max(lags), 4) if lags else None,
            "stale": any(b.stale for b in beats),
            "source": beats[-1].source,
        }

    @staticmethod
    def _store(beats: list[WorkerBeat], events: dict[str, dict[str, int]]) -> dict[str, Any]:
        error = next((b.store_error for b in beats if b.store_error), None)
        breaker = max((b.breaker for b in beats), key=_BREAKER_ORDER.index, default="closed")
        names = ("reads", "hedges", "deadline_misses", "errors")
        return {
            "reachable": error is None and not any(b.stale for b in beats),
            "error": error,
            "breaker": breaker,
            **{f"last_{span}s": {n: counts.get(n, 0) for n in names} for span, counts in events.items()},
        }

    @staticmethod
    def _projects(beats: list[WorkerBeat], now: float) -> dict[str, Any]:
        merged: dict[int, ProjectBeat] = {}
        for beat in beats:
            for project in beat.projects:
                known = merged.get(project.project_id)
                if known is None or project.version < known.version:  # the worker furthest behind
                    merged[project.project_id] = project
        return {
            "count": max((b.project_count for b in beats), default=0),
            "items": [
                {
                    "project_id": p.project_id,
                    "version": p.version,
                    "installed_seconds_ago": round(max(0.0, now - p.installed_at), 1),
                    "lag_ms": None if p.lag_seconds is None else round(p.lag_seconds * 1000, 1),
                }
                for p in sorted(merged.values(), key=lambda p: p.project_id)
            ],
        }

    # The ticker ---------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Close and publish each second's slice and rewrite this worker's beat, until cancelled."""
        recorder = self._metrics.recorder
        failing = False
        while True:
            now = self._clock()
            await asyncio.sleep(1.0 - (now % 1.0) + 0.005)
            try:
                health = self._health()
                self._metrics.set_health(health)
                self._metrics.flush()
                recorder.rotate()
                recorder.beat(self.beat(health))
                self._window.refresh(budget=_READ_BUDGET)  # always current: a page poll reads ~2 files
                failing = False
            except Exception:
                if not failing:  # once per outage, not once a second
                    _log.exception("status tick failed")
                failing = True


__all__ = ["MAX_PROJECTS", "StatusBoard", "redact"]
