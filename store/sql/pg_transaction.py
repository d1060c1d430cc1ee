"""The PostgreSQL side of ``store.operations.Transaction``: one asyncpg connection inside one transaction.

Only SQL lives here; the rules are in ``store.writes`` and the order of steps in ``store.operations``. Driver
errors are translated by ``store.postgres`` at the transaction boundary, except unique violations, which mean
something specific at each statement and become ``Conflict`` right here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override

from store import writes
from store.errors import Conflict
from store.records import ApiKey, CohortRecord, FlagRecord, Scope
from store.transaction import EntityType, ProjectRow

__all__ = ["API_KEY_COLUMNS", "COHORT_COLUMNS", "FLAG_COLUMNS", "PROJECT_COLUMNS", "PgTransaction"]

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
    " (SELECT count(*) FROM cohort_members m WHERE m.cohort_id = cohorts.id)::int AS member_count"
)
API_KEY_COLUMNS = "id, label, key_prefix, project_id, scope, created_at, created_by, revoked_at"


def flag_record(row: Mapping[str, Any]) -> FlagRecord:
    return FlagRecord(**dict(row))


def cohort_record(row: Mapping[str, Any]) -> CohortRecord:
    return CohortRecord(**dict(row))


def api_key_record(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(**dict(row))


def project_row(row: Mapping[str, Any]) -> ProjectRow:
    return ProjectRow(**dict(row))


class PgTransaction:
    """Statements for one write, on a connection that is inside a transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self._conn = conn

    # Projects -------------------------------------------------------------------------------------------
    async def lock_project(self, project_id: int) -> ProjectRow | None:
        row = await self._conn.fetchrow(
            f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 FOR UPDATE", project_id
        )
        return None if row is None else project_row(row)

    async def insert_project(self, name: str, api_token: str, secret_hash: str, actor: str) -> ProjectRow:
        try:
            row = await self._conn.fetchrow(
                "INSERT INTO projects (name, api_token, secret_token_hash, created_by)"
                " VALUES ($1, $2, $3, $4)"
                f" RETURNING {PROJECT_COLUMNS}",
                name,
                api_token,
                secret_hash,
                actor,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a project with this api_token already exists") from exc
        assert row is not None
        return project_row(row)

    async def update_project(
        self,
        project_id: int,
        *,
        name: str,
        group_type_mapping: Mapping[str, str],
        secret_token_hash: str,
        expected_version: int,
    ) -> ProjectRow | None:
        row = await self._conn.fetchrow(
            "UPDATE projects SET name = $2, group_type_mapping = $3, secret_token_hash = $4,"
            " version = version + 1"
            f" WHERE id = $1 AND version = $5 RETURNING {PROJECT_COLUMNS}",
            project_id,
            name,
            dict(group_type_mapping),
            secret_token_hash,
            expected_version,
        )
        return None if row is None else project_row(row)

    # Flags ----------------------------------------------------------------------------------------------
    async def live_flags(self, project_id: int) -> list[FlagRecord]:
        rows = await self._conn.fetch(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND NOT deleted ORDER BY id",
            project_id,
        )
        return [flag_record(r) for r in rows]

    async def live_cohort_ids(self, project_id: int) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT id FROM cohorts WHERE project_id = $1 AND NOT deleted ORDER BY id", project_id
        )
        return [str(r["id"]) for r in rows]

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord | None:
        row = await self._conn.fetchrow(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND id = $2", project_id, flag_id
        )
        return None if row is None else flag_record(row)

    async def insert_flag(self, project_id: int, values: writes.FlagValues, actor: str) -> FlagRecord:
        try:
            row = await self._conn.fetchrow(
                "INSERT INTO feature_flags (project_id, key, name, filters, active, bucketing,"
                " ensure_experience_continuity, created_by, updated_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {FLAG_COLUMNS}",
                project_id,
                values.key,
                values.name,
                values.filters,
                values.active,
                values.bucketing,
                values.ensure_experience_continuity,
                actor,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"a live flag with key {values.key!r} already exists") from exc
        assert row is not None
        return flag_record(row)

    async def update_flag(
        self, flag_id: int, values: writes.FlagValues, *, deleted: bool, expected_version: int, actor: str
    ) -> FlagRecord | None:
        try:
            row = await self._conn.fetchrow(
                "UPDATE feature_flags SET key = $2, name = $3, filters = $4, active = $5, bucketing = $6,"
                " ensure_experience_continuity = $7, deleted = $8, version = version + 1, updated_at = now(),"
                f" updated_by = $9 WHERE id = $1 AND version = $10 RETURNING {FLAG_COLUMNS}",
                flag_id,
                values.key,
                values.name,
                values.filters,
                values.active,
                values.bucketing,
                values.ensure_experience_continuity,
                deleted,
                actor,
                expected_version,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"a live flag with key {values.key!r} already exists") from exc
        return None if row is None else flag_record(row)

    # Cohorts --------------------------------------------------------------------------------------------
    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord | None:
        row = await self._conn.fetchrow(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = $1 AND id = $2", project_id, cohort_id
        )
        return None if row is None else cohort_record(row)

    async def insert_cohort(self, project_id: int, values: writes.CohortValues, actor: str) -> CohortRecord:
        row = await self._conn.fetchrow(
            "INSERT INTO cohorts (project_id, name, description, filters, is_static, created_by, updated_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COHORT_COLUMNS}",
            project_id,
            values.name,
            values.description,
            values.filters,
            values.is_static,
            actor,
        )
        assert row is not None
        return cohort_record(row)

    async def update_cohort(
        self, cohort_id: int, values: writes.CohortValues, *, deleted: bool, expected_version: int, actor: str
    ) -> CohortRecord | None:
        row = await self._conn.fetchrow(
            "UPDATE cohorts SET name = $2, description = $3, filters = $4, deleted = $5,"
            " version = version + 1,"
            f" updated_at = now(), updated_by = $6 WHERE id = $1 AND version = $7 RETURNING {COHORT_COLUMNS}",
            cohort_id,
            values.name,
            values.description,
            values.filters,
            deleted,
            actor,
            expected_version,
        )
        return None if row is None else cohort_record(row)

    async def replace_members(self, cohort_id: int, members: tuple[str, ...]) -> None:
        await self._conn.execute("DELETE FROM cohort_members WHERE cohort_id = $1", cohort_id)
        if members:
            await self._conn.copy_records_to_table(
                "cohort_members",
                records=[(cohort_id, m) for m in members],
                columns=["cohort_id", "distinct_id"],
            )

    async def members(self, cohort_id: int) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT distinct_id FROM cohort_members WHERE cohort_id = $1 ORDER BY distinct_id", cohort_id
        )
        return [r["distinct_id"] for r in rows]

    # API keys -------------------------------------------------------------------------------------------
    async def insert_api_key(
        self, *, label: str, key_hash: str, key_prefix: str, project_id: int | None, scope: Scope, actor: str
    ) -> ApiKey:
        try:
            row = await self._conn.fetchrow(
                "INSERT INTO api_keys (label, key_hash, key_prefix, project_id, scope, created_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {API_KEY_COLUMNS}",
                label,
                key_hash,
                key_prefix,
                project_id,
                scope,
                actor,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("this API key already exists") from exc
        assert row is not None
        return api_key_record(row)

    async def get_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._conn.fetchrow(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return None if row is None else api_key_record(row)

    async def revoke_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._conn.fetchrow(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
            f" RETURNING {API_KEY_COLUMNS}",
            key_id,
        )
        return None if row is None else api_key_record(row)

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
        await self._conn.execute(
            "INSERT INTO audit_log (project_id, actor, action, entity_type, entity_id, before, after)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            project_id,
            actor,
            action,
            entity_type,
            entity_id,
            before,
            after,
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
        # seq comes from the change_log_seq trigger (commit-ordered), which also NOTIFYs flagd_changes.
        await self._conn.execute(
            "INSERT INTO change_log (project_id, entity_type, entity_id, entity_version, op, payload)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            project_id,
            entity_type,
            entity_id,
            entity_version,
            op,
            payload,
        )
