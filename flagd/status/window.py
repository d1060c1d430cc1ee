"""``Window``: every worker's slices merged, read as 1, 5 and 15-minute figures and a 15-minute chart.

Slices arrive once each (``ingest``, from the local ``Recorder`` or from the shared directory by
``refresh``) and are merged twice: into their second (kept for the last minute) and into their 10-second
block (kept for 15 minutes). Reads then merge at most 60 seconds or 90 blocks per route:

- the 1-minute figures (``window_seconds`` 60) cover exactly the last 60 closed seconds: ``count`` is every
  request the node's workers answered in them;
- the 5 and 15-minute figures cover the last 30 / 90 blocks, the newest one as far as it has gone;
- the chart has one point per block and route (p50/p90/p99), cached per block until a late slice changes it.

Slices close when their second is over and each worker publishes within about a second, so figures trail
the wall clock by that much.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from flagd.status.sketch import Sketch
from flagd.status.slices import (
    BEAT_SUFFIX,
    BEAT_TTL,
    RETAIN_SECONDS,
    SLICE_SUFFIX,
    RouteSlice,
    SliceRecord,
    WorkerBeat,
    beat_decoder,
    slice_decoder,
)

BLOCK_SECONDS = 10
MINUTE = 60
SPANS = (300, 900)  # the longer windows, in seconds
_BLOCKS = max(SPANS) // BLOCK_SECONDS
_QUANTILES = (0.5, 0.9, 0.99)


class _Agg:
    """Counts and a merged sketch for one route over some seconds."""

    __slots__ = ("count", "errors", "points", "shed", "sketch")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.shed = 0
        self.sketch = Sketch()
        self.points: tuple[float | None, ...] | None = None

    def add(self, count: int, errors: int, shed: int, sketch: Sketch) -> None:
        self.count += count
        self.errors += errors
        self.shed += shed
        self.sketch.merge(sketch)
        self.points = None

    def add_agg(self, other: _Agg) -> None:
        self.add(other.count, other.errors, other.shed, other.sketch)

    def quantiles_ms(self) -> tuple[float | None, ...]:
        if self.points is None:
            self.points = tuple(_ms(self.sketch.quantile(q)) for q in _QUANTILES)
        return self.points


def _ms(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    ms = seconds * 1000.0
    return round(ms, 3 if ms < 10 else 2 if ms < 100 else 1)


def _parse_slice_name(name: str) -> int | None:
    second, dash, rest = name.partition("-")
    if not dash or not rest.endswith(SLICE_SUFFIX) or not second.isdigit():
        return None
    return int(second)


class Window:
    """The node's recent requests as the status page reads them (see the module docstring)."""

    def __init__(self, directory: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._directory = directory
        self._clock = clock
        self._seconds: dict[int, dict[str, _Agg]] = {}
        self._blocks: dict[int, dict[str, _Agg]] = {}
        self._events: dict[int, collections.Counter[str]] = {}  # per block
        self._event_seconds: dict[int, collections.Counter[str]] = {}
        self._seen: dict[str, int] = {}  # slice file name -> its second

    # Input ------------------------------------------------------------------------------------------------
    def ingest(self, record: SliceRecord) -> None:
        """Merge one worker's closed second (each must arrive once; ``refresh`` sees to it for files)."""
        now = int(self._clock())
        second = record.second
        block = second // BLOCK_SECONDS
        if block < now // BLOCK_SECONDS - _BLOCKS:
            return
        recent = second >= now - MINUTE - 1
        for route, part in record.routes.items():
            sketch = Sketch.decode(part.sketch)
            self._agg(self._blocks, block, route).add(part.count, part.errors, part.shed, sketch)
            if recent:
                self._agg(self._seconds, second, route).add(part.count, part.errors, part.shed, sketch)
        if record.events:
            self._events.setdefault(block, collections.Counter()).update(record.events)
            if recent:
                self._event_seconds.setdefault(second, collections.Counter()).update(record.events)

    @staticmethod
    def _agg(table: dict[int, dict[str, _Agg]], key: int, route: str) -> _Agg:
        routes = table.get(key)
        if routes is None:
            routes = table[key] = {}
        agg = routes.get(route)
        if agg is None:
            agg = routes[route] = _Agg()
        return agg

    def refresh(self) -> None:
        """Ingest the slice files not seen yet; forget what fell out of the window; delete stale files."""
        directory = self._directory
        now = int(self._clock())
        if directory is not None:
            seen = self._seen
            for name in self._names():
                if name in seen:
                    continue
                second = _parse_slice_name(name)
                if second is None:
                    continue
                if second < now - RETAIN_SECONDS - MINUTE:  # a dead worker's leftovers
                    with contextlib.suppress(FileNotFoundError):
                        (directory / name).unlink()
                    continue
                try:
                    record = slice_decoder.decode((directory / name).read_bytes())
                except (FileNotFoundError, msgspec.DecodeError):
                    continue
                seen[name] = second
                self.ingest(record)
            horizon = now - RETAIN_SECONDS
            for name in [n for n, s in seen.items() if s < horizon]:
                del seen[name]
        self._prune(now)

    def _names(self) -> Iterator[str]:
        assert self._directory is not None
        try:
            with os.scandir(self._directory) as entries:
                for entry in entries:
                    yield entry.name
        except FileNotFoundError:
            return

    def _prune(self, now: int) -> None:
        for table, oldest in (
            (self._seconds, now - MINUTE - 1),
            (self._event_seconds, now - MINUTE - 1),
            (self._blocks, now // BLOCK_SECONDS - _BLOCKS),
            (self._events, now // BLOCK_SECONDS - _BLOCKS),
        ):
            for key in [k for k in table if k < oldest]:
                del table[key]

    def beats(self) -> list[WorkerBeat]:
        """The beats of the live workers (rewritten within ``BEAT_TTL`` seconds); stale ones are deleted."""
        if self._directory is None:
            return []
        now = self._clock()
        live: list[WorkerBeat] = []
        for name in self._names():
            if not name.endswith(BEAT_SUFFIX):
                continue
            path = self._directory / name
            try:
                beat = beat_decoder.decode(path.read_bytes())
            except (FileNotFoundError, msgspec.DecodeError):
                continue
            if now - beat.beat_at <= BEAT_TTL:
                live.append(beat)
            elif now - beat.beat_at > MINUTE:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return live

    # Output -----------------------------------------------------------------------------------------------
    def routes(self, *, started_at: float) -> dict[str, Any]:
        """``{"60": {route: figures}, "300": ..., "900": ...}`` over the closed seconds."""
        end = int(self._clock())
        up = max(1, end - int(started_at))
        out: dict[str, Any] = {
            str(MINUTE): self._figures(
                (r for s, r in self._seconds.items() if end - MINUTE <= s < end), min(MINUTE, up)
            )
        }
        last = (end - 1) // BLOCK_SECONDS
        for span in SPANS:
            first = last - span // BLOCK_SECONDS + 1
            covered = min(end - first * BLOCK_SECONDS, up)
            out[str(span)] = self._figures(
                (r for b, r in self._blocks.items() if first <= b <= last), covered
            )
        return out

    @staticmethod
    def _figures(parts: Iterable[dict[str, _Agg]], seconds: int) -> dict[str, dict[str, Any]]:
        merged: dict[str, _Agg] = {}
        for routes in parts:
            for route, agg in routes.items():
                total = merged.get(route)
                if total is None:
                    total = merged[route] = _Agg()
                total.add_agg(agg)
        figures: dict[str, dict[str, Any]] = {}
        for route in sorted(merged):
            agg = merged[route]
            p50, p90, p99 = agg.quantiles_ms()
            figures[route] = {
                "count": agg.count,
                "rps": round(agg.count / max(1, seconds), 2),
                "p50_ms": p50,
                "p90_ms": p90,
                "p99_ms": p99,
                "errors": agg.errors,
                "shed": agg.shed,
            }
        return figures

    def events(self) -> dict[str, dict[str, int]]:
        """Store events summed over the last minute and the last 15 minutes."""
        end = int(self._clock())
        minute: collections.Counter[str] = collections.Counter()
        for second, counts in self._event_seconds.items():
            if end - MINUTE <= second < end:
                minute.update(counts)
        quarter: collections.Counter[str] = collections.Counter()
        for counts in self._events.values():
            quarter.update(counts)
        return {str(MINUTE): dict(minute), str(max(SPANS)): dict(quarter)}

    def chart(self) -> dict[str, Any]:
        """One point per 10-second block and route: ``t`` (block start, Unix s) and p50/p90/p99 in ms."""
        end = int(self._clock())
        last = (end - 1) // BLOCK_SECONDS
        blocks = range(last - _BLOCKS + 1, last + 1)
        routes = sorted({route for b in blocks for route in self._blocks.get(b, {})})
        series: dict[str, dict[str, list[Any]]] = {}
        for route in routes:
            points: dict[str, list[Any]] = {"t": [], "count": [], "p50_ms": [], "p90_ms": [], "p99_ms": []}
            for block in blocks:
                agg = self._blocks.get(block, {}).get(route)
                if agg is None:
                    continue
                p50, p90, p99 = agg.quantiles_ms()
                points["t"].append(block * BLOCK_SECONDS)
                points["count"].append(agg.count)
                points["p50_ms"].append(p50)
                points["p90_ms"].append(p90)
                points["p99_ms"].append(p99)
            series[route] = points
        return {
            "block_seconds": BLOCK_SECONDS,
            "from": (last - _BLOCKS + 1) * BLOCK_SECONDS,
            "to": end,
            "routes": series,
        }


__all__ = ["BLOCK_SECONDS", "MINUTE", "SPANS", "RouteSlice", "Window"]
