"""Value conversions behind the operators: text, numbers, instants, versions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from evaluator.values import parse_version, relative_instant, stringify, to_instant, to_number, version_bounds


def test_stringify_is_compact_json_for_non_strings() -> None:
    """Strings stay, other JSON values become compact JSON with sorted object keys."""
    assert stringify("Ab") == "Ab"
    assert [stringify(v) for v in (None, True, False, 3, 1.5)] == ["null", "true", "false", "3", "1.5"]
    assert stringify([1, "a", None]) == '[1,"a",null]'
    assert stringify({"b": 1, "a": [True]}) == '{"a":[true],"b":1}'
    assert stringify(math.nan) is None
    assert stringify(object()) is None


def test_to_number() -> None:
    """Ints stay exact, numeric strings parse, bools and junk are not numbers."""
    assert to_number(10**30) == 10**30
    assert to_number("-1.5e2") == -150.0
    assert [to_number(v) for v in (True, "nan", "1_000", " 1", "inf", math.inf, None, "")] == [None] * 8


def test_to_instant() -> None:
    """ISO-8601 (zone or UTC), date-only and unix seconds all become POSIX seconds."""
    assert to_instant("2024-01-01") == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert to_instant("2024-01-01T01:00:00+01:00") == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert to_instant("2024-01-01T00:00:00Z") == to_instant(1704067200) == to_instant("1704067200")
    assert to_instant("yesterday") is None
    assert to_instant(True) is None


def test_relative_months_clamp_the_day() -> None:
    """March 31 minus one month is the last day of February; weeks are plain seconds."""
    march_31 = datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp()
    assert relative_instant(march_31, 1, "m") == datetime(2024, 2, 29, 12, tzinfo=UTC).timestamp()
    assert relative_instant(march_31, 1, "y") == datetime(2023, 3, 31, 12, tzinfo=UTC).timestamp()
    assert relative_instant(march_31, 2, "w") == march_31 - 14 * 86400


def test_versions() -> None:
    """Leading v, pre-release and build are dropped; missing parts are zero; junk is not a version."""
    assert parse_version("v1.2") == (1, 2, 0)
    assert parse_version(" 1.2.3-beta.1+exp ") == (1, 2, 3)
    assert parse_version(2) == (2, 0, 0)
    assert parse_version("latest") is None
    assert parse_version(True) is None
    assert version_bounds("semver_caret", "0.0.3") == ((0, 0, 3), (0, 0, 4))
    assert version_bounds("semver_wildcard", "1.2.*") == ((1, 2, 0), (1, 3, 0))
    assert version_bounds("semver_wildcard", "*") is None
