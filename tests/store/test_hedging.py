"""``HedgedReader`` and ``CircuitBreaker``: first answer wins, the loser is cancelled, hedges stay within the
budget, deadlines are kept, nothing is left running; breakers open, grow and close by themselves."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import StoreTimeout, StoreUnavailable
from store.servers.breaker import CircuitBreaker
from store.servers.hedging import HedgedReader, LatencyWindow
from tests.store.strategies import BREAKER_EVENTS, ERROR, FAST, SLOW, STALL, read_rounds

HEDGE_DELAY = 0.02
DEADLINE = 0.15
DELAYS = {FAST: 0.001, SLOW: 0.06, ERROR: 0.001, STALL: 30.0}
_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


class Recorder:
    """An ``Observer`` that keeps every count and breaker transition."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.transitions: list[tuple[str, str]] = []

    def count(self, event: str, server: str) -> None:
        self.counts[(event, server)] += 1

    def breaker(self, server: str, state: str) -> None:
        self.transitions.append((server, state))

    def total(self, event: str) -> int:
        return sum(n for (e, _), n in self.counts.items() if e == event)


class Attempt:
    def __init__(self, server: int, started: float) -> None:
        self.server = server
        self.started = started
        self.finished: float | None = None
        self.outcome = "running"


async def _no_other_tasks() -> bool:
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    return all(t.done() for t in asyncio.all_tasks() if t is not current)


@_SETTINGS
@given(read_rounds())
def test_first_answer_wins_losers_are_cancelled_and_nothing_leaks(
    scenario: tuple[int, list[list[str]]],
) -> None:
    """Whatever each server does, a read returns the first answer (or times out at its deadline, or fails
    when every server failed), every other attempt is cancelled, and no task outlives the call."""
    servers, rounds = scenario

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recorder = Recorder()
        reader = HedgedReader(
            [f"s{i}" for i in range(servers)], floor=HEDGE_DELAY, cap=HEDGE_DELAY, observer=recorder
        )
        for outcomes in rounds:
            attempts: list[Attempt] = []

            async def read(
                server: int, outcomes: list[str] = outcomes, attempts: list[Attempt] = attempts
            ) -> str:
                attempt = Attempt(server, loop.time())
                attempts.append(attempt)
                try:
                    await asyncio.sleep(DELAYS[outcomes[server]])
                except asyncio.CancelledError:
                    attempt.outcome = "cancelled"
                    raise
                attempt.finished = loop.time()
                if outcomes[server] == ERROR:
                    attempt.outcome = "error"
                    raise StoreUnavailable(f"server {server} failed")
                attempt.outcome = "ok"
                return f"answer-{server}"

            result: Any
            try:
                result = await reader(read, loop.time() + DEADLINE)
            except (StoreTimeout, StoreUnavailable) as exc:
                result = exc
            assert await _no_other_tasks()
            assert all(a.outcome != "running" for a in attempts)
            assert len({a.server for a in attempts}) == len(attempts)  # never twice to one server
            answered = [a for a in attempts if a.outcome == "ok"]
            if isinstance(result, str):
                winner = next(a for a in answered if f"answer-{a.server}" == result)
                assert winner.finished is not None
                # No other answer arrived before it (same loop turn aside); the others were cancelled.
                assert all(a.finished is not None and a.finished >= winner.finished - 0.005 for a in answered)
                assert all(
                    a.outcome == "cancelled" for a in attempts if a not in answered and a.outcome != "error"
                )
            elif isinstance(result, StoreTimeout):
                assert answered == []
                assert any(a.outcome == "cancelled" for a in attempts)
            else:
                assert all(a.outcome == "error" for a in attempts)
            if all(o == FAST for o in outcomes) and attempts:
                assert isinstance(result, str)
            if all(o == STALL for o in outcomes) and attempts:
                assert isinstance(result, StoreTimeout)
        assert recorder.total("hedge_won") <= recorder.total("hedge")

    asyncio.run(main())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    ratio=st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5]),
    burst=st.sampled_from([0.0, 1.0, 3.0]),
    reads=st.integers(1, 40),
)
def test_hedges_never_exceed_the_budget(ratio: float, burst: float, reads: int) -> None:
    """With every read slower than the hedge delay, hedges stay within ratio x reads + burst, and every
    read that wanted a hedge but found no token is counted as budget exhaustion."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recorder = Recorder()
        reader = HedgedReader(
            ["a", "b"], floor=0.0005, cap=0.0005, ratio=ratio, burst=burst, observer=recorder
        )

        async def read(server: int) -> int:
            await asyncio.sleep(0.003)
            return server

        for _ in range(reads):
            await reader(read, loop.time() + 1.0)
        assert await _no_other_tasks()
        hedges = recorder.total("hedge")
        assert hedges <= ratio * reads + burst + 1e-9
        assert hedges + recorder.total("budget_exhausted") == reads

    asyncio.run(main())


def test_a_stalled_server_is_avoided_and_its_reads_hedged() -> None:
    """Reads to a server that stalls are hedged to the other one and answer well before the deadline; after
    the first stall, new reads go to the healthy server first."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recorder = Recorder()
        reader = HedgedReader(["stalled", "healthy"], floor=0.005, cap=0.005, observer=recorder)

        async def read(server: int) -> int:
            await asyncio.sleep(30.0 if server == 0 else 0.001)
            return server

        for _ in range(20):
            assert await reader(read, loop.time() + 1.0) == 1
        assert recorder.counts[("read", "healthy")] >= 15  # (a busy machine may let an estimate expire)
        assert recorder.total("hedge") <= 5
        assert await _no_other_tasks()

    asyncio.run(main())


