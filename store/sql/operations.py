"""The admin write operations, written once over ``store.sql.transaction.Transaction``.

``WriteOperations`` implements every write method of ``store.sql.repository.AdminRepository``. A backend
(``store.sql.postgres`` on asyncpg, ``store.sql.sqlite`` on sqlite3) supplies ``_transaction()``: an async
context manager yielding a ``Transaction`` (``store.sql.transaction``) whose statements commit together or not
at all. The rules (``store.sql.writes``), the order of steps and what goes into the audit and change logs are
the same on both backends.

Every write follows the same steps, in one transaction:

1. lock the project row (writes to one project serialise, so validation against the project's other flags
   cannot race with a concurrent write; ``NotFound`` when absent);
2. read the current row and check ``expected_version`` (``Conflict`` with the current version);
3. normalise and validate the input (``ValidationFailed``, nothing written);
4. write the row; the UPDATE itself matches on the version it read (``... WHERE version = $n``), so a write
   never lands on a row it did not validate against;
5. append an audit_log row (actor, action, before/after) and a change_log row (the entity after the change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import msgspec

from store.errors import Conflict, NotFound
from store.records import ApiKey, CohortRecord, FlagRecord, NewApiKey, NewProject, Project, Scope
from store.sql import tokens, writes
from store.sql.entities import COHORTS, FLAGS, PROJECTS, Entity, refuse_if_used
from store.sql.rows import ProjectRow
from store.sql.transaction import Transaction

__all__ = ["WriteOperations"]

L = TypeVar("L", FlagRecord, CohortRecord)
V = TypeVar("V", writes.FlagValues, writes.CohortValues)


def _key_audit(key: ApiKey) -> dict[str, Any]:
    return msgspec.to_builtins(key)  # type: ignore[no-any-return]


class _RollBack(Exception):  # noqa: N818 - control flow, never seen outside this module
    """Ends a dry run's transaction: everything it did is rolled back."""


