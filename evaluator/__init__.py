"""flagd's evaluator: PostHog-compatible feature-flag evaluation, pure and in-process.

Compile a project's flags once (``compile_flags``), then evaluate any number of contexts against the
immutable ``Snapshot``. No I/O, no asyncio, no logging: it imports only the standard library, msgspec,
mmh3, python-dateutil (dates beyond ISO-8601) and (for regex filters) google-re2.
"""

from evaluator.errors import EvaluatorError, InvalidDefinitionError
from evaluator.explain import Explanation
from evaluator.model import Context, Decision, Issue
from evaluator.snapshot import Snapshot, compile_flags
from evaluator.validation import validate_cohort, validate_flag

__all__ = [
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
]
