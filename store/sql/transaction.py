"""The seam between the shared write operations (``store.sql.operations``) and a backend's SQL.

``Transaction`` is the handful of statements a write needs, all committing together; ``store.sql.statements``
implements it once for both backends, over a connection each backend supplies. The row shapes both backends
return (``ProjectRow``, ``ProjectHead``) and the grouping of a full load into ``ProjectData``
(``assemble_projects``) live here too, so the two backends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

from store.catalog import ProjectData
from store.records import ApiKey, CohortRecord, FlagRecord, Project, Scope
from store.sql import writes

__all__ = ["EntityType", "ProjectHead", "ProjectRow", "Transaction", "assemble_projects"]

EntityType = Literal["flag", "cohort", "project"]


class ProjectRow(msgspec.Struct, frozen=True):
    """A project as stored, including what ``Project`` does not expose (secret hash, version)."""

    id: int
    name: str
    api_token: str
    secret_token_hash: str
    group_type_mapping: dict[str, str]
    version: int
    created_at: datetime
    created_by: str

    def record(self) -> Project:
        return Project(
            id=self.id,
            name=self.name,
            api_token=self.api_token,
            group_type_mapping=self.group_type_mapping,
            created_at=self.created_at,
            created_by=self.created_by,
        )

    def payload(self) -> dict[str, Any]:
        """The change_log payload of a project change."""
        return {
            "id": self.id,
            "api_token": self.api_token,
            "secret_token_hash": self.secret_token_hash,
            "group_type_mapping": self.group_type_mapping,
            "version": self.version,
        }

    def audit(self) -> dict[str, Any]:
        """What the audit log keeps of a project (never the secret's hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "api_token": self.api_token,
            "group_type_mapping": self.group_type_mapping,
            "version": self.version,
        }


class ProjectHead(msgspec.Struct, frozen=True):
    """What ``assemble_projects`` needs of a project row; ``seq`` is its newest change_log seq."""

    id: int
    api_token: str
    secret_token_hash: str
    group_type_mapping: dict[str, str]
    seq: int


def assemble_projects(
    projects: Iterable[ProjectHead],
    flags: Iterable[FlagRecord],
    cohorts: Iterable[CohortRecord],
    members: Iterable[tuple[int, str]],
) -> list[ProjectData]:
    """Group live flags, live cohorts and static members (cohort id, distinct id) under their projects."""
    heads = list(projects)
    flag_defs: dict[int, list[dict[str, Any]]] = {p.id: [] for p in heads}
    cohort_defs: dict[int, list[dict[str, Any]]] = {p.id: [] for p in heads}
    static: dict[int, dict[str, list[str]]] = {p.id: {} for p in heads}
    for flag in flags:
        flag_defs[flag.project_id].append(flag.definition())
    owner: dict[int, int] = {}
    for cohort in cohorts:
        cohort_defs[cohort.project_id].append(cohort.definition())
        owner[cohort.id] = cohort.project_id
    for cohort_id, distinct_id in members:
        static[owner[cohort_id]].setdefault(str(cohort_id), []).append(distinct_id)
    return [
        ProjectData(
            project_id=p.id,
            api_token=p.api_token,
            secret_token_hash=p.secret_token_hash,
            group_type_mapping=p.group_type_mapping,
            version=p.seq,
            flags=flag_defs[p.id],
            cohorts=cohort_defs[p.id],
            static_members=static[p.id],
        )
        for p in heads
    ]


class Transaction(Protocol):
    """The statements a write needs; they all commit together when the transaction's context exits cleanly."""

    async def lock_project(self, project_id: int) -> ProjectRow | None: ...
    async def insert_project(self, name: str, api_token: str, secret_hash: str, actor: str) -> ProjectRow:
        """``Conflict`` when the token is taken."""
        ...

    async def update_project(
        self,
        project_id: int,
        *,
        name: str,
        group_type_mapping: Mapping[str, str],
        secret_token_hash: str,
        expected_version: int,
    ) -> ProjectRow | None:
        """Set the fields and bump the version, only if the version still is ``expected_version``."""
        ...

    async def live_flags(self, project_id: int) -> list[FlagRecord]: ...
    async def live_cohort_ids(self, project_id: int) -> list[str]: ...
    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord | None: ...
    async def insert_flag(self, project_id: int, values: writes.FlagValues, actor: str) -> FlagRecord:
        """``Conflict`` when a live flag of the project has the key."""
        ...

    async def update_flag(
        self, flag_id: int, values: writes.FlagValues, *, deleted: bool, expected_version: int, actor: str
    ) -> FlagRecord | None:
        """Set the fields and bump the version, only if the version still is ``expected_version``."""
        ...

    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord | None: ...
    async def insert_cohort(
        self, project_id: int, values: writes.CohortValues, actor: str
    ) -> CohortRecord: ...
    async def update_cohort(
        self, cohort_id: int, values: writes.CohortValues, *, deleted: bool, expected_version: int, actor: str
    ) -> CohortRecord | None: ...
    async def replace_members(self, cohort_id: int, members: tuple[str, ...]) -> None: ...
    async def members(self, cohort_id: int) -> list[str]: ...
    async def insert_api_key(
        self, *, label: str, key_hash: str, key_prefix: str, project_id: int | None, scope: Scope, actor: str
    ) -> ApiKey:
        """``Conflict`` when the key (hash) exists."""
        ...

    async def get_api_key(self, key_id: int) -> ApiKey | None: ...
    async def revoke_api_key(self, key_id: int) -> ApiKey | None: ...
    async def audit(
        self,
        *,
        project_id: int | None,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: int | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None: ...
    async def change(
        self,
        *,
        project_id: int,
        entity_type: EntityType,
        entity_id: int,
        entity_version: int,
        op: Literal["upsert", "delete"],
        payload: dict[str, Any],
    ) -> None: ...
