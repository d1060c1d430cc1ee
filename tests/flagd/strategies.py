"""Hypothesis strategies for the flagd package tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Request latencies in seconds, as the server measures them: 10 µs to 10 s.
latency = st.floats(min_value=1e-5, max_value=10.0, allow_nan=False, allow_infinity=False)
latencies = st.lists(latency, min_size=1, max_size=300)
quantile = st.sampled_from((0.5, 0.9, 0.99))
