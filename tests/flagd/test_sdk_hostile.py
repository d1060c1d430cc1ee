"""Hostile and careless bodies on every SDK route: depth, size, shape, encoding, version and key abuse.

Each test covers a class of input, not one example; every answer must be a 4xx naming what was wrong (or a
2xx), never a 500. Time per rejected body is measured in ``bench/bodies.py``, not here.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagd.errors import LimitExceeded
from flagd.limits import Limits
from flagd.sdk.bodies import check_prefix, check_structure
from flagd.sdk.flags import MAX_VERSION, version_of
from flagd.sdk.responses import Shape, shape_for
from tests.flagd.sdk_support import TOKEN_A, client, make_app
from tests.flagd.strategies import depth, encodings, json_values, nested_text, sdk_bodies, value_count

OFREP_ONE = "/ofrep/v1/evaluate/flags/always-on"
OFREP_BULK = "/ofrep/v1/evaluate/flags"
# (route, where the hostile JSON goes: a template with NEST in place of it)
_TEMPLATES = {
    "/flags?v=2": '{"api_key": "TOKEN", "distinct_id": "u", "person_properties": {"p": NEST}}',
    "/decide/?v=3": '{"api_key": "TOKEN", "distinct_id": "u", "groups": NEST}',
    OFREP_ONE: '{"context": {"targetingKey": "u", "p": NEST}}',
    OFREP_BULK: '{"context": NEST}',
    "/batch/": '{"api_key":"TOKEN","batch":[{"event":"e","distinct_id":"u","properties":{"p":NEST}}]}',
    "/capture/": '{"api_key": "TOKEN", "event": "e", "distinct_id": "u", "$set": NEST}',
}
ROUTES = {path: template.replace("TOKEN", TOKEN_A) for path, template in _TEMPLATES.items()}
SDK_PATHS = [*ROUTES, "/e/", "/i/v0/e/", "/flags/", "/decide/?v=4"]


async def send(http: httpx.AsyncClient, path: str, body: bytes, **headers: str) -> httpx.Response:
    if path.startswith("/ofrep"):
        headers["Authorization"] = f"Bearer {TOKEN_A}"
    return await http.post(path, content=body, headers=headers)


def detail(response: httpx.Response) -> str:
    payload = response.json()
    return str(payload.get("detail") or payload.get("errorDetails"))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), max_depth=st.integers(1, 8), max_elements=st.integers(1, 60))
def test_structure_check_agrees_with_the_decoded_shape(
    data: st.DataObject, max_depth: int, max_elements: int
) -> None:
    """check_structure refuses a JSON text exactly when its value is too deep or has too many values."""
    value = data.draw(json_values(60))
    body = data.draw(encodings(value))
    too_deep = depth(value) > max_depth
    too_many = value_count(value) > max_elements
    if too_deep or too_many:
        with pytest.raises(LimitExceeded) as raised:
            check_structure(body, max_depth, max_elements)
        named = raised.value.detail
        assert (f"max_json_depth={max_depth}" in named and too_deep) or (
            f"max_json_elements={max_elements}" in named and too_many
        )
    else:
        check_structure(body, max_depth, max_elements)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), max_elements=st.integers(1, 60))
def test_a_prefix_is_refused_only_when_the_whole_body_would_be(
    data: st.DataObject, max_elements: int
) -> None:
    """check_prefix (run on the first inflated MiB) never refuses a body that is within the limit."""
    value = data.draw(json_values(60))
    body = data.draw(encodings(value))
    prefix = body[: data.draw(st.integers(0, len(body)))]
    try:
        check_prefix(prefix, max_elements)
    except LimitExceeded:
        assert value_count(value) > max_elements


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize("kind", ["[", "{"])
@pytest.mark.parametrize("levels", [33, 1_000, 15_000])
async def test_deep_nesting_is_400_naming_the_limit_on_every_route(path: str, kind: str, levels: int) -> None:
    """JSON nested past max_json_depth anywhere in an SDK body is a 400 naming the limit, not a 500."""
    body = ROUTES[path].replace("NEST", nested_text(levels, kind)).encode()
    async with client(make_app()) as http:
        response = await send(http, path, body)
        top = await send(http, path, nested_text(levels, kind).encode())
    for answer in (response, top):
        assert answer.status_code == 400, answer.text
        assert "max_json_depth=32" in detail(answer)


@pytest.mark.parametrize("path", list(ROUTES))
async def test_nesting_up_to_the_limit_is_still_read(path: str) -> None:
    """A value nested exactly max_json_depth deep in total is not refused for its depth."""
    limits = Limits(max_json_depth=12)
    template = ROUTES[path]
    body = template.replace("NEST", nested_text(12 - template.count("{") - template.count("["))).encode()
    async with client(make_app(limits=limits)) as http:
        response = await send(http, path, body)
    assert "max_json_depth" not in response.text


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize(
    "flood",
    [
        "[" + ",".join(["[]"] * 25_000) + "]",  # the issue's [[],[],...]
        "[" + ",".join(["0"] * 25_000) + "]",
        "{" + ",".join(f'"k{i}":1' for i in range(25_000)) + "}",
        "[" + ",".join(['""'] * 25_000) + "]",
    ],
)
async def test_too_many_values_are_refused_naming_the_limit(path: str, flood: str) -> None:
    """More JSON values than max_json_elements (or the events' limit) in one body is a 400 naming it."""
    body = ROUTES[path].replace("NEST", flood).encode()
    limits = Limits(max_event_json_elements=20_000)
    async with client(make_app(limits=limits)) as http:
        response = await send(http, path, body)
    assert response.status_code == 400, response.text
    name = "max_event_json_elements" if path in ("/batch/", "/capture/") else "max_json_elements"
    assert f"{name}=20000" in detail(response)


@pytest.mark.parametrize("path", ["/flags?v=2", "/batch/", OFREP_ONE])
async def test_brackets_commas_and_escapes_inside_strings_do_not_count(path: str) -> None:
    """Strings full of brackets, commas, quotes and backslashes are text, not structure: accepted."""
    text = '[[[{{{,,,\\"]]' * 700  # 9,100 characters, thousands of "brackets" and "commas"
    body = ROUTES[path].replace("NEST", json.dumps(text)).encode()
    async with client(make_app(limits=Limits(max_json_elements=100, max_event_json_elements=100))) as http:
        response = await send(http, path, body)
    assert response.status_code == 200, response.text


async def test_a_small_gzip_body_inflating_to_megabytes_of_lists_is_refused_without_decoding() -> None:
    """5 KB of gzip that inflates to 5 MiB of [[],[],...] is refused before decoding: memory stays small."""
    inflated = b'{"api_key":"' + TOKEN_A.encode() + b'","batch":[' + b",".join([b"[]"] * 1_747_000) + b"]}"
    assert len(inflated) <= 5 * 1024 * 1024
    zipped = gzip.compress(inflated, 9)
    assert len(zipped) < 10_000
    async with client(make_app()) as http:
        await send(http, "/batch/", b'{"api_key":"x"}')  # warm up: imports and caches outside the measure
        tracemalloc.start()
        try:
            response = await send(http, "/batch/", zipped, **{"Content-Encoding": "gzip"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 400, response.text
    assert "max_event_json_elements" in detail(response)
    # The inflated bytes and one structural copy of them; decoding them would take ~100 MB.
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "body", "attr"),
    [
        ("/batch/", b"[[],[],[],[]]", "[0]"),
        ("/batch/", b'{"batch": [7, [], {}]}', "batch[0]"),
        ("/batch/", b'{"batch": [{"event": "e", "distinct_id": "u", "$set": []}]}', "batch[0].$set"),
        ("/flags?v=2", b"[[],[],[]]", None),
        ("/flags?v=2", b'{"flag_keys_to_evaluate": [[], [], []]}', "flag_keys_to_evaluate[0]"),
        ("/flags?v=2", b'{"groups": {"company": []}}', "groups[...]"),  # msgspec's notation
    ],
)
async def test_wrong_shapes_are_refused_at_their_first_element(
    path: str, body: bytes, attr: str | None
) -> None:
    """A body of the wrong shape is a 400 naming the first wrong element's path."""
    async with client(make_app()) as http:
        response = await send(http, path, body)
    assert response.status_code == 400
    assert response.json()["attr"] == attr


@given(st.text(max_size=6000))
def test_any_v_maps_onto_a_known_version(raw: str) -> None:
    """Whatever ?v= says (huge, Unicode digits, junk), the version is in 0..MAX_VERSION; nothing raises."""
    version = version_of({"v": raw})
    assert 0 <= version <= MAX_VERSION


@pytest.mark.parametrize(
    ("v", "shape"),
    [
        ("9" * 5000, Shape.DETAILED_TYPED),
        ("4" + "0" * 40, Shape.DETAILED_TYPED),
        ("²", Shape.LEGACY),
        ("-3", Shape.LEGACY),
    ],
)
async def test_huge_or_odd_v_is_answered_in_a_known_shape(v: str, shape: Shape) -> None:
    """A 5,000-digit v gets v4's shape (not a 500); a Unicode digit or a sign counts as no version."""
    body = json.dumps({"api_key": TOKEN_A, "distinct_id": "u"})
    async with client(make_app()) as http:
        response = await http.post("/flags", params={"v": v}, content=body)
    assert response.status_code == 200, response.text
    assert shape_for("flags", version_of({"v": v})) is shape
    assert ("flags" in response.json()) is (shape is Shape.DETAILED_TYPED)


@pytest.mark.parametrize(
    "escaped",
    [r'"\ud800"', r'"\udfff"', r'"x\udbff y"', r'"\ud800\u0041"', r'"\udc00\ud800"'],
)
@pytest.mark.parametrize("where", ["distinct_id", "key"])
async def test_lone_surrogate_is_reported_as_such(escaped: str, where: str) -> None:
    """A lone UTF-16 surrogate escape is named as one (not "Input data was truncated")."""
    if where == "key":
        body = f'{{"api_key": "{TOKEN_A}", "distinct_id": "u", "person_properties": {{{escaped}: 1}}}}'
    else:
        body = f'{{"api_key": "{TOKEN_A}", "distinct_id": {escaped}}}'
    json.loads(body)  # valid JSON text for Python; only the surrogate makes it unusable
    async with client(make_app()) as http:
        response = await http.post("/flags?v=2", content=body)
    assert response.status_code == 400
    assert "lone UTF-16 surrogate" in response.json()["detail"]
    assert "truncated" not in response.json()["detail"]


async def test_surrogate_pairs_are_fine() -> None:
    """A proper high+low surrogate pair (an emoji, escaped) decodes as the character."""
    body = f'{{"api_key": "{TOKEN_A}", "distinct_id": "\\ud83d\\ude00"}}'
    async with client(make_app()) as http:
        response = await http.post("/flags?v=2", content=body)
    assert response.status_code == 200


@pytest.mark.parametrize("length", [201, 10_000])
async def test_ofrep_not_found_quotes_a_long_key_cut_short(length: int) -> None:
    """An unknown 10,000-character flag key is not echoed in full: the error quotes 200 characters."""
    key = "k" * length
    async with client(make_app()) as http:
        response = await send(http, f"/ofrep/v1/evaluate/flags/{key}", b'{"context": {"targetingKey": "u"}}')
    assert response.status_code == 404
    payload = response.json()
    assert payload["errorCode"] == "FLAG_NOT_FOUND"
    assert len(response.content) < 600
    assert f"({length} characters)" in payload["errorDetails"]
    assert payload["key"] == key[:200]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(SDK_PATHS), body=sdk_bodies(TOKEN_A), gzipped=st.booleans())
async def test_arbitrary_json_on_every_sdk_route_is_never_a_server_error(
    path: str, body: bytes, gzipped: bool
) -> None:
    """Any body (any JSON shape, depth or type; junk bytes; gzip or not) gets a 2xx or 4xx answer."""
    headers: dict[str, Any] = {"Content-Encoding": "gzip"} if gzipped else {}
    async with client(make_app()) as http:
        response = await send(http, path, gzip.compress(body) if gzipped else body, **headers)
    assert 200 <= response.status_code < 500, response.text
