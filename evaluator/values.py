"""Turning property and filter values into what operators compare: strings, numbers, instants, versions.

Every function here is total: a value it cannot convert gives ``None`` (the operator then does not match),
never an exception. Conventions, chosen to agree with PostHog's server and SDKs:

* strings stay as they are; other JSON values become compact JSON (``true``, ``null``, ``12``, ``1.5``,
  ``["a",1]``, objects with sorted keys); NaN/infinity and non-JSON objects are unrepresentable;
* numbers: ints and floats (not bools), and strings that look like a decimal number (``"12"``, ``"-1.5e3"``;
  not ``"nan"``, ``"1_000"`` or ``" 12"``); non-finite values are not numbers;
* instants are POSIX seconds (float), as PostHog's server reads dates (``property_matching.rs``): numbers and
  numeric strings are unix seconds; ISO-8601 / RFC 3339 strings next (a missing zone means UTC, ``Z``
  accepted, date-only means midnight UTC); then any other complete date ``python-dateutil`` reads
  (``June 1, 2023``, ``2023/05/01``, ``Wed, 02 Jun 2021 06:31:39 GMT``, US zone abbreviations), where the
  server falls back to a general date parser. A string without a full year, month and day (``4:00pm``,
  ``2023``) is not a date: its meaning would depend on today;
* versions are ``(major, minor, patch)`` int tuples: surrounding space and a leading ``v``/``V`` stripped,
  pre-release (``-rc.1``) and build (``+abc``) dropped, missing parts are 0, extra parts ignored.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Final

import msgspec
from dateutil import parser as date_parser
from dateutil import tz

_encode = msgspec.json.Encoder(order="sorted").encode
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RELATIVE: Final = re.compile(r"-?([0-9]{1,4})([hdwmy])")
_DIGITS: Final = re.compile(r"[0-9]{1,12}(?:\.[0-9]*)?")


def stringify(value: Any) -> str | None:
    """The value as a string: strings unchanged, other JSON values as compact JSON; None if impossible."""
    if type(value) is str:
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float):
        return str(value) if not isinstance(value, float) else repr(value)
    try:
        return _encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        return None


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only (PostHog's folding for substring operators)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def to_number(value: Any) -> int | float | None:
    """A finite number from an int (kept exact), float or numeric string; None otherwise (bools are not
    numbers). ``int | float``, not ``float``: compiled, a ``float`` would turn a large int into a double."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # compared exactly, however large
    if isinstance(value, float):
        number = value
    elif isinstance(value, str) and len(value) <= 400 and _NUMBER.fullmatch(value):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def to_instant(value: Any) -> float | None:
    """POSIX seconds from an ISO-8601 string, unix seconds (number or digit string), or a datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    if _DIGITS.fullmatch(text):
        return float(text)
    numeric = to_number(text)
    if numeric is not None:
        return float(numeric)
    iso = iso_instant(text)
    return iso if iso is not None else _general_date(text)


def iso_instant(text: str) -> float | None:
    """POSIX seconds of an ISO-8601 string (``Z`` and a trailing `` UTC`` accepted); None otherwise."""
    if text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_ZONES: Final[dict[str, tzinfo]] = {
    "UTC": UTC,
    "GMT": UTC,
    "Z": UTC,
    **{name: tz.tzoffset(name, hours * 3600) for name, hours in (
        ("EST", -5), ("EDT", -4), ("CST", -6), ("CDT", -5),
        ("MST", -7), ("MDT", -6), ("PST", -8), ("PDT", -7),
    )},
}  # fmt: skip
_PROBES: Final = (datetime(2000, 1, 1), datetime(2001, 2, 2))


def _zone(name: str | None, offset: int | None) -> tzinfo | None:
    if offset is not None:
        return tz.tzoffset(name, offset)
    return _ZONES.get(name.upper()) if name else None  # an unknown zone name: read as UTC


@lru_cache(maxsize=4096)
def _general_date(text: str) -> float | None:
    """A complete date in any format dateutil reads, or None. Parsed with two different defaults: a string
    that leaves a part of the date to the default is not a complete date."""
    found: list[datetime] = []
    for default in _PROBES:
        try:
            found.append(date_parser.parse(text, default=default, tzinfos=_zone))
        except (ValueError, OverflowError, TypeError):
            return None
    first, second = found
    if first != second:
        return None
    moment = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (ValueError, OverflowError):
        return None


def parse_relative(value: Any) -> tuple[int, str] | None:
    """``(amount, unit)`` for a relative date such as ``-7d`` (h, d, w, m = months, y = years); else None."""
    if not isinstance(value, str):
        return None
    match = _RELATIVE.fullmatch(value.strip())
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


_SECONDS: Final = {"h": 3600, "d": 86400, "w": 604800}


def relative_instant(now: float, amount: int, unit: str) -> float:
    """The instant ``amount`` units before ``now``; months and years move on the calendar, clamping the day
    (March 31 minus one month is February 28 or 29)."""
    seconds = _SECONDS.get(unit)
    if seconds is not None:
        return now - amount * seconds
    moment = datetime.fromtimestamp(now, UTC)
    months = amount if unit == "m" else amount * 12
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    if year < 1:
        return -math.inf
    day = min(moment.day, _days_in_month(year, month + 1))
    return moment.replace(year=year, month=month + 1, day=day).timestamp()


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - timedelta(days=1)).day


def utc_day(instant: float) -> int:
    """Days since the epoch (UTC) of an instant: the granularity of ``is_date_exact``."""
    return math.floor(instant / 86400)


def parse_version(value: Any) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` from a version string or number; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if len(text) > 256:
        return None
    text = text.lstrip("vV").split("-", 1)[0].split("+", 1)[0]
    parts = text.split(".")
    numbers: list[int] = []
    for part in parts[:3]:
        if part == "" and numbers:
            numbers.append(0)
            continue
        if not part.isascii() or not part.isdigit():
            return None
        numbers.append(int(part))
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def version_bounds(operator: str, value: Any) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """``[lower, upper)`` of a tilde (``~1.2.3``), caret (``^1.2.3``) or wildcard (``1.2.*``) range."""
    if operator == "semver_wildcard":
        if not isinstance(value, str):
            return None
        parts = [p for p in value.strip().lstrip("vV").replace("*", "").split(".") if p]
        if not parts or len(parts) > 3 or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        nums = [int(p) for p in parts]
        if len(nums) == 1:
            return (nums[0], 0, 0), (nums[0] + 1, 0, 0)
        if len(nums) == 2:
            return (nums[0], nums[1], 0), (nums[0], nums[1] + 1, 0)
        return (nums[0], nums[1], nums[2]), (nums[0], nums[1], nums[2] + 1)
    version = parse_version(value)
    if version is None:
        return None
    major, minor, patch = version
    if operator == "semver_tilde":
        return version, (major, minor + 1, 0)
    if major > 0:
        return version, (major + 1, 0, 0)
    if minor > 0:
        return version, (0, minor + 1, 0)
    return version, (0, 0, patch + 1)


__all__ = [
    "ascii_lower",
    "iso_instant",
    "parse_relative",
    "parse_version",
    "relative_instant",
    "stringify",
    "to_instant",
    "to_number",
    "utc_day",
    "version_bounds",
]
