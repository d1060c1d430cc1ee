"""``Transaction``: the statements a write needs, all committing together, written once for both backends.

Only SQL lives here; the rules are in ``store.sql.writes`` and the order of steps in ``store.sql.operations``.
The text is PostgreSQL's spelling; ``store.sql.dialect`` names every difference SQLite needs. A backend
supplies a ``Connection`` (asyncpg in ``store.sql.postgres``, sqlite3 in ``store.sql.sqlite``) that is inside
one open transaction. Driver errors are translated by the repository at the transaction boundary, except
unique violations, which mean something specific at each statement and become ``Conflict`` right here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from store.errors import Conflict
from store.records import ApiKey, CohortRecord, FlagRecord, Scope
from store.sql import writes
from store.sql.dialect import API_KEY_COLUMNS, COHORT_COLUMNS, FLAG_COLUMNS, PROJECT_COLUMNS, Dialect
from store.sql.rows import EntityType, ProjectRow

__all__ = ["Connection", "Transaction"]

FIRST_PROJECT_LOCK = 7420130004  # advisory lock key (…01 change_log seq, …02 migrations, …03 syncer)


class Connection(Protocol):
    """One backend connection inside an open transaction; rows come back as dicts of Python values."""

    @property
    def dialect(self) -> Dialect: ...
    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def insert_rows(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None: ...


class Transaction:
    """Statements for one write, on a connection that is inside a transaction (``store.sql.operations`` runs
    them; ``Conflict`` where a unique key is taken)."""

    __slots__ = ("_db", "_json", "_unique", "changed_projects")

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._json = db.dialect.json
        self._unique = db.dialect.unique_violation
        self.changed_projects: set[int] = set()

    async def _one_unique(self, taken: str, sql: str, *args: Any) -> dict[str, Any] | None:
        """The row an INSERT/UPDATE ... RETURNING gives; ``Conflict(taken)`` on a unique violation."""
        try:
            return await self._db.one(sql, *args)
        except Exception as exc:
            if self._unique(exc):
                raise Conflict(taken) from exc
            raise

    def _flag_values(self, values: writes.FlagValues) -> tuple[Any, ...]:
        """A flag's fields in the order of $2..$7 in its INSERT and its UPDATE."""
        return (
            values.key,
            values.name,
            self._json(values.filters),
            values.active,
            values.bucketing,
            values.ensure_experience_continuity,
        )

    # Projects -------------------------------------------------------------------------------------------
    async def lock_project(self, project_id: int) -> ProjectRow | None:
        row = await self._db.one(
            f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 FOR UPDATE", project_id
        )
        return None if row is None else ProjectRow(**row)

    async def any_project(self) -> bool:
        """Whether any project exists, asked so that two transactions creating "the first project" run one
        after the other (PostgreSQL: a transaction-scoped advisory lock; SQLite: BEGIN IMMEDIATE already
        serialises every write)."""
        if self._db.dialect.name == "postgresql":
            await self._db.execute("SELECT pg_advisory_xact_lock($1)", FIRST_PROJECT_LOCK)
        return await self._db.one("SELECT id FROM projects LIMIT 1") is not None

    async def insert_project(self, name: str, api_token: str, secret_hash: str, actor: str) -> ProjectRow:
        row = await self._one_unique(
            "a project with this api_token already exists",
            "INSERT INTO projects (name, api_token, secret_token_hash, created_at, created_by)"
            f" VALUES ($1, $2, $3, now(), $4) RETURNING {PROJECT_COLUMNS}",
            name,
            api_token,
            secret_hash,
            actor,
        )
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
        property_matching_version: int = 1,
    ) -> ProjectRow | None:
        row = await self._db.one(
            "UPDATE projects SET name = $2, group_type_mapping = $3, secret_token_hash = $4,"
            " property_matching_version = $6, version = version + 1"
            f" WHERE id = $1 AND version = $5 RETURNING {PROJECT_COLUMNS}",
            project_id,
            name,
            self._json(dict(group_type_mapping)),
            secret_token_hash,
            expected_version,
            property_matching_version,
        )
        return None if row is None else ProjectRow(**row)

    # Flags ----------------------------------------------------------------------------------------------
    async def live_flags(self, project_id: int) -> list[FlagRecord]:
        rows = await self._db.all(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND NOT deleted ORDER BY id",
            project_id,
        )
        return [FlagRecord(**r) for r in rows]

    async def live_cohorts(self, project_id: int) -> list[CohortRecord]:
        rows = await self._db.all(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = $1 AND NOT deleted ORDER BY id",
            project_id,
        )
        return [CohortRecord(**r) for r in rows]

    async def live_cohort_ids(self, project_id: int) -> list[str]:
        rows = await self._db.all(
            "SELECT id FROM cohorts WHERE project_id = $1 AND NOT deleted ORDER BY id", project_id
        )
        return [str(r["id"]) for r in rows]

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord | None:
        row = await self._db.one(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND id = $2", project_id, flag_id
        )
        return None if row is None else FlagRecord(**row)

    async def insert_flag(self, project_id: int, values: writes.FlagValues, actor: str) -> FlagRecord:
        row = await self._one_unique(
            f"a live flag with key {values.key!r} already exists",
            "INSERT INTO feature_flags (project_id, key, name, filters, active, bucketing,"
            " ensure_experience_continuity, created_at, created_by, updated_at, updated_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, now(), $8) RETURNING {FLAG_COLUMNS}",
            project_id,
            *self._flag_values(values),
            actor,
        )
        assert row is not None
        return FlagRecord(**row)

    async def update_flag(
        self, flag_id: int, values: writes.FlagValues, *, deleted: bool, expected_version: int, actor: str
    ) -> FlagRecord | None:
        row = await self._one_unique(
            f"a live flag with key {values.key!r} already exists",
            "UPDATE feature_flags SET key = $2, name = $3, filters = $4, active = $5, bucketing = $6,"
            " ensure_experience_continuity = $7, deleted = $8, version = version + 1, updated_at = now(),"
            f" updated_by = $9 WHERE id = $1 AND version = $10 RETURNING {FLAG_COLUMNS}",
            flag_id,
            *self._flag_values(values),
            deleted,
            actor,
            expected_version,
        )
        return None if row is None else FlagRecord(**row)

    # Cohorts --------------------------------------------------------------------------------------------
    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord | None:
        row = await self._db.one(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = $1 AND id = $2", project_id, cohort_id
        )
        return None if row is None else CohortRecord(**row)

    # Cohort writes return the id and re-read the row: SQLite's RETURNING takes no subquery (member count).
    async def insert_cohort(self, project_id: int, values: writes.CohortValues, actor: str) -> CohortRecord:
        row = await self._db.one(
            "INSERT INTO cohorts (project_id, name, description, filters, is_static, created_at, created_by,"
            " updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, now(), $6, now(), $6) RETURNING id",
            project_id,
            values.name,
            values.description,
            self._json(values.filters),
            values.is_static,
            actor,
        )
        assert row is not None
        cohort = await self.get_cohort(project_id, row["id"])
        assert cohort is not None
        return cohort

    async def update_cohort(
        self, cohort_id: int, values: writes.CohortValues, *, deleted: bool, expected_version: int, actor: str
    ) -> CohortRecord | None:
        row = await self._db.one(
            "UPDATE cohorts SET name = $2, description = $3, filters = $4, deleted = $5,"
            " version = version + 1, updated_at = now(), updated_by = $6"
            " WHERE id = $1 AND version = $7 RETURNING project_id",
            cohort_id,
            values.name,
            values.description,
            self._json(values.filters),
            deleted,
            actor,
            expected_version,
        )
        return None if row is None else await self.get_cohort(row["project_id"], cohort_id)

    async def replace_members(self, cohort_id: int, members: tuple[str, ...]) -> None:
        await self._db.execute("DELETE FROM cohort_members WHERE cohort_id = $1", cohort_id)
        if members:
            await self._db.insert_rows(
                "cohort_members", ("cohort_id", "distinct_id"), [(cohort_id, m) for m in members]
            )

    async def members(self, cohort_id: int) -> list[str]:
        rows = await self._db.all(
            "SELECT distinct_id FROM cohort_members WHERE cohort_id = $1 ORDER BY distinct_id", cohort_id
        )
        return [r["distinct_id"] for r in rows]

    # API keys -------------------------------------------------------------------------------------------
    async def insert_api_key(
        self, *, label: str, key_hash: str, key_prefix: str, project_id: int | None, scope: Scope, actor: str
    ) -> ApiKey:
        row = await self._one_unique(
            "this API key already exists",
            "INSERT INTO api_keys"
            " (label, key_hash, key_prefix, project_id, scope, created_at, created_by)"
            f" VALUES ($1, $2, $3, $4, $5, now(), $6) RETURNING {API_KEY_COLUMNS}",
            label,
            key_hash,
            key_prefix,
            project_id,
            scope,
            actor,
        )
        assert row is not None
        return ApiKey(**row)

    async def get_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._db.one(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return None if row is None else ApiKey(**row)

    async def revoke_api_key(self, key_id: int) -> ApiKey | None:
        row = await self._db.one(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
            f" RETURNING {API_KEY_COLUMNS}",
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
        await self._db.execute(
            "INSERT INTO audit_log"
            " (project_id, actor, action, entity_type, entity_id, before, after, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
            project_id,
            actor,
            action,
            entity_type,
            entity_id,
            self._json(before),
            self._json(after),
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
        # PostgreSQL: seq comes from the change_log_seq trigger (commit-ordered), which also NOTIFYs
        # flagd_changes. SQLite: seq is AUTOINCREMENT (writes are serialised) and the repository's on_commit
        # hook is told about ``changed_projects``.
        await self._db.execute(
            "INSERT INTO change_log"
            " (project_id, entity_type, entity_id, entity_version, op, payload, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, now())",
            project_id,
            entity_type,
            entity_id,
            entity_version,
            op,
            self._json(payload),
        )
        self.changed_projects.add(project_id)
