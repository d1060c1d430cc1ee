"""Decoding SDK request bodies: gzip, base64 forms and JSON, within the limits.

PostHog clients send JSON, gzip-compressed JSON (``Content-Encoding: gzip`` or ``?compression=gzip`` /
``gzip-js``), or a form ``data=<base64 JSON>`` (``?compression=base64``, posthog-js). Decompression is
bounded: the output is cut off one byte past ``max_body_bytes``, so a gzip bomb is a 413, never a memory
spike. JSON is decoded by prebuilt msgspec decoders into typed Structs; a wrong type is a 400 naming the
field, raised at the first element of the wrong shape.

Before any decoding, ``check_structure`` bounds what the decoder may build: nesting depth
(``max_json_depth``) and the number of JSON values (``max_json_elements``), measured by a few C-speed passes
over the bytes (``bytes.count``/``translate``/``replace``; string contents are set aside first, so a ``[`` or
``,`` inside a string never counts). A small body is judged by plain byte counts alone; a body over a limit is
refused before a single object is allocated, so a rejected body costs one scan of its bytes, and an accepted
one at most ``max_json_elements`` decoded values.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from flagd.errors import BadRequest, LimitExceeded, PayloadTooLarge
from flagd.limits import Limits

T = TypeVar("T")
PROBE_BYTES = 1024 * 1024  # how much of an inflating body ``check_prefix`` sees before the rest is inflated
_GZIP_MAGIC = b"\x1f\x8b"
_size_encoder = msgspec.json.Encoder()
_WHITESPACE = b" \t\n\r"
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
# A \uD800-\uDFFF escape not part of a high+low pair (msgspec reports these as "Input data was truncated").
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _too_deep(max_depth: int) -> LimitExceeded:
    return LimitExceeded(
        f"request body nests arrays/objects more than max_json_depth={max_depth} levels deep"
    )


def _too_many(count: int, max_elements: int, name: str) -> LimitExceeded:
    return LimitExceeded(f"request body has at least {count} JSON values; the limit is {name}={max_elements}")


def check_structure(body: bytes, max_depth: int, max_elements: int, name: str = "max_json_elements") -> None:
    """Refuse (400 ``limit_exceeded``) a JSON body nested deeper than ``max_depth`` arrays/objects, or with
    more than ``max_elements`` values (the body itself and every item of every array and object), before
    decoding it.

    Cost: three ``bytes.count`` calls for a body whose raw counts are already within both limits (every SDK
    request in practice); otherwise a few more C-speed passes, the cheapest that can decide first: a body
    refused for its size usually after counting its commas once more. ``name`` is the limit's name."""
    commas = body.count(b",")
    if commas < max_elements:
        opens = body.count(b"[") + body.count(b"{")
        if opens <= max_depth and opens + commas < max_elements:
            return  # counted with string contents included: the real counts can only be lower
    if b"\\" in body:
        # Escaped backslashes first, then escaped quotes: what is left of '"' delimits strings.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes = body.count(b'"')
    if quotes > 4 * max_elements + 4:  # every string is a key or a value: two of them per value at most
        raise _too_many(quotes // 4, max_elements, name)
    outside = _Outside(body, quotes)
    if quotes:
        commas = outside.count(b",")
    if commas >= max_elements:  # every comma adds an item: that alone is too many
        raise _too_many(commas + 1, max_elements, name)
    marks = outside.marks()  # strings as '0', no whitespace
    opens = marks.count(b"[") + marks.count(b"{")
    # Every item but the first of a container follows a comma; an empty container has no first item.
    count = 1 + commas + opens - marks.count(b"[]") - marks.count(b"{}")
    if count > max_elements:
        raise _too_many(count, max_elements, name)
    if opens <= max_depth:
        return
    # Peel the innermost pairs off, one level per pass: a body of depth d is empty after d passes.
    brackets = marks.translate(_AS_SQUARE, _NOT_BRACKET)
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break  # only unmatched brackets are left (not JSON; the decoder says where)
        brackets = shorter
    if b"[]" in brackets or brackets.count(b"[") > max_depth:
        raise _too_deep(max_depth)


def check_prefix(prefix: bytes, max_elements: int, name: str = "max_json_elements") -> None:
    """Refuse a body from its first bytes alone when they already hold more than ``max_elements`` values
    (commas outside strings; a prefix can only have fewer than the whole)."""
    if prefix.count(b",") < max_elements:
        return
    if b"\\" in prefix:
        prefix = prefix.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes = prefix.count(b'"')
    if quotes % 2:  # cut inside a string: leave that string out
        prefix = prefix[: prefix.rindex(b'"')]
        quotes -= 1
    if quotes > 4 * max_elements + 4:
        raise _too_many(quotes // 4, max_elements, name)
    commas = _Outside(prefix, quotes).count(b",")
    if commas >= max_elements:
        raise _too_many(commas + 1, max_elements, name)


class _Outside:
    """The text of a JSON body outside its strings (escaped quotes already removed), without copying it when
    the strings are few: then it is a list of ranges of the body."""

    __slots__ = ("_body", "_ranges")

    def __init__(self, body: bytes, quotes: int) -> None:
        self._body = body
        if quotes > 64:  # many strings: one copy, made of the parts between them
            self._body = b"0".join(body.split(b'"')[::2])
            quotes = 0
        ranges = []
        start = 0
        for _ in range(quotes // 2):
            opening = body.index(b'"', start)
            ranges.append((start, opening))
            start = body.index(b'"', opening + 1) + 1
        ranges.append((start, len(self._body)))  # an unterminated string's text counts as structure
        self._ranges = ranges

    def count(self, sub: bytes) -> int:
        body = self._body
        return sum(body.count(sub, start, end) for start, end in self._ranges)

    def marks(self) -> bytes:
        """The outside text as one string, each string replaced by '0', whitespace removed."""
        body = self._body
        joined = b"0".join(body[start:end] for start, end in self._ranges)
        return joined.translate(None, _WHITESPACE)


def gunzip(data: bytes, limit: int, probe: Callable[[bytes], None] | None = None) -> bytes:
    """Inflate gzip (or zlib) ``data``, refusing output over ``limit`` bytes.

    ``probe``, when given, sees the first ``PROBE_BYTES`` of a longer output before the rest is inflated,
    and may refuse the body from them (``check_prefix``): a small body that inflates to megabytes of
    structure is stopped after one."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # auto-detect gzip or zlib header
    try:
        out = inflater.decompress(data, min(limit + 1, PROBE_BYTES) if probe else limit + 1)
        if probe is not None and inflater.unconsumed_tail and len(out) < limit + 1:
            probe(out)
            out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}", code="invalid_compression") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is over max_body_bytes={limit}")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated", code="invalid_compression")
    return out


def unform(data: bytes, limit: int) -> bytes:
    """The JSON inside a ``data=<base64>`` form body."""
    try:
        fields = dict(parse_qsl(data.decode("latin-1"), keep_blank_values=True))
    except ValueError as exc:
        raise BadRequest(f"form body could not be parsed: {exc}", code="invalid_form") from exc
    encoded = fields.get("data")
    if encoded is None:
        raise BadRequest("form body has no 'data' field", code="invalid_form", attr="data")
    # '+' may arrive as a space when the client did not percent-encode it.
    encoded = encoded.replace(" ", "+").strip()
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=None, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"form field 'data' is not base64: {exc}", code="invalid_form", attr="data") from exc
    if len(raw) > limit:
        raise PayloadTooLarge(f"decoded body is over max_body_bytes={limit}")
    return raw


def unwrap(
    body: bytes,
    query: dict[str, str],
    headers: dict[bytes, bytes],
    limit: int,
    probe: Callable[[bytes], None] | None = None,
) -> bytes:
    """Undo gzip and base64-form encodings (in that order), as the query, headers or the bytes say;
    ``probe``: see ``gunzip``."""
    compression = query.get("compression", "")
    if (
        body[:2] == _GZIP_MAGIC
        or compression.startswith("gzip")
        or headers.get(b"content-encoding", b"").lower() in (b"gzip", b"deflate")
    ):
        body = gunzip(body, limit, probe)
    # Sniff the form rather than trusting Content-Type: curl and some clients label JSON as a form.
    if compression == "base64" or body[:5] == b"data=":
        body = unform(body, limit)
    return body


def decode(
    decoder: msgspec.json.Decoder[T],
    body: bytes,
    max_depth: int,
    max_elements: int,
    limit_name: str = "max_json_elements",
) -> T:
    """Decode JSON into the decoder's type, within the structure limits (``check_structure``); errors become
    a 400 that quotes msgspec's path (``$.groups``)."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object", code="invalid_body")
    if len(body) > PROBE_BYTES:  # a flood is refused from its first MiB
        check_prefix(body[:PROBE_BYTES], max_elements, limit_name)
    check_structure(body, max_depth, max_elements, limit_name)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}", code="invalid_body", attr=field_path(exc)) from exc
    except msgspec.DecodeError as exc:
        detail = f"request body is not valid JSON: {json_problem(exc, body)}"
        raise BadRequest(detail, code="invalid_json") from exc


def field_path(exc: msgspec.ValidationError) -> str | None:
    """The field a msgspec validation error is about, as flagd names fields (``batch[3].distinct_id``)."""
    _, sep, where = str(exc).rpartition(" - at `$")
    if not sep or not where.endswith("`"):
        return None
    return where[:-1].removeprefix(".") or None


def json_problem(exc: msgspec.DecodeError, body: bytes) -> str:
    """msgspec's message, except where it misleads: a lone surrogate escape is reported as "Input data was
    truncated" (or as a bad pair, when followed by another escape)."""
    message = str(exc)
    if "truncated" in message or "surrogate" in message:
        lone = _LONE_SURROGATE.search(body)
        if lone is not None:
            escape = lone.group().decode("ascii")
            return (
                f"the string escape {escape} at byte {lone.start()} is a lone UTF-16 surrogate "
                "(not a character; a surrogate escape must be a high one followed by a low one)"
            )
    return message


def check_properties(props: dict[str, Any], where: str, limits: Limits) -> None:
    """Enforce ``max_properties`` and ``max_property_value_chars`` on one property map."""
    if len(props) > limits.max_properties:
        raise LimitExceeded(
            f"{where} has {len(props)} entries; the limit is max_properties={limits.max_properties}",
            attr=where,
        )
    cap = limits.max_property_value_chars
    for name, value in props.items():
        kind = type(value)
        if kind is str:
            size = len(value)
        elif kind is dict or kind is list:
            size = len(_size_encoder.encode(value))
        else:
            continue
        if size > cap:
            raise LimitExceeded(
                f"{where}.{name} is {size} characters; the limit is max_property_value_chars={cap}",
                attr=f"{where}.{name}",
            )


def stringify_id(value: object, limit: int) -> str:
    """A distinct id or targeting key as PostHog keeps it: a string, at most ``limit`` characters."""
    if type(value) is str:
        return value[:limit]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))[:limit]
    return str(value)[:limit]
