"""Fused checks for the most common property filters: the dict lookup, the missing-key rule and the operator
in one object, saving a call per filter on the hot path.

Each is an exact re-statement of the generic path (``filters._property_check`` around an ``operators`` test)
for a positive operator without ``negation`` reading the condition's own properties; a test checks that
both paths agree on arbitrary values. Each is a ``PropertyTest``: callable as any check, and with a
``holds(props)`` the evaluation loop calls directly (a plain method call once compiled, no argument parsing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from evaluator.model import Context, Decision
from evaluator.operators import truthiness_test
from evaluator.values import stringify, to_number

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fused_check(
    operator: str, expected: Any, key: str, missing: object, property_matching_version: int = 1
) -> PropertyTest | None:
    """A fused check for ``operator`` (missing key: false), or None when there is none for it -- also for an
    ``exact`` that compares truthiness under ``property_matching_version`` (``operators.truthiness_test``)."""
    if operator == "exact":
        if truthiness_test(operator, expected, property_matching_version) is not None:
            return None
        return _exact(expected, key, missing)
    if operator == "icontains":
        text = stringify(expected)
        if text is None:
            return None
        return _IContains(key, missing, text.lower() if text.isascii() else text.translate(_ASCII_LOWER))
    if operator in _COMPARE:
        threshold = to_number(expected)
        if threshold is None:
            return None
        return _COMPARE[operator](key, missing, threshold)
    return None


class PropertyTest:
    """A positive filter on one property of the condition's own properties; false when it is missing."""

    __slots__ = ("key", "missing")

    def __init__(self, key: str, missing: object) -> None:
        self.key = key
        self.missing = missing

    def holds(self, props: dict[str, Any]) -> bool:
        raise NotImplementedError

    def __call__(self, props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return self.holds(props if isinstance(props, dict) else dict(props))


def _exact(expected: Any, key: str, missing: object) -> PropertyTest | None:
    items = expected if isinstance(expected, list) else [expected]
    texts = [stringify(item) for item in items]
    if not texts or any(text is None for text in texts):
        return None
    return _Exact(key, missing, frozenset(text.lower() for text in texts if text is not None))


class _Exact(PropertyTest):
    __slots__ = ("choices",)

    def __init__(self, key: str, missing: object, choices: frozenset[str]) -> None:
        super().__init__(key, missing)
        self.choices = choices

    def holds(self, props: dict[str, Any]) -> bool:
        value = props.get(self.key, self.missing)
        if value.__class__ is str:
            return value.lower() in self.choices
        if value is self.missing:
            return False
        text = stringify(value)
        return text is not None and text.lower() in self.choices


class _IContains(PropertyTest):
    __slots__ = ("needle",)

    def __init__(self, key: str, missing: object, needle: str) -> None:
        super().__init__(key, missing)
        self.needle = needle

    def holds(self, props: dict[str, Any]) -> bool:
        value = props.get(self.key, self.missing)
        if value.__class__ is not str:
            if value is self.missing:
                return False
            value = stringify(value)
            if value is None:
                return False
        return self.needle in (value.lower() if value.isascii() else value.translate(_ASCII_LOWER))


class _Compare(PropertyTest):
    """``gt``/``gte``/``lt``/``lte``: ints compared as they are (exact, however large), anything else
    through ``to_number``."""

    __slots__ = ("threshold",)

    def __init__(self, key: str, missing: object, threshold: int | float) -> None:
        super().__init__(key, missing)
        self.threshold = threshold

    def number(self, props: dict[str, Any]) -> Any:
        """The property as a number (an int as it is), or None."""
        value = props.get(self.key, self.missing)
        if value.__class__ is int or value is self.missing:
            return None if value is self.missing else value
        return to_number(value)


class _Gt(_Compare):
    __slots__ = ()

    def holds(self, props: dict[str, Any]) -> bool:
        number = self.number(props)
        return number is not None and bool(number > self.threshold)


class _Gte(_Compare):
    __slots__ = ()

    def holds(self, props: dict[str, Any]) -> bool:
        number = self.number(props)
        return number is not None and bool(number >= self.threshold)


class _Lt(_Compare):
    __slots__ = ()

    def holds(self, props: dict[str, Any]) -> bool:
        number = self.number(props)
        return number is not None and bool(number < self.threshold)


class _Lte(_Compare):
    __slots__ = ()

    def holds(self, props: dict[str, Any]) -> bool:
        number = self.number(props)
        return number is not None and bool(number <= self.threshold)


_COMPARE: Final[dict[str, type[_Compare]]] = {"gt": _Gt, "gte": _Gte, "lt": _Lt, "lte": _Lte}
