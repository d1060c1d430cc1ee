"""Fixtures for the store's tests: a migrated, empty repository of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.sql.migrate import migrate
from store.sql.postgres import PostgresRepository
from store.sql.sqlite import SqliteRepository

Repo = PostgresRepository | SqliteRepository


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, location): a fresh PostgreSQL database URL, or a SQLite file path in tmp_path."""
    if request.param == "postgres":
        return "postgres", str(request.getfixturevalue("database_url"))
    return "sqlite", str(tmp_path / "flagd.db")


@pytest.fixture
async def repo(backend: tuple[str, str]) -> AsyncIterator[Repo]:
    """A migrated, empty repository of each kind."""
    kind, location = backend
    repository: Repo
    if kind == "postgres":
        await migrate(location)
        repository = await PostgresRepository.connect(location, max_size=4)
    else:
        repository = await SqliteRepository.open(location)
    try:
        yield repository
    finally:
        await repository.close()
