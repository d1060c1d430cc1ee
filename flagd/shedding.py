"""Load shedding for the SDK endpoints: say no quickly so admitted requests stay fast.

PostHog SDKs never retry a 503 or 429 (they keep their last values), and they time out after 3 s, so an
overloaded worker is better off answering some requests at once with ``503`` + ``Retry-After`` than
answering all of them late. ``LoadShedder`` decides per request, per worker (one event loop, no locks):

1. **Concurrency cap** — at most ``max_in_flight`` requests are being handled at once; the next one is shed.
2. **Queueing delay (CoDel-style)** — each admitted request reports how long it took. If, over a whole
   ``interval``, even the *fastest* request took longer than ``target_delay``, a standing queue has built up
   (the loop is saturated, not merely busy). The shedder then enters the *overloaded* state for the next
   interval and admits only while fewer than ``overload_in_flight`` requests are in flight, which drains the
   queue; it leaves the state after an interval whose fastest request is back under the target.
   ``target_delay=None`` switches this part off.

Defaults: ``max_in_flight=512``, ``target_delay=0.05`` s, ``interval=0.1`` s, ``overload_in_flight`` =
``max_in_flight // 8`` (at least 1), ``retry_after=1`` s (the ``Retry-After`` header value).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LoadShedder:
    """Admits or sheds requests (see the module docstring).

    Call ``admit()``; if it is true, call ``release(start)`` exactly once when the request is done, with the
    ``clock()`` reading taken when it was admitted."""

    __slots__ = (
        "_interval",
        "_interval_end",
        "_interval_min",
        "clock",
        "in_flight",
        "max_in_flight",
        "overload_in_flight",
        "overloaded",
        "retry_after",
        "shed_total",
        "target_delay",
    )

    def __init__(
        self,
        *,
        max_in_flight: int = 512,
        target_delay: float | None = 0.05,
        interval: float = 0.1,
        overload_in_flight: int | None = None,
        retry_after: int = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if target_delay is not None and target_delay <= 0:
            raise ValueError(f"target_delay must be positive or None, got {target_delay}")
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {retry_after}")
        self.max_in_flight = max_in_flight
        self.overload_in_flight = max(
            1, overload_in_flight if overload_in_flight is not None else max_in_flight // 8
        )
        self.target_delay = target_delay
        self._interval = interval
        self.retry_after = retry_after
        self.clock = clock
        self.in_flight = 0
        self.shed_total = 0
        self.overloaded = False
        self._interval_end = clock() + interval
        self._interval_min = float("inf")

    def admit(self) -> bool:
        """Whether to handle this request now. False means: answer 503 with ``Retry-After`` right away."""
        limit = self.overload_in_flight if self.overloaded else self.max_in_flight
        if self.in_flight >= limit:
            self.shed_total += 1
            return False
        self.in_flight += 1
        return True

    def release(self, started: float) -> None:
        """An admitted request finished; ``started`` is the ``clock()`` reading from when it was admitted."""
        self.in_flight -= 1
        target = self.target_delay
        if target is None:
            return
        now = self.clock()
        took = now - started
        if took < self._interval_min:
            self._interval_min = took
        if now >= self._interval_end:
            # One verdict per interval: a standing queue means even the fastest request waited.
            self.overloaded = self._interval_min > target
            self._interval_min = float("inf")
            self._interval_end = now + self._interval
