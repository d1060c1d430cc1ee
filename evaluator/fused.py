"""Fused checks for the most common property filters: the dict lookup, the missing-key rule and the operator
in one closure, saving a call per filter on the hot path.

Each is an exact re-statement of the generic path (``filters._property_check`` around an ``operators`` test)
for a positive operator without ``negation`` reading the condition's own properties; a test checks that
both paths agree on arbitrary values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from evaluator.model import Context, Decision
from evaluator.operators import truthiness_test
from evaluator.values import stringify, to_number

Check = Callable[[Mapping[str, Any], Context, dict[str, Decision]], bool]
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fused_check(
    operator: str, expected: Any, key: str, missing: object, property_matching_version: int = 1
) -> Check | None:
    """A fused check for ``operator`` (missing key: false), or None when there is none for it -- also for an
    ``exact`` that compares truthiness under ``property_matching_version`` (``operators.truthiness_test``)."""
    if operator == "exact":
        if truthiness_test(operator, expected, property_matching_version) is not None:
            return None
        return _exact(expected, key, missing)
    if operator == "icontains":
        return _icontains(expected, key, missing)
    if operator in _COMPARE:
        return _compare(operator, expected, key, missing)
    return None


def _exact(expected: Any, key: str, missing: object) -> Check | None:
    items = expected if isinstance(expected, list) else [expected]
    texts = [stringify(item) for item in items]
    if not texts or any(text is None for text in texts):
        return None
    choices = frozenset(text.lower() for text in texts if text is not None)

    def exact(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        value = props.get(key, missing)
        if value.__class__ is str:
            return value.lower() in choices
        if value is missing:
            return False
        text = stringify(value)
        return text is not None and text.lower() in choices

    return exact


def _icontains(expected: Any, key: str, missing: object) -> Check | None:
    text = stringify(expected)
    if text is None:
        return None
    needle = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)

    def icontains(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        value = props.get(key, missing)
        if value.__class__ is not str:
            if value is missing:
                return False
            value = stringify(value)
            if value is None:
                return False
        return needle in (value.lower() if value.isascii() else value.translate(_ASCII_LOWER))

    return icontains


_COMPARE: Final = frozenset({"gt", "gte", "lt", "lte"})


def _compare(operator: str, expected: Any, key: str, missing: object) -> Check | None:
    threshold = to_number(expected)
    if threshold is None:
        return None

    def number_of(props: Mapping[str, Any]) -> int | float | None:
        value = props.get(key, missing)
        kind = value.__class__
        if kind is int:
            exact: int = value
            return exact
        return None if value is missing else to_number(value)

    if operator == "gt":

        def gt(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            value = props.get(key, missing)
            if value.__class__ is int:
                return value > threshold
            number = number_of(props)
            return number is not None and number > threshold

        return gt
    if operator == "gte":

        def gte(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            value = props.get(key, missing)
            if value.__class__ is int:
                return value >= threshold
            number = number_of(props)
            return number is not None and number >= threshold

        return gte
    if operator == "lt":

        def lt(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
            value = props.get(key, missing)
            if value.__class__ is int:
                return value < threshold
            number = number_of(props)
            return number is not None and number < threshold

        return lt

    def lte(props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        value = props.get(key, missing)
        if value.__class__ is int:
            return value <= threshold
        number = number_of(props)
        return number is not None and number <= threshold

    return lte
