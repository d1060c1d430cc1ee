"""What differs between the entities a write touches, one object each, so that ``store.sql.operations``
states every step of a write once.

A ``Kind`` says what the audit log and the change log keep of an entity (projects, flags, cohorts). An
``Entity`` is a kind that lives as a versioned, soft-deleted row of a project (flags, cohorts): it also says
how to read, normalise (``store.sql.writes``), check, insert and update one, what the write does after the
row (a static cohort's members), and what depends on it (what refuses its deletion). The statements are
``store.sql.transaction``'s; nothing here opens a transaction or decides the order of steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar

import msgspec

from store.errors import Conflict, NotFound
from store.records import CohortRecord, FlagRecord
from store.sql import writes
from store.sql.rows import EntityType, ProjectRow
from store.sql.transaction import Transaction
from store.sql.writes import CohortValues, FlagValues

__all__ = ["COHORTS", "FLAGS", "PROJECTS", "Entity", "Kind", "cohort_payload", "refuse_if_used"]


class _Versioned(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def version(self) -> int: ...


class _Live(_Versioned, Protocol):
    @property
    def project_id(self) -> int: ...
    @property
    def deleted(self) -> bool: ...


Data: TypeAlias = Mapping[str, Any]
R = TypeVar("R", bound=_Versioned)
L = TypeVar("L", bound=_Live)
V = TypeVar("V")
_L_co = TypeVar("_L_co", bound=_Live, covariant=True)
_L_contra = TypeVar("_L_contra", bound=_Live, contravariant=True)
_V_co = TypeVar("_V_co", covariant=True)
_V_contra = TypeVar("_V_contra", contravariant=True)


class _Values(Protocol[_L_contra, _V_co]):
    """``writes.flag_values`` / ``writes.cohort_values``."""

    def __call__(self, data: Mapping[str, Any], /, *, current: _L_contra | None = ...) -> _V_co: ...


class _Update(Protocol[_L_co, _V_contra]):
    """``Transaction.update_flag`` / ``Transaction.update_cohort``."""

    def __call__(
        self,
        tx: Transaction,
        entity_id: int,
        values: _V_contra,
        /,
        *,
        deleted: bool,
        expected_version: int,
        actor: str,
    ) -> Awaitable[_L_co | None]: ...


def cohort_payload(cohort: CohortRecord, members: list[str] | None) -> dict[str, Any]:
    """The change_log payload of a cohort: its definition, plus ``members`` for a static cohort."""
    payload = cohort.definition()
    if cohort.is_static:
        payload["members"] = sorted(members or [])
    return payload


def refuse_if_used(what: str, verb: str, dependents: list[str]) -> None:
    """``Conflict`` naming every dependent: deleting or renaming what live flags or cohorts use would silently
    turn them off (a missing dependency, or a cohort that never matches). Nothing is written."""
    if dependents:
        named = [d if ":" in d else f"flag:{d}" for d in dependents]
        raise Conflict(
            f"{what} cannot be {verb}: {', '.join(named)} depend on it; change them first",
            dependents=named,
        )


class Kind(Generic[R]):
    """What the logs keep of one kind of entity (``name`` is its ``entity_type``)."""

    __slots__ = ("name",)

    def __init__(self, name: EntityType) -> None:
        self.name: EntityType = name

    def project_of(self, record: R) -> int:
        raise NotImplementedError

    def audit(self, record: R) -> dict[str, Any]:
        """The entity as the audit log's before/after keeps it."""
        raise NotImplementedError

    async def payload(self, tx: Transaction, record: R) -> dict[str, Any]:
        """The entity as the change_log (and through it Redis and the nodes) carries it."""
        raise NotImplementedError

    def op(self, record: R) -> Literal["upsert", "delete"]:
        return "upsert"

    async def changed(self, tx: Transaction, verb: str, actor: str, before: R | None, after: R) -> None:
        """Append the audit_log row (action ``<name>.<verb>``) and the change_log row of a write."""
        project_id = self.project_of(after)
        await tx.audit(
            project_id=project_id,
            actor=actor,
            action=f"{self.name}.{verb}",
            entity_type=self.name,
            entity_id=after.id,
            before=None if before is None else self.audit(before),
            after=self.audit(after),
        )
        await tx.change(
            project_id=project_id,
            entity_type=self.name,
            entity_id=after.id,
            entity_version=after.version,
            op=self.op(after),
            payload=await self.payload(tx, after),
        )


