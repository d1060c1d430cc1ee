"""What is wrong with a definition, collected while it compiles: validation and compilation share one walk."""

from __future__ import annotations

from typing import Any

from evaluator.model import Issue


class Problems:
    """Issues found so far. ``fatal`` ones make the flag unevaluable; the others (an invalid regex, which
    simply never matches) are reported by validation but let the flag compile."""

    __slots__ = ("fatal", "issues", "missing_dependency")

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.fatal: list[Issue] = []
        self.missing_dependency = False

    def error(self, path: str, message: str) -> None:
        issue = Issue(path, message)
        self.issues.append(issue)
        self.fatal.append(issue)

    def dependency(self, path: str, message: str) -> None:
        """A dependency that is missing, broken or circular: fatal, reported as ``missing_dependency``."""
        self.error(path, message)
        self.missing_dependency = True

    def warn(self, path: str, message: str) -> None:
        self.issues.append(Issue(path, message))

    def negation(self, raw: dict[str, Any], path: str) -> bool:
        """A filter's optional ``negation``: absent or null is False; anything but a bool is an error."""
        negation = raw.get("negation")
        if negation is None:
            return False
        if not isinstance(negation, bool):
            self.error(f"{path}.negation", "must be true or false")
            return False
        return negation

    def __bool__(self) -> bool:
        return bool(self.fatal)
