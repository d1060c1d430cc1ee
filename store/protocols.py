"""The seams between the store and its callers.

``AdminRepository`` is the admin write/read path (PostgreSQL in distributed mode, SQLite in embedded mode);
both implementations satisfy it and share one test suite; ``ChangeSource`` is their change-log side. What
the SDK hot path reads is an in-memory, atomically swapped map of compiled projects (``store.catalog``).

Every write is one transaction: the row, an audit_log row and a change_log row (which wakes the syncer).
Inputs are validated before anything is written; invalid input raises ``ValidationFailed`` with every issue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from store.catalog import ProjectData
from store.records import (
    ApiKey,
    AuditEntry,
    ChangeRow,
    CohortRecord,
    FlagRecord,
    NewApiKey,
    NewProject,
    Page,
    Project,
    Scope,
)


class AdminRepository(Protocol):
    """Source-of-truth reads and writes for the admin API, the CLI and bootstrap."""

    # Projects -------------------------------------------------------------------------------------------
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
        ...

    async def get_project(self, project_id: int) -> Project:
        """Raise ``NotFound`` when absent."""
        ...

    async def list_projects(self) -> list[Project]: ...

    async def get_project_by_token(self, api_token: str) -> Project:
        """The project with this public token; ``NotFound`` when none."""
        ...

    async def update_project(
        self,
        project_id: int,
        *,
        actor: str,
        name: str | None = None,
        group_type_mapping: Mapping[str, str] | None = None,
    ) -> Project:
        """Rename a project or replace its group type mapping (a change-log event: nodes recompile)."""
        ...

    async def rotate_project_secret(self, project_id: int, *, actor: str) -> str:
        """Issue a new local-evaluation secret (returned raw, once); the old one stops working."""
        ...

    # API keys -------------------------------------------------------------------------------------------
    async def create_api_key(
        self, *, label: str, scope: Scope, project_id: int | None, actor: str, raw_key: str | None = None
    ) -> NewApiKey:
        """Create a personal API key (stored hashed). ``project_id=None`` reaches every project."""
        ...

    async def list_api_keys(self, project_id: int | None = None) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: int, *, actor: str) -> ApiKey: ...

    async def authenticate(self, raw_key: str) -> ApiKey | None:
        """The live key whose hash matches, or None."""
        ...

    # Flags ----------------------------------------------------------------------------------------------
    async def list_flags(
        self,
        project_id: int,
        *,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> Page[FlagRecord]:
        """Flags ordered by id; ``search`` matches key or name, case-insensitively."""
        ...

    async def get_flag(self, project_id: int, flag_id: int) -> FlagRecord: ...

    async def get_flag_by_key(self, project_id: int, key: str) -> FlagRecord: ...

    async def create_flag(self, project_id: int, data: Mapping[str, Any], *, actor: str) -> FlagRecord:
        """``data`` is PostHog-shaped: key, name, filters, active, bucketing, ensure_experience_continuity."""
        ...

    async def update_flag(
        self,
        project_id: int,
        flag_id: int,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> FlagRecord:
        """Partial update; ``Conflict`` (with the current version) when ``expected_version`` is stale."""
        ...

    async def delete_flag(
        self, project_id: int, flag_id: int, *, actor: str, expected_version: int | None = None
    ) -> FlagRecord:
        """Soft delete; the record comes back with ``deleted=True`` and a new version."""
        ...

    # Cohorts --------------------------------------------------------------------------------------------
    async def list_cohorts(
        self, project_id: int, *, limit: int = 100, offset: int = 0
    ) -> Page[CohortRecord]: ...

    async def get_cohort(self, project_id: int, cohort_id: int) -> CohortRecord: ...

    async def cohort_members(self, project_id: int, cohort_id: int) -> list[str]:
        """A live static cohort's distinct ids, sorted (``NotFound`` when the cohort is absent or deleted)."""
        ...

    async def create_cohort(self, project_id: int, data: Mapping[str, Any], *, actor: str) -> CohortRecord:
        """``data``: name, description, filters, is_static, and for static cohorts ``members`` (ids)."""
        ...

    async def update_cohort(
        self,
        project_id: int,
        cohort_id: int,
        changes: Mapping[str, Any],
        *,
        actor: str,
        expected_version: int | None = None,
    ) -> CohortRecord: ...

    async def delete_cohort(
        self, project_id: int, cohort_id: int, *, actor: str, expected_version: int | None = None
    ) -> CohortRecord: ...

    # Audit ----------------------------------------------------------------------------------------------
    async def audit_log(
        self,
        project_id: int,
        *,
        entity_type: str | None = None,
        entity_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[AuditEntry]:
        """Newest first."""
        ...

    async def close(self) -> None: ...


class ChangeSource(Protocol):
    """The committed state and its change log, in commit order (both repositories offer it).

    The syncer replays ``changes_since``; a node that cannot reach Redis loads ``load_projects``.
    """

    async def changes_since(self, seq: int, limit: int = 1000) -> list[ChangeRow]:
        """change_log rows with a seq greater than ``seq``, oldest first, at most ``limit``."""
        ...

    async def max_seq(self) -> int:
        """The newest change_log seq (0 when empty)."""
        ...

    async def load_projects(self) -> list[ProjectData]:
        """Every project's live flags, cohorts and static members; ``version`` = its newest change seq."""
        ...

    async def load_project(self, project_id: int) -> ProjectData:
        """One project as ``load_projects`` builds it; ``NotFound`` when absent."""
        ...
