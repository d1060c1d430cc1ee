"""What each worker records for the status page, in 1-second slices, and how it shares them.

A worker's ``Recorder`` keeps one open slice (the current wall-clock second): per route, a latency ``Sketch``
and counts of answers, errors (status >= 500) and shed requests; plus store events (reads, hedges, deadline
misses) for the second. ``Metrics`` feeds it from its local tallies (every ``flush``, so the hot path only
appends a float); the status ticker closes the slice once its second is over and publishes it:

- one worker (no shared directory): straight into the in-process ``Window``;
- several workers (``FLAGD_METRICS_DIR`` set, as Granian's workers are separate processes): as one small
  file ``<block>/<second>-<pid>.slice`` (msgspec JSON, written to a temporary name and renamed, so a reader
  never sees half of it) in ``<metrics dir>/status/``, one directory per 10-second block so a reader lists
  only the newest. Every worker reads every worker's files and merges them; the file name makes each slice
  count exactly once. Readers delete block directories older than ``RETAIN_SECONDS``.

Next to the slices, each worker keeps ``<pid>.worker`` (a ``WorkerBeat``: its start time, its node's role and
snapshot, per-project versions), rewritten when it changes and touched every second otherwise; readers take
the beats modified within ``BEAT_TTL`` as the live workers. Nothing here holds a token or a flag: projects
appear by id only.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from flagd.status.sketch import Encoded, Sketch

RETAIN_SECONDS = 960  # 15 minutes of slices, plus a minute for late readers
BLOCK_SECONDS = 10  # slices are filed (and merged) per 10-second block
BEAT_TTL = 5.0
SLICE_SUFFIX = ".slice"
BEAT_SUFFIX = ".worker"


class RouteSlice(msgspec.Struct, frozen=True, array_like=True):
    """One route's second on one worker."""

    count: int
    errors: int
    shed: int
    sketch: Encoded


class SliceRecord(msgspec.Struct, frozen=True):
    """One worker's closed second."""

    second: int
    pid: int
    routes: dict[str, RouteSlice]
    events: dict[str, int] = {}


class ProjectBeat(msgspec.Struct, frozen=True, array_like=True):
    project_id: int
    version: int
    installed_at: float
    lag_seconds: float | None = None  # commit -> installed of the last change applied (distributed nodes)


class WorkerBeat(msgspec.Struct, frozen=True):
    """One worker's view of its node, rewritten every second."""

    pid: int
    started_at: float
    mode: str
    role: str  # "syncer" | "follower" | "embedded" | "starting"
    ready: bool
    version: int | None
    lag_seconds: float | None
    stale: bool
    source: str | None
    store_error: str | None  # redacted (see ``redact``)
    breaker: str
    projects: list[ProjectBeat] = []
    project_count: int = 0


slice_decoder = msgspec.json.Decoder(SliceRecord)
beat_decoder = msgspec.json.Decoder(WorkerBeat)
_encoder = msgspec.json.Encoder()


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _OpenRoute:
    __slots__ = ("count", "errors", "shed", "sketch")

    def __init__(self) -> None:
        self.sketch = Sketch()
        self.count = 0
        self.errors = 0
        self.shed = 0


Sink = Callable[[SliceRecord], None]


class Recorder:
    """One worker's open slice; ``rotate`` closes and publishes it once its second is over."""

    __slots__ = (
        "_beat",
        "_block",
        "_clock",
        "_directory",
        "_events",
        "_pid",
        "_routes",
        "_second",
        "sink",
    )

    def __init__(
        self,
        directory: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
    ) -> None:
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        self._second = int(clock())
        self._routes: dict[str, _OpenRoute] = {}
        self._events: collections.Counter[str] = collections.Counter()
        self._block: Path | None = None
        self.sink: Sink | None = None  # the in-process Window, when there is no shared directory
        self._beat = b""

    @property
    def directory(self) -> Path | None:
        return self._directory

    def add(self, route: str, samples: Iterable[float], count: int, errors: int, shed: int) -> None:
        """Latencies and counts of ``route`` since the last call, into the open slice."""
        if not self._routes and not self._events:
            self._second = int(self._clock())  # an idle worker's slice starts with its first request
        open_route = self._routes.get(route)
        if open_route is None:
            open_route = self._routes[route] = _OpenRoute()
        open_route.sketch.add_all(samples)
        open_route.count += count
        open_route.errors += errors
        open_route.shed += shed

    def event(self, name: str, count: int = 1) -> None:
        """A store event (``reads``, ``hedges``, ``deadline_misses``, ``errors``) in the open slice."""
        if not self._routes and not self._events:
            self._second = int(self._clock())
        self._events[name] += count

    def rotate(self) -> None:
        """Close the open slice if its second is over: publish it (when not empty) and open the next."""
        now = int(self._clock())
        if now == self._second:
            return
        second, routes, events = self._second, self._routes, self._events
        self._second, self._routes, self._events = now, {}, collections.Counter()
        if routes or events:
            record = SliceRecord(
                second=second,
                pid=self._pid,
                routes={
                    name: RouteSlice(r.count, r.errors, r.shed, r.sketch.encode())
                    for name, r in routes.items()
                },
                events=dict(events),
            )
            self._publish(record)

    def _publish(self, record: SliceRecord) -> None:
        if self._directory is None:
            if self.sink is not None:
                self.sink(record)
            return
        block = self._directory / str(record.second // BLOCK_SECONDS)
        if block != self._block:
            block.mkdir(exist_ok=True)
            self._block = block
        write_atomically(block / f"{record.second}-{record.pid}{SLICE_SUFFIX}", _encoder.encode(record))

    def beat(self, beat: WorkerBeat) -> None:
        """Publish this worker's beat: rewritten when it changed, else touched (no-op without a directory).

        Touching is what keeps a worker live for readers, and costs far less than a rewrite."""
        if self._directory is None:
            return
        path = self._directory / f"{beat.pid}{BEAT_SUFFIX}"
        data = _encoder.encode(beat)
        if data != self._beat:
            write_atomically(path, data)
            self._beat = data
            return
        try:
            os.utime(path)
        except FileNotFoundError:  # removed by someone: write it again
            write_atomically(path, data)

    def close(self) -> None:
        """Remove this worker's beat (it stops counting as live); its slices stay until they age out."""
        if self._directory is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._directory / f"{self._pid}{BEAT_SUFFIX}").unlink()


__all__ = [
    "BEAT_SUFFIX",
    "BEAT_TTL",
    "BLOCK_SECONDS",
    "RETAIN_SECONDS",
    "SLICE_SUFFIX",
    "ProjectBeat",
    "Recorder",
    "RouteSlice",
    "SliceRecord",
    "WorkerBeat",
    "beat_decoder",
    "slice_decoder",
]
