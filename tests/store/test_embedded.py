"""The embedded backend: SQLite writes are compiled into the catalog before the write call returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from evaluator import Context
from store.errors import ValidationFailed
from store.sql.tokens import hash_secret
from store.stream.embedded import EmbeddedBackend


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    """A started embedded backend on a fresh file."""
    opened = await EmbeddedBackend.open(tmp_path / "flagd.db")
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


def targeted(key: str, plan: str) -> dict[str, Any]:
    """A flag on for persons whose plan is ``plan``."""
    prop = {"key": "plan", "value": plan, "operator": "exact", "type": "person"}
    return {"key": key, "filters": {"groups": [{"properties": [prop], "rollout_percentage": 100}]}}


async def test_start_marks_an_empty_catalog_loaded(backend: EmbeddedBackend) -> None:
    """A new file starts as a loaded, empty catalog."""
    assert backend.catalog.loaded
    assert list(backend.catalog.projects()) == []


async def test_a_write_is_visible_in_the_snapshot_immediately(backend: EmbeddedBackend) -> None:
    """Creating, editing and deleting a flag changes what the catalog's snapshot evaluates, at once."""
    repo = backend.repository
    new = await repo.create_project("Acme", actor="t")
    state = backend.catalog.by_token(new.project.api_token)
    assert state is not None
    assert state.secret_token_hash == hash_secret(new.secret_token)
    assert len(state.snapshot) == 0

    pro = Context(distinct_id="u1", person_properties={"plan": "pro"})
    flag = await repo.create_flag(new.project.id, targeted("beta", "pro"), actor="t")
    state = backend.catalog.by_token(new.project.api_token)
    assert state is not None
    assert state.snapshot.evaluate(pro)["beta"].enabled is True

    await repo.update_flag(new.project.id, flag.id, targeted("beta", "enterprise"), actor="t")
    state = backend.catalog.by_token(new.project.api_token)
    assert state is not None
    assert state.snapshot.evaluate(pro)["beta"].enabled is False
    assert state.version == max(c.seq for c in await repo.changes_since(0, 100))

    await repo.delete_flag(new.project.id, flag.id, actor="t")
    state = backend.catalog.by_token(new.project.api_token)
    assert state is not None
    assert "beta" not in state.snapshot


async def test_static_cohort_and_group_mapping_reach_the_catalog(backend: EmbeddedBackend) -> None:
    """Static cohort members and a new group type mapping are compiled into the project's snapshot."""
    repo = backend.repository
    pid = (await repo.create_project("Acme", actor="t")).project.id
    cohort = await repo.create_cohort(
        pid, {"name": "VIP", "is_static": True, "members": ["vip-1"]}, actor="t"
    )
    cond = {"key": "id", "type": "cohort", "value": cohort.id, "operator": "in"}
    await repo.create_flag(pid, {"key": "vip", "filters": {"groups": [{"properties": [cond]}]}}, actor="t")
    state = backend.catalog.by_id(pid)
    assert state is not None
    assert state.snapshot.evaluate(Context(distinct_id="vip-1"))["vip"].enabled is True
    assert state.snapshot.evaluate(Context(distinct_id="other"))["vip"].enabled is False
    await repo.update_project(pid, actor="t", group_type_mapping={"0": "company"})
    state = backend.catalog.by_id(pid)
    assert state is not None
    assert state.group_type_mapping == {"0": "company"}


async def test_catalog_survives_reopening_the_file(tmp_path: Path) -> None:
    """After closing and reopening the file, start() rebuilds the same projects, flags and versions."""
    path = tmp_path / "flagd.db"
    first = await EmbeddedBackend.open(path)
    await first.start()
    new = await first.repository.create_project("Acme", actor="t")
    await first.repository.create_flag(new.project.id, targeted("beta", "pro"), actor="t")
    before = first.catalog.by_id(new.project.id)
    await first.close()

    second = await EmbeddedBackend.open(path)
    try:
        assert second.catalog.by_id(new.project.id) is None  # nothing until start()
        await second.start()
        after = second.catalog.by_token(new.project.api_token)
        assert before is not None
        assert after is not None
        assert (after.version, after.local_eval_etag) == (before.version, before.local_eval_etag)
        pro = Context(distinct_id="u1", person_properties={"plan": "pro"})
        assert after.snapshot.evaluate(pro)["beta"].enabled is True
        assert await second.repository.authenticate("phx_nope") is None
    finally:
        await second.close()


async def test_a_failed_write_leaves_the_catalog_alone(backend: EmbeddedBackend) -> None:
    """A rejected write installs nothing: the catalog keeps the state of the last committed write."""
    repo = backend.repository
    pid = (await repo.create_project("Acme", actor="t")).project.id
    await repo.create_flag(pid, targeted("beta", "pro"), actor="t")
    before = backend.catalog.by_id(pid)
    with pytest.raises(ValidationFailed, match="rollout"):
        await repo.create_flag(
            pid, {"key": "bad", "filters": {"groups": [{"rollout_percentage": 150}]}}, actor="t"
        )
    assert backend.catalog.by_id(pid) is before


async def test_writes_from_another_process_are_followed(tmp_path: Path) -> None:
    """Two backends on one file (two workers): a write through one reaches the other's catalog."""
    path = tmp_path / "nested" / "flagd.db"
    writer = await EmbeddedBackend.open(path, poll_interval=0)
    reader = await EmbeddedBackend.open(path, poll_interval=0.05)
    try:
        await writer.start()
        await reader.start()
        new = await writer.repository.create_project("Acme", actor="t")
        assert await reader.catch_up() == {new.project.id}
        assert await reader.catch_up() == set()  # nothing new: nothing reloaded
        await writer.repository.create_flag(new.project.id, targeted("beta", "pro"), actor="t")
        pro = Context(distinct_id="u1", person_properties={"plan": "pro"})
        for _ in range(100):  # the follower polls every 50 ms
            state = reader.catalog.by_id(new.project.id)
            if state is not None and "beta" in state.snapshot:
                break
            await asyncio.sleep(0.02)
        assert state is not None
        assert state.snapshot.evaluate(pro)["beta"].enabled is True
        assert state.version == writer.catalog.version
        assert reader.last_error is None
    finally:
        await reader.close()
        await writer.close()