class WriteOperations:
    """Every ``AdminRepository`` write, over the backend's ``_transaction()``."""

    def _transaction(self) -> AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    @asynccontextmanager
    async def _write(self, dry_run: bool) -> AsyncIterator[Transaction]:
        """``_transaction()``, rolled back at the end when ``dry_run``: a dry run takes every step of the real
        write (locks, version check, validation, the row as it would be) and leaves nothing behind."""
        try:
            async with self._transaction() as tx:
                yield tx
                if dry_run:
                    raise _RollBack
        except _RollBack:
            pass

    # Projects -------------------------------------------------------------------------------------------
    @staticmethod
    async def _project(tx: Transaction, project_id: int) -> ProjectRow:
        row = await tx.lock_project(project_id)
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return row

    async def create_project(
        self,
        name: str,
        *,
        actor: str,
        api_token: str | None = None,
        secret_token: str | None = None,
        only_if_first: bool = False,
    ) -> NewProject:
        """Create a project; tokens are generated unless given (bootstrap makes them deterministic).
        ``only_if_first``: ``Conflict`` when any project exists, decided atomically (bootstrap on several
        nodes at once creates one default project)."""
        writes.check_project_fields(name=name)
        secret = secret_token or tokens.new_project_secret()
        async with self._transaction() as tx:
            if only_if_first and await tx.any_project():
                raise Conflict("a project exists already")
            row = await tx.insert_project(
                name, api_token or tokens.new_project_token(), tokens.hash_secret(secret), actor
            )
            await PROJECTS.changed(tx, "created", actor, None, row)
        return NewProject(project=row.record(), secret_token=secret)

    async def update_project(
        self,
        project_id: int,
        *,
        actor: str,
        name: str | None = None,
        group_type_mapping: Mapping[str, str] | None = None,
        property_matching_version: int | None = None,
    ) -> Project:
        """Rename a project, replace its group type mapping or set its property matching version (1 or 2)
        (a change-log event: nodes recompile)."""
        mapping = writes.check_project_fields(
            name=name,
            group_type_mapping=group_type_mapping,
            property_matching_version=property_matching_version,
        )
        async with self._transaction() as tx:
            before = await self._project(tx, project_id)
            after = await tx.update_project(
                project_id,
                name=before.name if name is None else name,
                group_type_mapping=before.group_type_mapping if mapping is None else mapping,
                secret_token_hash=before.secret_token_hash,
                expected_version=before.version,
                property_matching_version=before.property_matching_version
                if property_matching_version is None
                else property_matching_version,
            )
            assert after is not None  # the row is locked: its version cannot have moved
            await PROJECTS.changed(tx, "updated", actor, before, after)
        return after.record()

    async def rotate_project_secret(self, project_id: int, *, actor: str) -> str:
        """Issue a new local-evaluation secret (returned raw, once); the old one stops working."""
        secret = tokens.new_project_secret()
        async with self._transaction() as tx:
            before = await self._project(tx, project_id)
            after = await tx.update_project(
                project_id,
                name=before.name,
                group_type_mapping=before.group_type_mapping,
                secret_token_hash=tokens.hash_secret(secret),
                expected_version=before.version,
                property_matching_version=before.property_matching_version,
            )
            assert after is not None
            await PROJECTS.changed(tx, "secret_rotated", actor, before, after)
        return secret

    # API keys -------------------------------------------------------------------------------------------
    async def create_api_key(
        self, *, label: str, scope: Scope, project_id: int | None, actor: str, raw_key: str | None = None
    ) -> NewApiKey:
        """Create a personal API key (stored hashed). ``project_id=None`` reaches every project."""
        writes.validate_api_key_fields(label=label, scope=scope)
        raw = raw_key or tokens.new_api_key()
        async with self._transaction() as tx:
            if project_id is not None:
                await self._project(tx, project_id)
            key = await tx.insert_api_key(
                label=label,
                key_hash=tokens.hash_secret(raw),
                key_prefix=tokens.display_prefix(raw),
                project_id=project_id,
                scope=scope,
                actor=actor,
            )
            await tx.audit(
                project_id=project_id,
                actor=actor,
                action="api_key.created",
                entity_type="api_key",
                entity_id=key.id,
                before=None,
                after=_key_audit(key),
            )
        return NewApiKey(api_key=key, raw_key=raw)

    async def revoke_api_key(self, key_id: int, *, actor: str) -> ApiKey:
        async with self._transaction() as tx:
            before = await tx.get_api_key(key_id)
            if before is None:
                raise NotFound(f"API key {key_id} not found")
            if before.revoked_at is not None:
                return before
            after = await tx.revoke_api_key(key_id)
            assert after is not None
            await tx.audit(
                project_id=after.project_id,
                actor=actor,
                action="api_key.revoked",
                entity_type="api_key",
                entity_id=key_id,
                before=_key_audit(before),
                after=_key_audit(after),
            )
        return after

    # Flags and cohorts: every step once, what differs in ``store.sql.entities`` ------------------------
    async def _create(
        self, entity: Entity[L, V], project_id: int, data: Mapping[str, Any], actor: str, dry_run: bool
    ) -> L:
        values = entity.values(data)
        async with self._write(dry_run) as tx:
            project = await self._project(tx, project_id)
            await entity.check(tx, project, values, None, data)
            created = await entity.insert(tx, project_id, values, actor)
            created = await entity.written(tx, project_id, created, values)
            await entity.changed(tx, "created", actor, None, created)
        return created

    async def _change(
        self,
        entity: Entity[L, V],
        project_id: int,
        entity_id: int,
        changes: Mapping[str, Any] | None,
        *,
        actor: str,
        expected_version: int | None,
        dry_run: bool,
    ) -> L:
        """An update (``changes``), or a soft delete (``changes`` None: refused while anything uses it)."""
        async with self._write(dry_run) as tx:
            project = await self._project(tx, project_id)
            current = await entity.live(tx, project_id, entity_id, expected_version)
            if changes is None:
                dependents = await entity.dependents(tx, project_id, current)
                refuse_if_used(entity.title(current), "deleted", dependents)
                values = entity.values({}, current=current)
            else:
                values = entity.values(changes, current=current)
                await entity.check(tx, project, values, current, changes)
            changed = await entity.update(
                tx, entity_id, values, deleted=changes is None, expected_version=current.version, actor=actor
            )
            if changed is None:
                raise Conflict(f"{entity.name} {entity_id} changed concurrently")
            changed = await entity.written(tx, project_id, changed, values)
            await entity.changed(tx, "updated" if changes is not None else "deleted", actor, current, changed)
        return changed

    async def create_flag(
        self, project_id: int, data: Mapping[str, Any], *, actor: str, dry_run: bool = False
    ) -> FlagRecord:
        """``data`` is PostHog-shaped: key, name, filters, active, bucketing, ensure_experience_continuity.

        ``dry_run`` (every flag write and ``create_cohort`` take it): every step of the write, validation and
        version check included, then a rollback; returns the record as it would have been, writes nothing."""
        return await self._create(FLAGS, project_id, data, actor, dry_run)

    async def update_flag(
        self,
        project_id: int,
        flag_id: int,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
        dry_run: bool = False,
    ) -> FlagRecord:
        """Partial update; ``Conflict`` (with the current version) when ``expected_version`` is stale; a
        rename is refused while flags depend on the key; an inactive flag whose filters are not given is not
        validated again."""
        return await self._change(
            FLAGS,
            project_id,
            flag_id,
            changes,
            actor=actor,
            expected_version=expected_version,
            dry_run=dry_run,
        )

    async def delete_flag(
        self,
        project_id: int,
        flag_id: int,
        *,
        actor: str,
        expected_version: int | None = None,
        dry_run: bool = False,
    ) -> FlagRecord:
        """Soft delete; the record comes back with ``deleted=True`` and a new version."""
        return await self._change(
            FLAGS, project_id, flag_id, None, actor=actor, expected_version=expected_version, dry_run=dry_run
        )

    async def create_cohort(
        self, project_id: int, data: Mapping[str, Any], *, actor: str, dry_run: bool = False
    ) -> CohortRecord:
        """``data``: name, description, filters, is_static, and for static cohorts ``members`` (ids)."""
        return await self._create(COHORTS, project_id, data, actor, dry_run)

    async def update_cohort(
        self,
        project_id: int,
        cohort_id: int,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> CohortRecord:
        return await self._change(
            COHORTS,
            project_id,
            cohort_id,
            changes,
            actor=actor,
            expected_version=expected_version,
            dry_run=False,
        )

    async def delete_cohort(
        self, project_id: int, cohort_id: int, *, actor: str, expected_version: int | None = None
    ) -> CohortRecord:
        return await self._change(
            COHORTS,
            project_id,
            cohort_id,
            None,
            actor=actor,
            expected_version=expected_version,
            dry_run=False,
        )
