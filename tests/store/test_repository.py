"""One suite for both ``AdminRepository`` backends: PostgreSQL (a real server) and SQLite (a tmp file)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import Conflict, NotFound, StoreTimeout, StoreUnavailable, ValidationFailed
from store.sql.migrate import migrate
from store.sql.postgres import PostgresRepository
from store.sql.sqlite import SqliteRepository
from store.sql.tokens import hash_secret
from tests.servers import PostgresServer

Repo = PostgresRepository | SqliteRepository


def flag(key: str, rollout: float | None = 50, **extra: Any) -> dict[str, Any]:
    """A PostHog-shaped flag body: one condition with the given rollout."""
    return {
        "key": key,
        "name": f"{key} flag",
        "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]},
        **extra,
    }


def prop(key: str, value: Any, operator: str) -> dict[str, Any]:
    return {"key": key, "value": value, "operator": operator, "type": "person"}


async def project(repo: Repo, name: str = "Acme") -> int:
    return (await repo.create_project(name, actor="test")).project.id


async def written(repo: Repo, project_id: int) -> tuple[int, int, int]:
    """(flags incl. deleted, audit rows, change_log rows) of a project: what a write leaves behind."""
    flags = await repo.list_flags(project_id, include_deleted=True)
    audit = await repo.audit_log(project_id)
    changes = [c for c in await repo.changes_since(0, 10_000) if c.project_id == project_id]
    return flags.total, audit.total, len(changes)


# Projects and keys --------------------------------------------------------------------------------
async def test_create_project_records_a_project_change(repo: Repo) -> None:
    """Creating a project stores only the secret's hash and appends a 'project' change with its tokens."""
    new = await repo.create_project("Acme", actor="cli")
    assert new.project.api_token.startswith("phc_")
    assert new.secret_token.startswith("phs_")
    assert await repo.get_project(new.project.id) == new.project
    [change] = await repo.changes_since(0, 100)
    assert (change.entity_type, change.entity_id, change.op) == ("project", new.project.id, "upsert")
    assert change.payload == {
        "id": new.project.id,
        "api_token": new.project.api_token,
        "secret_token_hash": hash_secret(new.secret_token),
        "group_type_mapping": {},
        "property_matching_version": 1,
        "version": 1,
    }


async def test_project_tokens_can_be_given_and_must_be_unique(repo: Repo) -> None:
    """Bootstrap may fix the tokens; a second project with the same public token is a Conflict."""
    new = await repo.create_project("A", actor="boot", api_token="phc_fixed", secret_token="phs_fixed")
    assert new.project.api_token == "phc_fixed"
    assert new.secret_token == "phs_fixed"
    with pytest.raises(Conflict):
        await repo.create_project("B", actor="boot", api_token="phc_fixed")
    assert [p.name for p in await repo.list_projects()] == ["A"]


async def test_update_project_and_rotate_secret_bump_version(repo: Repo) -> None:
    """A new group type mapping and a rotated secret each append a project change with a higher version."""
    pid = await project(repo)
    updated = await repo.update_project(pid, actor="t", group_type_mapping={"0": "company"})
    assert updated.group_type_mapping == {"0": "company"}
    secret = await repo.rotate_project_secret(pid, actor="t")
    changes = [c for c in await repo.changes_since(0, 100) if c.entity_type == "project"]
    assert [c.payload["version"] for c in changes] == [1, 2, 3]
    assert changes[-1].payload["secret_token_hash"] == hash_secret(secret)
    assert changes[-1].payload["group_type_mapping"] == {"0": "company"}
    with pytest.raises(ValidationFailed) as info:
        await repo.update_project(pid, actor="t", group_type_mapping={"9": "x"})
    assert [i.path for i in info.value.issues] == ["group_type_mapping.9"]


async def test_missing_project_is_not_found(repo: Repo) -> None:
    """Reads and writes on an unknown project raise NotFound."""
    with pytest.raises(NotFound):
        await repo.get_project(999)
    with pytest.raises(NotFound):
        await repo.create_flag(999, flag("x"), actor="t")


