"""Every difference between the PostgreSQL and the SQLite SQL, in one place.

Queries (``store.sql.transaction``, ``store.sql.reads``) are written once, in PostgreSQL's spelling: ``$n``
placeholders, ``now()``, ``col ILIKE $n`` for a case-insensitive substring search, ``FOR UPDATE`` on the
project lock, ``CAST(x AS type)``. ``sqlite_text`` rewrites that text for SQLite:

| PostgreSQL         | SQLite                      | why                                                  |
| ------------------ | --------------------------- | ---------------------------------------------------- |
| ``$n``             | ``?n``                      | placeholder style                                    |
| ``now()``          | ``flagd_now()``             | one ISO-8601 UTC stamp per statement (``Clock``)     |
| ``col ILIKE $n``   | ``flagd_contains(col, ?n)`` | Unicode casefold substring match; argument is raw    |
| ``... FOR UPDATE`` | (dropped)                   | ``BEGIN IMMEDIATE`` already write-locks the file     |

Arguments and rows differ too (``Dialect``): PostgreSQL takes and returns JSON through the connection's codec
and native booleans/timestamps; SQLite stores JSON as text, booleans as 0/1 and timestamps as ISO-8601 text
(``decode_row``). What a unique violation looks like is another difference.

The schema is written once too, as the PostgreSQL migrations (``store/sql/migrations``); ``sqlite_ddl`` turns
a migration into SQLite statements:

| PostgreSQL                                   | SQLite                                | why               |
| -------------------------------------------- | ------------------------------------- | ----------------- |
| ``bigserial``/``bigint PRIMARY KEY``         | ``INTEGER PRIMARY KEY AUTOINCREMENT`` | rowid, not reused |
| ``bigint``, ``integer``, ``smallint``        | ``INTEGER``                           |                   |
| ``boolean``, ``DEFAULT true``/``false``      | ``INTEGER``, ``DEFAULT 1``/``0``      | booleans are 0/1  |
| ``text``, ``jsonb``, ``timestamptz``         | ``TEXT``                              | JSON, ISO-8601    |
| ``DEFAULT '{}'::jsonb``                      | ``DEFAULT '{}'``                      |                   |
| ``DEFAULT now()``                            | (dropped)                             | INSERTs set them  |
| ``CREATE TABLE``/``INDEX``                   | ``... IF NOT EXISTS``                 | see ``upgrade``   |
| ``CREATE SEQUENCE``/``FUNCTION``/``TRIGGER`` | (dropped)                             | see below         |

The dropped PostgreSQL objects assign change_log seqs in commit order and NOTIFY the syncer; SQLite has one
writer (AUTOINCREMENT is commit order) and the embedded backend rebuilds its catalog after each commit.
``store.sql.sqlite_schema.upgrade`` says which statements a file of a given version runs.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override
import msgspec

__all__ = [
    "API_KEY_COLUMNS",
    "COHORT_COLUMNS",
    "FLAG_COLUMNS",
    "POSTGRES",
    "PROJECT_COLUMNS",
    "SQLITE",
    "Clock",
    "Dialect",
    "decode_row",
    "now",
    "sqlite_ddl",
    "sqlite_text",
]

PROJECT_COLUMNS = (
    "id, name, api_token, secret_token_hash, group_type_mapping, property_matching_version, version,"
    " created_at, created_by"
)
FLAG_COLUMNS = (
    "id, project_id, key, name, filters, active, deleted, bucketing, ensure_experience_continuity, version,"
    " created_at, created_by, updated_at, updated_by"
)
COHORT_COLUMNS = (
    "id, project_id, name, description, filters, is_static, deleted, version, created_at, created_by,"
    " updated_at, updated_by,"
    " CAST((SELECT count(*) FROM cohort_members m WHERE m.cohort_id = cohorts.id) AS integer) AS member_count"
)
API_KEY_COLUMNS = "id, label, key_prefix, project_id, scope, created_at, created_by, revoked_at"

_JSON_COLUMNS = frozenset({"filters", "group_type_mapping", "before", "after", "payload"})
_BOOL_COLUMNS = frozenset({"active", "deleted", "is_static", "ensure_experience_continuity"})
_TIME_COLUMNS = frozenset({"created_at", "updated_at", "revoked_at"})
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()

_REWRITES = (
    (re.compile(r"(\w+(?:\.\w+)?) ILIKE \$(\d+)"), r"flagd_contains(\1, ?\2)"),
    (re.compile(r"\$(\d+)"), r"?\1"),
    (re.compile(r"\bnow\(\)"), "flagd_now()"),
    (re.compile(r" FOR UPDATE\b"), ""),
)


# A statement: text up to a ``;`` that is not inside a ``$$ ... $$`` function body.
_STATEMENT = re.compile(r"(?:\$\$.*?\$\$|[^;$]|\$(?!\$))+", re.DOTALL)
_COMMENT = re.compile(r"--[^\n]*")
_POSTGRES_ONLY = re.compile(r"CREATE (?:SEQUENCE|FUNCTION|TRIGGER)\b")
_DDL_REWRITES = (
    (re.compile(r"::jsonb\b"), ""),
    (re.compile(r"\b(?:bigserial|bigint) PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\b(?:bigint|integer|smallint|boolean)\b"), "INTEGER"),
    (re.compile(r"\b(?:text|jsonb|timestamptz)\b"), "TEXT"),
    (re.compile(r" DEFAULT now\(\)"), ""),
    (re.compile(r"\bDEFAULT true\b"), "DEFAULT 1"),
    (re.compile(r"\bDEFAULT false\b"), "DEFAULT 0"),
    (re.compile(r"\bCREATE (TABLE|INDEX|UNIQUE INDEX) "), r"CREATE \1 IF NOT EXISTS "),
)


def sqlite_ddl(migration: str) -> list[str]:
    """A PostgreSQL migration's statements as SQLite runs them (the second table in the module docstring)."""
    statements = []
    for match in _STATEMENT.finditer(_COMMENT.sub("", migration)):
        statement = " ".join(match.group().split())
        if not statement or _POSTGRES_ONLY.match(statement):
            continue
        for pattern, replacement in _DDL_REWRITES:
            statement = pattern.sub(replacement, statement)
        statements.append(statement)
    return statements


