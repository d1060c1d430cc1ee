"""Body decoding: bounded gunzip, base64 forms, query parsing, and encoding-independence of answers."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagd.errors import BadRequest, PayloadTooLarge
from flagd.sdk.bodies import gunzip, stringify_id, unform, unwrap
from flagd.sdk.http import parse_query
from tests.flagd.sdk_support import TOKEN_A, client, make_app


def test_gunzip_is_bounded() -> None:
    """Inflating stops one byte past the limit: a highly compressible body is refused, not expanded."""
    data = gzip.compress(b"a" * 1_000_000)
    assert gunzip(data, 1_000_000) == b"a" * 1_000_000
    with pytest.raises(PayloadTooLarge):
        gunzip(data, 999_999)


def test_gunzip_accepts_zlib_and_refuses_garbage_and_truncation() -> None:
    """zlib-wrapped deflate works; garbage and truncated streams are 400s."""
    assert gunzip(zlib.compress(b"{}"), 100) == b"{}"
    with pytest.raises(BadRequest):
        gunzip(b"\x1f\x8b\x08garbage", 100)
    with pytest.raises(BadRequest):
        gunzip(gzip.compress(b"x" * 1000)[:20], 10_000)


def test_unform_tolerates_unescaped_plus_and_missing_padding() -> None:
    """A base64 form whose '+' arrived as a space, without '=' padding, still decodes."""
    raw = b'{"k":"~~~>>>"}'
    encoded = base64.b64encode(raw).decode()
    assert "+" in encoded or "/" in encoded
    form = ("data=" + encoded.replace("+", " ").rstrip("=")).encode()
    assert unform(form, 1000) == raw
    with pytest.raises(BadRequest):
        unform(b"other=1", 1000)


def test_parse_query() -> None:
    """Query strings decode percent-escapes, keep the first of repeated names, and allow bare names."""
    assert parse_query(b"v=4&token=phc%2Bx&send_cohorts&v=9") == {
        "v": "4",
        "token": "phc+x",
        "send_cohorts": "",
    }
    assert parse_query(b"") == {}


def test_stringify_id() -> None:
    """Numbers become their string form (integral floats without '.0'); everything is cut to the limit."""
    assert stringify_id(42, 200) == "42"
    assert stringify_id(42.0, 200) == "42"
    assert stringify_id(1.5, 200) == "1.5"
    assert stringify_id("x" * 300, 200) == "x" * 200


@given(st.binary(max_size=2000))
def test_unwrap_plain_bodies_pass_through(body: bytes) -> None:
    """A body that is neither gzip nor a form comes back unchanged."""
    if body[:2] == b"\x1f\x8b" or body[:5] == b"data=":
        return
    assert unwrap(body, {}, {}, 10_000) == body


_props = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.one_of(st.text(max_size=20), st.integers(-1000, 1000), st.booleans(), st.none()),
    max_size=5,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(distinct_id=st.text(min_size=1, max_size=40), props=_props)
async def test_every_encoding_gives_the_same_answer(distinct_id: str, props: dict[str, Any]) -> None:
    """JSON, gzip (announced by header, by ?compression=gzip, or not at all) and base64 forms (with or
    without ?compression=base64) of one request get identical flag answers."""
    body = json.dumps({"api_key": TOKEN_A, "distinct_id": distinct_id, "person_properties": props}).encode()
    zipped = gzip.compress(body)
    form = ("data=" + quote(base64.b64encode(body).decode())).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client(make_app()) as http:
        responses = [
            await http.post("/flags?v=2", content=body),
            await http.post("/flags?v=2", content=zipped, headers={"Content-Encoding": "gzip"}),
            await http.post("/flags?v=2&compression=gzip", content=zipped),
            await http.post("/flags?v=2", content=zipped),
            await http.post("/flags?v=2&compression=base64", content=form),
            await http.post("/flags?v=2", content=form, headers=form_type),
        ]
    answers = []
    for response in responses:
        assert response.status_code == 200, response.text
        answers.append({k: (r["enabled"], r["variant"]) for k, r in response.json()["flags"].items()})
    assert all(answer == answers[0] for answer in answers)
    assert "always-on" in answers[0]
