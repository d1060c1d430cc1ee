"""``SqlitePersonStore``: the embedded person store, one SQLite file shared by every worker process.

The file sits beside the admin database (``flagd.db`` -> ``flagd.persons.db``), in WAL mode, so a write
committed by one worker is read by the next flag check on any other (read-your-writes across ``--workers``).
A person is one row holding its ``PersonRecord`` (``store.persons.model``: the same rules as the Redis Lua);
an id merged into another keeps only ``merged_into``. Event uuids are remembered per project for the dedupe
period; rows not written for the person TTL are deleted.

Writes run on one database thread per process inside ``BEGIN IMMEDIATE`` (one transaction per batch: all or
nothing, and a property-limit error rolls back everything); reads run inline on the event loop (WAL readers
never wait for the writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from store.errors import StoreError, StoreTimeout, StoreUnavailable
from store.persons.model import Merge, PersonRecord, PersonView, ReadRequest, Step, Writes, properties_of
from store.persons.protocol import PersonLimitExceeded, SeenPerson, StoreSettings

__all__ = ["SqlitePersonStore", "persons_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    project INTEGER NOT NULL, id TEXT NOT NULL, data BLOB, merged_into TEXT, seen INTEGER NOT NULL,
    PRIMARY KEY (project, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS persons_seen ON persons (project, seen);
CREATE TABLE IF NOT EXISTS person_groups (
    project INTEGER NOT NULL, group_type TEXT NOT NULL, group_key TEXT NOT NULL, data BLOB NOT NULL,
    seen INTEGER NOT NULL, PRIMARY KEY (project, group_type, group_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS person_events (
    project INTEGER NOT NULL, uuid TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (project, uuid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS person_events_at ON person_events (at);
CREATE TABLE IF NOT EXISTS person_counters (
    project INTEGER NOT NULL, counter TEXT NOT NULL, since INTEGER NOT NULL,
    PRIMARY KEY (project, counter)) WITHOUT ROWID;
"""
_UPSERT = "INSERT OR REPLACE INTO persons (project, id, data, merged_into, seen) VALUES (?, ?, ?, ?, ?)"
_MAX_HOPS = 5
_CLEAN_EVERY = 60
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PersonRecord).decode


