"""Admin API errors and how every failure becomes a JSON response. The tree::

    ApiError (status, type, code, detail)     raised by the admin handlers themselves
    ├── 400 validation_error / invalid_input   a malformed body or query parameter (``attr`` names it)
    ├── 401 authentication_error               no, unknown or revoked API key
    ├── 403 authentication_error               the key's scope does not reach the project, or it is read-only
    ├── 404 invalid_request / not_found
    └── 413 invalid_request / request_too_large

Store errors are translated here, once: ``ValidationFailed`` → 400 with every issue as ``{"attr", "detail"}``,
``NotFound`` → 404, ``Conflict`` → 409 carrying ``current_version`` (or ``dependents``),
``StoreUnavailable`` → 503; anything else reaches ``AdminAccessLog``: logged once with its traceback,
answered ``SERVER_ERROR_BODY`` (500).
The body shape follows PostHog's API: ``{"type", "code", "detail", "attr"}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from store.errors import Conflict, Issue, NotFound, StoreUnavailable, ValidationFailed


class ApiError(Exception):
    """A client mistake the handler detected; becomes ``status`` with a PostHog-shaped body."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        detail: str,
        *,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.code = code
        self.detail = detail
        self.attr = attr
        self.headers = headers


def invalid(attr: str, detail: str) -> ApiError:
    """A 400 for one bad field of the request."""
    return ApiError(400, "validation_error", "invalid_input", detail, attr=attr)


def not_authenticated(detail: str) -> ApiError:
    return ApiError(
        401,
        "authentication_error",
        "not_authenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="flagd"'},
    )


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "authentication_error", "permission_denied", detail)


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, "invalid_request", "not_found", detail)


def validation_response(issues: Sequence[Issue]) -> JSONResponse:
    """400 listing every issue with its field path (nothing was written)."""
    errors = [{"attr": i.path, "detail": i.message} for i in issues]
    first = errors[0] if errors else {"attr": None, "detail": "invalid input"}
    detail = "; ".join(f"{e['attr']}: {e['detail']}" if e["attr"] else str(e["detail"]) for e in errors)
    return JSONResponse(
        {
            "type": "validation_error",
            "code": "invalid_input",
            "detail": detail or "invalid input",
            "attr": first["attr"],
            "errors": errors,
        },
        status_code=400,
    )


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body: dict[str, Any] = {"type": exc.type, "code": exc.code, "detail": exc.detail, "attr": exc.attr}
    if exc.type == "validation_error":
        body["errors"] = [{"attr": exc.attr, "detail": exc.detail}]
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationFailed)
    return validation_response(exc.issues)


async def store_not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"type": "invalid_request", "code": "not_found", "detail": str(exc) or "Not found.", "attr": None},
        status_code=404,
    )


async def conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Conflict)
    current = exc.current_version
    code = "stale_version" if current is not None else "has_dependents" if exc.dependents else "conflict"
    body: dict[str, Any] = {
        "type": "conflict",
        "code": code,
        "detail": str(exc),
        "attr": "version" if current else None,
        "current_version": current,
    }
    if exc.dependents:
        body["dependents"] = exc.dependents
    return JSONResponse(body, status_code=409)


async def unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {
            "type": "server_error",
            "code": "store_unavailable",
            "detail": "the flag store is unavailable; retry",
            "attr": None,
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )


SERVER_ERROR_BODY = json.dumps(
    {
        "type": "server_error",
        "code": "error",
        "detail": "an unexpected error occurred; see the server log",
        "attr": None,
    }
).encode()


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return JSONResponse(
        {"type": "invalid_request", "code": code, "detail": exc.detail, "attr": None},
        status_code=exc.status_code,
        headers=exc.headers,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: api_error,
    ValidationFailed: validation_failed,
    NotFound: store_not_found,
    Conflict: conflict,
    StoreUnavailable: unavailable,
    HTTPException: http_exception,
}
