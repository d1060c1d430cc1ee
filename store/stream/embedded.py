"""``EmbeddedBackend``: the whole store in one process, on a SQLite file — the default when no PostgreSQL and
Redis are configured.

It owns a ``SqliteRepository`` (the admin path) and a ``store.catalog.Catalog`` (what the SDK endpoints
read). After every committed write, before the write call returns, it applies the change_log rows the write
added to the project's previous ``ProjectData`` (``apply_changes``: the change carries the entity, so the
rest of the project is not read again) and installs ``build_project_state(...)``, compiled in a thread so
the event loop keeps serving other projects; an admin edit is visible to the very next flag evaluation,
exactly as the distributed mode would show it after propagation.

Other processes may write to the same file (several server workers, ``flagd import`` while the server runs).
``start()`` therefore also runs a follower that polls the change log every ``poll_interval`` seconds (one
indexed query) and reloads the projects changed elsewhere; ``catch_up()`` does one such round on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Self

from store.catalog import Catalog, apply_changes, build_project_state
from store.errors import NotFound, StoreError
from store.records import ChangeRow
from store.sql.sqlite import SqliteRepository

__all__ = ["EmbeddedBackend"]

_CHANGES_PAGE = 1000  # changes read per refresh; more than that (a long pause) and projects reload whole


class EmbeddedBackend:
    """A SQLite-backed repository and the catalog it keeps current. Open, ``start()``, use, ``close()``."""

    def __init__(self, repository: SqliteRepository, catalog: Catalog, *, poll_interval: float = 1.0) -> None:
        self.repository = repository
        self.catalog = catalog
        self.poll_interval = poll_interval
        self.last_error: str | None = None
        self._seen_seq = 0
        self._follower: asyncio.Task[None] | None = None
        repository.on_commit = self._refresh

    @classmethod
    async def open(cls, path: str | Path, *, poll_interval: float = 1.0) -> Self:
        """Open (creating if needed) the SQLite file; the catalog stays empty until ``start()``."""
        return cls(await SqliteRepository.open(path), Catalog(), poll_interval=poll_interval)

    async def start(self) -> None:
        """Load and compile every project into the catalog, mark it loaded, and start following the file
        for writes made by other processes (``poll_interval`` <= 0 disables that)."""
        seq = await self.repository.max_seq()
        projects = await self.repository.load_projects()
        self.catalog.replace_all({p.project_id: build_project_state(p) for p in projects})
        self._seen_seq = seq
        if self.poll_interval > 0 and self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="flagd-embedded-follower")

    async def catch_up(self) -> set[int]:
        """Reload the projects whose newest change is newer than what the catalog holds; return their ids."""
        changed = await self.repository.project_seqs_since(self._seen_seq)
        stale = set()
        for project_id, seq in changed.items():
            state = self.catalog.by_id(project_id)
            if state is None or state.version < seq:
                stale.add(project_id)
        if stale:
            await self._refresh(stale)
        if changed:
            self._seen_seq = max(self._seen_seq, *changed.values())
        return stale

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        await self.repository.close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.catch_up()
            except StoreError as exc:
                self.last_error = f"following the database failed: {exc}"

    async def _refresh(self, project_ids: set[int]) -> None:
        # The write has committed: a failure here must not turn it into an error for the writer. The
        # catalog then keeps the previous state and ``last_error`` says why (health reports it).
        try:
            changes = await self._changes_of(project_ids)
            for project_id in sorted(project_ids):
                previous = self.catalog.by_id(project_id)
                own = changes.get(project_id) if changes is not None else None
                if previous is not None and previous.data is not None and own is not None:
                    # Apply the change itself: a flag write to a project with a large static cohort reads
                    # and decodes that flag, not the cohort's members again.
                    data = apply_changes(previous.data, own)
                else:
                    try:
                        data = await self.repository.load_project(project_id)
                    except NotFound:
                        self.catalog.remove(project_id)
                        continue
                # Compiling is CPU work: in a thread, the event loop keeps answering other projects.
                self.catalog.install(await asyncio.to_thread(build_project_state, data, previous))
        except Exception as exc:
            self.last_error = f"catalog refresh failed: {exc!r}"
        else:
            self.last_error = None

    async def _changes_of(self, project_ids: set[int]) -> dict[int, list[ChangeRow]] | None:
        """The change_log rows of ``project_ids`` newer than their installed state, by project; None when
        they cannot all be read in one page (the caller then reloads those projects whole)."""
        installed = [self.catalog.by_id(p) for p in project_ids]
        if any(state is None for state in installed):
            return None
        since = min(state.version for state in installed if state is not None)
        rows = await self.repository.changes_since(since, limit=_CHANGES_PAGE)
        if len(rows) >= _CHANGES_PAGE:
            return None
        found: dict[int, list[ChangeRow]] = {p: [] for p in project_ids}
        for row in rows:
            if row.project_id in found:
                found[row.project_id].append(row)
        return found
