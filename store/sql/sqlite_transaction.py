"""The SQLite side of ``store.operations.Transaction``, plus row decoding shared with ``store.sqlite``.

Statements run on the repository's single database thread (``run``); the repository holds its write lock and
an open ``BEGIN IMMEDIATE`` transaction for as long as this object is in use. Unique violations become
``Conflict`` here, where it is known which key was taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec

from store import writes
from store.errors import Conflict
from store.records import ApiKey, CohortRecord, FlagRecord, Scope
from store.transaction import EntityType, ProjectRow

__all__ = [
    "API_KEY_COLUMNS",
    "COHORT_COLUMNS",
    "FLAG_COLUMNS",
    "PROJECT_COLUMNS",
    "Runner",
    "SqliteTransaction",
    "decode_row",
    "now",
]

T = TypeVar("T")
Runner = Callable[[Callable[[], T]], Awaitable[T]]

PROJECT_COLUMNS = (
    "id, name, api_token, secret_token_hash, group_type_mapping, version, created_at, created_by"
)
FLAG_COLUMNS = (
    "id, project_id, key, name, filters, active, deleted, bucketing, ensure_experience_continuity, version,"
    " created_at, created_by, updated_at, updated_by"
)
COHORT_COLUMNS = (
    "id, project_id, name, description, filters, is_static, deleted, version, created_at, created_by,"
    " updated_at, updated_by,"
    " (SELECT count(*) FROM cohort_members m WHERE m.cohort_id = cohorts.id) AS member_count"
)
API_KEY_COLUMNS = "id, label, key_prefix, project_id, scope, created_at, created_by, revoked_at"

_JSON_COLUMNS = frozenset({"filters", "group_type_mapping", "before", "after", "payload"})
_BOOL_COLUMNS = frozenset({"active", "deleted", "is_static", "ensure_experience_continuity"})
_TIME_COLUMNS = frozenset({"created_at", "updated_at", "revoked_at"})
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def now() -> str:
    """The current time as stored: ISO-8601 UTC with microseconds."""
    return datetime.now(UTC).isoformat()


def to_json(value: Any) -> str | None:
    return None if value is None else _encoder.encode(value).decode("utf-8")


def decode_row(row: sqlite3.Row) -> dict[str, Any]:
    """A row as Python values: JSON text parsed, 0/1 as booleans, timestamps as aware datetimes."""
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


def _unique(exc: sqlite3.IntegrityError) -> bool:
    return "UNIQUE" in str(exc)


class SqliteTransaction:
    """Statements for one write, inside the repository's open transaction."""

    __slots__ = ("_conn", "_run", "changed_projects")

    def __init__(self, conn: sqlite3.Connection, run: Runner[Any]) -> None:
        self._conn = conn
        self._run = run
        self.changed_projects: set[int] = set()

    async def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._run(lambda: self._conn.execute(sql, args).fetchone())
        return None if row is None else decode_row(row)

    async def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        rows = await self._run(lambda: self._conn.execute(sql, args).fetchall())
        return [decode_row(r) for r in rows]

    async def _execute(self, sql: str, *args: Any) -> None:
        await self._run(lambda: self._conn.execute(sql, args))

    # Projects -------------------------------------------------------------------------------------------
    async def lock_project(self, project_id: int) -> ProjectRow | None:
        # The whole database is already write-locked (BEGIN IMMEDIATE): reading the row is enough.
        row = await self._one(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?", project_id)
        return None if row is None else ProjectRow(**row)

    async def insert_project(self, name: str, api_token: str, secret_hash: str, actor: str) -> ProjectRow:
        try:
            row = await self._one(
                "INSERT INTO projects (name, api_token, secret_token_hash, created_at, created_by)"
                f" VALUES (?, ?, ?, ?, ?) RETURNING {PROJECT_COLUMNS}",
                name,
                api_token,
                secret_hash,
                now(),
                actor,
            )
        except sqlite3.IntegrityError as exc:
            if _unique(exc):
                raise Conflict("a project with this api_token already exists") from exc
            raise
        assert row is not None
        return ProjectRow(**row)

    async def update_project(
        self,
        project_id: int,
        *,
        name: str,
        group_type_mapping: Mapping[str, str],
        secret_token_hash: str,
        expected_version: int,
    ) -> ProjectRow | None:
        row = await self._one(
            "UPDATE projects SET name = ?, group_type_mapping = ?, secret_token_hash = ?,"
            " version = version + 1"
            f" WHERE id = ? AND version = ? RETURNING {PROJECT_COLUMNS}",
            name,
            to_json(dict(group_type_mapping)),
            secret_token_hash,
            project_id,
            expected_version,
        )
        return None if row is None else ProjectRow(**row)

    # Flags ----------------------------------------------------------------------------------------------
    async def live_flags(self, project_id: int) -> list[FlagRecord]:
        rows = await self._all(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = ? AND NOT deleted ORDER BY id",
            project_id,
        )
        return [FlagRecord(**r) for r in rows]

    async def live_cohort_ids(self, project_id: int) -> list[str]:
        rows = await self._all(
            "SELECT id FROM cohorts WHERE project_id = ? AND NOT deleted ORDER BY id", project_id
        )
        return [str(r["id"]) for r in rows]

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord | None:
        row = await self._one(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = ? AND id = ?", project_id, flag_id
        )
        return None if row is None else FlagRecord(**row)

    async def insert_flag(self, project_id: int, values: writes.FlagValues, actor: str) -> FlagRecord:
        stamp = now()
        try:
            row = await self._one(
                "INSERT INTO feature_flags (project_id, key, name, filters, active, bucketing,"
                " ensure_experience_continuity, created_at, created_by, updated_at, updated_by)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {FLAG_COLUMNS}",
                project_id,
                values.key,
                values.name,
                to_json(values.filters),
                values.active,
                values.bucketing,
                values.ensure_experience_continuity,
                stamp,
                actor,
                stamp,
                actor,
            )
        except sqlite3.IntegrityError as exc:
            if _unique(exc):
                raise Conflict(f"a live flag with key {values.key!r} already exists") from exc
            raise
        assert row is not None
        return FlagRecord(**row)

    async def update_flag(
        self, flag_id: int, values: writes.FlagValues, *, deleted: bool, expected_version: int, actor: str
    ) -> FlagRecord | None:
        try:
            row = await self._one(
                "UPDATE feature_flags SET key = ?, name = ?, filters = ?, active = ?, bucketing = ?,"
                " ensure_experience_continuity = ?, deleted = ?, version = version + 1, updated_at = ?,"
                f" updated_by = ? WHERE id = ? AND version = ? RETURNING {FLAG_COLUMNS}",
                values.key,
                values.name,
                to_json(values.filters),
                values.active,
                values.bucketing,
                values.ensure_experience_continuity,
                deleted,
                now(),
                actor,
                flag_id,
                expected_version,
            )
        except sqlite3.IntegrityError as exc:
            if _unique(exc):
                raise Conflict(f"a live flag with key {values.key!r} already exists") from exc
            raise
        return None if row is None else FlagRecord(**row)

    # Cohorts --------------------------------------------------------------------------------------------
    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord | None:
        row = await self._one(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = ? AND id = ?", project_id, cohort_id
        )
        return None if row is None else CohortRecord(**row)

    async def insert_cohort(self, project_id: int, values: writes.CohortValues, actor: str) -> CohortRecord:
        stamp = now()
        row = await self._one(
            "INSERT INTO cohorts (project_id, name, description, filters, is_static, created_at, created_by,"
            " updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            project_id,
            values.name,
            values.description,
            to_json(values.filters),
            values.is_static,
            stamp,
            actor,
            stamp,
            actor,
        )
        assert row is not None
        cohort = await self.get_cohort(project_id, row["id"])
        assert cohort is not None
        return cohort

    async def update_cohort(
        self, cohort_id: int, values: writes.CohortValues, *, deleted: bool, expected_version: int, actor: str
    ) -> CohortRecord | None:
        row = await self._one(
            "UPDATE cohorts SET name = ?, description = ?, filters = ?, deleted = ?, version = version + 1,"
            " updated_at = ?, updated_by = ? WHERE id = ? AND version = ? RETURNING project_id",
            values.name,
            values.description,
            to_json(values.filters),
            deleted,
            now(),
            actor,
            cohort_id,
            expected_version,
        )
        return None if row is None else await self.get_cohort(row["project_id"], cohort_id)

    async def replace_members(self, cohort_id: int, members: tuple[str, ...]) -> None:
        def replace() -> None:
            self._conn.execute("DELETE FROM cohort_members WHERE cohort_id = ?", (cohort_id,))
            self._conn.executemany(
                "INSERT INTO cohort_members (cohort_id, distinct_id) VALUES (?, ?)",
                [(cohort_id, m) for m in members],
            )

        await self._run(replace)

    async def members(self, cohort_id: int) -> list[str]:
        rows = await self._all(
            "SELECT distinct_id FROM cohort_members WHERE cohort_id = ? ORDER BY distinct_id", cohort_id
        )
        return [r["distinct_id"] for r in rows]

    # API keys -------------------------------------------------------------------------------------------
    async def insert_api_key(
        self, *, label: str, key_hash: str, key_prefix: str, project_id: int | None, scope: Scope, actor: str
    ) -> ApiKey:
        try:
            row = await self._one(
                "INSERT INTO api_keys"
                " (label, key_hash, key_prefix, project_id, scope, created_at, created_by)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {API_KEY_COLUMNS}",
                label,
                key_hash,
                key_prefix,
                project_id,
                scope,
                now(),
                actor,
            )
        except sqlite3.IntegrityError as exc:
            if _unique(exc):
                raise Conflict("this API key already exists") from exc
            raise
        assert row is not None
        return ApiKey(**row)

    async def get_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._one(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?", key_id)
        return None if row is None else ApiKey(**row)

    async def revoke_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._one(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
            f" RETURNING {API_KEY_COLUMNS}",
            now(),
            key_id,
        )
        return None if row is None else ApiKey(**row)

    # Logs -----------------------------------------------------------------------------------------------
    async def audit(
        self,
        *,
        project_id: int | None,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: int | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        await self._execute(
            "INSERT INTO audit_log"
            " (project_id, actor, action, entity_type, entity_id, before, after, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            project_id,
            actor,
            action,
            entity_type,
            entity_id,
            to_json(before),
            to_json(after),
            now(),
        )

    async def change(
        self,
        *,
        project_id: int,
        entity_type: EntityType,
        entity_id: int,
        entity_version: int,
        op: Literal["upsert", "delete"],
        payload: dict[str, Any],
    ) -> None:
        await self._execute(
            "INSERT INTO change_log"
            " (project_id, entity_type, entity_id, entity_version, op, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            project_id,
            entity_type,
            entity_id,
            entity_version,
            op,
            to_json(payload),
            now(),
        )
        self.changed_projects.add(project_id)
