"""Errors of the evaluator. The tree::

    EvaluatorError
    ├── InvalidDefinitionError      a definition cannot be compiled; carries the Issue (path, message)
    └── BehaviourUnavailableError   a behavioural count the store should have answered is missing
                                    (internal: ``Snapshot.evaluate`` answers the flag ``store_unavailable``)

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


class BehaviourUnavailableError(EvaluatorError):
    """A behavioural cohort leaf found no count for its query in ``Context.behaviour``.

    Raised inside a flag's evaluation and caught by ``Snapshot.evaluate``, which answers that flag (and every
    flag depending on it) with the ``store_unavailable`` error decision; it never escapes the evaluator."""

    def __init__(self, query_key: str) -> None:
        super().__init__(f"no count for behaviour query {query_key!r}")
        self.query_key = query_key
