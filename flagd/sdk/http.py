"""Raw ASGI plumbing for the SDK endpoints: reading bodies, parsing queries, sending answers.

Everything here is chosen to cost little per request: header lists are prebuilt byte pairs, the query string
parser is memoised (SDKs send a handful of distinct query strings), and the body loop stops as soon as the
limit is passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from flagd.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
# What an endpoint returns: status, body, extra headers (content type included).
Answer = tuple[int, bytes, Headers]

JSON: Headers = [(b"content-type", b"application/json")]
TEXT: Headers = [(b"content-type", b"text/plain; charset=utf-8")]


@lru_cache(maxsize=512)
def parse_query(raw: bytes) -> dict[str, str]:
    """``a=1&b=x%20y&flag`` → ``{"a": "1", "b": "x y", "flag": ""}``; the first of repeated names wins."""
    out: dict[str, str] = {}
    if not raw:
        return out
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name not in out:
            out[name] = unquote_plus(value)
    return out


async def read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int, first: bytes | None = None
) -> bytes:
    """The whole request body, refusing (413) anything over ``limit`` bytes without buffering past it.

    ``first``: the body of the first ``http.request`` message when the caller already received it."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {int(declared)} bytes is over max_body_bytes={limit}")
    if first is None:
        message = await receive()
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
    else:
        body, more = first, True
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is over max_body_bytes={limit}")
    if not more:
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over max_body_bytes={limit}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_answer(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """Send a complete response in two messages (start, body)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
