"""``HedgedReader``: one read, sent to the best store server; if it has not answered within the hedge delay,
the same read goes to another server too; the first answer wins and the loser is cancelled.

Contract of ``await reader(read, deadline)`` (``read(i)`` performs the read on server ``i``):

- **Choice.** The first attempt goes to the server with the fewest reads in flight, then the lowest recent
  latency (an EWMA; a read cancelled after ``t`` seconds counts as taking ``t``, so a stalled server falls
  behind; an estimate older than ``_FORGET`` seconds is forgotten, so a recovered server is chosen again),
  among servers whose ``CircuitBreaker`` allows a read.
- **Hedge.** After the hedge delay — the ``percentile`` (default p95) of the last ``window`` completed read
  latencies, at least ``floor``, at most ``cap`` — one hedge goes to another allowed server, if the budget
  has a token. The budget is a token bucket: every read earns ``ratio`` tokens (at most ``burst`` held), a
  hedge spends one, so hedges never exceed ``ratio`` × reads + ``burst``. No token: the read waits alone
  (counted as ``budget_exhausted``).
- **Errors.** An attempt that fails (an error, not slowness) is charged to its server's breaker and the read
  moves at once to another allowed server not tried yet (a fallback, not a hedge: no token; breakers bound
  how often that happens during an outage).
- **Deadline.** ``deadline`` is an absolute ``loop.time()``; when it passes, every attempt still in flight
  is cancelled, charged to its server's breaker as a failure and counted as a deadline miss, and
  ``StoreTimeout`` is raised. No server allowed at all: ``StoreUnavailable`` at once (no connect attempt).
- **No leaks.** When the call returns or raises, every attempt it started is done or cancelled; cancelled
  ones finish on the next loop turns without being awaited (their bookkeeping runs in a done callback).

``Observer`` receives counts per server name (``read``, ``hedge``, ``hedge_won``, ``budget_exhausted``,
``deadline_miss``, ``error``) and breaker transitions; ``flagd`` turns them into Prometheus series.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from store.errors import StoreError, StoreTimeout, StoreUnavailable
from store.servers.breaker import BreakerState, CircuitBreaker

__all__ = ["HedgeBudget", "HedgedReader", "LatencyWindow", "Observer"]

T = TypeVar("T")
_FORGET = 1.0  # seconds after which a server's latency estimate no longer counts against it
_ALPHA = 0.2


class Observer(Protocol):
    """Where a ``HedgedReader`` reports what it does (``flagd.sdk.store_metrics`` implements it)."""

    def count(self, event: str, server: str) -> None: ...

    def breaker(self, server: str, state: BreakerState) -> None: ...


class _Silent:
    def count(self, event: str, server: str) -> None:
        pass

    def breaker(self, server: str, state: BreakerState) -> None:
        pass


class LatencyWindow:
    """The last ``size`` latencies; ``value`` is their ``percentile``, recomputed every ``every`` samples."""

    __slots__ = ("_at", "_every", "_rank", "_ring", "_since", "_size", "value")

    def __init__(
        self, size: int = 256, percentile: float = 0.95, every: int = 32, initial: float = 0.0
    ) -> None:
        self._size = size
        self._ring: list[float] = []
        self._at = 0
        self._rank = percentile
        self._every = every
        self._since = 0
        self.value = initial

    def add(self, seconds: float) -> None:
        ring = self._ring
        if len(ring) < self._size:
            ring.append(seconds)
        else:
            ring[self._at] = seconds
            self._at = (self._at + 1) % len(ring)
        self._since += 1
        if self._since >= self._every or len(ring) < self._every:
            self._since = 0
            ordered = sorted(ring)
            self.value = ordered[min(len(ordered) - 1, int(self._rank * len(ordered)))]


class HedgeBudget:
    """Token bucket: ``earn`` per read adds ``ratio`` (at most ``burst`` held); ``spend`` takes one token."""

    __slots__ = ("burst", "ratio", "tokens")

    def __init__(self, ratio: float = 0.1, burst: float = 10.0) -> None:
        self.ratio = ratio
        self.burst = burst
        self.tokens = burst

    def earn(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Server:
    __slots__ = ("breaker", "ewma", "in_flight", "name", "sampled_at")

    def __init__(self, name: str, breaker: CircuitBreaker) -> None:
        self.name = name
        self.breaker = breaker
        self.in_flight = 0
        self.ewma = 0.0
        self.sampled_at = 0.0

    def sample(self, seconds: float, now: float) -> None:
        fresh = now - self.sampled_at < _FORGET
        self.ewma = self.ewma + _ALPHA * (seconds - self.ewma) if fresh else seconds
        self.sampled_at = now


class _Attempt:
    __slots__ = ("hedge", "server", "settled", "started")

    def __init__(self, server: _Server, started: float, hedge: bool) -> None:
        self.server = server
        self.started = started
        self.hedge = hedge
        self.settled = False  # its outcome was charged to the breaker (``_settle``, or a deadline miss)


class HedgedReader:
    """Hedged, budgeted, deadline-bound reads over a fixed list of servers (see the module docstring)."""

    __slots__ = ("_budget", "_cap", "_floor", "_hedging", "_latency", "_observer", "_servers", "_states")

    def __init__(
        self,
        servers: Sequence[str],
        *,
        hedging: bool = True,
        floor: float = 0.002,
        cap: float = 0.02,
        percentile: float = 0.95,
        ratio: float = 0.1,
        burst: float = 10.0,
        breaker_threshold: int = 5,
        breaker_base: float = 0.1,
        breaker_cap: float = 5.0,
        observer: Observer | None = None,
    ) -> None:
        if not servers:
            raise ValueError("a HedgedReader needs at least one server")
        self._servers = [
            _Server(name, CircuitBreaker(threshold=breaker_threshold, base=breaker_base, cap=breaker_cap))
            for name in servers
        ]
        self._states: list[BreakerState] = ["closed"] * len(self._servers)
        self._hedging = hedging and len(servers) > 1
        self._floor = floor
        self._cap = max(cap, floor)
        self._latency = LatencyWindow(percentile=percentile, initial=floor)
        self._budget = HedgeBudget(ratio, burst)
        self._observer: Observer = observer or _Silent()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._servers]

    @property
    def hedge_delay(self) -> float:
        """Seconds a read waits alone before it is hedged."""
        return min(max(self._latency.value, self._floor), self._cap)

    def breaker_states(self) -> dict[str, BreakerState]:
        return {s.name: s.breaker.state for s in self._servers}

    def _pick(
        self, tried: Sequence[_Server], now: float, only: Collection[int] | None = None
    ) -> _Server | None:
        best: _Server | None = None
        best_key = (0, 0.0)
        for index, server in enumerate(self._servers):
            if (only is not None and index not in only) or server in tried or not server.breaker.peek(now):
                continue
            ewma = server.ewma if now - server.sampled_at < _FORGET else 0.0
            key = (server.in_flight, ewma)
            if best is None or key < best_key or (key == best_key and random.random() < 0.5):
                best, best_key = server, key
        if best is not None:
            best.breaker.allows(now)  # claims the probe when half open
        return best

    def _note_breaker(self) -> None:
        for index, server in enumerate(self._servers):
            state = server.breaker.state
            if state != self._states[index]:
                self._states[index] = state
                self._observer.breaker(server.name, state)

    def _start(
        self,
        read: Callable[[int], Awaitable[T]],
        server: _Server,
        hedge: bool,
        attempts: dict[asyncio.Future[T], _Attempt],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        index = self._servers.index(server)
        task: asyncio.Future[T] = asyncio.ensure_future(read(index))
        attempt = _Attempt(server, loop.time(), hedge)
        attempts[task] = attempt
        server.in_flight += 1
        self._observer.count("hedge" if hedge else "read", server.name)
        task.add_done_callback(lambda t: self._finished(t, attempt, loop))

    def _finished(self, task: asyncio.Future[T], attempt: _Attempt, loop: asyncio.AbstractEventLoop) -> None:
        server = attempt.server
        server.in_flight -= 1
        now = loop.time()
        if task.cancelled() or task.exception() is None:
            server.sample(now - attempt.started, now)
            if not task.cancelled():
                self._latency.add(now - attempt.started)
        self._settle(task, attempt, now)

    def _settle(self, task: asyncio.Future[T], attempt: _Attempt, now: float) -> None:
        """Charge the attempt's outcome to its server's breaker, once (from ``__call__`` as soon as it sees
        the attempt done, or from the done callback, whichever comes first)."""
        if attempt.settled:
            return
        attempt.settled = True
        server = attempt.server
        if task.cancelled():
            server.breaker.inconclusive()
        elif task.exception() is not None:
            server.breaker.failure(now)
            self._observer.count("error", server.name)
        else:
            server.breaker.success()
        self._note_breaker()

    async def __call__(
        self, read: Callable[[int], Awaitable[T]], deadline: float, *, only: Collection[int] | None = None
    ) -> T:
        """The first answer of ``read`` on some server (see the module docstring); ``only`` restricts the
        servers (indexes) this call may use."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        first = self._pick((), now, only)
        if first is None:
            self._note_breaker()
            raise StoreUnavailable("every store server's circuit breaker is open")
        self._budget.earn()
        attempts: dict[asyncio.Future[T], _Attempt] = {}
        tried = [first]
        self._start(read, first, False, attempts, loop)
        hedge_at = now + self.hedge_delay if self._hedging else deadline
        error: BaseException | None = None
        try:
            while attempts:
                now = loop.time()
                wake = min(deadline, hedge_at)
                done, _ = await asyncio.wait(
                    attempts, timeout=max(wake - now, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    attempt = attempts.pop(task)
                    self._settle(task, attempt, loop.time())
                    if not task.cancelled() and task.exception() is None:
                        if attempt.hedge:
                            self._observer.count("hedge_won", attempt.server.name)
                        return task.result()
                    error = task.exception() if not task.cancelled() else error
                    fallback = self._pick(tried, loop.time(), only)
                    if fallback is not None:
                        tried.append(fallback)
                        self._start(read, fallback, False, attempts, loop)
                now = loop.time()
                if done:
                    continue
                if now >= deadline:
                    for attempt in attempts.values():
                        attempt.settled = True
                        attempt.server.breaker.failure(now)
                        self._observer.count("deadline_miss", attempt.server.name)
                    raise StoreTimeout("the store did not answer before the request's deadline")
                if now >= hedge_at:
                    hedge_at = deadline
                    other = self._pick(tried, now, only)
                    if other is None:
                        continue
                    if self._budget.spend():
                        tried.append(other)
                        self._start(read, other, True, attempts, loop)
                    else:
                        other.breaker.inconclusive()
                        self._observer.count("budget_exhausted", other.name)
            if isinstance(error, StoreError):
                raise error
            raise StoreUnavailable(f"every store server failed: {error}") from error
        finally:
            for task in attempts:
                task.cancel()
            self._note_breaker()
