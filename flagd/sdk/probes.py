"""``GET /healthz`` (alive), ``GET /readyz`` (serving a loaded snapshot) and ``GET /metrics`` (Prometheus).

These are never shed: an orchestrator must be able to tell an overloaded node from a dead one. ``/readyz``
answers 200 when ``health()["ready"]`` is true, else 503; the body is the health dict (snapshot version,
lag, source, ...) as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from flagd.metrics import CONTENT_TYPE, Metrics
from flagd.sdk.http import JSON, Answer, Request

Health = Callable[[], dict[str, Any]]
_ALIVE = b'{"status":"ok"}'
_encoder = msgspec.json.Encoder(enc_hook=str)


class Probes:
    """The three probe endpoints, as methods with the endpoint signature."""

    __slots__ = ("_health", "_metrics")

    def __init__(self, health: Health, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics

    async def healthz(self, request: Request, request_id: str) -> Answer:
        return 200, _ALIVE, JSON

    async def readyz(self, request: Request, request_id: str) -> Answer:
        health = self._health()
        return (200 if health.get("ready") else 503), _encoder.encode(health), JSON

    async def metrics(self, request: Request, request_id: str) -> Answer:
        return 200, self._metrics.render(self._health()), [(b"content-type", CONTENT_TYPE.encode())]
