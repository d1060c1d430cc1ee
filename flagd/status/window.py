"""``Window``: every worker's slices merged, read as 1, 5 and 15-minute figures and a 15-minute chart.

Slices arrive once each (``ingest``, from the local ``Recorder`` or from the shared directory by
``refresh``, which every worker's ticker calls each second so the window is always current) and are merged
twice: into their second (kept for the last minute) and into their 10-second block (kept for 15 minutes).
A read merges per route at most 18 seconds, the newest block and one cached merge of whole blocks (redone
when the block boundary moves or a late slice lands in a closed block), so a poll costs about a millisecond:

- the 1-minute figures (``window_seconds`` 60) cover exactly the last 60 closed seconds: ``count`` is every
  request the node's workers answered in them;
- the 5 and 15-minute figures cover the last 30 / 90 blocks, the newest one as far as it has gone;
- the chart has one point per block and route (p50/p90/p99), cached per block until a late slice changes it.

Slices close when their second is over and each worker publishes within about a second, so figures trail
the wall clock by that much.
"""

from __future__ import annotations

import collections
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from flagd.status.sketch import Sketch
from flagd.status.slices import (
    BEAT_SUFFIX,
    BEAT_TTL,
    BLOCK_SECONDS,
    RETAIN_SECONDS,
    SLICE_SUFFIX,
    RouteSlice,
    SliceRecord,
    WorkerBeat,
    beat_decoder,
    slice_decoder,
)

MINUTE = 60
GRACE_SECONDS = 5  # a block's directory is listed until this long after it ends (slower workers publish late)
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
        self._done: set[int] = set()  # block directories read completely after they closed
        self._pruned_at = 0
        self._spans: dict[tuple[int, int], dict[str, _Agg]] = {}  # merged whole blocks [first, last)
        self._closed_changes = 0  # late slices merged into closed blocks (invalidates _spans)
        self._spans_at = 0
        self.pending = 0  # slice files seen on disk but not yet read (a worker catching up after its start)

    # Input ------------------------------------------------------------------------------------------------
    def ingest(self, record: SliceRecord) -> None:
        """Merge one worker's closed second (each must arrive once; ``refresh`` sees to it for files)."""
        now = int(self._clock())
        second = record.second
        block = second // BLOCK_SECONDS
        if block < now // BLOCK_SECONDS - _BLOCKS:
            return
        recent = second >= now - MINUTE - 1
        if block < now // BLOCK_SECONDS:
            self._closed_changes += 1
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

    def refresh(self, budget: float | None = None) -> None:
        """Ingest slice files not seen yet, newest first, for at most ``budget`` seconds (the rest next time:
        ``pending`` says how many); forget what fell out of the window; delete block directories past the
        horizon (a dead worker's included)."""
        directory = self._directory
        now = int(self._clock())
        if directory is not None:
            seen, done = self._seen, self._done
            unseen: list[tuple[int, str]] = []
            listed: list[int] = []
            for block in self._block_names():
                if (block + 1) * BLOCK_SECONDS < now - RETAIN_SECONDS:
                    shutil.rmtree(directory / str(block), ignore_errors=True)
                    continue
                if block in done:
                    continue
                listed.append(block)
                try:
                    names = os.listdir(directory / str(block))
                except FileNotFoundError:
                    continue
                for name in names:
                    if name not in seen:
                        second = _parse_slice_name(name)
                        if second is not None:
                            unseen.append((second, name))
            unseen.sort(reverse=True)
            deadline = None if budget is None else time.perf_counter() + budget
            read = 0
            for second, name in unseen:
                if deadline is not None and read and time.perf_counter() > deadline:
                    break
                read += 1
                path = directory / str(second // BLOCK_SECONDS) / name
                try:
                    record = slice_decoder.decode(path.read_bytes())
                except (FileNotFoundError, msgspec.DecodeError):
                    continue
                seen[name] = second
                self.ingest(record)
            self.pending = len(unseen) - read
            left = {second // BLOCK_SECONDS for second, _ in unseen[read:]}
            done.update(b for b in listed if b not in left and (b + 1) * BLOCK_SECONDS + GRACE_SECONDS <= now)
            horizon = now - RETAIN_SECONDS
            if horizon // BLOCK_SECONDS != self._pruned_at:  # once per block is enough
                self._pruned_at = horizon // BLOCK_SECONDS
                for name in [n for n, s in seen.items() if s < horizon]:
                    del seen[name]
                for block in [b for b in done if (b + 1) * BLOCK_SECONDS < horizon]:
                    done.discard(block)
        self._prune(now)

    def _block_names(self) -> list[int]:
        return [int(name) for name in self._names() if name.isdigit()]

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
        """The beats of the live workers (touched within ``BEAT_TTL`` seconds); long-dead ones are deleted."""
        if self._directory is None:
            return []
        now = self._clock()
        live: list[WorkerBeat] = []
        for name in self._names():
            if not name.endswith(BEAT_SUFFIX):
                continue
            path = self._directory / name
            try:
                age = now - path.stat().st_mtime
                if age > MINUTE:
                    path.unlink()
                    continue
                if age <= BEAT_TTL:
                    live.append(beat_decoder.decode(path.read_bytes()))
            except (FileNotFoundError, msgspec.DecodeError):
                continue
        return live

    # Output -----------------------------------------------------------------------------------------------
    def routes(self, *, started_at: float) -> dict[str, Any]:
        """``{"60": {route: figures}, "300": ..., "900": ...}`` over the closed seconds."""
        end = int(self._clock())
        up = max(1, end - int(started_at))
        # The last minute: whole blocks inside it (cached) plus the seconds at both edges.
        first_block = -(-(end - MINUTE) // BLOCK_SECONDS)
        last_block = end // BLOCK_SECONDS  # exclusive: blocks before it are over
        edges = (
            routes
            for second, routes in self._seconds.items()
            if end - MINUTE <= second < first_block * BLOCK_SECONDS
            or last_block * BLOCK_SECONDS <= second < end
        )
        out: dict[str, Any] = {
            str(MINUTE): self._figures([self._span(first_block, last_block), *edges], min(MINUTE, up))
        }
        # Longer windows: whole blocks (cached) plus the newest block as far as it has gone.
        newest = (end - 1) // BLOCK_SECONDS
        for span in SPANS:
            first = newest - span // BLOCK_SECONDS + 1
            covered = min(end - first * BLOCK_SECONDS, up)
            parts = [self._span(first, newest), self._blocks.get(newest, {})]
            out[str(span)] = self._figures(parts, covered)
        return out

    def _span(self, first: int, last: int) -> dict[str, _Agg]:
        """Blocks ``first`` to ``last`` (exclusive) merged per route, cached until a late slice lands."""
        if self._spans_at != self._closed_changes:
            self._spans.clear()
            self._spans_at = self._closed_changes
        merged = self._spans.get((first, last))
        if merged is None:
            if len(self._spans) > 8:  # the windows' current spans only
                self._spans.clear()
            merged = {}
            for block, routes in self._blocks.items():
                if first <= block < last:
                    for route, agg in routes.items():
                        total = merged.get(route)
                        if total is None:
                            total = merged[route] = _Agg()
                        total.add_agg(agg)
            self._spans[(first, last)] = merged
        return merged

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
