"""Referential integrity on both backends: what live flags or cohorts depend on cannot be deleted or renamed
out from under them (409 naming the dependents, nothing written), and a flag whose dependency is gone can
still be switched off."""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest

from store.errors import Conflict, ValidationFailed
from tests.store.test_repository import Repo, flag, project, written


def depends_on(ref: str | int, key: str = "child") -> dict[str, Any]:
    condition = {"properties": [{"key": str(ref), "type": "flag", "value": True}], "rollout_percentage": 100}
    return {"key": key, "filters": {"groups": [condition]}}


def in_cohort(cohort_id: int, key: str = "targeted") -> dict[str, Any]:
    condition = {
        "properties": [{"key": "id", "type": "cohort", "value": cohort_id}],
        "rollout_percentage": 100,
    }
    return {"key": key, "filters": {"groups": [condition]}}


@pytest.mark.parametrize("by", ["key", "id"])
async def test_a_flag_others_depend_on_cannot_be_deleted(repo: Repo, by: str) -> None:
    """Deleting a flag a live flag depends on (by key or id) is a Conflict naming it; nothing written."""
    pid = await project(repo)
    base = await repo.create_flag(pid, flag("base"), actor="t")
    child = await repo.create_flag(pid, depends_on(base.key if by == "key" else base.id), actor="t")
    before = await written(repo, pid)
    with pytest.raises(Conflict) as info:
        await repo.delete_flag(pid, base.id, actor="t")
    assert info.value.dependents == ["flag:child"]
    assert "flag:child" in str(info.value)
    assert await written(repo, pid) == before
    await repo.delete_flag(pid, child.id, actor="t")  # once nothing depends on it, it can go
    await repo.delete_flag(pid, base.id, actor="t")


async def test_renaming_breaks_only_references_by_key(repo: Repo) -> None:
    """A rename is refused while a flag refers to the old key, and allowed when references are by id."""
    pid = await project(repo)
    base = await repo.create_flag(pid, flag("base"), actor="t")
    by_key = await repo.create_flag(pid, depends_on("base", "by-key"), actor="t")
    await repo.create_flag(pid, depends_on(base.id, "by-id"), actor="t")
    with pytest.raises(Conflict) as info:
        await repo.update_flag(pid, base.id, {"key": "renamed"}, actor="t")
    assert info.value.dependents == ["flag:by-key"]
    await repo.update_flag(pid, by_key.id, {"filters": depends_on(base.id)["filters"]}, actor="t")
    renamed = await repo.update_flag(pid, base.id, {"key": "renamed"}, actor="t")
    assert renamed.key == "renamed"


async def test_a_cohort_in_use_cannot_be_deleted(repo: Repo) -> None:
    """Deleting a cohort a live flag or another cohort uses is a Conflict naming both; nothing written."""
    pid = await project(repo)
    pro = {"properties": {"type": "OR", "values": [{"key": "plan", "type": "person", "value": "pro"}]}}
    cohort = await repo.create_cohort(pid, {"name": "pro", "filters": pro}, actor="t")
    nested = {"properties": {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": cohort.id}]}}
    outer = await repo.create_cohort(pid, {"name": "outer", "filters": nested}, actor="t")
    await repo.create_flag(pid, in_cohort(cohort.id), actor="t")
    before = await written(repo, pid)
    with pytest.raises(Conflict) as info:
        await repo.delete_cohort(pid, cohort.id, actor="t")
    assert info.value.dependents == ["flag:targeted", f"cohort:{outer.id}"]
    assert await written(repo, pid) == before


async def test_a_flag_whose_dependency_is_gone_can_still_be_switched_off(
    repo: Repo,
    backend: tuple[str, str],
) -> None:
    """With its dependency deleted behind its back (older data), a flag still takes active=false, and only
    switching it back on reports the missing dependency."""
    pid = await project(repo)
    base = await repo.create_flag(pid, flag("base"), actor="t")
    child = await repo.create_flag(pid, depends_on("base"), actor="t")
    kind, location = backend
    if kind == "sqlite":
        with sqlite3.connect(location) as db:
            db.execute("UPDATE feature_flags SET deleted = 1 WHERE id = ?", (base.id,))
    else:
        conn = await asyncpg.connect(location)
        try:
            await conn.execute("UPDATE feature_flags SET deleted = true WHERE id = $1", base.id)
        finally:
            await conn.close()
    off = await repo.update_flag(pid, child.id, {"active": False}, actor="t")
    assert off.active is False
    renamed = await repo.update_flag(pid, child.id, {"name": "parked"}, actor="t")
    assert renamed.name == "parked"
    with pytest.raises(ValidationFailed) as info:
        await repo.update_flag(pid, child.id, {"active": True}, actor="t")
    assert any("base" in issue.message for issue in info.value.issues)
