"""Hypothesis strategies for the SDK edge: arbitrary JSON (any depth, size and type) and the hostile shapes.

``json_values`` draws any JSON value, with strings full of the characters a structure scan could trip on
(brackets, commas, quotes, backslashes, surrogate pairs). ``depth`` and ``value_count`` are the reference
measures ``flagd.sdk.bodies.check_structure`` must agree with.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Characters that matter to a JSON structure scan, plus ordinary and non-BMP text.
_TRICKY = st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", ":", " ", "\n", "a", "é", "😀", "\\u"])
strings = st.one_of(st.text(max_size=12), st.lists(_TRICKY, max_size=12).map("".join))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
)


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, and arrays/objects nested to any depth."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=6), st.dictionaries(strings, children, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def encodings(value: Any) -> st.SearchStrategy[bytes]:
    """``value`` as JSON text: compact or indented, escaped to ASCII or not."""
    return st.builds(
        lambda indent, ascii_only: json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode(),
        st.sampled_from([None, 0, 2]),
        st.booleans(),
    )


def depth(value: Any) -> int:
    """How many arrays/objects deep ``value`` nests (a scalar: 0, ``[]``: 1, ``[[1]]``: 2)."""
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


def value_count(value: Any) -> int:
    """The JSON values in ``value``: itself and every item of every array and object, recursively."""
    if isinstance(value, list):
        return 1 + sum(value_count(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(value_count(item) for item in value.values())
    return 1


def nested(levels: int, kind: str = "[", inner: str = "1") -> str:
    """``levels`` arrays (``kind="["``) or objects (``"{"``) inside each other around ``inner``."""
    if kind == "[":
        return "[" * levels + inner + "]" * levels
    return '{"a":' * levels + inner + "}" * levels


def sdk_bodies(token: str) -> st.SearchStrategy[bytes]:
    """Bodies an SDK route might get: arbitrary JSON, or a plausible body with any JSON in one field."""
    fields = st.sampled_from(
        [
            "distinct_id",
            "person_properties",
            "groups",
            "group_properties",
            "flag_keys_to_evaluate",
            "context",
            "batch",
            "event",
            "properties",
            "$set",
            "timestamp",
        ]
    )
    plausible = st.builds(
        lambda extra, value: json.dumps(
            {
                "api_key": token,
                "distinct_id": "u",
                "event": "e",
                "context": {"targetingKey": "u"},
                extra: value,
            }
        ).encode(),
        fields,
        json_values(),
    )
    deep = st.builds(
        lambda levels, kind, where: (
            json.dumps({"api_key": token, where: None}).replace("null", nested(levels, kind)).encode()
        ),
        st.integers(1, 3000),
        st.sampled_from(["[", "{"]),
        fields,
    )
    return st.one_of(
        json_values().map(lambda v: json.dumps(v).encode()), plausible, deep, st.binary(max_size=64)
    )
