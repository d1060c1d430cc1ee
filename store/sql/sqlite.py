"""``SqliteRepository``: the admin repository on a local SQLite file, for the embedded (one-process) mode.

Same contract, same rules and same audit/change logs as ``store.postgres`` (the write steps live in
``store.operations``); only the SQL differs (``store.sqlite_schema``). sqlite3 is blocking, so every statement
runs on one dedicated database thread; an ``asyncio.Lock`` makes each write transaction (``BEGIN IMMEDIATE``)
and each read exclusive, which also makes change_log seq order equal commit order. WAL mode keeps the file
readable by other processes (e.g. ``flagd export``) while the server writes.

``on_commit`` (set by ``store.embedded.EmbeddedBackend``) is awaited after each committed write with the ids
of the projects it changed, before the write call returns: that is how the embedded catalog is never behind.
sqlite3 errors are translated here: a locked or unreadable database -> ``StoreUnavailable``/``StoreTimeout``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from store.catalog import ProjectData
from store.errors import NotFound, StoreError, StoreTimeout, StoreUnavailable
from store.operations import WriteOperations
from store.protocols import AdminRepository, ChangeSource
from store.records import ApiKey, AuditEntry, ChangeRow, CohortRecord, FlagRecord, Page, Project
from store.sqlite_schema import PRAGMAS, SCHEMA, SCHEMA_VERSION
from store.sqlite_transaction import (
    API_KEY_COLUMNS,
    COHORT_COLUMNS,
    FLAG_COLUMNS,
    PROJECT_COLUMNS,
    SqliteTransaction,
    decode_row,
)
from store.tokens import hash_secret
from store.transaction import ProjectHead, ProjectRow, Transaction, assemble_projects

__all__ = ["OnCommit", "SqliteRepository"]

T = TypeVar("T")
OnCommit = Callable[[set[int]], Awaitable[None]]


def _contains(haystack: str | None, needle: str | None) -> bool:
    # Case-insensitive substring match (Unicode casefold), the SQLite stand-in for ILIKE '%needle%'.
    return haystack is not None and needle is not None and needle.casefold() in haystack.casefold()


def _translate(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreTimeout(f"SQLite database is locked: {exc}")
        return StoreUnavailable(f"SQLite unavailable: {exc}")
    return StoreError(f"SQLite error: {exc}")


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.create_function("flagd_contains", 2, _contains, deterministic=True)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"{path} has schema version {version}, newer than this flagd ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION:
        conn.executescript(f"BEGIN; {SCHEMA}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    return conn


class SqliteRepository(WriteOperations):
    """``AdminRepository`` on a SQLite file. Build with ``await SqliteRepository.open(path)``."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, path: str) -> None:
        self._conn = conn
        self._executor = executor
        self._lock = asyncio.Lock()
        self.path = path
        self.on_commit: OnCommit | None = None

    @classmethod
    async def open(cls, path: str | Path) -> Self:
        """Open (creating if needed) the database file and bring its schema up to date."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flagd-sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, str(path))
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise _translate(exc) from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor, str(path))

    async def close(self) -> None:
        async with self._lock:
            await self._run(self._conn.close)
        self._executor.shutdown(wait=True)

    # Plumbing -------------------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.IntegrityError:
            raise  # the transaction's statement knows what it means (Conflict); else _transaction translates
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _begin(self) -> None:
        # A caller cancelled between BEGIN and its end may have left a transaction open: never build on it.
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._conn.execute("BEGIN IMMEDIATE")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            await asyncio.shield(self._run(self._begin))
            tx = SqliteTransaction(self._conn, self._run)
            try:
                yield tx
            except BaseException as exc:
                await asyncio.shield(self._run(lambda: self._conn.execute("ROLLBACK")))
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc) from exc
                raise
            await self._run(lambda: self._conn.execute("COMMIT"))
        if tx.changed_projects and self.on_commit is not None:
            await self.on_commit(set(tx.changed_projects))

    async def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            rows = await self._run(lambda: self._conn.execute(sql, args).fetchall())
        return [decode_row(r) for r in rows]

    async def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def _count(self, sql: str, *args: Any) -> int:
        row = await self._one(sql, *args)
        assert row is not None
        return int(next(iter(row.values())))

    # Projects -------------------------------------------------------------------------------------------
    async def get_project(self, project_id: int) -> Project:
        row = await self._one(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?", project_id)
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return ProjectRow(**row).record()

    async def list_projects(self) -> list[Project]:
        return [
            ProjectRow(**r).record()
            for r in await self._all(f"SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id")
        ]

    async def get_project_by_token(self, api_token: str) -> Project:
        row = await self._one(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE api_token = ?", api_token)
        if row is None:
            raise NotFound("no project with this token")
        return ProjectRow(**row).record()

    # API keys -------------------------------------------------------------------------------------------
    async def list_api_keys(self, project_id: int | None = None) -> list[ApiKey]:
        if project_id is None:
            rows = await self._all(f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id")
        else:
            rows = await self._all(
                f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE project_id = ? ORDER BY id", project_id
            )
        return [ApiKey(**r) for r in rows]

    async def authenticate(self, raw_key: str) -> ApiKey | None:
        row = await self._one(
            f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
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
        where = (
            "project_id = ?1 AND (?2 OR NOT deleted)"
            " AND (?3 IS NULL OR flagd_contains(key, ?3) OR flagd_contains(name, ?3))"
        )
        args = (project_id, include_deleted, search)
        rows = await self._all(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE {where} ORDER BY id LIMIT ?4 OFFSET ?5",
            *args,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._count(f"SELECT count(*) FROM feature_flags WHERE {where}", *args)
        return Page(items=[FlagRecord(**r) for r in rows], total=total)

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord:
        """A live flag by id (``NotFound`` when absent or deleted)."""
        row = await self._one(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = ? AND id = ? AND NOT deleted",
            project_id,
            flag_id,
        )
        if row is None:
            raise NotFound(f"flag {flag_id} not found in project {project_id}")
        return FlagRecord(**row)

    async def get_flag_by_key(self, project_id: int, key: str) -> FlagRecord:
        row = await self._one(
            f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE project_id = ? AND key = ? AND NOT deleted",
            project_id,
            key,
        )
        if row is None:
            raise NotFound(f"flag {key!r} not found in project {project_id}")
        return FlagRecord(**row)

    # Cohorts --------------------------------------------------------------------------------------------
    async def list_cohorts(self, project_id: int, *, limit: int = 100, offset: int = 0) -> Page[CohortRecord]:
        rows = await self._all(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = ? AND NOT deleted"
            " ORDER BY id LIMIT ? OFFSET ?",
            project_id,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._count(
            "SELECT count(*) FROM cohorts WHERE project_id = ? AND NOT deleted", project_id
        )
        return Page(items=[CohortRecord(**r) for r in rows], total=total)

    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord:
        """A live cohort by id (``NotFound`` when absent or deleted)."""
        row = await self._one(
            f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE project_id = ? AND id = ? AND NOT deleted",
            project_id,
            cohort_id,
        )
        if row is None:
            raise NotFound(f"cohort {cohort_id} not found in project {project_id}")
        return CohortRecord(**row)

    async def cohort_members(self, project_id: int, cohort_id: int) -> list[str]:
        """A static cohort's distinct ids, sorted."""
        await self.get_cohort(project_id, cohort_id)
        rows = await self._all(
            "SELECT distinct_id FROM cohort_members WHERE cohort_id = ? ORDER BY distinct_id", cohort_id
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
        where = "project_id = ?1 AND (?2 IS NULL OR entity_type = ?2) AND (?3 IS NULL OR entity_id = ?3)"
        args = (project_id, entity_type, entity_id)
        rows = await self._all(
            "SELECT id, project_id, actor, action, entity_type, entity_id, before, after, created_at"
            f" FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ?4 OFFSET ?5",
            *args,
            max(limit, 0),
            max(offset, 0),
        )
        total = await self._count(f"SELECT count(*) FROM audit_log WHERE {where}", *args)
        return Page(items=[AuditEntry(**r) for r in rows], total=total)

    # Change stream --------------------------------------------------------------------------------------
    async def changes_since(self, seq: int, limit: int = 1000) -> list[ChangeRow]:
        """change_log rows with ``seq`` greater than the given one, in seq (= commit) order."""
        rows = await self._all(
            "SELECT seq, project_id, entity_type, entity_id, entity_version, op, payload, created_at"
            " FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?",
            seq,
            limit,
        )
        return [ChangeRow(**r) for r in rows]

    async def max_seq(self) -> int:
        """The newest change_log seq (0 when empty)."""
        return await self._count("SELECT COALESCE(max(seq), 0) FROM change_log")

    async def project_seqs_since(self, seq: int) -> dict[int, int]:
        """Projects changed after ``seq`` (by any process writing to the file), with their newest seq."""
        rows = await self._all(
            "SELECT project_id, max(seq) AS seq FROM change_log WHERE seq > ? GROUP BY project_id", seq
        )
        return {r["project_id"]: r["seq"] for r in rows}

    async def load_projects(self) -> list[ProjectData]:
        """Every project with its live flags, live cohorts and static members; ``version`` = newest seq."""
        return await self._load(None)

    async def load_project(self, project_id: int) -> ProjectData:
        """One project, as ``load_projects`` builds it (``NotFound`` when absent)."""
        found = await self._load(project_id)
        if not found:
            raise NotFound(f"project {project_id} not found")
        return found[0]

    async def _load(self, project_id: int | None) -> list[ProjectData]:
        only = "(?1 IS NULL OR project_id = ?1)"

        def read() -> tuple[list[sqlite3.Row], ...]:
            query = self._conn.execute
            return (
                query(
                    "SELECT p.id, p.api_token, p.secret_token_hash, p.group_type_mapping,"
                    " COALESCE((SELECT max(seq) FROM change_log c WHERE c.project_id = p.id), 0) AS seq"
                    " FROM projects p WHERE (?1 IS NULL OR p.id = ?1) ORDER BY p.id",
                    (project_id,),
                ).fetchall(),
                query(
                    f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE NOT deleted AND {only} ORDER BY id",
                    (project_id,),
                ).fetchall(),
                query(
                    f"SELECT {COHORT_COLUMNS} FROM cohorts WHERE NOT deleted AND {only} ORDER BY id",
                    (project_id,),
                ).fetchall(),
                query(
                    "SELECT m.cohort_id, m.distinct_id"
                    " FROM cohort_members m JOIN cohorts c ON c.id = m.cohort_id"
                    " WHERE c.is_static AND NOT c.deleted AND (?1 IS NULL OR c.project_id = ?1)"
                    " ORDER BY m.cohort_id, m.distinct_id",
                    (project_id,),
                ).fetchall(),
            )

        async with self._lock:
            projects, flags, cohorts, members = await self._run(read)
        return assemble_projects(
            [ProjectHead(**decode_row(p)) for p in projects],
            [FlagRecord(**decode_row(f)) for f in flags],
            [CohortRecord(**decode_row(c)) for c in cohorts],
            [(m["cohort_id"], m["distinct_id"]) for m in members],
        )


if TYPE_CHECKING:  # mypy proves the class satisfies both protocols

    def _conforms(repository: SqliteRepository) -> tuple[AdminRepository, ChangeSource]:
        return repository, repository
