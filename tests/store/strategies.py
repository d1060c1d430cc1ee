"""Hypothesis strategies for the store's read path (hedging, breakers)."""

from __future__ import annotations

from hypothesis import strategies as st

# What one server does with one read: answer after a delay, fail after a delay, or never answer (a stall).
FAST, SLOW, STALL, ERROR = "fast", "slow", "stall", "error"
OUTCOMES = st.sampled_from([FAST, SLOW, STALL, ERROR])


@st.composite
def read_rounds(draw: st.DrawFn) -> tuple[int, list[list[str]]]:
    """A number of servers (2-3) and 1-6 reads, each giving every server's outcome for that read."""
    servers = draw(st.integers(2, 3))
    rounds = draw(st.lists(st.lists(OUTCOMES, min_size=servers, max_size=servers), min_size=1, max_size=6))
    return servers, rounds


# A breaker's life: failures, successes, cancelled probes and the time between them (seconds).
BREAKER_EVENTS = st.lists(
    st.tuples(st.sampled_from(["failure", "success", "inconclusive", "ask"]), st.floats(0, 0.5)),
    max_size=60,
)
