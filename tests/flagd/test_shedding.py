"""LoadShedder: concurrency cap and CoDel-style queueing-delay shedding, under real asyncio concurrency."""

from __future__ import annotations

import asyncio
import random
import time

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


def _requests(shedder: LoadShedder, clock: FakeClock, took: float, count: int = 3) -> None:
    """``count`` sequential requests of ``took`` seconds each."""
    for _ in range(count):
        assert shedder.admit()
        started = clock.now
        clock.now += took
        shedder.release(started)


async def test_standing_queue_enters_overloaded_state_and_leaves_it() -> None:
    """An interval whose fastest request exceeded the target shrinks admission; good ones restore it."""
    clock = FakeClock()
    shedder = LoadShedder(
        max_in_flight=100,
        overload_in_flight=2,
        target_delay=0.01,
        interval=0.1,
        clock=clock,
        chance=lambda: 1.0,
    )
    _requests(shedder, clock, 0.05)  # a whole interval of slow (50 ms) requests
    assert shedder.overloaded
    assert shedder.shed_probability == 0.2
    gate = asyncio.Event()
    admitted: list[bool] = []
    tasks = [asyncio.create_task(_handle(shedder, gate, admitted)) for _ in range(5)]
    await asyncio.sleep(0)
    assert admitted.count(True) == 2  # overload_in_flight, not max_in_flight
    gate.set()
    await asyncio.gather(*tasks)
    # Good intervals (1 ms requests) halve the shed share until it is negligible, then the state ends.
    shares = []
    for _ in range(3):
        clock.now += 0.2
        _requests(shedder, clock, 0.001, count=2)
        shares.append(shedder.shed_probability)
    assert shares == [0.1, 0.05, 0.0]
    assert not shedder.overloaded


async def test_shed_share_grows_while_overload_persists() -> None:
    """Each further bad interval doubles the share of requests shed, up to 95 %."""
    clock = FakeClock()
    shedder = LoadShedder(target_delay=0.01, interval=0.1, clock=clock, chance=lambda: 1.0)
    shares = []
    for _ in range(5):
        _requests(shedder, clock, 0.06, count=2)
        shares.append(shedder.shed_probability)
    assert shares == [0.2, 0.4, 0.8, 0.95, 0.95]


async def test_overloaded_shedder_sheds_about_its_share() -> None:
    """In the overloaded state, roughly shed_probability of new requests are turned away."""
    clock = FakeClock()
    draws = random.Random(7)
    chance = [lambda: 1.0]  # no random sheds while the overload builds up
    shedder = LoadShedder(target_delay=0.01, interval=0.1, clock=clock, chance=lambda: chance[0]())
    for _ in range(2):
        _requests(shedder, clock, 0.06, count=2)
    assert shedder.shed_probability == 0.4
    chance[0] = draws.random
    outcomes = []
    for _ in range(2000):
        ok = shedder.admit()
        outcomes.append(ok)
        if ok:
            shedder.in_flight -= 1  # finished instantly; no delay sample, the verdict stands
    assert 0.33 < outcomes.count(False) / 2000 < 0.47


async def test_event_loop_lag_is_detected_while_requests_stay_fast() -> None:
    """A backed-up loop (which fast requests cannot see themselves) puts the shedder into overload."""
    shedder = LoadShedder(target_delay=0.01, interval=0.02, probe_period=0.001)

    def hog() -> None:
        time.sleep(0.1)  # a 100 ms stall, ten times the target: queued work ahead of every new request

    for _ in range(200):  # a busy machine only adds lag; the bound is for a broken shedder
        if shedder.overloaded:
            break
        assert shedder.admit()  # arms the lag probe
        shedder.release(shedder.clock())  # each request itself is instant
        asyncio.get_running_loop().call_soon(hog)
        await asyncio.sleep(0.001)
    assert shedder.overloaded


async def test_idle_loop_is_not_overloaded() -> None:
    """Instant requests on an idle loop never trip the shedder, and the probe stops when work stops."""
    # A target far above any scheduling hiccup of a busy machine: only a real standing queue would trip it.
    shedder = LoadShedder(target_delay=1.0, interval=0.01, probe_period=0.001)
    for _ in range(20):
        assert shedder.admit()
        shedder.release(shedder.clock())
        await asyncio.sleep(0.001)
    for _ in range(500):
        if not shedder._probe_armed:
            break
        await asyncio.sleep(0.001)
    assert not shedder.overloaded
    assert not shedder._probe_armed


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
    "kwargs",
    [{"max_in_flight": 0}, {"target_delay": 0.0}, {"interval": 0}, {"retry_after": -1}, {"probe_period": 0}],
)
def test_rejects_nonsense_configuration(kwargs: dict[str, float]) -> None:
    """Invalid limits fail loudly at construction."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LoadShedder(**kwargs)  # type: ignore[arg-type]
