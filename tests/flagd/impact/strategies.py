"""Hypothesis strategies for the what-if and change-description tests: persons, rollouts, variant splits."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

distinct_ids = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
    min_size=1,
    max_size=60,
)
rollouts = st.integers(min_value=0, max_value=100)
bucketings = st.sampled_from(["murmur3", "posthog"])


@st.composite
def variant_splits(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two or three variants whose percentages add up to 100."""
    first = draw(st.integers(min_value=0, max_value=100))
    second = draw(st.integers(min_value=0, max_value=100 - first))
    parts = [first, second, 100 - first - second]
    return [{"key": name, "rollout_percentage": pct} for name, pct in zip("abc", parts, strict=True)]
