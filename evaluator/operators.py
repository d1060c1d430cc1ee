"""Property operators: a table from operator name to a factory that prepares the filter value once and returns
a test for one present property value. Tests never raise; a value they cannot interpret does not match.

Semantics (PostHog server; where flagd had to choose, the choice is written here):

* ``exact`` / ``is_not``: both sides stringified (non-strings as compact JSON, see ``values.stringify``) and
  compared after ``str.lower()`` -- the Unicode lowercasing PostHog's SDKs use, so local and remote evaluation
  agree (``casefold`` would make "STRASSE" equal "straße" on the server but not in the SDKs). A list value
  means "any of". Missing key: ``exact`` false, ``is_not`` true.
* ``property_matching_version`` 1 (the default; what every PostHog SDK assumes when a project does not say):
  when an ``exact`` / ``is_not`` value is a bool, ``"true"``/``"false"`` (any case) or a list of only those,
  both sides compare by *truthiness* instead (``truthiness_test``): a bool is itself, a string is true iff it
  is ``"true"`` in any case, a list iff all its items are, anything else (numbers too) is false. So under
  version 1 ``beta exact false`` matches ``0``, ``1`` and ``"no"``. Version 2 keeps the string rule. An empty
  list value matches a truthy property under both versions.
* ``is_set`` / ``is_not_set``: the key is present (a null value counts as set).
* ``icontains``, ``starts_with``, ``ends_with`` and their ``not_`` forms: substring tests on the
  stringified value with ASCII-only case folding. Missing key: positive forms false, ``not_`` forms true.
* ``regex`` / ``not_regex``: RE2 (linear time, no backtracking blow-up) ``search`` in the stringified value.
  Patterns longer than ``MAX_PATTERN`` characters, invalid patterns and Perl-only syntax RE2 refuses
  (backreferences, lookaround) make BOTH operators false and are reported by validation. Only the first
  ``MAX_SEARCHED`` characters of a value are searched, bounding the time one request can spend. An empty
  pattern matches everything. Missing key: ``regex`` false, ``not_regex`` true.
* ``gt``, ``gte``, ``lt``, ``lte``, ``between``/``not_between`` (inclusive; value ``[low, high]`` or
  ``{"min": low, "max": high}``): numbers (``values.to_number``); a non-numeric property is false for all.
* ``is_date_before`` / ``is_date_after`` (strict) / ``is_date_exact`` (same UTC calendar day): both sides
  are read as PostHog's server reads dates (``values.to_instant``: unix seconds, ISO-8601, then other
  complete dates such as ``June 1, 2023``); the filter may also be relative ``-7d``, ``-24h``, ``-2w``,
  ``-1m``, ``-1y`` -- relative ones are resolved against the injected clock at each evaluation, the others
  once at compile time.
* ``semver_eq/neq/gt/gte/lt/lte`` and ranges ``semver_tilde`` (~1.2.3 = >=1.2.3 <1.3.0), ``semver_caret``
  (^1.2.3 = <2.0.0, ^0.2.3 = <0.3.0, ^0.0.3 = <0.0.4), ``semver_wildcard`` (1.2.* = >=1.2.0 <1.3.0).
  A property that is not a version is false for all of them.

A filter value an operator cannot use (a non-numeric ``gt`` value, an unparseable date) is a fatal issue: the
flag compiles into one that reports an error instead of silently never matching.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from evaluator.issues import Problems
from evaluator.values import (
    ascii_lower,
    parse_relative,
    parse_version,
    relative_instant,
    stringify,
    to_instant,
    to_number,
    utc_day,
    version_bounds,
)

Test = Callable[[Any], bool]
Clock = Callable[[], float]
Factory = Callable[[Any, Problems, str, Clock], Test]

MAX_PATTERN: Final = 1000
MAX_SEARCHED: Final = 10_000


class OperatorSpec(NamedTuple):
    """How an operator is compiled: its factory, whether the factory's test is inverted (``is_not`` is
    ``exact`` inverted), and its result when the property is missing."""

    factory: Factory
    inverted: bool
    on_missing: bool


def never(value: Any) -> bool:
    """The test of a filter whose value is unusable: it matches nothing, whatever the operator."""
    return False


def _always(value: Any) -> bool:
    return True


def _exact(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
    items = expected if isinstance(expected, list) else [expected]
    wanted: set[str] = set()
    for index, item in enumerate(items):
        text = stringify(item)
        if text is None:
            where = f"{path}[{index}]" if isinstance(expected, list) else path
            problems.error(where, "value cannot be compared as text (not a JSON value)")
            continue
        wanted.add(text.lower())
    if not wanted:
        return never
    if len(wanted) == 1:
        (single,) = wanted

        def exact_one(value: Any) -> bool:
            if value.__class__ is str:
                return bool(value.lower() == single)
            text = stringify(value)
            return text is not None and text.lower() == single

        return exact_one
    choices = frozenset(wanted)

    def exact_any(value: Any) -> bool:
        if value.__class__ is str:
            return value.lower() in choices
        text = stringify(value)
        return text is not None and text.lower() in choices

    return exact_any


def _truthy_or_falsy(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value.lower() in ("true", "false")
    if isinstance(value, list):
        return all(_truthy_or_falsy(item) for item in value)
    return False


def is_truthy(value: Any) -> bool:
    """PostHog's truthiness for ``exact`` under ``property_matching_version`` 1 (see the module docstring)."""
    if value is True or value is False:
        return value
    if value.__class__ is str:
        return bool(value.lower() == "true")
    if isinstance(value, list):
        return all(is_truthy(item) for item in value)
    return False


