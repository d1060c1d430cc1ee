"""Load shedding for the SDK endpoints: say no quickly so admitted requests stay fast.

PostHog SDKs never retry a 503 or 429 (they keep their last values), and they time out after 3 s, so an
overloaded worker is better off answering some requests at once with ``503`` + ``Retry-After`` than
answering all of them late. ``LoadShedder`` decides per request, per worker (one event loop, no locks).

A worker's queue is its event loop: a request that arrives while the loop is busy waits there, invisible,
until its turn. ``SdkApp`` makes that wait visible: it calls ``arrive()`` when a request starts, reads the
body, and passes the time the read took — for an upload already sent, the time the request's continuation
waited for the loop — to ``admit(waited)``. That is the request's own *queueing delay*: the signal.

1. **Floor** — while at most ``min_in_flight`` requests are in the worker (``pending``, counting the one
   deciding), every request is admitted. A lone request is never shed, whatever happened before it: a GC
   pause or an admin write that stalled one request is not overload.
2. **Concurrency cap** — at most ``max_in_flight`` admitted requests at once (routes that wait on I/O).
3. **Standing queue (CoDel)** — over each ``interval``, the smallest queueing delay seen is kept. An interval
   with at least ``min_samples`` delays, *every one* over ``target_delay``, means a standing queue: the worker
   is *overloaded*. One slow sample (a burst, a stall) never is: some request in the same interval got through
   quickly. While overloaded, a request that itself waited more than ``target_delay`` is shed (it would be
   late anyway, and a 503 costs a fraction of an evaluation, so the queue drains); one that waited less is
   admitted. The state ends with the first interval whose smallest delay is back under the target, and at
   once when the queue is gone (``pending`` at the floor). ``target_delay=None`` switches this part off.
4. **Early shedding** — while overloaded, a request that arrives with more than ``max_queue`` requests
   already in the worker is shed at once (``arrive()`` returns False), before its body is read: the
   cheapest answer there is, so rejecting does not itself keep the queue standing.

Defaults: ``min_in_flight=8``, ``max_in_flight=128``, ``target_delay=0.005`` s, ``interval=0.1`` s,
``min_samples=8``, ``max_queue=32``, ``retry_after=1`` s (the ``Retry-After`` header value).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LoadShedder:
    """Admits or sheds requests (see the module docstring).

    Per request: ``arrive()`` when it starts (False: shed it now); then ``admit(waited)`` with its
    queueing delay in seconds (None when unknown); if admitted, ``release()`` when it is done; after every
    ``arrive()``, ``depart()`` at the very end."""

    __slots__ = (
        "_interval",
        "_interval_end",
        "_interval_min",
        "_interval_samples",
        "clock",
        "in_flight",
        "max_in_flight",
        "max_queue",
        "min_in_flight",
        "min_samples",
        "overloaded",
        "pending",
        "retry_after",
        "shed_total",
        "target_delay",
    )

    def __init__(
        self,
        *,
        max_in_flight: int = 128,
        min_in_flight: int = 8,
        target_delay: float | None = 0.005,
        interval: float = 0.1,
        min_samples: int = 8,
        max_queue: int = 32,
        retry_after: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if min_in_flight < 0:
            raise ValueError(f"min_in_flight must not be negative, got {min_in_flight}")
        if target_delay is not None and target_delay <= 0:
            raise ValueError(f"target_delay must be positive or None, got {target_delay}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {retry_after}")
        self.max_in_flight = max_in_flight
        self.min_in_flight = min(min_in_flight, max_in_flight)  # the floor never lifts the cap
        self.target_delay = target_delay
        self.min_samples = min_samples
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.clock = clock
        self._interval = interval
        self.pending = 0  # requests in the worker: arrived and not departed
        self.in_flight = 0  # admitted and not released
        self.shed_total = 0
        self.overloaded = False
        self._interval_end = clock() + interval
        self._interval_min = float("inf")
        self._interval_samples = 0

    def arrive(self) -> bool:
        """A request started (before its body is read); False: shed it at once (a standing queue, and more
        than ``max_queue`` requests ahead of it)."""
        self.pending += 1
        if self.overloaded and self.pending > self.max_queue:
            self.shed_total += 1
            return False
        return True

    def depart(self) -> None:
        """A request that ``arrive()``\\ d is finished, admitted or not."""
        self.pending -= 1

    def admit(self, waited: float | None = None) -> bool:
        """Whether to handle this request now; ``waited``: its queueing delay. False: answer 503 at once."""
        target = self.target_delay
        if target is not None and waited is not None:
            self._sample(waited)
        if self.in_flight >= self.max_in_flight:
            self.shed_total += 1
            return False
        if self.pending <= self.min_in_flight:
            self.overloaded = False  # the queue is gone: nothing to shed, whatever the last verdict said
        elif self.overloaded and waited is not None and waited > target:  # type: ignore[operator]
            self.shed_total += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        """An admitted request finished."""
        self.in_flight -= 1

    def _sample(self, waited: float) -> None:
        now = self.clock()
        if now >= self._interval_end:
            self._verdict(now)
        if waited < self._interval_min:
            self._interval_min = waited
        self._interval_samples += 1

    def _verdict(self, now: float) -> None:
        # One verdict per interval, on its smallest delay: a standing queue delays every request, a burst
        # or a stall only some. Too few samples say nothing either way (the state stands).
        assert self.target_delay is not None
        if self._interval_min <= self.target_delay:
            self.overloaded = False
        elif self._interval_samples >= self.min_samples:
            self.overloaded = True
        self._interval_min = float("inf")
        self._interval_samples = 0
        self._interval_end = now + self._interval