def persons_path(data_path: Path) -> Path:
    """Where the embedded person store lives for the admin database at ``data_path``."""
    return data_path.with_name(data_path.stem + ".persons" + (data_path.suffix or ".db"))


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _translate(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return StoreTimeout(f"SQLite person store is locked: {exc}")
    return StoreUnavailable(f"SQLite person store failed: {exc}")


class SqlitePersonStore:
    """``PersonStore`` on a SQLite file (see the module docstring). Build with ``SqlitePersonStore.open``."""

    def __init__(
        self, writer: sqlite3.Connection, reader: sqlite3.Connection, settings: StoreSettings
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flagd-persons")
        self._lock = asyncio.Lock()
        self._cleaned = 0

    @classmethod
    async def open(cls, path: Path | str, settings: StoreSettings | None = None) -> SqlitePersonStore:
        def connect() -> tuple[sqlite3.Connection, sqlite3.Connection]:
            writer = _connect(str(path))
            writer.executescript(_SCHEMA)  # IF NOT EXISTS: workers opening together are fine
            return writer, _connect(str(path))

        try:
            writer, reader = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return cls(writer, reader, settings or StoreSettings())

    # -- writes ------------------------------------------------------------------------------------------
    async def apply(self, project_id: int, steps: Sequence[Step], *, now: int, retention: int) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                await loop.run_in_executor(self._executor, self._apply, project_id, steps, now, retention)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    def _apply(self, project_id: int, steps: Sequence[Step], now: int, retention: int) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in steps:
                if isinstance(step, Merge):
                    self._merge(conn, project_id, step, now)
                else:
                    self._writes(conn, project_id, step, now, retention)
            if now - self._cleaned >= _CLEAN_EVERY:
                self._clean(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _clean(self, conn: sqlite3.Connection, now: int) -> None:
        self._cleaned = now
        ttl = self._settings.person_ttl_seconds
        conn.execute("DELETE FROM persons WHERE seen < ?", (now - ttl,))
        conn.execute("DELETE FROM person_groups WHERE seen < ?", (now - ttl,))
        conn.execute("DELETE FROM person_events WHERE at < ?", (now - self._settings.dedupe_seconds,))

    @staticmethod
    def _load(conn: sqlite3.Connection, project_id: int, distinct_id: str) -> tuple[str, PersonRecord]:
        for _ in range(_MAX_HOPS):
            row = conn.execute(
                "SELECT data, merged_into FROM persons WHERE project = ? AND id = ?",
                (project_id, distinct_id),
            ).fetchone()
            if row is None:
                return distinct_id, PersonRecord()
            if row[1] is None:
                return distinct_id, _decode(row[0])
            distinct_id = row[1]
        raise StoreUnavailable("person store: too many merged-id redirects")

    def _writes(
        self, conn: sqlite3.Connection, project_id: int, writes: Writes, now: int, retention: int
    ) -> None:
        limit = self._settings.max_person_properties
        for distinct_id, events in writes.persons.items():
            person_id, record = self._load(conn, project_id, distinct_id)
            fresh = [
                e
                for e in events
                if not e.uuid
                or conn.execute(
                    "INSERT OR IGNORE INTO person_events (project, uuid, at) VALUES (?, ?, ?)",
                    (project_id, e.uuid, now),
                ).rowcount
                == 1
            ]
            if len(record.props) + record.new_names(fresh) > limit:
                raise PersonLimitExceeded(person_id, limit)
            for event in fresh:
                record.apply(event, now=now, retention=retention)
            record.maintain(now, retention)
            conn.execute(_UPSERT, (project_id, person_id, _encode(record), None, now))
        for (group_type, key), events in writes.groups.items():
            row = conn.execute(
                "SELECT data FROM person_groups WHERE project = ? AND group_type = ? AND group_key = ?",
                (project_id, group_type, key),
            ).fetchone()
            group = _decode(row[0]) if row else PersonRecord()
            if len(group.props) + group.new_names(events) > limit:
                raise PersonLimitExceeded(f"{group_type}:{key}", limit)
            for event in events:
                group.apply(event, now=now, retention=retention)
            conn.execute(
                "INSERT OR REPLACE INTO person_groups VALUES (?, ?, ?, ?, ?)",
                (project_id, group_type, key, _encode(group), now),
            )

    def _merge(self, conn: sqlite3.Connection, project_id: int, merge: Merge, now: int) -> None:
        source_id, source = self._load(conn, project_id, merge.source)
        target_id, target = self._load(conn, project_id, merge.target)
        if source_id == target_id:
            return
        target.absorb(source)
        conn.execute(_UPSERT, (project_id, target_id, _encode(target), None, now))
        conn.execute(_UPSERT, (project_id, source_id, None, target_id, now))

    # -- reads -------------------------------------------------------------------------------------------
    async def read(self, request: ReadRequest, *, now: int, retention: int) -> PersonView:
        try:
            return self._read(request, now, retention)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    def _read(self, request: ReadRequest, now: int, retention: int) -> PersonView:
        conn = self._reader
        _, record = self._load(conn, request.project_id, request.distinct_id)
        groups: dict[str, dict[str, Any]] = {}
        for group_type, key in request.groups:
            row = conn.execute(
                "SELECT data FROM person_groups WHERE project = ? AND group_type = ? AND group_key = ?",
                (request.project_id, group_type, key),
            ).fetchone()
            groups[group_type] = _decode(row[0]).properties() if row else {}
        counts = {q.key: record.count(q, now=now) for q in request.queries}
        return PersonView(record.properties(), groups, counts)

    async def seen_persons(self, project_id: int, since_seconds: int, limit: int) -> list[SeenPerson]:
        now = int(time.time())
        try:
            rows = self._reader.execute(
                "SELECT id, seen, data FROM persons WHERE project = ? AND seen >= ? AND merged_into IS NULL "
                "ORDER BY seen DESC LIMIT ?",
                (project_id, now - since_seconds, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return [SeenPerson(row[0], row[1], properties_of(_decode(row[2]).props)) for row in rows]

    async def track(self, project_id: int, counters: Sequence[str], now: int) -> dict[str, int]:
        if not counters:
            return {}

        def run() -> dict[str, int]:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO person_counters (project, counter, since) VALUES (?, ?, ?)",
                    [(project_id, c, now) for c in counters],
                )
                marks = ",".join("?" * len(counters))
                rows = conn.execute(
                    f"SELECT counter, since FROM person_counters WHERE project = ? AND counter IN ({marks})",
                    (project_id, *counters),
                ).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return {row[0]: row[1] for row in rows}

        async with self._lock:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, run)
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

    async def close(self) -> None:
        async with self._lock:
            self._executor.shutdown(wait=True)
            self._writer.close()
            self._reader.close()
