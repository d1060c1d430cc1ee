"""``SqlReads``: every read of ``AdminRepository`` and ``ChangeSource``, written once for both backends.

The text is PostgreSQL's spelling; ``store.sql.dialect`` names every difference SQLite needs. A backend
(``store.sql.postgres``, ``store.sql.sqlite``) supplies four primitives: ``_one``, ``_all`` and ``_count`` run
one query, and ``_snapshot`` runs several in one consistent read (rows as dicts of Python values).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from store.catalog import ProjectData
from store.errors import NotFound
from store.records import ApiKey, AuditEntry, ChangeRow, CohortRecord, FlagRecord, Page, Project
from store.sql.dialect import API_KEY_COLUMNS, COHORT_COLUMNS, FLAG_COLUMNS, PROJECT_COLUMNS, Dialect
from store.sql.rows import ProjectRow, assemble_projects
from store.sql.tokens import hash_secret

__all__ = ["SqlReads"]

Query = tuple[str, tuple[Any, ...]]


class SqlReads(ABC):
    """The read half of a SQL repository."""

    dialect: Dialect

    @abstractmethod
    async def _one(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    @abstractmethod
    async def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    @abstractmethod
    async def _count(self, sql: str, *args: Any) -> int: ...
    @abstractmethod
    async def _snapshot(self, queries: list[Query]) -> list[list[dict[str, Any]]]: ...

    async def _page(
        self, columns: str, table: str, where: str, order: str, args: tuple[Any, ...], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of rows (``where`` uses $1..$n for ``args``) and the count of all rows matching."""
        n = len(args)
        rows = await self._all(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}",
            *args,
            max(limit, 0),
            max(offset, 0),
        )
        return rows, await self._count(f"SELECT count(*) FROM {table} WHERE {where}", *args)

    async def _live(
        self, columns: str, table: str, by: str, project_id: int, value: Any, missing: str
    ) -> dict[str, Any]:
        """The project's live row whose ``by`` column is ``value`` (else ``NotFound(missing)``)."""
        row = await self._one(
            f"SELECT {columns} FROM {table} WHERE project_id = $1 AND {by} = $2 AND NOT deleted",
            project_id,
            value,
        )
        if row is None:
            raise NotFound(missing)
        return row

    # Projects -------------------------------------------------------------------------------------------
    async def get_project(self, project_id: int) -> Project:
        """Raise ``NotFound`` when absent."""
        row = await self._one(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1", project_id)
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return ProjectRow(**row).record()

    async def list_projects(self) -> list[Project]:
        rows = await self._all(f"SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id")
        return [ProjectRow(**r).record() for r in rows]

    async def get_project_by_token(self, api_token: str) -> Project:
        """The project with this public token; ``NotFound`` when none."""
        row = await self._one(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE api_token = $1", api_token)
        if row is None:
            raise NotFound("no project with this token")
        return ProjectRow(**row).record()

    # API keys -------------------------------------------------------------------------------------------
    async def list_api_keys(self, project_id: int | None = None) -> list[ApiKey]:
        if project_id is None:
            rows = await self._all(f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id")
        else:
            rows = await self._all(
                f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY id", project_id
            )
        return [ApiKey(**r) for r in rows]

    async def authenticate(self, raw_key: str) -> ApiKey | None:
        """The live key whose hash matches, or None."""
        row = await self._one(
            f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hash_secret(raw_key),
        )
        return None if row is None else ApiKey(**row)

    # Flags ----------------------------------------------------------------------------------------------
    async def list_flags(
        self,
        project_id: int,
        *,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> Page[FlagRecord]:
        """Flags ordered by id; ``search`` matches key or name, case-insensitively."""
        where = (
            "project_id = $1 AND ($2 OR NOT deleted)"
            " AND (CAST($3 AS text) IS NULL OR key ILIKE $3 OR name ILIKE $3)"
        )
        args = (project_id, include_deleted, self.dialect.search(search))
        rows, total = await self._page(FLAG_COLUMNS, "feature_flags", where, "id", args, limit, offset)
        return Page(items=[FlagRecord(**r) for r in rows], total=total)

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord:
        """A live flag by id (``NotFound`` when absent or deleted)."""
        missing = f"flag {flag_id} not found in project {project_id}"
        return FlagRecord(
            **await self._live(FLAG_COLUMNS, "feature_flags", "id", project_id, flag_id, missing)
        )

    async def get_flag_by_key(self, project_id: int, key: str) -> FlagRecord:
        missing = f"flag {key!r} not found in project {project_id}"
        return FlagRecord(**await self._live(FLAG_COLUMNS, "feature_flags", "key", project_id, key, missing))

    # Cohorts --------------------------------------------------------------------------------------------
    async def list_cohorts(self, project_id: int, *, limit: int = 100, offset: int = 0) -> Page[CohortRecord]:
        where = "project_id = $1 AND NOT deleted"
        rows, total = await self._page(COHORT_COLUMNS, "cohorts", where, "id", (project_id,), limit, offset)
        return Page(items=[CohortRecord(**r) for r in rows], total=total)

    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord:
        """A live cohort by id (``NotFound`` when absent or deleted)."""
        missing = f"cohort {cohort_id} not found in project {project_id}"
        return CohortRecord(
            **await self._live(COHORT_COLUMNS, "cohorts", "id", project_id, cohort_id, missing)
        )

    async def cohort_members(self, project_id: int, cohort_id: int) -> list[str]:
        """A live static cohort's distinct ids, sorted (``NotFound`` when the cohort is absent or deleted)."""
        await self.get_cohort(project_id, cohort_id)
        rows = await self._all(
            "SELECT distinct_id FROM cohort_members WHERE cohort_id = $1 ORDER BY distinct_id", cohort_id
        )
        return [r["distinct_id"] for r in rows]

    # Audit ----------------------------------------------------------------------------------------------
    async def audit_log(
        self,
        project_id: int,
        *,
        entity_type: str | None = None,
        entity_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Newest first."""
        where = (
            "project_id = $1 AND (CAST($2 AS text) IS NULL OR entity_type = $2)"
            " AND (CAST($3 AS bigint) IS NULL OR entity_id = $3)"
        )
        args = (project_id, entity_type, entity_id)
        columns = "id, project_id, actor, action, entity_type, entity_id, before, after, created_at"
        rows, total = await self._page(columns, "audit_log", where, "id DESC", args, limit, offset)
        return Page(items=[AuditEntry(**r) for r in rows], total=total)

    # Change stream --------------------------------------------------------------------------------------
    async def changes_since(self, seq: int, limit: int = 1000) -> list[ChangeRow]:
        """change_log rows with ``seq`` greater than the given one, in seq (= commit) order."""
        rows = await self._all(
            "SELECT seq, project_id, entity_type, entity_id, entity_version, op, payload, created_at"
            " FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [ChangeRow(**r) for r in rows]

    async def max_seq(self) -> int:
        """The newest change_log seq (0 when empty)."""
        return await self._count("SELECT COALESCE(max(seq), 0) FROM change_log")

    async def project_seqs_since(self, seq: int) -> dict[int, int]:
        """Projects changed after ``seq`` (by any process writing to the database), with their newest seq."""
        rows = await self._all(
            "SELECT project_id, max(seq) AS seq FROM change_log WHERE seq > $1 GROUP BY project_id", seq
        )
        return {r["project_id"]: r["seq"] for r in rows}

    async def load_projects(self) -> list[ProjectData]:
        """Every project with its live flags, live cohorts and static members, read in one consistent
        snapshot; each project's ``version`` is its newest change_log seq."""
        return await self._load(None)

    async def load_project(self, project_id: int) -> ProjectData:
        """One project, as ``load_projects`` builds it (``NotFound`` when absent)."""
        found = await self._load(project_id)
        if not found:
            raise NotFound(f"project {project_id} not found")
        return found[0]

    async def _load(self, project_id: int | None) -> list[ProjectData]:
        only = "(CAST($1 AS bigint) IS NULL OR project_id = $1)"
        args = (project_id,)
        projects, flags, cohorts, members = await self._snapshot(
            [
                (
                    "SELECT p.id AS project_id, p.api_token, p.secret_token_hash, p.group_type_mapping,"
                    " p.property_matching_version,"
                    " COALESCE((SELECT max(seq) FROM change_log c WHERE c.project_id = p.id), 0) AS version"
                    " FROM projects p WHERE (CAST($1 AS bigint) IS NULL OR p.id = $1) ORDER BY p.id",
                    args,
                ),
                (f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE NOT deleted AND {only} ORDER BY id", args),
                (f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE NOT deleted AND {only} ORDER BY id", args),
                (
                    "SELECT m.cohort_id, m.distinct_id"
                    " FROM cohort_members m JOIN cohorts c ON c.id = m.cohort_id"
                    " WHERE c.is_static AND NOT c.deleted"
                    " AND (CAST($1 AS bigint) IS NULL OR c.project_id = $1)"
                    " ORDER BY m.cohort_id, m.distinct_id",
                    args,
                ),
            ]
        )
        return assemble_projects(
            projects,
            [FlagRecord(**f) for f in flags],
            [CohortRecord(**c) for c in cohorts],
            [(m["cohort_id"], m["distinct_id"]) for m in members],
        )
