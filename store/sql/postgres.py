"""``PostgresRepository``: the admin repository on PostgreSQL (asyncpg pool), the source of truth.

Writes (``store.sql.operations``) run each in one transaction: the row, an audit_log row and a change_log row,
whose trigger assigns the commit-ordered ``seq`` and NOTIFYs ``flagd_changes``. The queries are shared with
SQLite (``store.sql.transaction``, ``store.sql.reads``); this module supplies the asyncpg connection.
``load_projects`` and ``changes_since`` serve the change stream (syncer, and nodes starting while Redis is
down). asyncpg errors are translated here, once: connection trouble -> ``StoreUnavailable``, deadlines ->
``StoreTimeout``, anything else from the server -> ``StoreError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override
import msgspec

from store.errors import StoreError, StoreTimeout, StoreUnavailable
from store.protocols import ChangeSource
from store.sql.dialect import POSTGRES, Dialect
from store.sql.reads import Query
from store.sql.repository import AdminRepository
from store.sql.transaction import Transaction

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


class PostgresRepository(AdminRepository):
    """``AdminRepository`` on PostgreSQL. Build with ``await PostgresRepository.connect(dsn)``."""

    dialect: Dialect = POSTGRES

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
            yield Transaction(_PgConnection(conn))

    async def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]

    async def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(sql, *args)
            return None if row is None else dict(row)

    async def _count(self, sql: str, *args: Any) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval(sql, *args))

    async def _snapshot(self, queries: list[Query]) -> list[list[dict[str, Any]]]:
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return [[dict(r) for r in await conn.fetch(sql, *args)] for sql, args in queries]


class _PgConnection:
    """``store.sql.transaction.Connection`` on an asyncpg connection inside a transaction."""

    __slots__ = ("_conn",)
    dialect = POSTGRES

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self._conn = conn

    async def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = await self._conn.fetchrow(sql, *args)
        return None if row is None else dict(row)

    async def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def insert_rows(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))


if TYPE_CHECKING:  # mypy proves the class satisfies the protocol

    def _conforms(repository: PostgresRepository) -> ChangeSource:
        return repository
