"""Bare Granian apps: fixed bytes (the server's ceiling) and the bare work (what flagd's serving adds to it).

``FLAGD_STUB_BODY`` names a file holding the response (the load test saves a real ``/flags`` answer there),
so the stubs move exactly the bytes flagd moves, with no parsing, evaluation, metrics or logging.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

_BODY = open(os.environ.get("FLAGD_STUB_BODY", os.devnull), "rb").read()  # noqa: SIM115
_ASGI_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
_RSGI_HEADERS = [("content-type", "application/json")]


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _ASGI_HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


async def rsgi_app(scope: Any, protocol: Any) -> None:
    await protocol()
    protocol.response_bytes(200, _RSGI_HEADERS, _BODY)


# ------------------------------------------------------------------------------------------------------
# ``rsgi_work_app``: a bare RSGI handler doing the work of ``POST /flags?v=2`` itself, with nothing else
# around it: read the body, decode it (msgspec), find the project by token (one dict lookup), evaluate the
# 50 flags of bench/load_workload.py with the same evaluator build flagd loads, render the same bytes with
# flagd's renderer. No limits, shedding, metrics, request ids, logging or routing: what flagd's serving
# costs on top of the work is the gap between the two.


class _Body(msgspec.Struct):
    distinct_id: str
    api_key: str
    person_properties: dict[str, Any] = {}


def _work() -> Callable[[Any, Any], Awaitable[None]]:
    from bench.load_workload import posthog_flags
    from evaluator import Context, compile_flags
    from flagd.sdk.responses import RecordCache, Shape, render

    flags = [{**flag, "id": i + 1, "version": 1} for i, flag in enumerate(posthog_flags(50))]
    projects = {os.environ.get("FLAGD_STUB_TOKEN", ""): (compile_flags(flags), RecordCache())}
    decoder = msgspec.json.Decoder(_Body)
    headers = [("content-type", "application/json")]
    request_id = "00000000-0000-4000-8000-000000000000"

    async def app(scope: Any, protocol: Any) -> None:
        body = decoder.decode(await protocol())
        snapshot, cache = projects[body.api_key]
        decisions = snapshot.evaluate(
            Context(distinct_id=body.distinct_id, person_properties=body.person_properties)
        )
        now_ms = int(time.time() * 1000)
        protocol.response_bytes(200, headers, render(Shape.DETAILED, decisions, cache, request_id, now_ms))

    return app


rsgi_work_app = _work() if os.environ.get("FLAGD_STUB_TOKEN") else None
