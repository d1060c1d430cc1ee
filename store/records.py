"""What the store hands out: immutable records (msgspec Structs), shared by every backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec

Scope = Literal["read", "write"]
Bucketing = Literal["murmur3", "posthog"]
T = TypeVar("T")


class Project(msgspec.Struct, frozen=True):
    id: int
    name: str
    api_token: str
    group_type_mapping: dict[str, str]
    created_at: datetime
    created_by: str
    property_matching_version: int = 1  # exact/is_not rule: 1 (PostHog's default) or 2


class NewProject(msgspec.Struct, frozen=True):
    """A freshly created project; ``secret_token`` is shown this once and stored only hashed."""

    project: Project
    secret_token: str


class ApiKey(msgspec.Struct, frozen=True):
    id: int
    label: str
    key_prefix: str
    project_id: int | None  # None: every project
    scope: Scope
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    def allows(self, project_id: int, *, write: bool) -> bool:
        """Whether this key may read (or, with ``write``, change) the given project."""
        if self.revoked_at is not None:
            return False
        if self.project_id is not None and self.project_id != project_id:
            return False
        return self.scope == "write" or not write


class NewApiKey(msgspec.Struct, frozen=True):
    """A freshly created API key; ``raw_key`` is shown this once and stored only hashed."""

    api_key: ApiKey
    raw_key: str


class FlagRecord(msgspec.Struct, frozen=True):
    id: int
    project_id: int
    key: str
    name: str
    filters: dict[str, Any]
    active: bool
    deleted: bool
    bucketing: Bucketing
    ensure_experience_continuity: bool
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def definition(self) -> dict[str, Any]:
        """The flag as the evaluator, the Redis store and ``/flags/definitions`` see it (PostHog shape)."""
        return {
            "id": self.id,
            "team_id": self.project_id,
            "key": self.key,
            "name": self.name,
            "active": self.active,
            "deleted": self.deleted,
            "filters": self.filters,
            "version": self.version,
            "bucketing": self.bucketing,
            "ensure_experience_continuity": self.ensure_experience_continuity,
            # Stored in filters (store/writes.py), served top-level: the only place posthog-node reads it.
            "bucketing_identifier": self.filters.get("bucketing_identifier"),
        }


class CohortRecord(msgspec.Struct, frozen=True):
    id: int
    project_id: int
    name: str
    description: str
    filters: dict[str, Any]  # {"properties": {"type": "AND"|"OR", "values": [...]}}
    is_static: bool
    deleted: bool
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    member_count: int = 0  # static cohorts only

    def definition(self) -> dict[str, Any]:
        """The cohort as the Redis store and nodes see it (without static members, which travel apart)."""
        return {
            "id": self.id,
            "name": self.name,
            "filters": self.filters,
            "is_static": self.is_static,
            "deleted": self.deleted,
            "version": self.version,
        }


class AuditEntry(msgspec.Struct, frozen=True):
    id: int
    project_id: int | None
    actor: str
    action: str
    entity_type: str
    entity_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class ChangeRow(msgspec.Struct, frozen=True):
    """One change_log row: the entity as it is after a committed write, in commit (``seq``) order.

    ``payload`` is ``FlagRecord.definition()`` for flags, ``CohortRecord.definition()`` (+ ``"members"`` for
    static cohorts) for cohorts, and ``{"id", "api_token", "secret_token_hash", "group_type_mapping",
    "version"}`` for projects. ``created_at`` is the writing transaction's timestamp (for propagation lag).
    """

    seq: int
    project_id: int
    entity_type: Literal["flag", "cohort", "project"]
    entity_id: int
    entity_version: int
    op: Literal["upsert", "delete"]
    payload: dict[str, Any]
    created_at: datetime | None = None


class Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    total: int
