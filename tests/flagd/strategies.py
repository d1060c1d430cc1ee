"""Hypothesis strategies for the server's tests: request latencies and worker steps (status page), hostile
admin inputs."""

from __future__ import annotations

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