class Entity(Kind[L], Generic[L, V]):
    """A versioned, soft-deleted row of a project; ``V`` is its normalised input (``store.sql.writes``).

    The statements (``get``, ``insert``, ``update``: ``Transaction``'s) and the normaliser (``values``) are
    given; what a write checks and does around them is the subclass's."""

    __slots__ = ("get", "insert", "update", "values")

    def __init__(
        self,
        name: EntityType,
        get: Callable[[Transaction, int, int], Awaitable[L | None]],
        insert: Callable[[Transaction, int, V, str], Awaitable[L]],
        update: _Update[L, V],
        values: _Values[L, V],
    ) -> None:
        super().__init__(name)
        self.get = get
        self.insert = insert
        self.update = update
        self.values = values

    def project_of(self, record: L) -> int:
        return record.project_id

    def op(self, record: L) -> Literal["upsert", "delete"]:
        return "delete" if record.deleted else "upsert"

    def title(self, record: L) -> str:
        """How a refusal names the entity."""
        return f"{self.name} {record.id}"

    async def live(self, tx: Transaction, project_id: int, entity_id: int, expected_version: int | None) -> L:
        """The entity if it exists and is not deleted; ``Conflict`` when ``expected_version`` is stale."""
        current = await self.get(tx, project_id, entity_id)
        if current is None or current.deleted:
            raise NotFound(f"{self.name} {entity_id} not found in project {project_id}")
        if expected_version is not None and expected_version != current.version:
            raise Conflict(
                f"{self.name} {entity_id} is at version {current.version}, not {expected_version}",
                current_version=current.version,
            )
        return current

    async def check(
        self, tx: Transaction, project: ProjectRow, values: V, current: L | None, changes: Data
    ) -> None:
        """Refuse ``values`` (``ValidationFailed``, ``Conflict``) before anything of the entity is written
        (``current`` None: a create; ``changes``: the input as given)."""
        raise NotImplementedError

    async def written(self, tx: Transaction, project_id: int, record: L, values: V) -> L:
        """What the write does after the row itself; the entity as it then is."""
        return record

    async def dependents(self, tx: Transaction, project_id: int, record: L) -> list[str]:
        """What live flags and cohorts use ``record`` (``"flag:<key>"``, ``"cohort:<id>"``, or bare keys)."""
        raise NotImplementedError


class _Projects(Kind[ProjectRow]):
    __slots__ = ()

    def project_of(self, record: ProjectRow) -> int:
        return record.id

    def audit(self, record: ProjectRow) -> dict[str, Any]:
        return record.audit()

    async def payload(self, tx: Transaction, record: ProjectRow) -> dict[str, Any]:
        return record.payload()


async def _peers(tx: Transaction, project_id: int, values: FlagValues) -> list[FlagRecord]:
    # Other flags matter to validation only through dependencies; most flags have none.
    return await tx.live_flags(project_id) if writes.flag_refs(values.filters) else []


class _Flags(Entity[FlagRecord, FlagValues]):
    __slots__ = ()

    def audit(self, record: FlagRecord) -> dict[str, Any]:
        return record.definition()

    async def payload(self, tx: Transaction, record: FlagRecord) -> dict[str, Any]:
        return record.definition()

    def title(self, record: FlagRecord) -> str:
        return f"flag {record.key!r}"

    async def check(
        self,
        tx: Transaction,
        project: ProjectRow,
        values: FlagValues,
        current: FlagRecord | None,
        changes: Data,
    ) -> None:
        if current is not None and values.key != current.key:
            peers = await tx.live_flags(project.id)
            refuse_if_used(
                self.title(current), "renamed", writes.flag_dependents(current, peers, by_key_only=True)
            )
        # An inactive flag with unchanged filters answers "disabled" whatever they say, so switching off a
        # flag whose dependency or cohort has since gone must not be refused for it.
        if current is None or "filters" in changes or values.active:
            writes.check_flag(
                values,
                flag_id=0 if current is None else current.id,
                project_id=project.id,
                others=await _peers(tx, project.id, values),
                cohort_ids=await tx.live_cohort_ids(project.id),
                group_type_mapping=project.group_type_mapping,
            )

    async def dependents(self, tx: Transaction, project_id: int, record: FlagRecord) -> list[str]:
        return writes.flag_dependents(record, await tx.live_flags(project_id))


class _Cohorts(Entity[CohortRecord, CohortValues]):
    __slots__ = ()

    def audit(self, record: CohortRecord) -> dict[str, Any]:
        return msgspec.to_builtins(record)  # type: ignore[no-any-return]

    async def payload(self, tx: Transaction, record: CohortRecord) -> dict[str, Any]:
        members = await tx.members(record.id) if record.is_static else None
        return cohort_payload(record, members)

    async def check(
        self,
        tx: Transaction,
        project: ProjectRow,
        values: CohortValues,
        current: CohortRecord | None,
        changes: Data,
    ) -> None:
        cohort_id = 0 if current is None else current.id
        writes.check_cohort(values, cohort_id=cohort_id, cohort_ids=await tx.live_cohort_ids(project.id))

    async def written(
        self, tx: Transaction, project_id: int, record: CohortRecord, values: CohortValues
    ) -> CohortRecord:
        """A static cohort's members, when given (on create always, possibly none), replace the old ones;
        the row is read again for its member count."""
        if values.members is None:
            return record
        await tx.replace_members(record.id, values.members)
        return await tx.get_cohort(project_id, record.id) or record

    async def dependents(self, tx: Transaction, project_id: int, record: CohortRecord) -> list[str]:
        ref = str(record.id)
        used_by = [
            f"flag:{f.key}" for f in await tx.live_flags(project_id) if ref in writes.cohort_refs(f.filters)
        ]
        used_by += [
            f"cohort:{c.id}"
            for c in await tx.live_cohorts(project_id)
            if c.id != record.id and ref in writes.cohort_refs(c.filters)
        ]
        return used_by


PROJECTS = _Projects("project")
FLAGS = _Flags(
    "flag", Transaction.get_flag, Transaction.insert_flag, Transaction.update_flag, writes.flag_values
)
COHORTS = _Cohorts(
    "cohort",
    Transaction.get_cohort,
    Transaction.insert_cohort,
    Transaction.update_cohort,
    writes.cohort_values,
)
