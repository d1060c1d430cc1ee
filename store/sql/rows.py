"""Rows as both SQL backends return them, and the grouping of a full load into ``ProjectData``.

``ProjectRow`` is a project as stored (``Project`` plus its secret hash and version); ``assemble_projects``
groups a load's live flags, cohorts and static members under their projects. Both live here, once, so the
two backends cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from store.catalog import ProjectData
from store.records import CohortRecord, FlagRecord, Project

__all__ = ["EntityType", "ProjectRow", "assemble_projects"]

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
    property_matching_version: int = 1

    def record(self) -> Project:
        return Project(
            id=self.id,
            name=self.name,
            api_token=self.api_token,
            group_type_mapping=self.group_type_mapping,
            created_at=self.created_at,
            created_by=self.created_by,
            property_matching_version=self.property_matching_version,
        )

    def payload(self) -> dict[str, Any]:
        """The change_log payload of a project change."""
        return {
            "id": self.id,
            "api_token": self.api_token,
            "secret_token_hash": self.secret_token_hash,
            "group_type_mapping": self.group_type_mapping,
            "property_matching_version": self.property_matching_version,
            "version": self.version,
        }

    def audit(self) -> dict[str, Any]:
        """What the audit log keeps of a project (never the secret's hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "api_token": self.api_token,
            "group_type_mapping": self.group_type_mapping,
            "property_matching_version": self.property_matching_version,
            "version": self.version,
        }


def assemble_projects(
    projects: Iterable[Mapping[str, Any]],
    flags: Iterable[FlagRecord],
    cohorts: Iterable[CohortRecord],
    members: Iterable[tuple[int, str]],
) -> list[ProjectData]:
    """Group live flags, live cohorts and static members (cohort id, distinct id) under their projects.

    A project row holds ``ProjectData``'s other fields: project_id, api_token, secret_token_hash,
    group_type_mapping and version (its newest change_log seq)."""
    heads = {p["project_id"]: p for p in projects}
    flag_defs: dict[int, list[dict[str, Any]]] = {p: [] for p in heads}
    cohort_defs: dict[int, list[dict[str, Any]]] = {p: [] for p in heads}
    static: dict[int, dict[str, list[str]]] = {p: {} for p in heads}
    for flag in flags:
        flag_defs[flag.project_id].append(flag.definition())
    owner: dict[int, int] = {}
    for cohort in cohorts:
        cohort_defs[cohort.project_id].append(cohort.definition())
        owner[cohort.id] = cohort.project_id
        if cohort.is_static:  # an empty static cohort matches nobody (as Redis and a change hold it)
            static[cohort.project_id].setdefault(str(cohort.id), [])
    for cohort_id, distinct_id in members:
        static[owner[cohort_id]].setdefault(str(cohort_id), []).append(distinct_id)
    return [
        ProjectData(**head, flags=flag_defs[p], cohorts=cohort_defs[p], static_members=static[p])
        for p, head in heads.items()
    ]
