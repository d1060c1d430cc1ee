"""The node follower: fills a node's ``Catalog`` from Redis and keeps it current by following the change feed.

``start()`` loads every project from Redis (``RedisFlagStore.load_all``), or, when Redis is unreachable or
holds no synced data, from PostgreSQL (the ``fallback`` ``ProjectSource``), compiles each
(``build_project_state``) and installs the lot. ``run()`` then follows the feed (``XREAD BLOCK``, at the
``pace`` given: batch size, longest wait, reconnect backoff): the entries of one read are coalesced per
project; for each touched project only the changed entities are read from Redis and applied to the data the
installed state was built from (``apply_changes``), the result is compiled in a thread (the event loop keeps
serving) and swapped in (``Catalog.install``: requests see the old state or the new one, never a mix). An
entry whose ``prev`` is not the last entry this node read means it missed some (the stream was trimmed past
it, or Redis restarted): it reloads everything, as it does on a ``reload`` entry from the syncer.

When Redis becomes unreachable the node keeps serving the catalog it has (``status.stale``), retries with
capped, jittered backoff, and on reconnecting reloads everything, since it may have missed entries. It never
replaces its catalog with an unsynced (empty or half-rebuilt) Redis: it waits for the syncer's resync.

A recompile allocates a lot; in a long-lived server, ``gc.collect(); gc.freeze()`` after ``start()`` keeps
full collections from walking the start-up heap and cuts the propagation tail (see bench/RESULTS.md).

``status`` reports: loaded, version (highest installed seq), source ("redis" | "postgres" | "stale": Redis
was the source and is now unreachable), stale (not following changes), lag (seconds from a change's commit
to its installation, worst of the last batch), and the last error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec
import structlog

from store.catalog import Catalog, ProjectData, ProjectState, apply_changes, build_project_state
from store.errors import StoreUnavailable
from store.redis.feed import FeedEntry, Pace, ProjectSource, raise_if_cancelling
from store.redis.flag_store import RedisFlagStore

__all__ = ["FOLLOWER_PACE", "NodeFollower", "NodeStatus", "Source"]

Source = Literal["none", "redis", "postgres", "stale"]
InstallHook = Callable[[ProjectState, Sequence[FeedEntry]], None]
FOLLOWER_PACE = Pace(batch_size=1000, wait_seconds=1.0, backoff_base=0.05, backoff_cap=2.0)

_log = structlog.get_logger(__name__)


class NodeStatus(msgspec.Struct, frozen=True):
    """What a node serves and how fresh it is (for /readyz, /healthz and metrics)."""

    loaded: bool
    version: int  # highest change seq installed
    source: Source
    stale: bool  # serving a snapshot that is not being kept current (Redis unreachable or unsynced)
    lag_seconds: float | None  # commit -> installed, worst entry of the last batch applied
    last_error: str | None
    projects: int
    last_change_at: float | None  # time.time() of the last installation from the feed
    # Per project: commit -> installed of the last change applied to it (the on-call page shows it).
    project_lag_seconds: dict[int, float] = {}


class NodeFollower:
    """Keeps ``catalog`` in step with Redis. ``await start()`` once, then ``await run()`` until cancelled."""

    def __init__(
        self,
        store: RedisFlagStore,
        catalog: Catalog,
        *,
        fallback: ProjectSource | None = None,
        pace: Pace = FOLLOWER_PACE,
        on_install: InstallHook | None = None,
    ) -> None:
        self.catalog = catalog
        self._store = store
        self._fallback = fallback
        self._pace = pace
        self._backoff = pace.backoff()
        self._block_ms = max(1, round(pace.wait_seconds * 1000))  # XREAD BLOCK 0 would wait forever
        self._on_install = on_install
        self._last_id = "0-0"
        self._need_reload = True
        self._source: Source = "none"
        self._stale = True
        self._lag: float | None = None
        self._last_error: str | None = None
        self._last_change_at: float | None = None
        self._project_lag: dict[int, float] = {}

    @property
    def status(self) -> NodeStatus:
        return NodeStatus(
            loaded=self.catalog.loaded,
            version=self.catalog.version,
            source=self._source,
            stale=self._stale,
            lag_seconds=self._lag,
            last_error=self._last_error,
            projects=sum(1 for _ in self.catalog.projects()),
            last_change_at=self._last_change_at,
            project_lag_seconds=dict(self._project_lag),
        )

    # Lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> bool:
        """Load every project, from Redis or else from PostgreSQL. Never raises for an unreachable server:
        returns whether the catalog is loaded (``status.last_error`` says why not)."""
        try:
            if await self._reload_from_redis():
                return True
        except StoreUnavailable as exc:
            self._failed(exc)
        await self._load_fallback()
        return self.catalog.loaded

    async def run(self) -> None:
        """Follow the feed until cancelled, reconnecting with backoff."""
        if not self.catalog.loaded:
            await self.start()
        while True:
            raise_if_cancelling()
            try:
                if self._need_reload and not await self._reload_from_redis():
                    self._stale = True
                entries = await self._store.read_feed(
                    self._last_id, count=self._pace.batch_size, block_ms=self._block_ms
                )
                await self._follow(entries)
                self._backoff.reset()
            except StoreUnavailable as exc:
                self._failed(exc)
                if not self.catalog.loaded:
                    await self._load_fallback()
                await asyncio.sleep(self._backoff.next_delay())
            except Exception as exc:  # never stop following: keep serving, log loudly, reload and go on
                _log.exception("node.unexpected_error")
                self._failed(StoreUnavailable(f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(self._backoff.next_delay())

    # Work ----------------------------------------------------------------------------------------------
    async def _reload_from_redis(self) -> bool:
        """Replace the whole catalog from Redis; False (catalog untouched) when Redis is not synced."""
        tail = await self._store.feed_tail()
        projects = await self._store.load_all()
        self._last_id = tail
        if projects is None:
            self._last_error = "Redis holds no synced data yet (waiting for the syncer)"
            return False
        self._install_all(projects)
        self._need_reload = False
        self._source, self._stale, self._last_error = "redis", False, None
        _log.info("node.loaded", source="redis", projects=len(projects), version=self.catalog.version)
        return True

    async def _load_fallback(self) -> None:
        if self._fallback is None or self.catalog.loaded:
            return
        try:
            projects = await self._fallback.load_projects()
        except StoreUnavailable as exc:
            self._last_error = f"Redis and PostgreSQL unavailable: {exc}"
            return
        self._install_all(projects)
        self._source, self._stale = "postgres", True
        _log.warning("node.loaded", source="postgres", projects=len(projects), version=self.catalog.version)

    def _install_all(self, projects: Sequence[ProjectData]) -> None:
        states = {p.project_id: build_project_state(p) for p in projects}
        self.catalog.replace_all(states)
        if self._on_install is not None:
            for state in states.values():
                self._on_install(state, ())

    async def _follow(self, entries: Sequence[FeedEntry]) -> None:
        """Apply one read's worth of feed entries: coalesce per project, reload each touched project once."""
        if not entries:
            return
        reload_all = False
        touched: dict[int, list[FeedEntry]] = {}
        for entry in entries:
            if entry.prev != self._last_id:
                reload_all = True  # a gap: entries we never saw
            self._last_id = entry.id
            if entry.op == "reload" and entry.project_id == 0:
                reload_all = True
            else:
                touched.setdefault(entry.project_id, []).append(entry)
        if reload_all:
            self._need_reload = True
            if await self._reload_from_redis():
                self._record_lag(entries)
            return
        for project_id, covered in touched.items():
            installed = self.catalog.by_id(project_id)
            newest = max(e.seq for e in covered)
            forced = any(e.op == "reload" for e in covered)
            if installed is not None and installed.version >= newest and not forced:
                continue  # a duplicate, or already loaded with a newer state
            data = await self._changed_data(project_id, installed, covered, forced)
            if data is None:
                continue  # the project's own record has not arrived yet
            # Compiling is CPU work: in a thread, the event loop keeps answering requests meanwhile.
            state = await asyncio.to_thread(build_project_state, data, installed)
            if self.catalog.install(state):
                self._record_project_lag(project_id, covered)
                if self._on_install is not None:
                    self._on_install(state, covered)
        self._record_lag(entries)
        self._source, self._stale = "redis", False

    async def _changed_data(
        self,
        project_id: int,
        installed: ProjectState | None,
        covered: Sequence[FeedEntry],
        forced: bool,
    ) -> ProjectData | None:
        """The project after ``covered``: the installed data with just the changed entities read from Redis
        applied (``apply_changes``), or the whole project when there is nothing to apply them to."""
        if installed is None or installed.data is None or forced:
            return await self._store.load_project(project_id)
        rows = await self._store.load_changes(project_id, covered)
        return None if rows is None else apply_changes(installed.data, rows)

    def _record_lag(self, entries: Sequence[FeedEntry]) -> None:
        now = time.time()
        committed = [e.committed_at for e in entries if e.committed_at > 0]
        if committed:
            self._lag = max(0.0, now - min(committed))
        self._last_change_at = now

    def _record_project_lag(self, project_id: int, covered: Sequence[FeedEntry]) -> None:
        committed = [e.committed_at for e in covered if e.committed_at > 0]
        if committed:
            self._project_lag[project_id] = max(0.0, time.time() - min(committed))

    def _failed(self, exc: StoreUnavailable) -> None:
        if not self._stale:
            _log.warning("node.redis_unavailable", error=str(exc))
        self._last_error = str(exc)
        self._stale = True
        self._need_reload = True  # entries may be missed while away
        if self._source == "redis":
            self._source = "stale"
