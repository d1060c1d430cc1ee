"""Applying a change from the change itself (``apply_changes``) gives exactly what reloading the project
gives, whatever the sequence of writes; and a flag write no longer rereads a large static cohort."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from store.catalog import ProjectData
from store.errors import Conflict, ValidationFailed
from store.stream.embedded import EmbeddedBackend

KEYS = ["a", "b", "c"]

# One admin write: (what, which, a value).
writes_ = st.lists(
    st.tuples(
        st.sampled_from(["flag", "flag_off", "flag_delete", "static", "static_delete", "project"]),
        st.sampled_from(KEYS),
        st.integers(0, 100),
    ),
    min_size=1,
    max_size=12,
)


def _comparable(data: ProjectData) -> dict[str, Any]:
    return {
        "token": data.api_token,
        "secret": data.secret_token_hash,
        "mapping": data.group_type_mapping,
        "matching": data.property_matching_version,
        "version": data.version,
        "flags": sorted(data.flags, key=lambda f: f["id"]),
        "cohorts": sorted(data.cohorts, key=lambda c: c["id"]),
        "members": {k: sorted(v) for k, v in data.static_members.items()},
    }


async def _apply(backend: EmbeddedBackend, pid: int, write: tuple[str, str, int]) -> None:
    repo, (what, key, n) = backend.repository, write
    flags = {f.key: f for f in (await repo.list_flags(pid)).items}
    cohorts = {c.name: c for c in (await repo.list_cohorts(pid)).items if not c.deleted}
    rollout = {"groups": [{"properties": [], "rollout_percentage": n}]}
    try:
        if what == "flag" and key in flags:
            await repo.update_flag(pid, flags[key].id, {"filters": rollout}, actor="t")
        elif what == "flag":
            await repo.create_flag(pid, {"key": key, "filters": rollout}, actor="t")
        elif what == "flag_off" and key in flags:
            await repo.update_flag(pid, flags[key].id, {"active": False}, actor="t")
        elif what == "flag_delete" and key in flags:
            await repo.delete_flag(pid, flags[key].id, actor="t")
        elif what == "static" and key in cohorts:
            members = [f"u{i}" for i in range(n)]
            await repo.update_cohort(pid, cohorts[key].id, {"members": members}, actor="t")
        elif what == "static":
            body = {"name": key, "is_static": True, "members": [f"u{i}" for i in range(n)]}
            await repo.create_cohort(pid, body, actor="t")
        elif what == "static_delete" and key in cohorts:
            await repo.delete_cohort(pid, cohorts[key].id, actor="t")
        elif what == "project":
            matching = 1 + n % 2
            await repo.update_project(
                pid, actor="t", group_type_mapping={"0": f"org{n}"}, property_matching_version=matching
            )
    except (Conflict, ValidationFailed):
        pass  # refused writes change nothing; the comparison below still has to hold


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=writes_)
@example(sequence=[("static", "a", 0)])  # an empty static cohort: SQL once read it as no cohort at all
def test_applying_changes_equals_reloading(tmp_path: Path, sequence: list[tuple[str, str, int]]) -> None:
    """After any sequence of flag, static cohort and project writes, the catalog's data (built by applying
    each change) is the data a full reload of the project reads."""

    async def run() -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            backend = await EmbeddedBackend.open(Path(folder) / "f.db", poll_interval=0)
            await backend.start()
            try:
                pid = (await backend.repository.create_project("p", actor="t")).project.id
                for write in sequence:
                    await _apply(backend, pid, write)
                    state = backend.catalog.by_id(pid)
                    assert state is not None
                    assert state.data is not None
                    reloaded = await backend.repository.load_project(pid)
                    assert _comparable(state.data) == _comparable(reloaded)
            finally:
                await backend.close()

    asyncio.run(run())


async def test_a_flag_write_keeps_the_static_cohorts_members(tmp_path: Path) -> None:
    """A flag write next to a 20,000-member static cohort reuses the cohort's member set (no reread)."""
    backend = await EmbeddedBackend.open(tmp_path / "f.db", poll_interval=0)
    await backend.start()
    try:
        repo = backend.repository
        pid = (await repo.create_project("p", actor="t")).project.id
        members = [f"user-{i}" for i in range(20_000)]
        cohort = await repo.create_cohort(
            pid, {"name": "vip", "is_static": True, "members": members}, actor="t"
        )
        before = backend.catalog.by_id(pid)
        assert before is not None
        await repo.create_flag(pid, {"key": "x"}, actor="t")
        after = backend.catalog.by_id(pid)
        assert after is not None
        assert after.snapshot is not before.snapshot
        assert after.static[str(cohort.id)] is before.static[str(cohort.id)]
    finally:
        await backend.close()
