"""Decoding SDK request bodies: gzip, base64 forms and JSON, within the limits.

PostHog clients send JSON, gzip-compressed JSON (``Content-Encoding: gzip`` or ``?compression=gzip`` /
``gzip-js``), or a form ``data=<base64 JSON>`` (``?compression=base64``, posthog-js). Decompression is
bounded: the output is cut off one byte past ``max_body_bytes``, so a gzip bomb is a 413, never a memory
spike. JSON is decoded by prebuilt msgspec decoders into typed Structs; a wrong type is a 400 naming the
field.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from flagd.errors import BadRequest, LimitExceeded, PayloadTooLarge
from flagd.limits import Limits

T = TypeVar("T")
_GZIP_MAGIC = b"\x1f\x8b"
_size_encoder = msgspec.json.Encoder()


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate gzip (or zlib) ``data``, refusing output over ``limit`` bytes."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # auto-detect gzip or zlib header
    try:
        out = inflater.decompress(data, limit + 1)
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


def unwrap(body: bytes, query: dict[str, str], headers: dict[bytes, bytes], limit: int) -> bytes:
    """Undo gzip and base64-form encodings (in that order), as the query, headers or the bytes say."""
    compression = query.get("compression", "")
    if (
        body[:2] == _GZIP_MAGIC
        or compression.startswith("gzip")
        or headers.get(b"content-encoding", b"").lower() in (b"gzip", b"deflate")
    ):
        body = gunzip(body, limit)
    # Sniff the form rather than trusting Content-Type: curl and some clients label JSON as a form.
    if compression == "base64" or body[:5] == b"data=":
        body = unform(body, limit)
    return body


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """Decode JSON into the decoder's type; errors become a 400 that quotes msgspec's path (``$.groups``)."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object", code="invalid_body")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}", code="invalid_body") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from exc


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
