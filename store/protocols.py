"""The seams between the store's parts.

``ChangeSource`` is the change-log side of both admin repositories (``store.sql.repository.AdminRepository``,
the admin write/read path, PostgreSQL or SQLite). What the SDK hot path reads is an in-memory, atomically
swapped map of compiled projects (``store.catalog``).
"""

from __future__ import annotations

from typing import Protocol

from store.catalog import ProjectData
from store.records import ChangeRow


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
