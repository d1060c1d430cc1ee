"""The syncer: copies PostgreSQL's change_log into the Redis flag store and its change feed.

Exactly one syncer applies at a time. Every contender opens a dedicated PostgreSQL connection and takes a
session-level advisory lock on it (``pg_try_advisory_lock``, retried about every second); the holder is the
active syncer, the others are standbys. When the active one dies its connection drops, PostgreSQL releases the
lock, and a standby takes over within about ``lock_retry_seconds``. Should two briefly overlap (a dead
connection not yet noticed), nothing breaks: applies are idempotent and version-checked, and the cursor only
moves from the value its writer read (``RedisFlagStore.commit``), so each change is published once.

The active syncer, on the same connection, LISTENs on ``flagd_changes`` and on every (re)connect catches up
from its cursor (kept in Redis), ``pace.batch_size`` changes at a time. NOTIFY only wakes it: a lost
notification loses nothing, and it also polls every ``pace.wait_seconds``. When the cursor is missing (Redis
lost its data, or is new) it does a full resync: every project from PostgreSQL
(``ProjectSource.load_projects``) rewritten into Redis, the cursor set to the change_log's newest seq read
before that load, and a ``reload`` entry on the feed. Every ``reconcile_seconds`` it compares PostgreSQL and
Redis project by project and rewrites any that drifted. Failures (either server) close the connection and
retry with the pace's capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]  # no stubs shipped; pyproject has no override
import msgspec
import structlog

from store.catalog import ProjectData
from store.errors import StoreUnavailable
from store.redis.feed import Change, Pace, ProjectSource, raise_if_cancelling
from store.redis.flag_store import APPLIED, COMMITTED, CURSOR_LOST, RedisFlagStore

__all__ = [
    "CHANNEL",
    "SYNCER_LOCK",
    "SYNCER_PACE",
    "ProjectSource",
    "SyncStats",
    "Syncer",
    "project_fingerprint",
]

SYNCER_LOCK = 7420130003  # advisory lock key (…01: change_log seq, …02: migrations)
CHANNEL = "flagd_changes"
SYNCER_PACE = Pace(batch_size=500, wait_seconds=2.0, backoff_base=0.1, backoff_cap=5.0)

_log = structlog.get_logger(__name__)

_CHANGES = """
SELECT seq, project_id, entity_type, entity_id, entity_version, op, payload::text AS payload,
       extract(epoch FROM created_at)::float8 AS committed_at
FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2
"""


class _ConnectionLostError(Exception):
    """The syncer's PostgreSQL connection closed (and with it the lock)."""


_RETRYABLE: tuple[type[Exception], ...] = (
    StoreUnavailable,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    _ConnectionLostError,
)


class SyncStats(msgspec.Struct):
    """Counters since start. ``applied`` + ``skipped`` = changes committed to the feed by this syncer."""

    applied: int = 0  # changes that changed Redis
    skipped: int = 0  # changes Redis already had (replays after a crash, or older than a rewrite)
    resyncs: int = 0  # full resyncs (cursor missing)
    reconciliations: int = 0
    healed: int = 0  # projects rewritten because Redis drifted from PostgreSQL


def project_fingerprint(data: ProjectData | None) -> Any:
    """What must agree between PostgreSQL and Redis for a project: seq, metadata, live flags, live cohorts
    and the members of live static cohorts (order-insensitive)."""
    if data is None:
        return None
    flags = sorted((f for f in data.flags if not f.get("deleted")), key=lambda f: int(f["id"]))
    cohorts = sorted((c for c in data.cohorts if not c.get("deleted")), key=lambda c: int(c["id"]))
    live = {str(c["id"]) for c in cohorts}
    cohorts = [{k: v for k, v in c.items() if k != "members"} for c in cohorts]
    members = {k: sorted(v) for k, v in data.static_members.items() if k in live and v}
    return (
        data.version,
        data.api_token,
        data.secret_token_hash,
        data.group_type_mapping,
        data.property_matching_version,
        flags,
        cohorts,
        members,
    )


