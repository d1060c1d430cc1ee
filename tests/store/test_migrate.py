"""Migrations: applied in order, once, safely from several processes at the same time."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from store.errors import StoreUnavailable
from store.sql.migrate import migrate, migration_files
from store.sql.sqlite import SqliteRepository

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


async def test_an_embedded_file_of_schema_1_is_upgraded_in_place(tmp_path: Path) -> None:
    """A SQLite file written before property_matching_version existed opens, keeps its project, reads the
    new setting as 1 and can change it."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
        " api_token TEXT NOT NULL UNIQUE, secret_token_hash TEXT NOT NULL,"
        " group_type_mapping TEXT NOT NULL DEFAULT '{}', version INTEGER NOT NULL DEFAULT 1,"
        " created_at TEXT NOT NULL, created_by TEXT NOT NULL DEFAULT 'system');"
        "INSERT INTO projects (name, api_token, secret_token_hash, created_at)"
        " VALUES ('old', 'phc_old', 'h', '2024-01-01T00:00:00+00:00');"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    repo = await SqliteRepository.open(path)
    try:
        project = await repo.get_project(1)
        assert (project.name, project.property_matching_version) == ("old", 1)
        changed = await repo.update_project(1, actor="test", property_matching_version=2)
        assert changed.property_matching_version == 2
    finally:
        await repo.close()


async def test_a_new_embedded_file_has_the_tables_and_columns_of_the_migrated_database(
    database_url: str, tmp_path: Path
) -> None:
    """The SQLite schema is derived from the PostgreSQL migrations: every table has the same columns, with
    the same nullability, so a column added by a migration reaches both backends."""
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
        )
    finally:
        await conn.close()
    postgres = {(r["table_name"], r["column_name"], r["is_nullable"] == "YES") for r in rows}
    repo = await SqliteRepository.open(tmp_path / "new.db")
    await repo.close()
    file = sqlite3.connect(tmp_path / "new.db")
    try:
        tables = [r[0] for r in file.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite = {
            (table, name, not notnull and not pk)
            for table in tables
            if table != "sqlite_sequence"
            for _cid, name, _type, notnull, _default, pk in file.execute(f"PRAGMA table_info({table})")
        }
    finally:
        file.close()
    assert sqlite == postgres
