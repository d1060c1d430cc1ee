"""Migrations: applied in order, once, safely from several processes at the same time."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest

from store.errors import StoreUnavailable
from store.sql.migrate import migrate, migration_files

pytestmark = pytest.mark.integration


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


def test_migration_files_ship_as_package_data() -> None:
    """The SQL files are found through importlib.resources, in name order, starting with 001_initial.sql."""
    names = [name for name, _ in migration_files()]
    assert names[0] == "001_initial.sql"
    assert names == sorted(names)


async def test_migrate_applies_everything_then_is_a_no_op(database_url: str) -> None:
    """The first run applies every file and creates the schema; the second run applies nothing."""
    first = await migrate(database_url)
    assert first == [name for name, _ in migration_files()]
    tables = await _tables(database_url)
    assert {"projects", "feature_flags", "change_log", "schema_migrations"} <= tables
    assert await migrate(database_url) == []
    assert await _tables(database_url) == tables


async def test_concurrent_migrators_do_not_fail(database_url: str) -> None:
    """Several migrators started at once all succeed, and each file is applied exactly once."""
    results = await asyncio.gather(*(migrate(database_url) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == [name for name, _ in migration_files()]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(migration_files())
    finally:
        await conn.close()


async def test_unreachable_database_is_store_unavailable() -> None:
    """Migrating against a closed port raises StoreUnavailable, not a driver error."""
    from tests.servers import free_port

    with pytest.raises(StoreUnavailable):
        await migrate(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=2)
