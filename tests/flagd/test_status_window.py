"""The status page's numbers: DDSketch slices per worker and second, shared through files, merged on read."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from flagd.status.sketch import RELATIVE_ACCURACY, Sketch
from flagd.status.slices import RETAIN_SECONDS, Recorder, WorkerBeat
from flagd.status.window import Window
from tests.flagd.strategies import latencies, quantile, worker_steps


class Clock:
    """A settable wall clock, so windows can be tested second by second."""

    def __init__(self, now: float = 1_700_000_000.5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@given(latencies, quantile)
def test_a_sketch_quantile_is_within_its_relative_accuracy(values: list[float], q: float) -> None:
    """Every percentile the page shows is within 1 % of the true sample at that rank."""
    sketch = Sketch()
    sketch.add_all(values)
    found = sketch.quantile(q)
    assert found is not None
    assert abs(found - _exact(values, q)) <= RELATIVE_ACCURACY * _exact(values, q) * 1.0001


@given(st.lists(latencies, min_size=1, max_size=5), quantile)
def test_merged_worker_sketches_equal_one_sketch_of_every_request(parts: list[list[float]], q: float) -> None:
    """Merging per-worker sketches (after a trip through the file encoding) loses nothing."""
    whole = Sketch()
    merged = Sketch()
    for part in parts:
        whole.add_all(part)
        sketch = Sketch()
        sketch.add_all(part)
        merged.merge(Sketch.decode(sketch.encode()))
    assert merged.count == whole.count == sum(map(len, parts))
    assert merged.quantile(q) == whole.quantile(q)


def test_an_empty_sketch_has_no_percentiles() -> None:
    """With no requests the page shows no percentile rather than a made-up zero."""
    assert Sketch().quantile(0.99) is None
    assert Sketch.decode(Sketch().encode()).count == 0


def _record(recorder: Recorder, route: str, values: list[float], errors: int = 0, shed: int = 0) -> None:
    recorder.add(route, values, len(values), errors, shed)


def test_one_process_window_counts_closed_seconds_only(tmp_path: Path) -> None:
    """In one process, a second's requests appear once the second is over and leave the minute 60 s later."""
    clock = Clock()
    recorder = Recorder(clock=clock)
    window = Window(clock=clock)
    recorder.sink = window.ingest
    _record(recorder, "flags", [0.001] * 10, errors=2, shed=1)
    recorder.rotate()
    assert window.routes(started_at=clock.now - 100)["60"] == {}
    clock.now += 1
    recorder.rotate()
    window.refresh()
    minute = window.routes(started_at=clock.now - 100)["60"]["flags"]
    assert (minute["count"], minute["errors"], minute["shed"]) == (10, 2, 1)
    assert minute["p50_ms"] == minute["p99_ms"]
    assert abs(minute["p50_ms"] - 1.0) <= 0.01 + 0.001
    clock.now += 61
    window.refresh()
    figures = window.routes(started_at=clock.now - 200)
    assert "flags" not in figures["60"]
    assert figures["300"]["flags"]["count"] == 10


def test_slices_from_several_workers_count_once_however_often_read(tmp_path: Path) -> None:
    """Two workers' files merge into one count, and re-reading the directory never counts a slice twice."""
    clock = Clock()
    first = Recorder(tmp_path, clock=clock, pid=101)
    second = Recorder(tmp_path, clock=clock, pid=202)
    readers = [Window(tmp_path, clock=clock), Window(tmp_path, clock=clock)]
    for step in range(5):
        _record(first, "flags", [0.0005] * (step + 1))
        _record(second, "flags", [0.002] * 3)
        _record(second, "decide", [0.004])
        clock.now += 1
        first.rotate()
        second.rotate()
        readers[0].refresh()  # one reader follows along, the other reads everything at the end
    readers[1].refresh()
    readers[1].refresh()
    for reader in readers:
        figures = reader.routes(started_at=clock.now - 100)["60"]
        assert figures["flags"]["count"] == (1 + 2 + 3 + 4 + 5) + 5 * 3
        assert figures["decide"]["count"] == 5
        assert abs(figures["flags"]["p99_ms"] - 2.0) <= 0.02 + 0.01
        assert abs(figures["flags"]["p50_ms"] - 0.5) <= 0.005 + 0.001  # 1 %, and rounding to µs