async def test_api_keys_authenticate_by_raw_key_until_revoked(repo: Repo) -> None:
    """A key authenticates with its raw value only (its hash does not), and stops after revocation."""
    pid = await project(repo)
    new = await repo.create_api_key(label="ci", scope="read", project_id=pid, actor="t")
    assert new.raw_key.startswith("phx_")
    assert new.raw_key.startswith(new.api_key.key_prefix)
    assert await repo.authenticate(new.raw_key) == new.api_key
    assert await repo.authenticate(hash_secret(new.raw_key)) is None
    assert await repo.authenticate(new.raw_key + "x") is None
    revoked = await repo.revoke_api_key(new.api_key.id, actor="t")
    assert revoked.revoked_at is not None
    assert await repo.authenticate(new.raw_key) is None
    assert [k.id for k in await repo.list_api_keys(pid)] == [new.api_key.id]
    actions = [e.action for e in (await repo.audit_log(pid, entity_type="api_key")).items]
    assert actions == ["api_key.revoked", "api_key.created"]


async def _dump(backend: tuple[str, str]) -> str:
    """Every row of every table, as text: what someone reading the database would see."""
    kind, location = backend
    tables = ["projects", "api_keys", "audit_log", "change_log"]
    if kind == "postgres":
        conn = await asyncpg.connect(location)
        try:
            rows = [r for t in tables for r in await conn.fetch(f"SELECT * FROM {t}")]
            return "\n".join(str(list(r)) for r in rows)
        finally:
            await conn.close()
    with contextlib.closing(sqlite3.connect(location)) as db:
        return "\n".join(str(r) for t in tables for r in db.execute(f"SELECT * FROM {t}"))


async def test_raw_secrets_are_never_stored(repo: Repo, backend: tuple[str, str]) -> None:
    """Project secrets and API keys are stored, audited and logged only as hashes, never raw."""
    new = await repo.create_project("Acme", actor="t")
    rotated = await repo.rotate_project_secret(new.project.id, actor="t")
    key = await repo.create_api_key(label="k", scope="write", project_id=None, actor="t")
    dump = await _dump(backend)
    for raw in (new.secret_token, rotated, key.raw_key):
        assert raw not in dump
    assert hash_secret(key.raw_key) in dump
    assert hash_secret(rotated) in dump


async def test_api_key_scope_is_validated(repo: Repo) -> None:
    """An unknown scope is a validation error naming the field."""
    with pytest.raises(ValidationFailed) as info:
        await repo.create_api_key(label="x", scope="admin", project_id=None, actor="t")  # type: ignore[arg-type]
    assert [i.path for i in info.value.issues] == ["scope"]


# Flags --------------------------------------------------------------------------------------------
async def test_flag_lifecycle_create_get_update_delete(repo: Repo) -> None:
    """A flag is created at version 1, each update bumps the version, and delete is soft."""
    pid = await project(repo)
    created = await repo.create_flag(pid, flag("checkout", bucketing="posthog"), actor="alice")
    assert (created.key, created.version, created.bucketing, created.active) == (
        "checkout",
        1,
        "posthog",
        True,
    )
    assert created.created_by == "alice"
    assert await repo.get_flag(pid, created.id) == created
    assert await repo.get_flag_by_key(pid, "checkout") == created
    updated = await repo.update_flag(pid, created.id, {"active": False}, actor="bob")
    assert (updated.version, updated.active, updated.name, updated.updated_by) == (
        2,
        False,
        "checkout flag",
        "bob",
    )
    assert updated.filters == created.filters
    deleted = await repo.delete_flag(pid, created.id, actor="bob")
    assert (deleted.deleted, deleted.version) == (True, 3)
    with pytest.raises(NotFound):
        await repo.get_flag(pid, created.id)
    with pytest.raises(NotFound):
        await repo.update_flag(pid, created.id, {"active": True}, actor="bob")
    assert (await repo.list_flags(pid)).total == 0
    assert (await repo.list_flags(pid, include_deleted=True)).items == [deleted]


async def test_list_flags_paginates_and_searches(repo: Repo) -> None:
    """Listing orders by id, pages with limit/offset and searches key or name case-insensitively."""
    pid = await project(repo)
    for i in range(7):
        await repo.create_flag(pid, flag(f"flag-{i}", name="Checkout" if i % 3 == 0 else "other"), actor="t")
    page = await repo.list_flags(pid, limit=3, offset=3)
    assert page.total == 7
    assert [f.key for f in page.items] == ["flag-3", "flag-4", "flag-5"]
    found = await repo.list_flags(pid, search="CHECK")
    assert [f.key for f in found.items] == ["flag-0", "flag-3", "flag-6"]
    assert found.total == 3
    assert [f.key for f in (await repo.list_flags(pid, search="lag-5")).items] == ["flag-5"]
    assert (await repo.list_flags(pid, search="%")).total == 0


