"""``StoreMetrics``: the ``store.servers.hedging.Observer`` that turns what the person store's
``HedgedReader`` does into ``flagd.metrics`` series, labelled by store server (``host:port``)."""

from __future__ import annotations

from flagd.metrics import Metrics
from store.servers.breaker import BreakerState

__all__ = ["StoreMetrics"]


class StoreMetrics:
    """Counts per server: reads, hedges, hedges won, budget exhaustion, deadline misses, errors; breaker
    transitions."""

    __slots__ = ("_breaker", "_count", "_metrics")

    def __init__(self, metrics: Metrics) -> None:
        self._count = {
            "read": metrics.store_read,
            "hedge": metrics.store_hedge,
            "hedge_won": metrics.store_hedge_won,
            "budget_exhausted": metrics.store_budget_exhausted,
            "deadline_miss": metrics.store_deadline_miss,
            "error": self._error,
        }
        self._metrics = metrics
        self._breaker = metrics.store_breaker

    def _error(self, server: str) -> None:
        self._metrics.store_error("redis_read")

    def count(self, event: str, server: str) -> None:
        self._count[event](server)

    def breaker(self, server: str, state: BreakerState) -> None:
        self._breaker(state, server)
