"""Load shedding for the SDK endpoints: say no quickly so admitted requests stay fast.

PostHog SDKs never retry a 503 or 429 (they keep their last values), and they time out after 3 s, so an
overloaded worker is better off answering some requests at once with ``503`` + ``Retry-After`` than
answering all of them late. ``LoadShedder`` decides per request, per worker (one event loop, no locks):

1. **Concurrency cap** — at most ``max_in_flight`` requests are being handled at once; the next one is shed.
2. **Queueing delay (CoDel-style)** — two delay signals are sampled: how long each admitted request took,
   and the event loop's lag (a probe callback scheduled every ``probe_period`` seconds while requests arrive
   reports how late it ran: the time work already queued on the loop makes a new request wait, which the
   request itself cannot see). If, over a whole ``interval``, even the *smallest* sample of either signal
   exceeded ``target_delay``, a standing queue has built up (the worker is saturated, not merely busy). The
   shedder is then *overloaded*: it sheds a growing share of new requests (``shed_probability`` starts at
   0.2 and doubles every bad interval, up to 0.95) and admits only while fewer than ``overload_in_flight``
   are in flight. A 503 costs a fraction of an evaluation, so the queue drains; every interval back under
   the target halves the share, and below 5 % the shedder leaves the overloaded state. ``target_delay=None``
   switches this part off.

Defaults: ``max_in_flight=512``, ``target_delay=0.05`` s, ``interval=0.1`` s, ``probe_period=0.01`` s,
``overload_in_flight`` = ``max_in_flight // 8`` (at least 1), ``retry_after=1`` s (the ``Retry-After``
header value).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

_FIRST_SHARE = 0.2
_MAX_SHARE = 0.95
_MIN_SHARE = 0.05
_NONE = float("inf")


class LoadShedder:
    """Admits or sheds requests (see the module docstring).

    Call ``admit()``; if it is true, call ``release(start)`` exactly once when the request is done, with the
    ``clock()`` reading taken when it was admitted."""

    __slots__ = (
        "_interval",
        "_interval_end",
        "_interval_min",
        "_lag_min",
        "_probe_armed",
        "_probe_period",
        "_random",
        "clock",
        "in_flight",
        "max_in_flight",
        "overload_in_flight",
        "overloaded",
        "retry_after",
        "shed_probability",
        "shed_total",
        "target_delay",
    )

    def __init__(
        self,
        *,
        max_in_flight: int = 512,
        target_delay: float | None = 0.05,
        interval: float = 0.1,
        probe_period: float = 0.01,
        overload_in_flight: int | None = None,
        retry_after: int = 1,
        clock: Callable[[], float] = time.perf_counter,
        chance: Callable[[], float] = random.random,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if target_delay is not None and target_delay <= 0:
            raise ValueError(f"target_delay must be positive or None, got {target_delay}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if probe_period <= 0:
            raise ValueError(f"probe_period must be positive, got {probe_period}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {retry_after}")
        self.max_in_flight = max_in_flight
        self.overload_in_flight = max(
            1, overload_in_flight if overload_in_flight is not None else max_in_flight // 8
        )
        self.target_delay = target_delay
        self._interval = interval
        self._probe_period = probe_period
        self.retry_after = retry_after
        self.clock = clock
        self._random = chance
        self.in_flight = 0
        self.shed_total = 0
        self.overloaded = False
        self.shed_probability = 0.0
        self._interval_end = clock() + interval
        self._interval_min = float("inf")
        self._lag_min = float("inf")
        self._probe_armed = False

    def admit(self) -> bool:
        """Whether to handle this request now. False means: answer 503 with ``Retry-After`` right away."""
        if self.overloaded:
            if self.in_flight >= self.overload_in_flight or self._random() < self.shed_probability:
                self.shed_total += 1
                return False
        elif self.in_flight >= self.max_in_flight:
            self.shed_total += 1
            return False
        if not self._probe_armed and self.target_delay is not None:
            self._arm_probe()
        self.in_flight += 1
        return True

    def release(self, started: float) -> None:
        """An admitted request finished; ``started`` is the ``clock()`` reading from when it was admitted."""
        self.in_flight -= 1
        if self.target_delay is not None:
            now = self.clock()
            self.sample(now - started, now)

    def sample(self, delay: float, now: float, *, lag: bool = False) -> None:
        """Feed one delay sample taken at ``now``: a request's duration, or (``lag=True``) the loop's lag."""
        if lag:
            if delay < self._lag_min:
                self._lag_min = delay
        elif delay < self._interval_min:
            self._interval_min = delay
        if now >= self._interval_end:
            self._verdict(now)

    def _verdict(self, now: float) -> None:
        # One verdict per interval: a standing queue means even the smallest delay of a signal was over the
        # target. The two signals are judged apart: requests that were already running finish quickly even
        # while new ones wait on a backed-up loop, so their durations alone would hide the queue.
        target = self.target_delay
        assert target is not None
        # (inf: no sample of that signal in this interval; that says nothing either way.)
        if target < self._interval_min < _NONE or target < self._lag_min < _NONE:
            self.overloaded = True
            self.shed_probability = min(_MAX_SHARE, max(_FIRST_SHARE, self.shed_probability * 2))
        elif self.overloaded:
            self.shed_probability /= 2
            if self.shed_probability < _MIN_SHARE:
                self.overloaded = False
                self.shed_probability = 0.0
        self._interval_min = self._lag_min = float("inf")
        self._interval_end = now + self._interval

    # The loop-lag probe: armed by the first admitted request, re-armed while requests keep arriving.
    def _arm_probe(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a synchronous caller): request durations only
            return
        self._probe_armed = True
        due = loop.time() + self._probe_period
        loop.call_at(due, self._probe, loop, due)

    def _probe(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self._probe_armed = False
        self.sample(max(0.0, loop.time() - due), self.clock(), lag=True)
        if self.in_flight or self.overloaded:
            # Keep measuring while there is work (or a verdict to revisit); an idle worker stops probing
            # until its next request.
            self._probe_armed = True
            due = loop.time() + self._probe_period
            loop.call_at(due, self._probe, loop, due)
