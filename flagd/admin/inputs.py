"""Reading admin requests: bounded JSON bodies, pagination and version parameters; bad ones are 400s."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request

from flagd.admin.errors import ApiError, invalid

_decoder = msgspec.json.Decoder()
MAX_LIMIT = 1000
MAX_ID = (1 << 63) - 1  # ids are int64 in both stores
MAX_DEPTH = 32  # nesting of an admin JSON body: a flag needs ~8, a nested cohort a few more
_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() accepts "²" and "٣", int() then fails
_ETAG_VERSION = re.compile(r'^(?:W/)?"?([0-9]{1,19})"?$')


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object; 413 past ``max_bytes`` (checked while reading), 400 if malformed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "validation_error", "parse_error", f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise _too_deep("") from None
    if not isinstance(body, dict):
        raise invalid("", "the body must be a JSON object")
    check_json(body)
    return body


def check_json(body: Any) -> None:
    """400 for a body nested deeper than ``MAX_DEPTH`` or holding a NUL character (neither store can keep
    one: PostgreSQL text and jsonb reject it). Iterative, so the check itself cannot overflow the stack."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise invalid(path, "must not contain a NUL character (\\u0000)")
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep(path)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if isinstance(name, str) and "\x00" in name:
                    raise invalid(path, "keys must not contain a NUL character (\\u0000)")
                where = f"{path}[{name}]" if isinstance(name, int) else (f"{path}.{name}" if path else name)
                stack.append((item, where, depth + 1))


def _too_deep(path: str) -> ApiError:
    return ApiError(
        400,
        "validation_error",
        "too_deep",
        f"the body is nested deeper than the admin limit of {MAX_DEPTH} levels",
        attr=path,
    )


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "invalid_request",
        "request_too_large",
        f"the request body is larger than the admin limit of {max_bytes} bytes",
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


def page_params(request: Request, *, default_limit: int = 100) -> PageParams:
    """``limit`` (1..1000) and ``offset`` (>= 0) from the query string."""
    return PageParams(
        limit=_int_param(request, "limit", default_limit, 1, MAX_LIMIT),
        offset=_int_param(request, "offset", 0, 0, 1 << 31),
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"must be an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise invalid(name, f"must be an integer between {low} and {high}")
    return value


MAX_SEARCH = 200


def text_param(request: Request, name: str, *, max_len: int = MAX_SEARCH) -> str | None:
    """An optional free-text query parameter: at most ``max_len`` characters, no NUL (PostgreSQL refuses)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if "\x00" in raw:
        raise invalid(name, "must not contain a NUL character")
    if len(raw) > max_len:
        raise invalid(name, f"must be at most {max_len} characters")
    return raw


def optional_int_param(request: Request, name: str) -> int | None:
    """An optional positive integer query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return _int_param(request, name, 0, 1, 1 << 62)


def parse_id(raw: str, name: str) -> int | None:
    """The one reading of a numeric id (path parameters, CLI arguments): 1 to 19 ASCII digits, at most
    int64; None for anything else (Unicode digits, signs, spaces, 5,000 digits, values past int64)."""
    if not _ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def path_id(request: Request, name: str) -> int:
    """A numeric id from the path; 404 when it is not one (as if the entity did not exist)."""
    raw = request.path_params[name]
    value = parse_id(raw, name)
    if value is None:
        raise ApiError(404, "invalid_request", "not_found", f"{name} must be a number, got {shown(raw)}")
    return value


def shown(raw: str) -> str:
    """A client's value echoed in an error, cut short (a 5,000-digit id is not worth 5,000 bytes back)."""
    return repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}... ({len(raw)} characters)"


def expected_version(request: Request, body: dict[str, Any]) -> int | None:
    """The version a PATCH/DELETE expects: body ``version`` or the ``If-Match`` header (both: must agree)."""
    from_body: int | None = None
    if "version" in body:
        value = body.pop("version")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise invalid("version", "must be a positive integer (the version you last read)")
            from_body = value
    header = request.headers.get("if-match")
    from_header: int | None = None
    if header is not None and header.strip() not in ("", "*"):
        match = _ETAG_VERSION.match(header.strip())
        if match is None:
            raise invalid("If-Match", 'must be the version you last read, e.g. If-Match: "3"')
        from_header = int(match.group(1))
    if from_body is not None and from_header is not None and from_body != from_header:
        raise invalid("version", f"the body says version {from_body} but If-Match says {from_header}")
    return from_body if from_body is not None else from_header


def take_deleted(body: dict[str, Any], kind: str) -> bool | None:
    """Pop a PATCH body's ``deleted``: ``True`` asks for a soft delete, which takes no other changes."""
    deleted = body.pop("deleted", None)
    if deleted is not None and not isinstance(deleted, bool):
        raise invalid("deleted", "must be true or false")
    if deleted and body:
        raise invalid("deleted", f"deleting a {kind} cannot be combined with other changes")
    return deleted
