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
from store.sql.rows import ProjectRow
from store.sql.transaction import Transaction

__all__ = ["WriteOperations", "cohort_payload"]


def cohort_payload(cohort: CohortRecord, members: list[str] | None) -> dict[str, Any]:
    """The change_log payload of a cohort: its definition, plus ``members`` for a static cohort."""
    payload = cohort.definition()
    if cohort.is_static:
        payload["members"] = sorted(members or [])
    return payload


def _key_audit(key: ApiKey) -> dict[str, Any]:
    return msgspec.to_builtins(key)  # type: ignore[no-any-return]


async def _peers(tx: Transaction, project_id: int, values: writes.FlagValues) -> list[FlagRecord]:
    # Other flags matter to validation only through dependencies; most flags have none.
    return await tx.live_flags(project_id) if writes.flag_refs(values.filters) else []


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

    @staticmethod
    async def _project_changed(
        tx: Transaction, action: str, actor: str, before: ProjectRow | None, after: ProjectRow
    ) -> None:
        await tx.audit(
            project_id=after.id,
            actor=actor,
            action=action,
            entity_type="project",
            entity_id=after.id,
            before=before.audit() if before else None,
            after=after.audit(),
        )
        await tx.change(
            project_id=after.id,
            entity_type="project",
            entity_id=after.id,
            entity_version=after.version,
            op="upsert",
            payload=after.payload(),
        )

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
            await self._project_changed(tx, "project.created", actor, None, row)
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
            await self._project_changed(tx, "project.updated", actor, before, after)
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
            await self._project_changed(tx, "project.secret_rotated", actor, before, after)
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

    # Flags ----------------------------------------------------------------------------------------------
    @staticmethod
    async def _flag_changed(
        tx: Transaction, action: str, actor: str, before: FlagRecord | None, after: FlagRecord
    ) -> None:
        payload = after.definition()
        await tx.audit(
            project_id=after.project_id,
            actor=actor,
            action=action,
            entity_type="flag",
            entity_id=after.id,
            before=before.definition() if before else None,
            after=payload,
        )
        await tx.change(
            project_id=after.project_id,
            entity_type="flag",
            entity_id=after.id,
            entity_version=after.version,
            op="delete" if after.deleted else "upsert",
            payload=payload,
        )

    @staticmethod
    async def _live_flag(
        tx: Transaction, project_id: int, flag_id: int, expected_version: int | None
    ) -> FlagRecord:
        current = await tx.get_flag(project_id, flag_id)
        return _require_live(current, "flag", flag_id, project_id, expected_version)

    async def create_flag(
        self, project_id: int, data: Mapping[str, Any], *, actor: str, dry_run: bool = False
    ) -> FlagRecord:
        """``data`` is PostHog-shaped: key, name, filters, active, bucketing, ensure_experience_continuity.

        ``dry_run`` (every flag write and ``create_cohort`` take it): every step of the write, validation and
        version check included, then a rollback; returns the record as it would have been, writes nothing."""
        values = writes.flag_values(data)
        async with self._write(dry_run) as tx:
            project = await self._project(tx, project_id)
            writes.check_flag(
                values,
                flag_id=0,
                project_id=project_id,
                others=await _peers(tx, project_id, values),
                cohort_ids=await tx.live_cohort_ids(project_id),
                group_type_mapping=project.group_type_mapping,
            )
            flag = await tx.insert_flag(project_id, values, actor)
            await self._flag_changed(tx, "flag.created", actor, None, flag)
        return flag

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
        """Partial update; ``Conflict`` (with the current version) when ``expected_version`` is stale."""
        async with self._write(dry_run) as tx:
            project = await self._project(tx, project_id)
            current = await self._live_flag(tx, project_id, flag_id, expected_version)
            values = writes.flag_values(changes, current=current)
            if values.key != current.key:
                peers = await tx.live_flags(project_id)
                _refuse_if_used(
                    f"flag {current.key!r}",
                    "renamed",
                    writes.flag_dependents(current, peers, by_key_only=True),
                )
            if "filters" in changes or values.active:
                # An inactive flag with unchanged filters answers "disabled" whatever they say, so switching
                # off a flag whose dependency or cohort has since gone must not be refused for it.
                writes.check_flag(
                    values,
                    flag_id=flag_id,
                    project_id=project_id,
                    others=await _peers(tx, project_id, values),
                    cohort_ids=await tx.live_cohort_ids(project_id),
                    group_type_mapping=project.group_type_mapping,
                )
            flag = await tx.update_flag(
                flag_id, values, deleted=False, expected_version=current.version, actor=actor
            )
            if flag is None:
                raise Conflict(f"flag {flag_id} changed concurrently")
            await self._flag_changed(tx, "flag.updated", actor, current, flag)
        return flag

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
        async with self._write(dry_run) as tx:
            await self._project(tx, project_id)
            current = await self._live_flag(tx, project_id, flag_id, expected_version)
            dependents = writes.flag_dependents(current, await tx.live_flags(project_id))
            _refuse_if_used(f"flag {current.key!r}", "deleted", dependents)
            values = writes.flag_values({}, current=current)
            flag = await tx.update_flag(
                flag_id, values, deleted=True, expected_version=current.version, actor=actor
            )
            if flag is None:
                raise Conflict(f"flag {flag_id} changed concurrently")
            await self._flag_changed(tx, "flag.deleted", actor, current, flag)
        return flag

    # Cohorts --------------------------------------------------------------------------------------------
    @staticmethod
    async def _cohort_changed(
        tx: Transaction, action: str, actor: str, before: CohortRecord | None, after: CohortRecord
    ) -> None:
        members = await tx.members(after.id) if after.is_static else None
        await tx.audit(
            project_id=after.project_id,
            actor=actor,
            action=action,
            entity_type="cohort",
            entity_id=after.id,
            before=msgspec.to_builtins(before) if before else None,
            after=msgspec.to_builtins(after),
        )
        await tx.change(
            project_id=after.project_id,
            entity_type="cohort",
            entity_id=after.id,
            entity_version=after.version,
            op="delete" if after.deleted else "upsert",
            payload=cohort_payload(after, members),
        )

    @staticmethod
    async def _live_cohort(
        tx: Transaction, project_id: int, cohort_id: int, expected_version: int | None
    ) -> CohortRecord:
        current = await tx.get_cohort(project_id, cohort_id)
        return _require_live(current, "cohort", cohort_id, project_id, expected_version)

    async def create_cohort(
        self, project_id: int, data: Mapping[str, Any], *, actor: str, dry_run: bool = False
    ) -> CohortRecord:
        """``data``: name, description, filters, is_static, and for static cohorts ``members`` (ids)."""
        values = writes.cohort_values(data)
        async with self._write(dry_run) as tx:
            await self._project(tx, project_id)
            writes.check_cohort(values, cohort_id=0, cohort_ids=await tx.live_cohort_ids(project_id))
            cohort = await tx.insert_cohort(project_id, values, actor)
            if values.members:
                await tx.replace_members(cohort.id, values.members)
                cohort = await tx.get_cohort(project_id, cohort.id) or cohort
            await self._cohort_changed(tx, "cohort.created", actor, None, cohort)
        return cohort

    async def update_cohort(
        self,
        project_id: int,
        cohort_id: int,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> CohortRecord:
        async with self._transaction() as tx:
            await self._project(tx, project_id)
            current = await self._live_cohort(tx, project_id, cohort_id, expected_version)
            values = writes.cohort_values(changes, current=current)
            writes.check_cohort(values, cohort_id=cohort_id, cohort_ids=await tx.live_cohort_ids(project_id))
            cohort = await tx.update_cohort(
                cohort_id, values, deleted=False, expected_version=current.version, actor=actor
            )
            if cohort is None:
                raise Conflict(f"cohort {cohort_id} changed concurrently")
            if values.members is not None:
                await tx.replace_members(cohort_id, values.members)
                cohort = await tx.get_cohort(project_id, cohort_id) or cohort
            await self._cohort_changed(tx, "cohort.updated", actor, current, cohort)
        return cohort

    async def delete_cohort(
        self, project_id: int, cohort_id: int, *, actor: str, expected_version: int | None = None
    ) -> CohortRecord:
        async with self._transaction() as tx:
            await self._project(tx, project_id)
            current = await self._live_cohort(tx, project_id, cohort_id, expected_version)
            ref = str(cohort_id)
            used_by = [
                f"flag:{f.key}"
                for f in await tx.live_flags(project_id)
                if ref in writes.cohort_refs(f.filters)
            ]
            used_by += [
                f"cohort:{c.id}"
                for c in await tx.live_cohorts(project_id)
                if c.id != cohort_id and ref in writes.cohort_refs(c.filters)
            ]
            _refuse_if_used(f"cohort {cohort_id}", "deleted", used_by)
            values = writes.cohort_values({}, current=current)
            cohort = await tx.update_cohort(
                cohort_id, values, deleted=True, expected_version=current.version, actor=actor
            )
            if cohort is None:
                raise Conflict(f"cohort {cohort_id} changed concurrently")
            await self._cohort_changed(tx, "cohort.deleted", actor, current, cohort)
        return cohort


def _refuse_if_used(what: str, verb: str, dependents: list[str]) -> None:
    """``Conflict`` naming every dependent: deleting or renaming what live flags or cohorts use would silently
    turn them off (a missing dependency, or a cohort that never matches). Nothing is written."""
    if dependents:
        named = [d if ":" in d else f"flag:{d}" for d in dependents]
        raise Conflict(
            f"{what} cannot be {verb}: {', '.join(named)} depend on it; change them first",
            dependents=named,
        )


_Live = TypeVar("_Live", FlagRecord, CohortRecord)


def _require_live(
    current: _Live | None, kind: str, entity_id: int, project_id: int, expected_version: int | None
) -> _Live:
    """The entity if it exists and is not deleted; ``Conflict`` when ``expected_version`` is stale."""
    if current is None or current.deleted:
        raise NotFound(f"{kind} {entity_id} not found in project {project_id}")
    if expected_version is not None and expected_version != current.version:
        raise Conflict(
            f"{kind} {entity_id} is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )
    return current
