"""Errors of the evaluator. The tree::

    EvaluatorError
    └── InvalidDefinitionError   a definition cannot be compiled; carries the Issue (path, message)

Errors are data on the hot path: ``compile_flags`` never raises for a bad definition (the flag compiles into
one that always answers with an error Decision) and ``Snapshot.evaluate`` never raises.
``InvalidDefinitionError`` is for callers that want a definition problem as an exception.
"""

from __future__ import annotations

from evaluator.model import Issue


class EvaluatorError(Exception):
    """Root of every error the evaluator raises."""


class InvalidDefinitionError(EvaluatorError):
    """A definition is broken at ``issue.path``; the flag that holds it cannot be evaluated."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(f"{issue.path}: {issue.message}")
        self.issue = issue