async def test_stale_expected_version_conflicts_and_changes_nothing(repo: Repo) -> None:
    """An update or delete with a stale expected_version raises Conflict carrying the current version."""
    pid = await project(repo)
    f = await repo.create_flag(pid, flag("a"), actor="t")
    await repo.update_flag(pid, f.id, {"name": "v2"}, actor="t", expected_version=1)
    before = await written(repo, pid)
    with pytest.raises(Conflict) as info:
        await repo.update_flag(pid, f.id, {"name": "lost"}, actor="t", expected_version=1)
    assert info.value.current_version == 2
    with pytest.raises(Conflict) as info:
        await repo.delete_flag(pid, f.id, actor="t", expected_version=1)
    assert info.value.current_version == 2
    assert (await repo.get_flag(pid, f.id)).name == "v2"
    assert await written(repo, pid) == before


async def test_concurrent_updates_with_same_version_one_wins(repo: Repo) -> None:
    """Of two concurrent updates from the same version, exactly one commits; the other gets Conflict."""
    pid = await project(repo)
    f = await repo.create_flag(pid, flag("a"), actor="t")
    results = await asyncio.gather(
        *(repo.update_flag(pid, f.id, {"name": f"n{i}"}, actor="t", expected_version=1) for i in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 3
    assert (await repo.get_flag(pid, f.id)).version == 2


async def test_concurrent_unversioned_updates_all_apply_in_order(repo: Repo) -> None:
    """Concurrent updates without expected_version serialise: each bumps the version once, none is lost."""
    pid = await project(repo)
    f = await repo.create_flag(pid, flag("a"), actor="t")
    done = await asyncio.gather(
        *(repo.update_flag(pid, f.id, {"name": f"n{i}"}, actor="t") for i in range(5))
    )
    assert sorted(d.version for d in done) == [2, 3, 4, 5, 6]
    changes = [c for c in await repo.changes_since(0, 100) if c.entity_type == "flag"]
    assert [c.entity_version for c in changes] == [1, 2, 3, 4, 5, 6]
    last = max(done, key=lambda d: d.version)
    assert await repo.get_flag(pid, f.id) == last
    assert changes[-1].payload == last.definition()


async def test_concurrent_creates_of_one_key_let_exactly_one_win(repo: Repo) -> None:
    """Racing creates of the same key: one flag is created, every other attempt is a Conflict."""
    pid = await project(repo)
    results = await asyncio.gather(
        *(repo.create_flag(pid, flag("same"), actor=f"a{i}") for i in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, Conflict) for r in results) == 3
    assert (await repo.list_flags(pid)).total == 1
    assert len([c for c in await repo.changes_since(0, 100) if c.entity_type == "flag"]) == 1


async def test_duplicate_live_key_conflicts_but_deleted_key_is_reusable(repo: Repo) -> None:
    """Two live flags cannot share a key; after deleting one, its key can be taken again."""
    pid = await project(repo)
    first = await repo.create_flag(pid, flag("dup"), actor="t")
    other = await repo.create_flag(pid, flag("other"), actor="t")
    before = await written(repo, pid)
    with pytest.raises(Conflict):
        await repo.create_flag(pid, flag("dup"), actor="t")
    with pytest.raises(Conflict):
        await repo.update_flag(pid, other.id, {"key": "dup"}, actor="t")
    assert await written(repo, pid) == before
    await repo.delete_flag(pid, first.id, actor="t")
    again = await repo.create_flag(pid, flag("dup"), actor="t")
    assert again.id != first.id
    assert again.version == 1
    other_project = await project(repo, "Other")
    assert (await repo.create_flag(other_project, flag("dup"), actor="t")).key == "dup"


INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "unknown operator",
        flag("x") | {"filters": {"groups": [{"properties": [prop("email", "a", "resembles")]}]}},
        ["filters.groups[0].properties[0].operator"],
    ),
    ("rollout 150", flag("x", rollout=150), ["filters.groups[0].rollout_percentage"]),
    (
        "variants summing to 90",
        flag("x")
        | {
            "filters": {
                "groups": [{"properties": [], "rollout_percentage": 100}],
                "multivariate": {
                    "variants": [
                        {"key": "a", "rollout_percentage": 50},
                        {"key": "b", "rollout_percentage": 40},
                    ]
                },
            }
        },
        ["filters.multivariate.variants"],
    ),
    (
        "bad regex",
        flag("x") | {"filters": {"groups": [{"properties": [prop("email", "(unclosed", "regex")]}]}},
        ["filters.groups[0].properties[0].value"],
    ),
    ("unknown field", flag("x", colour="red"), ["colour"]),
    (
        "missing dependency",
        flag("x")
        | {
            "filters": {
                "groups": [{"properties": [{"key": "nope", "type": "flag", "value": True}]}],
            }
        },
        ["filters.groups[0].properties[0].key"],
    ),
    ("bad key and bucketing", flag("not a key!", bucketing="md5"), ["key", "bucketing"]),
    ("non-boolean active", flag("x", active="yes"), ["active"]),
]


