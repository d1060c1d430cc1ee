"""flagd's evaluator: PostHog-compatible feature-flag evaluation, pure and in-process.

Compile a project's flags once (``compile_flags``), then evaluate any number of contexts against the
immutable ``Snapshot``. No I/O (beyond choosing, at import, which build loads), no asyncio, no
logging: it imports only the standard library, msgspec, mmh3, python-dateutil (dates beyond ISO-8601) and
(for regex filters) google-re2.

The package is compiled to a C extension with mypyc when built with a C compiler (wheels, the Docker
image, ``make compile``); ``COMPILED`` says which one runs, ``PURE_REASON`` why the sources run when
compiled modules are present but not used (``evaluator/_loading.py``).
"""

from pathlib import Path

from evaluator._loading import choose

PURE_REASON = choose(__name__, Path(__file__).parent)

# The rest loads only after choosing where the package's modules load from.
from evaluator import snapshot as _snapshot  # noqa: E402
from evaluator.errors import EvaluatorError, InvalidDefinitionError  # noqa: E402
from evaluator.explain import Explanation  # noqa: E402
from evaluator.model import Context, Decision, Issue  # noqa: E402
from evaluator.snapshot import Snapshot, compile_flags  # noqa: E402
from evaluator.validation import validate_cohort, validate_flag  # noqa: E402

COMPILED: bool = not str(_snapshot.__file__).endswith(".py")

__all__ = [
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
]
