"""LoadShedder: concurrency cap and CoDel-style queueing-delay shedding, under real asyncio concurrency."""

from __future__ import annotations

import asyncio

import pytest

from flagd.shedding import LoadShedder


class FakeClock:
    """A settable clock, so delay verdicts do not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _handle(shedder: LoadShedder, gate: asyncio.Event, admitted: list[bool]) -> None:
    if not shedder.admit():
        admitted.append(False)
        return
    start = shedder.clock()
    try:
        admitted.append(True)
        await gate.wait()
    finally:
        shedder.release(start)


async def test_sheds_beyond_max_in_flight() -> None:
    """With 8 requests stuck in flight and a cap of 8, every further request is shed at once."""
    shedder = LoadShedder(max_in_flight=8, target_delay=None)
    gate = asyncio.Event()
    admitted: list[bool] = []
    tasks = [asyncio.create_task(_handle(shedder, gate, admitted)) for _ in range(20)]
    await asyncio.sleep(0)
    assert admitted.count(True) == 8
    assert admitted.count(False) == 12
    assert shedder.in_flight == 8
    assert shedder.shed_total == 12
    gate.set()
    await asyncio.gather(*tasks)
    assert shedder.in_flight == 0


async def test_admits_again_once_requests_finish() -> None:
    """Capacity freed by finished requests is given to new ones."""
    shedder = LoadShedder(max_in_flight=2, target_delay=None)
    gate = asyncio.Event()
    admitted: list[bool] = []
    first = [asyncio.create_task(_handle(shedder, gate, admitted)) for _ in range(3)]
    await asyncio.sleep(0)
    assert admitted == [True, True, False]
    gate.set()
    await asyncio.gather(*first)
    assert shedder.admit()
    shedder.release(shedder.clock())
    assert shedder.in_flight == 0


async def test_standing_queue_enters_overloaded_state_and_leaves_it() -> None:
    """An interval whose fastest request exceeded the target shrinks admission; a good one restores it."""
    clock = FakeClock()
    shedder = LoadShedder(
        max_in_flight=100, overload_in_flight=2, target_delay=0.01, interval=0.1, clock=clock
    )
    # A whole interval of slow requests (each 50 ms).
    for _ in range(3):
        assert shedder.admit()
        started = clock.now
        clock.now += 0.05
        shedder.release(started)
    assert shedder.overloaded
    gate = asyncio.Event()
    admitted: list[bool] = []
    tasks = [asyncio.create_task(_handle(shedder, gate, admitted)) for _ in range(5)]
    await asyncio.sleep(0)
    assert admitted.count(True) == 2  # overload_in_flight, not max_in_flight
    gate.set()
    await asyncio.gather(*tasks)
    # An interval of fast requests (1 ms) ends the overloaded state.
    clock.now += 0.2
    for _ in range(3):
        assert shedder.admit()
        started = clock.now
        clock.now += 0.001
        shedder.release(started)
    clock.now += 0.2
    assert shedder.admit()
    shedder.release(clock.now)
    assert not shedder.overloaded


async def test_one_fast_request_in_an_interval_means_no_standing_queue() -> None:
    """A burst with at least one fast request is not treated as overload (CoDel looks at the minimum)."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.01, interval=0.1, clock=clock)
    for took in (0.05, 0.002, 0.08):  # the last release closes the interval (t=0.132)
        assert shedder.admit()
        started = clock.now
        clock.now += took
        shedder.release(started)
    assert not shedder.overloaded
    assert shedder.admit()


async def test_real_clock_concurrency_keeps_count_exact() -> None:
    """Many concurrent tasks yielding to the loop never exceed the cap and leave in-flight at zero."""
    shedder = LoadShedder(max_in_flight=16)
    peak = 0

    async def work() -> bool:
        nonlocal peak
        if not shedder.admit():
            return False
        start = shedder.clock()
        try:
            peak = max(peak, shedder.in_flight)
            await asyncio.sleep(0.001)
            return True
        finally:
            shedder.release(start)

    results = await asyncio.gather(*(work() for _ in range(200)))
    assert shedder.in_flight == 0
    assert peak <= 16
    assert results.count(True) >= 16
    assert results.count(False) == shedder.shed_total


@pytest.mark.parametrize(
    "kwargs", [{"max_in_flight": 0}, {"target_delay": 0.0}, {"interval": 0}, {"retry_after": -1}]
)
def test_rejects_nonsense_configuration(kwargs: dict[str, float]) -> None:
    """Invalid limits fail loudly at construction."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LoadShedder(**kwargs)  # type: ignore[arg-type]
