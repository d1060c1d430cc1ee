"""``PostgresRepository``: the admin repository on PostgreSQL (asyncpg pool), the source of truth.

Writes (``store.operations``) run each in one transaction: the row, an audit_log row and a change_log row,
whose trigger assigns the commit-ordered ``seq`` and NOTIFYs ``flagd_changes``. Reads are plain queries.
``load_projects`` and ``changes_since`` serve the change stream (syncer, and nodes starting while Redis is
down). asyncpg errors are translated here, once: connection trouble -> ``StoreUnavailable``, deadlines ->
``StoreTimeout``, anything else from the server -> ``StoreError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override
import msgspec

from store.catalog import ProjectData
from store.errors import NotFound, StoreError, StoreTimeout, StoreUnavailable
from store.operations import WriteOperations
from store.pg_transaction import (
    API_KEY_COLUMNS,
    COHORT_COLUMNS,
    FLAG_COLUMNS,
    PROJECT_COLUMNS,
    PgTransaction,
    api_key_record,
    cohort_record,
    flag_record,
    project_row,
)
from store.protocols import AdminRepository, ChangeSource
from store.records import ApiKey, AuditEntry, ChangeRow, CohortRecord, FlagRecord, Page, Project
from store.tokens import hash_secret
from store.transaction import ProjectHead, Transaction, assemble_projects

__all__ = ["PostgresRepository"]

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode("utf-8")


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_encode_json, decoder=_json_decoder.decode, schema="pg_catalog"
        )


def _translate(exc: BaseException) -> StoreError | None:
    """The store error for a driver error, or None when ``exc`` is not a driver error."""
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return StoreTimeout(f"PostgreSQL did not answer in time: {exc}")
    if isinstance(
        exc,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError,
    ):
        return StoreUnavailable(f"PostgreSQL unavailable: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL error: {exc}")
    return None


def project_row_of(row: Mapping[str, Any]) -> ProjectHead:
    return ProjectHead(**dict(row))


def _like(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PostgresRepository(WriteOperations):
    """``AdminRepository`` on PostgreSQL. Build with ``await PostgresRepository.connect(dsn)``."""

    def __init__(self, pool: asyncpg.Pool[Any], *, acquire_timeout: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
    ) -> Self:
        """Open a pool (``StoreUnavailable`` if the server cannot be reached); the schema must be migrated."""
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=command_timeout,
                init=_init_connection,
                timeout=acquire_timeout,
            )
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc
        return cls(pool, acquire_timeout=acquire_timeout)

    async def close(self) -> None:
        await self._pool.close()

    # Plumbing -------------------------------------------------------------------------------------------
    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection[Any]]:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except Exception as exc:
            translated = _translate(exc)
            if translated is None:
                raise
            raise translated from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._connection() as conn, conn.transaction():
            yield PgTransaction(conn)

    async def _fetch(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Mapping[str, Any] | None:
        async with self._connection() as conn:
            row: Mapping[str, Any] | None = await conn.fetchrow(sql, *args)
            return row

    async def _page_count(self, sql: str, *args: Any) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval(sql, *args))

    # Projects -------------------------------------------------------------------------------------------
    async def get_project(self, project_id: int) -> Project:
        row = await self._fetchrow(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1", project_id)
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return project_row(row).record()

    async def list_projects(self) -> list[Project]:
        rows = await self._fetch(f"SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id")
        return [project_row(r).record() for r in rows]

    async def get_project_by_token(self, api_token: str) -> Project:
        row = await self._fetchrow(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE api_token = $1", api_token)
        if row is None:
            raise NotFound("no project with this token")
        return project_row(row).record()

    # API keys -------------------------------------------------------------------------------------------
    async def list_api_keys(self, project_id: int | None = None) -> list[ApiKey]:
        if project_id is None:
            rows = await self._fetch(f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id")
        else:
            rows = await self._fetch(
                f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY id", project_id
            )
        return [api_key_record(r) for r in rows]

    async def authenticate(self, raw_key: str) -> ApiKey | None:
        row = await self._fetchrow(
            f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hash_secret(raw_key),
        )
        return None if row is None else api_key_record(row)

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
        where = (
            "project_id = $1 AND ($2 OR NOT deleted) AND ($3::text IS NULL OR key ILIKE $3 OR name ILIKE $3)"
        )
        args = (project_id, include_deleted, None if search is None else _like(search))
        rows = await self._fetch(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE {where} ORDER BY id LIMIT $4 OFFSET $5",
            *args,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._page_count(f"SELECT count(*) FROM feature_flags WHERE {where}", *args)
        return Page(items=[flag_record(r) for r in rows], total=total)

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord:
        """A live flag by id (``NotFound`` when absent or deleted)."""
        row = await self._fetchrow(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND id = $2 AND NOT deleted",
            project_id,
            flag_id,
        )
        if row is None:
            raise NotFound(f"flag {flag_id} not found in project {project_id}")
        return flag_record(row)

    async def get_flag_by_key(self, project_id: int, key: str) -> FlagRecord:
        row = await self._fetchrow(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = $1 AND key = $2 AND NOT deleted",
            project_id,
            key,
        )
        if row is None:
            raise NotFound(f"flag {key!r} not found in project {project_id}")
        return flag_record(row)

    # Cohorts --------------------------------------------------------------------------------------------
    async def list_cohorts(self, project_id: int, *, limit: int = 100, offset: int = 0) -> Page[CohortRecord]:
        rows = await self._fetch(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = $1 AND NOT deleted ORDER BY id"
            " LIMIT $2 OFFSET $3",
            project_id,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._page_count(
            "SELECT count(*) FROM cohorts WHERE project_id = $1 AND NOT deleted", project_id
        )
        return Page(items=[cohort_record(r) for r in rows], total=total)

    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord:
        """A live cohort by id (``NotFound`` when absent or deleted)."""
        row = await self._fetchrow(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = $1 AND id = $2 AND NOT deleted",
            project_id,
            cohort_id,
        )
        if row is None:
            raise NotFound(f"cohort {cohort_id} not found in project {project_id}")
        return cohort_record(row)

    async def cohort_members(self, project_id: int, cohort_id: int) -> list[str]:
        """A static cohort's distinct ids, sorted."""
        await self.get_cohort(project_id, cohort_id)
        rows = await self._fetch(
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
        where = (
            "project_id = $1 AND ($2::text IS NULL OR entity_type = $2)"
            " AND ($3::bigint IS NULL OR entity_id = $3)"
        )
        args = (project_id, entity_type, entity_id)
        rows = await self._fetch(
            "SELECT id, project_id, actor, action, entity_type, entity_id, before, after, created_at"
            f" FROM audit_log WHERE {where} ORDER BY id DESC LIMIT $4 OFFSET $5",
            *args,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._page_count(f"SELECT count(*) FROM audit_log WHERE {where}", *args)
        return Page(items=[AuditEntry(**dict(r)) for r in rows], total=total)

    # Change stream --------------------------------------------------------------------------------------
    async def changes_since(self, seq: int, limit: int = 1000) -> list[ChangeRow]:
        """change_log rows with ``seq`` greater than the given one, in seq (= commit) order."""
        rows = await self._fetch(
            "SELECT seq, project_id, entity_type, entity_id, entity_version, op, payload, created_at"
            " FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [ChangeRow(**dict(r)) for r in rows]

    async def max_seq(self) -> int:
        """The newest change_log seq (0 when empty)."""
        return await self._page_count("SELECT COALESCE(max(seq), 0) FROM change_log")

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
        only = "($1::bigint IS NULL OR project_id = $1)"
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            projects = await conn.fetch(
                "SELECT p.id, p.api_token, p.secret_token_hash, p.group_type_mapping,"
                " COALESCE((SELECT max(seq) FROM change_log c WHERE c.project_id = p.id), 0) AS seq"
                " FROM projects p WHERE ($1::bigint IS NULL OR p.id = $1) ORDER BY p.id",
                project_id,
            )
            flags = await conn.fetch(
                f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE NOT deleted AND {only} ORDER BY id",
                project_id,
            )
            cohorts = await conn.fetch(
                f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE NOT deleted AND {only} ORDER BY id", project_id
            )
            members = await conn.fetch(
                "SELECT m.cohort_id, m.distinct_id FROM cohort_members m JOIN cohorts c ON c.id = m.cohort_id"
                " WHERE c.is_static AND NOT c.deleted AND ($1::bigint IS NULL OR c.project_id = $1)"
                " ORDER BY m.cohort_id, m.distinct_id",
                project_id,
            )
        return assemble_projects(
            [project_row_of(p) for p in projects],
            [flag_record(f) for f in flags],
            [cohort_record(c) for c in cohorts],
            [(m["cohort_id"], m["distinct_id"]) for m in members],
        )


if TYPE_CHECKING:  # mypy proves the class satisfies both protocols

    def _conforms(repository: PostgresRepository) -> tuple[AdminRepository, ChangeSource]:
        return repository, repository