@lru_cache(maxsize=256)
def sqlite_text(sql: str) -> str:
    """A query written in PostgreSQL's spelling, as SQLite takes it (the table in the module docstring)."""
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    return sql


def now() -> str:
    """The current time as SQLite stores it: ISO-8601 UTC with microseconds."""
    return datetime.now(UTC).isoformat()


class Clock:
    """``flagd_now()`` on a SQLite connection: the stamp taken when the current statement started."""

    __slots__ = ("stamp",)

    def __init__(self) -> None:
        self.stamp = now()

    def tick(self) -> None:
        self.stamp = now()

    def read(self) -> str:
        return self.stamp


def _to_json(value: Any) -> str | None:
    return None if value is None else _encoder.encode(value).decode("utf-8")


def decode_row(row: sqlite3.Row) -> dict[str, Any]:
    """A SQLite row as Python values: JSON text parsed, 0/1 as booleans, timestamps as aware datetimes."""
    out: dict[str, Any] = {}
    for name in row.keys():  # noqa: SIM118 - sqlite3.Row is not iterable by key
        value = row[name]
        if value is not None:
            if name in _JSON_COLUMNS:
                value = _decoder.decode(value)
            elif name in _BOOL_COLUMNS:
                value = bool(value)
            elif name in _TIME_COLUMNS:
                value = datetime.fromisoformat(value)
        out[name] = value
    return out


def _like(search: str | None) -> str | None:
    if search is None:
        return None
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _pg_unique(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError)


def _sqlite_unique(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a backend takes the arguments the shared queries pass, and what its unique violation is."""

    name: str
    json: Callable[[Any], Any]  # a JSON column's argument
    search: Callable[[str | None], str | None]  # the argument of ``col ILIKE $n``
    unique_violation: Callable[[BaseException], bool]


POSTGRES = Dialect("postgresql", json=_same, search=_like, unique_violation=_pg_unique)
SQLITE = Dialect("sqlite", json=_to_json, search=_same, unique_violation=_sqlite_unique)
