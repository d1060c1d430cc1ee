"""``EmbeddedBackend``: the whole store in one process, on a SQLite file — the default when no PostgreSQL and
Redis are configured.

It owns a ``SqliteRepository`` (the admin path) and a ``store.catalog.Catalog`` (what the SDK endpoints
read). After every committed write, before the write call returns, it rebuilds the changed project's
``ProjectData`` from the file and installs ``build_project_state(...)`` into the catalog, so an admin edit is
visible to the very next flag evaluation, exactly as the distributed mode would show it after propagation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from store.catalog import Catalog, build_project_state
from store.errors import NotFound
from store.sqlite import SqliteRepository

__all__ = ["EmbeddedBackend"]


class EmbeddedBackend:
    """A SQLite-backed repository and the catalog it keeps current. Open, ``start()``, use, ``close()``."""

    def __init__(self, repository: SqliteRepository, catalog: Catalog) -> None:
        self.repository = repository
        self.catalog = catalog
        self.last_error: str | None = None
        repository.on_commit = self._refresh

    @classmethod
    async def open(cls, path: str | Path) -> Self:
        """Open (creating if needed) the SQLite file; the catalog stays empty until ``start()``."""
        return cls(await SqliteRepository.open(path), Catalog())

    async def start(self) -> None:
        """Load and compile every project into the catalog and mark it loaded."""
        projects = await self.repository.load_projects()
        self.catalog.replace_all({p.project_id: build_project_state(p) for p in projects})

    async def reload(self) -> None:
        """Rebuild every project from the file (e.g. after another process wrote to it)."""
        await self.start()

    async def close(self) -> None:
        await self.repository.close()

    async def _refresh(self, project_ids: set[int]) -> None:
        # The write has committed: a failure here must not turn it into an error for the writer. The
        # catalog then keeps the previous state and ``last_error`` says why (health reports it).
        try:
            for project_id in sorted(project_ids):
                try:
                    data = await self.repository.load_project(project_id)
                except NotFound:
                    self.catalog.remove(project_id)
                    continue
                self.catalog.install(build_project_state(data))
        except Exception as exc:
            self.last_error = f"catalog refresh failed: {exc!r}"
        else:
            self.last_error = None