def test_old_slices_are_deleted_so_the_directory_stays_bounded(tmp_path: Path) -> None:
    """Slice files older than the 16-minute horizon are deleted by the readers every worker runs."""
    clock = Clock()
    recorder = Recorder(tmp_path, clock=clock, pid=7)
    window = Window(tmp_path, clock=clock)
    for _ in range(RETAIN_SECONDS + 300):
        _record(recorder, "flags", [0.001])
        clock.now += 1
        recorder.rotate()
        window.refresh()
    assert RETAIN_SECONDS - 10 <= len(list(tmp_path.rglob("*.slice"))) <= RETAIN_SECONDS + 10
    assert window.routes(started_at=0)["900"]["flags"]["count"] <= 900


def test_late_files_of_a_dead_worker_are_removed_by_readers(tmp_path: Path) -> None:
    """Slice files far past the horizon (a crashed worker's) are deleted by whoever reads."""
    clock = Clock()
    recorder = Recorder(tmp_path, clock=clock, pid=9)
    _record(recorder, "flags", [0.001])
    clock.now += 1
    recorder.rotate()
    clock.now += RETAIN_SECONDS + 120
    Window(tmp_path, clock=clock).refresh()
    assert list(tmp_path.rglob("*.slice")) == []


def test_chart_has_one_point_per_ten_seconds_with_ordered_percentiles() -> None:
    """The chart series holds p50 <= p90 <= p99 per 10 s block for 15 minutes, oldest first."""
    clock = Clock(1_700_000_000.0)
    recorder = Recorder(clock=clock)
    window = Window(clock=clock)
    recorder.sink = window.ingest
    for _second in range(120):
        _record(recorder, "flags", [0.0002 * (1 + i % 50) for i in range(100)])
        clock.now += 1
        recorder.rotate()
    chart = window.chart()
    series = chart["routes"]["flags"]
    assert len(series["t"]) == 12
    assert series["t"] == sorted(series["t"])
    assert sum(series["count"]) == 120 * 100
    for p50, p90, p99 in zip(series["p50_ms"], series["p90_ms"], series["p99_ms"], strict=True):
        assert p50 <= p90 <= p99


@settings(max_examples=25)
@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=90))
def test_window_counts_are_the_sum_of_the_seconds_they_cover(per_second: list[int]) -> None:
    """The 1-minute count is exactly the last 60 closed seconds' requests; the 15-minute one all of them."""
    clock = Clock(1_700_000_000.0)
    recorder = Recorder(clock=clock)
    window = Window(clock=clock)
    recorder.sink = window.ingest
    for count in per_second:
        if count:
            _record(recorder, "flags", [0.001] * count)
        clock.now += 1
        recorder.rotate()
    window.refresh()
    figures = window.routes(started_at=clock.now - 10_000)
    expected_minute = sum(per_second[-60:])
    assert figures["60"].get("flags", {"count": 0})["count"] == expected_minute
    assert figures["900"].get("flags", {"count": 0})["count"] == sum(per_second)


def test_beats_of_live_workers_are_read_and_stale_ones_ignored(tmp_path: Path) -> None:
    """A worker that stopped beating for more than a few seconds no longer counts as part of the node."""
    clock = Clock()
    window = Window(tmp_path, clock=clock)
    for pid, age in ((1, 0.5), (2, 30.0)):
        Recorder(tmp_path, clock=clock, pid=pid).beat(
            WorkerBeat(
                pid=pid,
                started_at=clock.now - 100,
                mode="embedded",
                role="embedded",
                ready=True,
                version=3,
                lag_seconds=0.0,
                stale=False,
                source="sqlite",
                store_error=None,
                breaker="closed",
            )
        )
        os.utime(tmp_path / f"{pid}.worker", (clock.now - age, clock.now - age))
    assert [beat.pid for beat in window.beats()] == [1]


@settings(max_examples=40, deadline=None)
@given(worker_steps)
def test_every_request_of_every_worker_is_counted_once(steps: list[tuple[int, int, int, bool]]) -> None:
    """However workers' slices and reads interleave, the 15-minute count is every request, exactly once."""
    clock = Clock(1_700_000_000.0)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        workers = [Recorder(directory, clock=clock, pid=pid) for pid in (11, 22)]
        window = Window(directory, clock=clock)
        total = 0
        for worker, requests, seconds, read in steps:
            if requests:
                _record(workers[worker], "flags", [0.001] * requests)
                total += requests
            clock.now += seconds
            for recorder in workers:
                recorder.rotate()
            if read:
                window.refresh()
        clock.now += 1
        for recorder in workers:
            recorder.rotate()
        window.refresh()
        window.refresh()
        figures = window.routes(started_at=clock.now - 10_000)["900"]
        assert figures.get("flags", {"count": 0})["count"] == total
