"""The evaluator's public API is small and deliberate: exactly these names, all importable."""

from __future__ import annotations

import evaluator

PUBLIC = {
    "COMPILED",
    "PURE_REASON",
    "Context",
    "Decision",
    "EvaluatorError",
    "Explanation",
    "InvalidDefinitionError",
    "Issue",
    "Snapshot",
    "compile_flags",
    "validate_cohort",
    "validate_flag",
}


def test_all_is_the_public_api() -> None:
    """__all__ lists exactly the public names, and each resolves."""
    assert set(evaluator.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(evaluator, name)