@pytest.mark.parametrize(("case", "body", "paths"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_flag_is_rejected_with_paths_and_nothing_written(
    repo: Repo, case: str, body: dict[str, Any], paths: list[str]
) -> None:
    """Invalid input raises ValidationFailed naming every bad field; no row, audit or change is written."""
    pid = await project(repo)
    before = await written(repo, pid)
    with pytest.raises(ValidationFailed) as info:
        await repo.create_flag(pid, body, actor="t")
    assert sorted(i.path for i in info.value.issues) == sorted(paths), case
    assert await written(repo, pid) == before


async def test_invalid_update_is_rejected_and_nothing_changes(repo: Repo) -> None:
    """A partial update that makes the flag invalid is rejected and leaves the stored flag as it was."""
    pid = await project(repo)
    f = await repo.create_flag(pid, flag("a"), actor="t")
    before = await written(repo, pid)
    with pytest.raises(ValidationFailed) as info:
        await repo.update_flag(
            pid, f.id, {"filters": {"groups": [{"rollout_percentage": -5}]}, "x": 1}, actor="t"
        )
    assert sorted(i.path for i in info.value.issues) == ["x"]  # shape issues are reported before semantics
    with pytest.raises(ValidationFailed) as info:
        await repo.update_flag(pid, f.id, {"filters": {"groups": [{"rollout_percentage": -5}]}}, actor="t")
    assert [i.path for i in info.value.issues] == ["filters.groups[0].rollout_percentage"]
    assert await repo.get_flag(pid, f.id) == f
    assert await written(repo, pid) == before


async def test_dependency_cycle_is_rejected(repo: Repo) -> None:
    """Making flag A depend on B while B depends on A is a validation error; nothing is written."""
    pid = await project(repo)
    a = await repo.create_flag(pid, flag("a"), actor="t")

    def depends_on(key: str) -> dict[str, Any]:
        dep = {"key": key, "type": "flag", "value": True, "operator": "flag_evaluates_to"}
        return {"groups": [{"properties": [dep], "rollout_percentage": 100}]}

    await repo.create_flag(pid, {"key": "b", "filters": depends_on(str(a.id))}, actor="t")
    before = await written(repo, pid)
    with pytest.raises(ValidationFailed) as info:
        await repo.update_flag(pid, a.id, {"filters": depends_on("b")}, actor="t")
    assert [i.path for i in info.value.issues] == ["filters.groups[0].properties[0].key"]
    assert await written(repo, pid) == before


async def test_a_cancelled_write_is_all_or_nothing(repo: Repo) -> None:
    """Cancelling a write at every event-loop step from before it starts to after it finishes leaves each
    one fully applied or absent, and the store usable; several cancels land inside a running write."""
    pid = await project(repo)
    inside = 0  # cancels that interrupted a write already running (the task had started, not finished)
    finished = False
    for step in range(2000):
        task = asyncio.create_task(repo.create_flag(pid, flag(f"c{step}"), actor="t"))
        for _ in range(step):
            await asyncio.sleep(0)
        if task.done():
            finished = True  # the whole write fits in this many steps: every earlier step was covered
            break
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if step > 0 and isinstance(outcome, asyncio.CancelledError):
            inside += 1
    assert finished
    assert inside >= 3
    keys = {f.key for f in (await repo.list_flags(pid, limit=3000)).items}
    logged = {c.payload["key"] for c in await repo.changes_since(0, 3000) if c.entity_type == "flag"}
    audited = {
        e.after["key"] for e in (await repo.audit_log(pid, entity_type="flag", limit=3000)).items if e.after
    }
    assert keys == logged == audited
    assert (await repo.create_flag(pid, flag("after"), actor="t")).version == 1


# Audit and change log -----------------------------------------------------------------------------
async def test_audit_records_actor_and_before_after(repo: Repo) -> None:
    """Each flag write leaves an audit entry (newest first) with its actor and the flag before and after."""
    pid = await project(repo)
    f = await repo.create_flag(pid, flag("a"), actor="alice")
    g = await repo.update_flag(pid, f.id, {"active": False}, actor="bob")
    d = await repo.delete_flag(pid, f.id, actor="carol")
    entries = (await repo.audit_log(pid, entity_type="flag", entity_id=f.id)).items
    assert [(e.action, e.actor) for e in entries] == [
        ("flag.deleted", "carol"),
        ("flag.updated", "bob"),
        ("flag.created", "alice"),
    ]
    assert [(e.before, e.after) for e in entries] == [
        (g.definition(), d.definition()),
        (f.definition(), g.definition()),
        (None, f.definition()),
    ]
    page = await repo.audit_log(pid, limit=1, offset=1)
    assert page.total == 4
    assert page.items[0].action == "flag.updated"


async def test_change_log_has_one_row_per_write_in_commit_order(repo: Repo) -> None:
    """Every write appends exactly one change row, in order, whose payload is the entity after the write."""
    pid = await project(repo)
    start = (await repo.changes_since(0, 100))[-1].seq
    a = await repo.create_flag(pid, flag("a"), actor="t")
    b = await repo.create_flag(pid, flag("b"), actor="t")
    a2 = await repo.update_flag(pid, a.id, {"name": "A"}, actor="t")
    b2 = await repo.delete_flag(pid, b.id, actor="t")
    changes = await repo.changes_since(start, 100)
    assert [(c.entity_type, c.entity_id, c.entity_version, c.op) for c in changes] == [
        ("flag", a.id, 1, "upsert"),
        ("flag", b.id, 1, "upsert"),
        ("flag", a.id, 2, "upsert"),
        ("flag", b.id, 2, "delete"),
    ]
    assert [c.payload for c in changes] == [a.definition(), b.definition(), a2.definition(), b2.definition()]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert await repo.changes_since(changes[1].seq, 1) == [changes[2]]
    assert all(c.project_id == pid for c in changes)


async def test_load_projects_returns_live_state_at_newest_seq(repo: Repo) -> None:
    """load_projects gives each project's live flags, live cohorts, static members and newest change seq."""
    pid = await project(repo)
    empty = await project(repo, "Empty")
    await repo.create_flag(pid, flag("keep"), actor="t")
    gone = await repo.create_flag(pid, flag("gone"), actor="t")
    await repo.delete_flag(pid, gone.id, actor="t")
    static = await repo.create_cohort(
        pid, {"name": "VIPs", "is_static": True, "members": ["u2", "u1"]}, actor="t"
    )
    data = {p.project_id: p for p in await repo.load_projects()}
    seqs = [c.seq for c in await repo.changes_since(0, 100) if c.project_id == pid]
    assert [f["key"] for f in data[pid].flags] == ["keep"]
    assert data[pid].version == max(seqs)
    assert data[pid].cohorts == [static.definition()]
    assert data[pid].static_members == {str(static.id): ["u1", "u2"]}
    assert data[empty].flags == []
    assert data[empty].version > 0
    assert await repo.load_project(pid) == data[pid]


# Cohorts ------------------------------------------------------------------------------------------
async def test_cohorts_crud_with_static_members(repo: Repo) -> None:
    """Static cohort members are stored, replaced on update and carried in the change payload."""
    pid = await project(repo)
    c = await repo.create_cohort(
        pid, {"name": "Beta", "is_static": True, "members": ["u1", "u2", "u1", 7]}, actor="t"
    )
    assert (c.version, c.member_count, c.is_static) == (1, 3, True)
    assert await repo.cohort_members(pid, c.id) == ["7", "u1", "u2"]
    c2 = await repo.update_cohort(pid, c.id, {"members": ["u3"]}, actor="t", expected_version=1)
    assert (c2.version, c2.member_count, c2.name) == (2, 1, "Beta")
    changes = [x for x in await repo.changes_since(0, 100) if x.entity_type == "cohort"]
    assert [x.payload["members"] for x in changes] == [["7", "u1", "u2"], ["u3"]]
    assert changes[-1].payload == c2.definition() | {"members": ["u3"]}
    with pytest.raises(Conflict) as info:
        await repo.update_cohort(pid, c.id, {"name": "x"}, actor="t", expected_version=1)
    assert info.value.current_version == 2
    deleted = await repo.delete_cohort(pid, c.id, actor="t")
    assert deleted.deleted
    assert (await repo.list_cohorts(pid)).total == 0
    with pytest.raises(NotFound):
        await repo.get_cohort(pid, c.id)


async def test_property_cohort_is_validated_and_usable_by_flags(repo: Repo) -> None:
    """A property cohort can be referenced by a flag; a flag naming an unknown cohort is rejected."""
    pid = await project(repo)
    rules = {
        "properties": {"type": "OR", "values": [{"type": "AND", "values": [prop("plan", "pro", "exact")]}]}
    }
    c = await repo.create_cohort(pid, {"name": "Pro", "filters": rules}, actor="t")
    assert (await repo.list_cohorts(pid)).items == [c]

    def in_cohort(cohort_id: int) -> dict[str, Any]:
        cond = {"key": "id", "type": "cohort", "value": cohort_id, "operator": "in"}
        return {"groups": [{"properties": [cond], "rollout_percentage": 100}]}

    await repo.create_flag(pid, {"key": "pro-only", "filters": in_cohort(c.id)}, actor="t")
    with pytest.raises(ValidationFailed) as info:
        await repo.create_flag(pid, {"key": "ghost", "filters": in_cohort(c.id + 100)}, actor="t")
    assert [i.path for i in info.value.issues] == ["filters.groups[0].properties[0].value"]
    with pytest.raises(ValidationFailed) as info:
        await repo.create_cohort(pid, {"name": "Bad", "members": ["u1"]}, actor="t")
    assert [i.path for i in info.value.issues] == ["members"]


# Model-based ------------------------------------------------------------------------------------------
OPS = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(0, 5), st.integers(0, 100)),
    max_size=12,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
async def test_random_edits_match_a_simple_model(repo: Repo, ops: list[tuple[str, int, int]]) -> None:
    """Any sequence of creates, updates and deletes leaves list_flags equal to a dict-of-live-flags model."""
    pid = await project(repo)
    model: dict[str, tuple[int, int]] = {}  # key -> (rollout, version)
    ids: dict[str, int] = {}
    for op, n, rollout in ops:
        key = f"k{n}"
        if op == "create":
            if key in model:
                with pytest.raises(Conflict):
                    await repo.create_flag(pid, flag(key, rollout), actor="t")
            else:
                ids[key] = (await repo.create_flag(pid, flag(key, rollout), actor="t")).id
                model[key] = (rollout, 1)
        elif key not in model:
            with pytest.raises(NotFound):
                await repo.delete_flag(pid, ids.get(key, 10**9), actor="t")
        elif op == "update":
            changes = {"filters": flag(key, rollout)["filters"]}
            await repo.update_flag(pid, ids[key], changes, actor="t", expected_version=model[key][1])
            model[key] = (rollout, model[key][1] + 1)
        else:
            await repo.delete_flag(pid, ids[key], actor="t")
            del model[key]
    listed = (await repo.list_flags(pid, limit=1000)).items
    got = {f.key: (f.filters["groups"][0]["rollout_percentage"], f.version) for f in listed}
    assert got == model
    assert [f.id for f in listed] == sorted(ids[k] for k in model)


# PostgreSQL faults ----------------------------------------------------------------------------------
@pytest.mark.integration
async def test_postgres_down_is_store_unavailable_and_recovers(own_postgres: PostgresServer) -> None:
    """With PostgreSQL stopped, calls raise StoreUnavailable (not a driver error); after restart they work."""
    await migrate(own_postgres.url)
    repo = await PostgresRepository.connect(own_postgres.url, max_size=2, acquire_timeout=2)
    try:
        pid = await project(repo)
        own_postgres.stop(
            mode="fast"
        )  # "immediate" may lose unflushed commits (fsync and sync commit are off)
        with pytest.raises(StoreUnavailable) as info:
            await repo.create_flag(pid, flag("a"), actor="t")
        assert type(info.value).__module__ == "store.errors"
        with pytest.raises(StoreUnavailable):
            await repo.list_projects()
        own_postgres.start()
        assert (await repo.create_flag(pid, flag("a"), actor="t")).version == 1
    finally:
        await repo.close()


@pytest.mark.integration
async def test_stalled_postgres_is_store_timeout(own_postgres: PostgresServer) -> None:
    """A PostgreSQL that stops answering mid-call raises StoreTimeout after the command timeout."""
    await migrate(own_postgres.url)
    repo = await PostgresRepository.connect(
        own_postgres.url, max_size=1, command_timeout=0.5, acquire_timeout=1
    )
    try:
        pid = await project(repo)
        own_postgres.pause()
        try:
            with pytest.raises(StoreTimeout):
                await repo.get_project(pid)
        finally:
            own_postgres.resume()
        assert (await repo.get_project(pid)).id == pid
    finally:
        await repo.close()
