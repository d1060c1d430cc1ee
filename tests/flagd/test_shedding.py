"""LoadShedder: in-flight floor, concurrency cap, and CoDel-style shedding of a standing queue only."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagd.shedding import LoadShedder


class FakeClock:
    """A settable clock, so delay verdicts do not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busy(shedder: LoadShedder, pending: int) -> None:
    """``pending`` requests already in the worker (arrived, not departed)."""
    for _ in range(pending):
        shedder.arrive()


def interval_of(shedder: LoadShedder, clock: FakeClock, waits: list[float]) -> list[bool]:
    """One 0.1 s interval in which requests that waited ``waits`` ask to be admitted (and finish at once)."""
    outcomes = []
    start = clock.now
    for index, waited in enumerate(waits):
        clock.now = start + 0.1 * index / len(waits)
        ok = shedder.admit(waited)
        if ok:
            shedder.release()
        outcomes.append(ok)
    clock.now = start + 0.1
    return outcomes


async def test_sheds_beyond_max_in_flight() -> None:
    """With the cap's worth of admitted requests stuck in flight, every further request is shed at once."""
    shedder = LoadShedder(max_in_flight=8, min_in_flight=0, target_delay=None)
    busy(shedder, 20)
    outcomes = [shedder.admit() for _ in range(20)]
    assert outcomes.count(True) == 8
    assert shedder.shed_total == 12
    for _ in range(8):
        shedder.release()
    assert shedder.admit()


def test_standing_queue_sheds_late_requests_and_admits_prompt_ones() -> None:
    """After an interval where every request waited over the target, late ones are shed, prompt ones not."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, interval=0.1, min_samples=8, clock=clock)
    busy(shedder, 50)
    assert all(interval_of(shedder, clock, [0.02] * 10))  # the first bad interval is only being measured
    assert shedder.admit(0.03) is False  # its verdict: a standing queue; this one waited too long
    assert shedder.overloaded
    assert shedder.admit(0.001) is True  # a request that got through promptly is served
    shedder.release()


@given(st.lists(st.floats(0.0, 0.2), min_size=1, max_size=40), st.integers(0, 7))
def test_one_prompt_request_in_an_interval_means_no_standing_queue(
    waits: list[float], prompt_at: int
) -> None:
    """An interval with a single delay under the target (CoDel's minimum) is never judged overloaded."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, interval=0.1, min_samples=1, clock=clock)
    busy(shedder, 50)
    waits.insert(min(prompt_at, len(waits)), 0.001)
    interval_of(shedder, clock, waits)
    shedder.admit(0.5)
    assert not shedder.overloaded


def test_overloaded_worker_sheds_arrivals_behind_a_long_queue_before_reading_them() -> None:
    """With a standing queue, a request arriving behind more than max_queue others is shed on arrival."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, min_samples=8, max_queue=32, clock=clock)
    busy(shedder, 40)
    interval_of(shedder, clock, [0.02] * 10)
    assert shedder.arrive()  # the verdict is not in yet
    assert shedder.admit(0.02) is False  # now it is: overloaded
    assert shedder.arrive() is False  # 42 in the worker
    for _ in range(12):
        shedder.depart()
    assert shedder.arrive() is True  # 31 ahead of it: it may wait for its body


def test_too_few_samples_never_declare_overload() -> None:
    """Fewer than min_samples slow requests in an interval (a stall, not a queue) shed nothing."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, interval=0.1, min_samples=8, clock=clock)
    busy(shedder, 50)
    for _ in range(5):
        assert all(interval_of(shedder, clock, [0.2] * 7))
    assert not shedder.overloaded


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200),
    st.integers(0, 8),
    st.integers(1, 8),
)
def test_never_sheds_at_or_below_the_in_flight_floor(
    waits: list[float], floor: int, min_samples: int
) -> None:
    """Whatever delays came before, a request is admitted while the worker holds at most min_in_flight."""
    clock = FakeClock()
    shedder = LoadShedder(min_in_flight=floor, min_samples=min_samples, clock=clock)
    busy(shedder, 40)
    interval_of(shedder, clock, waits)  # may well leave it overloaded
    for _ in range(40 - floor):
        shedder.depart()
    assert shedder.admit(1.0)
    assert not shedder.overloaded  # and it recovered at once


def test_recovers_with_the_first_prompt_interval() -> None:
    """An overloaded shedder leaves the state with the first interval whose smallest delay is under target."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, interval=0.1, min_samples=8, clock=clock)
    busy(shedder, 50)
    interval_of(shedder, clock, [0.02] * 10)
    interval_of(shedder, clock, [0.02] * 9 + [0.001])
    assert shedder.overloaded  # decided on the first interval
    assert shedder.admit(0.02)  # the second interval's verdict: no standing queue
    assert not shedder.overloaded


def test_sequential_requests_are_never_shed_after_a_stall() -> None:
    """After one 100 ms stall, 60 strictly sequential requests that each wait just over target all get in.

    The request after the stall waited 100 ms; on a loaded machine every later one still takes ~6 ms to
    get its body read, over the 5 ms target, so every interval has only slow samples. Judged on delays
    alone (no floor, or a verdict on one sample) that is a standing queue and the requests are shed, as 9
    of 60 were before the floor; with one request at a time in the worker there is no queue: none may be."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.005, interval=0.1, clock=clock)
    statuses = []
    for index in range(60):
        clock.now += 0.01  # one request every 10 ms, each sent after the previous answer
        waited = 0.1 if index == 10 else 0.006
        assert shedder.arrive()  # strictly sequential: the only request in the worker
        admitted = shedder.admit(waited)
        if admitted:
            shedder.release()
        shedder.depart()
        statuses.append(200 if admitted else 503)
    assert statuses == [200] * 60
    assert shedder.shed_total == 0


async def test_real_clock_concurrency_keeps_counts_exact() -> None:
    """Many concurrent tasks yielding to the loop never exceed the cap and leave both counts at zero."""
    shedder = LoadShedder(max_in_flight=16, min_in_flight=0)
    peak = 0

    async def work() -> bool:
        nonlocal peak
        shedder.arrive()
        try:
            if not shedder.admit(0.0):
                return False
            try:
                peak = max(peak, shedder.in_flight)
                await asyncio.sleep(0.001)
                return True
            finally:
                shedder.release()
        finally:
            shedder.depart()

    results = await asyncio.gather(*(work() for _ in range(200)))
    assert shedder.in_flight == 0
    assert shedder.pending == 0
    assert peak <= 16
    assert results.count(True) >= 16
    assert results.count(False) == shedder.shed_total


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_in_flight": 0},
        {"target_delay": 0.0},
        {"interval": 0},
        {"retry_after": -1},
        {"min_samples": 0},
        {"min_in_flight": -1},
        {"max_queue": 0},
    ],
)
def test_rejects_nonsense_configuration(kwargs: dict[str, float]) -> None:
    """Invalid settings fail loudly at construction."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LoadShedder(**kwargs)  # type: ignore[arg-type]
