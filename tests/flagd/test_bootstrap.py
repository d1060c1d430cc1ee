"""Bootstrap is idempotent under concurrency: several nodes starting at once on an empty store, without fixed
FLAGD_BOOTSTRAP_* values, create one default project and one admin key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flagd.bootstrap import bootstrap
from flagd.settings import Settings
from store.sql.migrate import migrate
from store.sql.postgres import PostgresRepository
from store.sql.sqlite import SqliteRepository

NODES = 5


async def _race(repositories: list[PostgresRepository] | list[SqliteRepository]) -> None:
    settings = Settings()  # nothing fixed: every node would generate its own project token
    results = await asyncio.gather(*(bootstrap(r, settings) for r in repositories))
    assert len({r.project.id for r in results}) == 1
    assert sum(r.created_project for r in results) == 1
    assert sum(r.created_admin_key for r in results) == 1
    assert len(await repositories[0].list_projects()) == 1
    assert len(await repositories[0].list_api_keys(None)) == 1


@pytest.mark.integration
async def test_nodes_bootstrapping_at_once_on_postgresql_make_one_project(database_url: str) -> None:
    """Five repositories (five nodes' connections) bootstrapping at the same moment create one project."""
    await migrate(database_url)
    repositories = [await PostgresRepository.connect(database_url, max_size=2) for _ in range(NODES)]
    try:
        await _race(repositories)
    finally:
        for repository in repositories:
            await repository.close()


async def test_processes_bootstrapping_at_once_on_sqlite_make_one_project(tmp_path: Path) -> None:
    """Five repositories on one SQLite file (five embedded processes) bootstrapping at once: one project."""
    path = tmp_path / "flagd.db"
    repositories = [await SqliteRepository.open(path) for _ in range(NODES)]
    try:
        await _race(repositories)
    finally:
        for repository in repositories:
            await repository.close()