class Syncer:
    """Applies change_log to Redis while holding the cluster-wide syncer lock; ``await run()`` until
    cancelled."""

    def __init__(
        self,
        dsn: str,
        store: RedisFlagStore,
        source: ProjectSource,
        *,
        pace: Pace = SYNCER_PACE,
        reconcile_seconds: float = 60.0,
        lock_retry_seconds: float = 1.0,
        query_timeout: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._store = store
        self._source = source
        self._pace = pace
        self._backoff = pace.backoff()
        self._reconcile_seconds = reconcile_seconds
        self._lock_retry_seconds = lock_retry_seconds
        self._timeout = query_timeout
        self.role: Literal["starting", "standby", "active", "retrying"] = "starting"
        self.cursor: int | None = None  # last cursor seen in Redis
        self.last_error: str | None = None
        self.stats = SyncStats()

    @property
    def active(self) -> bool:
        return self.role == "active"

    @property
    def status(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "cursor": self.cursor,
            "last_error": self.last_error,
            **msgspec.structs.asdict(self.stats),
        }

    # Lifecycle -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Contend for the lock, then sync until cancelled; reconnect with backoff after any failure."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
                while not await self._try_lock(conn):
                    self.role = "standby"
                    await asyncio.sleep(self._lock_retry_seconds)
                _log.info("syncer.active", cursor=await self._store.cursor())
                self._backoff.reset()
                await self._lead(conn)
            except _RETRYABLE as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.warning("syncer.retrying", error=self.last_error)
            except Exception as exc:  # a syncer must outlive any one bad moment: log loudly, start over
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.exception("syncer.unexpected_error", error=self.last_error)
            finally:
                self.role = "retrying"
                if conn is not None:
                    conn.terminate()  # immediate: the server releases the lock as soon as it sees EOF
            raise_if_cancelling()
            await asyncio.sleep(self._backoff.next_delay())

    async def sync_once(self) -> bool:
        """Take the lock if free, catch up once, reconcile, release. Returns False when another syncer holds
        the lock. For tests and the CLI."""
        conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        try:
            if not await self._try_lock(conn):
                return False
            await self._catch_up(conn)
            await self._reconcile(conn)
            return True
        finally:
            conn.terminate()

    async def wait_for_cursor(self, seq: int, within: float = 5.0) -> None:
        """Wait until Redis' cursor reaches ``seq`` (raises TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while (await self._store.cursor() or 0) < seq:  # noqa: ASYNC110 - the cursor lives in Redis
                await asyncio.sleep(0.01)

    async def _try_lock(self, conn: asyncpg.Connection) -> bool:
        locked = await conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNCER_LOCK, timeout=self._timeout)
        return bool(locked)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        wake, lost = asyncio.Event(), asyncio.Event()

        def on_lost(_: object) -> None:
            lost.set()
            wake.set()

        conn.add_termination_listener(on_lost)
        await conn.add_listener(CHANNEL, lambda *_: wake.set())
        self.role = "active"
        await self._catch_up(conn)
        next_reconcile = loop.time() + self._reconcile_seconds
        while True:
            raise_if_cancelling()
            if lost.is_set() or conn.is_closed():
                raise _ConnectionLostError("the syncer's PostgreSQL connection closed")
            timeout = max(0.0, min(self._pace.wait_seconds, next_reconcile - loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    await wake.wait()
            wake.clear()
            await self._catch_up(conn)
            if loop.time() >= next_reconcile:
                await self._reconcile(conn)
                next_reconcile = loop.time() + self._reconcile_seconds

    # Work ----------------------------------------------------------------------------------------------
    async def _catch_up(self, conn: asyncpg.Connection) -> None:
        """Apply and publish every change after the cursor, in batches."""
        while True:
            raise_if_cancelling()
            cursor = await self._store.cursor()
            if cursor is None:
                await self._resync(conn)
                continue
            self.cursor = cursor
            rows = await conn.fetch(_CHANGES, cursor, self._pace.batch_size, timeout=self._timeout)
            if not rows:
                return
            changes = [_change(row) for row in rows]
            results = await self._store.apply(changes)
            outcome = await self._store.commit(cursor, changes[-1].seq, changes)
            if outcome == COMMITTED:
                applied = sum(1 for r in results if r == APPLIED)
                self.stats.applied += applied
                self.stats.skipped += len(results) - applied
                self.cursor = changes[-1].seq
                if len(rows) < self._pace.batch_size:
                    return
            elif outcome == CURSOR_LOST:
                _log.warning("syncer.cursor_lost")
            # CURSOR_MOVED: another syncer got there first; read the cursor again.

    async def _resync(self, conn: asyncpg.Connection) -> None:
        """Rebuild Redis from PostgreSQL. The newest seq is read before the load, so changes committed during
        it are replayed afterwards (and skipped where the load already had them)."""
        token = await self._store.begin_resync()
        top = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM change_log", timeout=self._timeout))
        projects = await self._source.load_projects()
        for project in projects:
            await self._store.replace_project(project)
        if not await self._store.finish_resync(token, top):
            _log.warning("syncer.resync_interrupted")  # Redis flushed meanwhile; the caller tries again
            return
        self.stats.resyncs += 1
        _log.info("syncer.resynced", projects=len(projects), cursor=top)

    async def _reconcile(self, conn: asyncpg.Connection) -> None:
        """Compare every project in PostgreSQL with Redis; rewrite the ones that differ."""
        await self._catch_up(conn)
        cursor = self.cursor or 0
        expected = await self._source.load_projects()
        stored = await self._store.load_all()
        if stored is None:  # the cursor vanished meanwhile: the next catch-up resyncs
            return
        by_id = {p.project_id: p for p in stored}
        healed = await self._heal(expected, by_id, cursor)
        self.stats.reconciliations += 1
        if healed:
            _log.warning("syncer.healed", projects=healed)

    async def _heal(
        self, expected: Sequence[ProjectData], stored: dict[int, ProjectData], cursor: int
    ) -> list[int]:
        healed = []
        for project in expected:
            if project.version > cursor:
                continue  # changes still in flight; the next catch-up brings them
            if project_fingerprint(stored.get(project.project_id)) == project_fingerprint(project):
                continue
            if await self._store.replace_project(project):
                await self._store.publish_reload(project.project_id, project.version)
                healed.append(project.project_id)
                self.stats.healed += 1
        return healed


_decode_payload = msgspec.json.Decoder(dict[str, Any]).decode


def _change(row: asyncpg.Record) -> Change:
    return Change(
        seq=row["seq"],
        project_id=row["project_id"],
        entity_type=row["entity_type"],
        entity_id=row["entity_id"],
        entity_version=row["entity_version"],
        op=row["op"],
        payload=_decode_payload(row["payload"]),
        committed_at=row["committed_at"] or time.time(),
    )
