"""Writing admin responses: records as JSON, and PostHog's list envelope {count, next, previous, results}."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.inputs import PageParams

_encoder = msgspec.json.Encoder()


class JSON(Response):
    """A JSON response encoded with msgspec (records carry datetimes and Structs)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def plain(record: Any) -> Any:
    """A record (msgspec Struct) as JSON-ready builtins."""
    return msgspec.to_builtins(record)


def envelope(
    request: Request,
    items: Iterable[Any],
    total: int,
    page: PageParams,
    *,
    extra: Mapping[str, Any] | None = None,
) -> JSON:
    """A page of results with absolute ``next``/``previous`` links (None at the ends)."""
    results = [plain(item) for item in items]
    next_url = None
    if page.offset + len(results) < total and results:
        next_url = str(request.url.include_query_params(limit=page.limit, offset=page.offset + page.limit))
    previous_url = None
    if page.offset > 0:
        previous_url = str(
            request.url.include_query_params(limit=page.limit, offset=max(0, page.offset - page.limit))
        )
    body: dict[str, Any] = {"count": total, "next": next_url, "previous": previous_url, "results": results}
    if extra:
        body.update(extra)
    return JSON(body)
