"""Hypothesis strategies for the server's tests: request latencies and worker steps (status page), hostile
admin inputs, and arbitrary JSON for the SDK edge (any depth, size and type; ``depth`` and ``value_count``
are the reference measures ``flagd.sdk.bodies.check_structure`` must agree with)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Request latencies in seconds, as the server measures them: 10 µs to 10 s.
latency = st.floats(min_value=1e-5, max_value=10.0, allow_nan=False, allow_infinity=False)
latencies = st.lists(latency, min_size=1, max_size=300)
quantile = st.sampled_from((0.5, 0.9, 0.99))

# Two workers' steps: (worker 0 or 1, requests it answers, seconds that pass, whether a reader reads).
worker_steps = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 5), st.integers(0, 3), st.booleans()), min_size=1, max_size=60
)

INT64_MAX = (1 << 63) - 1

# Characters str.isdigit() (or int()) accepts that are not ASCII digits: superscripts, Arabic-Indic,
# fullwidth, Devanagari digits; and signs, spaces and underscores int() tolerates.
_LOOKALIKES = "²³¹٣۴０１５९_ +-"


def bad_ids() -> st.SearchStrategy[str]:
    """Path ids that are not a plain int64: too big, too long, non-ASCII digits, signs, spaces, empty-ish."""
    too_big = st.integers(min_value=INT64_MAX + 1, max_value=10**40).map(str)
    very_long = st.integers(min_value=20, max_value=5000).map(lambda n: "9" * n)
    lookalike = st.text(alphabet="0123456789" + _LOOKALIKES, min_size=1, max_size=8).filter(
        lambda s: not s.isascii() or not s.isdigit()
    )
    return st.one_of(too_big, very_long, lookalike, st.sampled_from(["1e3", "0x1", "1.0", "١"]))


def nested(depth: int) -> object:
    """A JSON value nested ``depth`` levels (lists and objects alternating)."""
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


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


def nested_text(levels: int, kind: str = "[", inner: str = "1") -> str:
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
            json.dumps({"api_key": token, where: None}).replace("null", nested_text(levels, kind)).encode()
        ),
        st.integers(1, 3000),
        st.sampled_from(["[", "{"]),
        fields,
    )
    return st.one_of(
        json_values().map(lambda v: json.dumps(v).encode()), plausible, deep, st.binary(max_size=64)
    )
