"""``CircuitBreaker``: stop sending reads to a server that keeps failing, for a short, growing interval.

States (the names ``flagd_store_breaker_state`` reports): ``closed`` — reads go through; after
``threshold`` failures in a row it turns ``open`` — no read is sent for ``interval`` seconds, so a dead or
stalled server costs no connect attempts and no timeouts; once that passes it is ``half_open`` — exactly one
read (the probe) goes through: success closes it (interval back to ``base``), failure opens it again for
twice as long (at most ``cap``). A probe that is cancelled because another server answered first proves
nothing: the next read probes again. Time is the caller's (``loop.time()``), so the breaker does no I/O and
no clock reads of its own.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """One server's breaker (see the module docstring)."""

    __slots__ = ("_probing", "base", "cap", "failures", "interval", "opened_at", "state", "threshold")

    def __init__(self, *, threshold: int = 5, base: float = 0.1, cap: float = 5.0) -> None:
        if threshold < 1 or base <= 0 or cap < base:
            raise ValueError("need threshold >= 1 and 0 < base <= cap")
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.state: BreakerState = "closed"
        self.failures = 0
        self.interval = base
        self.opened_at = 0.0
        self._probing = False

    def allows(self, now: float) -> bool:
        """Whether a read may be sent now (in ``half_open``, this claims the single probe)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self.opened_at + self.interval:
                return False
            self.state = "half_open"
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def peek(self, now: float) -> bool:
        """Whether ``allows`` would say yes, without claiming anything."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now >= self.opened_at + self.interval
        return not self._probing

    def success(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.interval = self.base
        self._probing = False

    def failure(self, now: float) -> None:
        if self.state == "half_open":
            self.interval = min(self.interval * 2, self.cap)
            self._open(now)
            return
        self.failures += 1
        if self.state == "closed" and self.failures >= self.threshold:
            self.interval = self.base
            self._open(now)

    def inconclusive(self) -> None:
        """The read was cancelled before it answered (another server won): a probe may be sent again."""
        self._probing = False

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self._probing = False