def truthiness_test(operator: str, expected: Any, version: int) -> Test | None:
    """The ``exact`` / ``is_not`` test comparing truthiness, when ``expected`` and ``version`` call for it
    (``is_not`` inverts it as usual); None when the plain string rule applies."""
    if operator not in ("exact", "is_not"):
        return None
    if expected != [] and (version == 2 or not _truthy_or_falsy(expected)):
        return None
    wanted = is_truthy(expected)
    if wanted:
        return is_truthy

    def falsy(value: Any) -> bool:
        return not is_truthy(value)

    return falsy


def _set(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
    return _always


def _text(method: Callable[[str, str], bool]) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        text = stringify(expected)
        if text is None:
            problems.error(path, "value must be a string")
            return never
        needle = ascii_lower(text)

        def test(value: Any) -> bool:
            haystack = value if value.__class__ is str else stringify(value)
            return haystack is not None and method(ascii_lower(haystack), needle)

        return test

    return factory


def _contains(haystack: str, needle: str) -> bool:
    return needle in haystack


def _regex(inverted: bool) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        if isinstance(expected, bool) or not isinstance(expected, str | int | float):
            problems.error(path, "regex must be a string")
            return never
        pattern = stringify(expected)
        if pattern is None or len(pattern) > MAX_PATTERN:
            problems.warn(
                path, f"regex must be a string of at most {MAX_PATTERN} characters; it never matches"
            )
            return never
        compiled = compile_regex(pattern)
        if isinstance(compiled, str):
            problems.warn(path, f"invalid or unsupported regex (RE2 syntax): {compiled}; it never matches")
            return never
        search = compiled.search

        def test(value: Any) -> bool:
            text = value if value.__class__ is str else stringify(value)
            if text is None:
                return False
            text = text[:MAX_SEARCHED]
            try:
                return (search(text) is None) is inverted
            except UnicodeEncodeError:  # a lone surrogate RE2 can't take: it matches as "?", never raises
                return (search(text.encode("utf-8", "replace").decode()) is None) is inverted

        return test

    return factory


def compile_regex(pattern: str) -> Any:
    """An RE2 pattern object, or the error message (str) when RE2 refuses the pattern."""
    import re2  # imported on first use: most snapshots have no regex filter

    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "invalid"
        return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    except (TypeError, ValueError) as exc:
        return str(exc)


def _numeric(compare: Callable[[float, float], bool]) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        threshold = to_number(expected)
        if threshold is None:
            problems.error(path, "value must be a number")
            return never

        def test(value: Any) -> bool:
            number = to_number(value)
            return number is not None and compare(number, threshold)

        return test

    return factory


def _between(inside: bool) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        if isinstance(expected, dict):
            bounds = [expected.get("min"), expected.get("max")]
        elif isinstance(expected, list) and len(expected) == 2:
            bounds = list(expected)
        else:
            problems.error(path, 'value must be [low, high] or {"min": low, "max": high}')
            return never
        low, high = to_number(bounds[0]), to_number(bounds[1])
        if low is None or high is None:
            problems.error(path, "both bounds must be numbers")
            return never
        if low > high:
            problems.warn(path, "low bound is above high bound; nothing is between them")

        def test(value: Any) -> bool:
            number = to_number(value)
            return number is not None and (low <= number <= high) is inside

        return test

    return factory


def _date(compare: Callable[[float, float], bool]) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        relative = parse_relative(expected)
        if relative is not None:
            amount, unit = relative

            def relative_test(value: Any) -> bool:
                instant = to_instant(value)
                return instant is not None and compare(instant, relative_instant(clock(), amount, unit))

            return relative_test
        threshold = to_instant(expected)
        if threshold is None:
            problems.error(
                path, "value must be a date (e.g. 2024-01-01), unix seconds or a relative date like -7d"
            )
            return never

        def test(value: Any) -> bool:
            instant = to_instant(value)
            return instant is not None and compare(instant, threshold)

        return test

    return factory


def _same_day(left: float, right: float) -> bool:
    return utc_day(left) == utc_day(right)


def _semver(compare: Callable[[Any, Any], bool]) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        version = parse_version(expected)
        if version is None:
            problems.error(path, "value must be a version like 1.2.3")
            return never

        def test(value: Any) -> bool:
            parsed = parse_version(value)
            return parsed is not None and compare(parsed, version)

        return test

    return factory


def _semver_range(operator_name: str) -> Factory:
    def factory(expected: Any, problems: Problems, path: str, clock: Clock) -> Test:
        bounds = version_bounds(operator_name, expected)
        if bounds is None:
            problems.error(path, "value must be a version range like 1.2.3 (or 1.2.* for wildcards)")
            return never
        lower, upper = bounds

        def test(value: Any) -> bool:
            parsed = parse_version(value)
            return parsed is not None and lower <= parsed < upper

        return test

    return factory


OPERATORS: Final[dict[str, OperatorSpec]] = {
    "exact": OperatorSpec(_exact, False, False),
    "is_not": OperatorSpec(_exact, True, True),
    "is_set": OperatorSpec(_set, False, False),
    "is_not_set": OperatorSpec(_set, True, True),
    "icontains": OperatorSpec(_text(_contains), False, False),
    "not_icontains": OperatorSpec(_text(_contains), True, True),
    "starts_with": OperatorSpec(_text(str.startswith), False, False),
    "not_starts_with": OperatorSpec(_text(str.startswith), True, True),
    "ends_with": OperatorSpec(_text(str.endswith), False, False),
    "not_ends_with": OperatorSpec(_text(str.endswith), True, True),
    "regex": OperatorSpec(_regex(False), False, False),
    "not_regex": OperatorSpec(_regex(True), False, True),
    "gt": OperatorSpec(_numeric(op.gt), False, False),
    "gte": OperatorSpec(_numeric(op.ge), False, False),
    "lt": OperatorSpec(_numeric(op.lt), False, False),
    "lte": OperatorSpec(_numeric(op.le), False, False),
    "between": OperatorSpec(_between(True), False, False),
    "not_between": OperatorSpec(_between(False), False, False),
    "is_date_before": OperatorSpec(_date(op.lt), False, False),
    "is_date_after": OperatorSpec(_date(op.gt), False, False),
    "is_date_exact": OperatorSpec(_date(_same_day), False, False),
    "semver_eq": OperatorSpec(_semver(op.eq), False, False),
    "semver_neq": OperatorSpec(_semver(op.ne), False, False),
    "semver_gt": OperatorSpec(_semver(op.gt), False, False),
    "semver_gte": OperatorSpec(_semver(op.ge), False, False),
    "semver_lt": OperatorSpec(_semver(op.lt), False, False),
    "semver_lte": OperatorSpec(_semver(op.le), False, False),
    "semver_tilde": OperatorSpec(_semver_range("semver_tilde"), False, False),
    "semver_caret": OperatorSpec(_semver_range("semver_caret"), False, False),
    "semver_wildcard": OperatorSpec(_semver_range("semver_wildcard"), False, False),
}

# Operators PostHog SDKs do not evaluate locally: flags using them are not offered for local evaluation.
SERVER_ONLY_OPERATORS: Final = frozenset({"between", "not_between", "is_date_exact"})