def test_a_failing_server_opens_its_breaker_and_reads_move_to_the_other() -> None:
    """After ``threshold`` errors in a row a server's breaker opens (reported to the observer), reads go to
    the other server without touching it, and a later success through the half-open probe closes it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recorder = Recorder()
        reader = HedgedReader(["bad", "good"], breaker_threshold=2, breaker_base=0.3, observer=recorder)
        broken = True
        touched: Counter[int] = Counter()

        async def read(server: int) -> int:
            touched[server] += 1
            if server == 0 and broken:
                raise StoreUnavailable("connection refused")
            await asyncio.sleep(0.001)
            return server

        only_bad = (0,)
        for _ in range(2):
            with pytest.raises(StoreUnavailable):
                await reader(read, loop.time() + 1.0, only=only_bad)
        assert reader.breaker_states()["bad"] == "open"
        assert ("bad", "open") in recorder.transitions
        before = touched[0]
        with pytest.raises(StoreUnavailable, match="circuit breaker"):
            await reader(read, loop.time() + 1.0, only=only_bad)
        assert touched[0] == before  # no attempt while open
        assert await reader(read, loop.time() + 1.0) == 1
        broken = False
        await asyncio.sleep(0.65)  # past the open interval, even if it doubled after an early probe
        assert await reader(read, loop.time() + 1.0, only=only_bad) == 0
        assert reader.breaker_states()["bad"] == "closed"

    asyncio.run(main())


@given(BREAKER_EVENTS)
def test_a_breaker_never_lets_reads_through_while_open_and_its_interval_stays_capped(
    events: list[tuple[str, float]],
) -> None:
    """Whatever happens, an open breaker refuses until its interval passed, a half-open one lets exactly
    one probe through, and the interval grows only up to its cap."""
    breaker = CircuitBreaker(threshold=3, base=0.1, cap=0.8)
    now = 0.0
    for event, wait in events:
        now += wait
        if event == "ask":
            state_before = breaker.state
            probing_before = state_before == "half_open" and not breaker.peek(now)
            allowed = breaker.allows(now)
            if state_before == "open" and now < breaker.opened_at + breaker.interval:
                assert not allowed
            if probing_before:
                assert not allowed
            if allowed and breaker.state == "half_open":
                assert not breaker.allows(now)  # the probe is taken
        else:
            getattr(breaker, event)(*([now] if event == "failure" else []))
        assert breaker.base <= breaker.interval <= breaker.cap


def test_the_hedge_delay_follows_the_p95_of_recent_reads_within_its_floor_and_cap() -> None:
    """The delay is the window's p95: a few slow reads among many fast ones do not raise it, many do, and it
    never goes below the floor or above the cap."""
    window = LatencyWindow(size=100, percentile=0.95, every=10)
    for _ in range(100):
        window.add(0.001)
    assert window.value == pytest.approx(0.001)
    for _ in range(3):
        window.add(0.5)
    for _ in range(7):
        window.add(0.001)
    assert window.value == pytest.approx(0.001)
    for _ in range(20):
        window.add(0.01)
    assert window.value == pytest.approx(0.01)
    reader = HedgedReader(["a", "b"], floor=0.002, cap=0.004)
    assert reader.hedge_delay == pytest.approx(0.002)
