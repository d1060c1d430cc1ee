"""Dry-run writes on both ``AdminRepository`` backends: every check of the real write, nothing left behind."""

from __future__ import annotations

import pytest

from store.errors import Conflict, ValidationFailed
from tests.store.test_repository import Repo, flag, project, written


async def test_dry_run_returns_the_record_and_writes_nothing(repo: Repo) -> None:
    """A dry-run create, update and delete each return the record as it would be, and leave no flag row,
    audit entry or change-log row behind; the real write afterwards still gets version 2."""
    pid = await project(repo)
    created = await repo.create_flag(pid, flag("beta", 10), actor="t")
    before = await written(repo, pid)
    ghost = await repo.create_flag(pid, flag("ghost", 20), actor="t", dry_run=True)
    assert ghost.key == "ghost"
    assert ghost.version == 1
    would = await repo.update_flag(
        pid, created.id, {"active": False}, actor="t", expected_version=1, dry_run=True
    )
    assert would.active is False
    assert would.version == 2
    gone = await repo.delete_flag(pid, created.id, actor="t", expected_version=1, dry_run=True)
    assert gone.deleted is True
    cohort = await repo.create_cohort(
        pid, {"name": "vips", "is_static": True, "members": ["a", "b"]}, actor="t", dry_run=True
    )
    assert cohort.member_count == 2
    assert await written(repo, pid) == before
    assert (await repo.list_cohorts(pid)).total == 0
    current = await repo.get_flag(pid, created.id)
    assert current.active is True
    assert current.version == 1
    real = await repo.update_flag(pid, created.id, {"active": False}, actor="t", expected_version=1)
    assert real.version == 2


async def test_dry_run_refuses_what_the_write_would_refuse(repo: Repo) -> None:
    """A dry run raises the write's ValidationFailed (with field paths) and stale-version Conflict."""
    pid = await project(repo)
    created = await repo.create_flag(pid, flag("beta", 10), actor="t")
    with pytest.raises(ValidationFailed) as invalid:
        await repo.update_flag(
            pid, created.id, {"filters": {"groups": [{"rollout_percentage": 120}]}}, actor="t", dry_run=True
        )
    assert invalid.value.issues[0].path == "filters.groups[0].rollout_percentage"
    with pytest.raises(Conflict) as stale:
        await repo.update_flag(
            pid, created.id, {"active": False}, actor="t", expected_version=7, dry_run=True
        )
    assert stale.value.current_version == 1
    with pytest.raises(Conflict):
        await repo.create_flag(pid, flag("beta", 5), actor="t", dry_run=True)
