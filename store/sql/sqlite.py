"""``SqliteRepository``: the admin repository on a local SQLite file, for the embedded (one-process) mode.

Same contract, same rules, same queries and same audit/change logs as ``store.sql.postgres``: the write steps
live in ``store.sql.operations``, the statements in ``store.sql.transaction`` and ``store.sql.reads``, and
what SQLite spells differently in ``store.sql.dialect``; the schema is ``store.sql.sqlite_schema``. sqlite3 is
blocking, so every statement runs on one dedicated database thread; an ``asyncio.Lock`` makes each write
transaction (``BEGIN IMMEDIATE``) and each read exclusive, which also makes change_log seq order equal commit
order. WAL mode keeps the file readable by other processes (e.g. ``flagd export``) while the server writes.

``on_commit`` (set by ``store.stream.embedded.EmbeddedBackend``) is awaited after each committed write with
the ids of the projects it changed, before the write call returns: that is how the embedded catalog is never
behind. sqlite3 errors are translated here: a locked or unreadable database -> ``StoreUnavailable`` /
``StoreTimeout``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from store.errors import StoreError, StoreTimeout, StoreUnavailable
from store.protocols import ChangeSource
from store.sql.dialect import SQLITE, Clock, Dialect, decode_row, sqlite_text
from store.sql.reads import Query
from store.sql.repository import AdminRepository
from store.sql.sqlite_schema import PRAGMAS, SCHEMA_VERSION, upgrade
from store.sql.transaction import Transaction

__all__ = ["OnCommit", "SqliteRepository"]

T = TypeVar("T")
Runner = Callable[[Callable[[], Any]], Awaitable[Any]]
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


def _connect(path: str, clock: Clock) -> sqlite3.Connection:
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.create_function("flagd_contains", 2, _contains, deterministic=True)
    conn.create_function("flagd_now", 0, clock.read)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"{path} has schema version {version}, newer than this flagd ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION:
        conn.executescript(upgrade(version))
    return conn


class SqliteRepository(AdminRepository):
    """``AdminRepository`` on a SQLite file. Build with ``await SqliteRepository.open(path)``."""

    dialect: Dialect = SQLITE

    def __init__(
        self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, path: str, clock: Clock
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._executor = executor
        self._lock = asyncio.Lock()
        self.path = path
        self.on_commit: OnCommit | None = None

    @classmethod
    async def open(cls, path: str | Path) -> Self:
        """Open (creating if needed) the database file and bring its schema up to date."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flagd-sqlite")
        loop = asyncio.get_running_loop()
        clock = Clock()
        try:
            conn = await loop.run_in_executor(executor, _connect, str(path), clock)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise _translate(exc) from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor, str(path), clock)

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
            tx = Transaction(_SqliteConnection(self._conn, self._clock, self._run))
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
        return (await self._snapshot([(sql, args)]))[0]

    async def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def _count(self, sql: str, *args: Any) -> int:
        row = await self._one(sql, *args)
        assert row is not None
        return int(next(iter(row.values())))

    async def _snapshot(self, queries: list[Query]) -> list[list[dict[str, Any]]]:
        def read() -> list[list[sqlite3.Row]]:
            return [self._conn.execute(sqlite_text(sql), args).fetchall() for sql, args in queries]

        async with self._lock:
            results = await self._run(read)
        return [[decode_row(r) for r in rows] for rows in results]


class _SqliteConnection:
    """``store.sql.transaction.Connection`` on the repository's connection, inside its open transaction.

    Statements run on the repository's single database thread (``run``); ``flagd_now()`` reads the stamp
    the clock took when the statement started."""

    __slots__ = ("_clock", "_conn", "_run")
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, clock: Clock, run: Runner) -> None:
        self._conn = conn
        self._clock = clock
        self._run = run

    def _cursor(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        self._clock.tick()
        return self._conn.execute(sqlite_text(sql), args)

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._run(lambda: self._cursor(sql, args).fetchone())
        return None if row is None else decode_row(row)

    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        rows = await self._run(lambda: self._cursor(sql, args).fetchall())
        return [decode_row(r) for r in rows]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._run(lambda: self._cursor(sql, args))

    async def insert_rows(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        await self._run(lambda: self._conn.executemany(sql, rows))


if TYPE_CHECKING:  # mypy proves the class satisfies the protocol

    def _conforms(repository: SqliteRepository) -> ChangeSource:
        return repository
