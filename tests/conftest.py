"""Shared fixtures: real PostgreSQL and Redis servers (see tests/servers.py)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings

from tests.servers import PostgresServer, RedisServer, postgres_server, redis_server

_db_counter = itertools.count()

# `make mutation` runs the evaluator suite once per mutant: the same examples every run, no example database.
settings.register_profile("mutation", derandomize=True, database=None)
if os.environ.get("FLAGD_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["FLAGD_HYPOTHESIS_PROFILE"])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session; tests get their own database in it (``database_url``)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[RedisServer]:
    """One Redis for the whole session; ``redis_url`` flushes it before each test."""
    with redis_server() as server:
        yield server


@pytest.fixture
def database_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session PostgreSQL, dropped after the test."""
    import asyncpg

    name = f"flagd_test_{next(_db_counter)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_server.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield pg_server.url_for(name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url(redis_srv: RedisServer) -> str:
    """The session Redis, emptied before the test."""
    client = redis.Redis.from_url(redis_srv.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_srv.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own that it may stop, stall and restart (skips on an external server)."""
    with redis_server() as server:
        if not server.controllable:
            pytest.skip("fault injection needs a throwaway Redis (FLAGD_TEST_REDIS_URL is set)")
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own that it may stop, stall and restart (skips on an external server)."""
    with postgres_server() as server:
        if not server.controllable:
            pytest.skip("fault injection needs a throwaway PostgreSQL (FLAGD_TEST_DATABASE_URL is set)")
        yield server


def pytest_report_header() -> str:
    """Say which evaluator the run tests: the compiled build or the pure sources (and why)."""
    import evaluator

    if evaluator.COMPILED:
        return "evaluator: compiled (mypyc)"
    return f"evaluator: pure Python ({evaluator.PURE_REASON or 'not compiled'})"
