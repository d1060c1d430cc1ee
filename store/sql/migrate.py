"""Apply the SQL migrations in ``store/sql/migrations`` to a PostgreSQL database, in order and idempotently.

``schema_migrations`` records what was applied. A session-level advisory lock makes concurrent migrators
(several nodes starting at once) take turns: the second waits, then finds nothing left to do. Each file runs
in its own transaction together with its ``schema_migrations`` row, so a failed migration leaves no trace and
the next run retries it.
"""

from __future__ import annotations

from importlib import resources

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override

from store.errors import StoreError, StoreTimeout, StoreUnavailable

__all__ = ["MIGRATIONS_LOCK", "migrate", "migration_files"]

MIGRATIONS_LOCK = 7420130002  # advisory lock key; 7420130001 is the change_log seq lock

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def migration_files() -> list[tuple[str, str]]:
    """Every ``NNN_name.sql`` shipped in ``store/sql/migrations``, as (file name, SQL), ordered by name."""
    folder = resources.files("store.sql").joinpath("migrations")
    found = [(f.name, f.read_text("utf-8")) for f in folder.iterdir() if f.name.endswith(".sql")]
    return sorted(found)


async def migrate(dsn: str, *, connect_timeout: float = 60.0) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now (empty when up to date).

    Raises ``StoreUnavailable`` / ``StoreTimeout`` when the database cannot be reached, and ``StoreError``
    (with the file name) when a migration's SQL fails.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL to migrate: {exc}") from exc
    except TimeoutError as exc:
        raise StoreTimeout("timed out connecting to PostgreSQL to migrate") from exc
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
        try:
            await conn.execute(_CREATE_TABLE)
            done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
            applied: list[str] = []
            for name, sql in migration_files():
                if name in done:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                except asyncpg.PostgresError as exc:
                    raise StoreError(f"migration {name} failed: {exc}") from exc
                applied.append(name)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"lost PostgreSQL while migrating: {exc}") from exc
    finally:
        await conn.close()
