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


class DirectCheck:
    """A check the evaluation loop calls directly (compiled: a C call, no argument parsing), with the
    request's properties already read; callable as any check too."""

    __slots__ = ()

    def holds_for(self, ctx: Context, props: dict[str, Any], memo: dict[str, Decision]) -> bool:
        raise NotImplementedError

    def __call__(self, props: Mapping[str, Any], ctx: Context, memo: dict[str, Decision]) -> bool:
        return self.holds_for(ctx, props if isinstance(props, dict) else dict(props), memo)


class PropertyTest(DirectCheck):
    """A check reading only the condition's own properties: a fused filter, or an AND / OR of them."""

    __slots__ = ()

    def holds(self, props: dict[str, Any]) -> bool:
        raise NotImplementedError

    def holds_for(self, ctx: Context, props: dict[str, Any], memo: dict[str, Decision]) -> bool:
        return self.holds(props)


class Combined(PropertyTest):
    """Every test holds (``conjunction``), or some test does: ``cohorts.combine`` of fused tests only."""

    __slots__ = ("conjunction", "tests")

    def __init__(self, tests: tuple[PropertyTest, ...], conjunction: bool) -> None:
        self.tests = tests
        self.conjunction = conjunction

    def holds(self, props: dict[str, Any]) -> bool:
        conjunction = self.conjunction
        for test in self.tests:
            if test.holds(props) is not conjunction:
                return not conjunction
        return conjunction


class _OnKey(PropertyTest):
    """A positive filter on one property; false when it is missing."""

    __slots__ = ("key", "missing")

    def __init__(self, key: str, missing: object) -> None:
        self.key = key
        self.missing = missing


def _exact(expected: Any, key: str, missing: object) -> PropertyTest | None:
    items = expected if isinstance(expected, list) else [expected]
    texts = [stringify(item) for item in items]
    if not texts or any(text is None for text in texts):
        return None
    return _Exact(key, missing, frozenset(text.lower() for text in texts if text is not None))


class Lowered:
    """The last string one property's filters lowered, and its lowered form. Every flag testing that
    property in one request sees the same string object, so one lowering serves them all. One tuple,
    replaced whole (threads never see a value paired with another's form); it holds the value alive, so
    the identity test cannot match a recycled object."""

    __slots__ = ("ascii_only", "last")

    def __init__(self, ascii_only: bool) -> None:
        self.ascii_only = ascii_only  # icontains folds ASCII letters only; exact lowers as str.lower does
        self.last = ("", "")

    def of(self, text: str) -> str:
        last = self.last
        if last[0] is text:
            return last[1]
        form = text.lower() if not self.ascii_only or text.isascii() else text.translate(_ASCII_LOWER)
        self.last = (text, form)
        return form


_LOWERED: dict[tuple[str, bool], Lowered] = {}


def lowered(key: str, ascii_only: bool) -> Lowered:
    """The shared ``Lowered`` of one property name (bounded: a fresh set once 4096 names are held)."""
    found = _LOWERED.get((key, ascii_only))
    if found is None:
        if len(_LOWERED) >= 4096:
            _LOWERED.clear()
        found = _LOWERED[key, ascii_only] = Lowered(ascii_only)
    return found


class _Exact(_OnKey):
    __slots__ = ("choices", "lowered")

    def __init__(self, key: str, missing: object, choices: frozenset[str]) -> None:
        super().__init__(key, missing)
        self.choices = choices
        self.lowered = lowered(key, False)

    def holds(self, props: dict[str, Any]) -> bool:
        value = props.get(self.key, self.missing)
        if value.__class__ is str:
            return self.lowered.of(value) in self.choices
        if value is self.missing:
            return False
        text = stringify(value)
        return text is not None and text.lower() in self.choices


class _IContains(_OnKey):
    __slots__ = ("lowered", "needle")

    def __init__(self, key: str, missing: object, needle: str) -> None:
        super().__init__(key, missing)
        self.needle = needle
        self.lowered = lowered(key, True)

    def holds(self, props: dict[str, Any]) -> bool:
        value = props.get(self.key, self.missing)
        if value.__class__ is not str:
            if value is self.missing:
                return False
            value = stringify(value)
            if value is None:
                return False
        return self.needle in self.lowered.of(value)


class _Compare(_OnKey):
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
