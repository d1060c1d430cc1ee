"""``SqlitePersonStore``: the embedded person store, one SQLite file shared by every worker process.

The file sits beside the admin database (``flagd.db`` -> ``flagd.persons.db``), in WAL mode, so a write
committed by one worker is read by the next flag check on any other (read-your-writes across ``--workers``).
A person is one row holding its ``PersonRecord`` (``store.persons.model``: the same rules as the Redis Lua)
and, in a column of its own (flag checks never read it), the event uuids it took within the dedupe period
(digest -> ingest second, trimmed when its buckets are rolled up and to the newest 1,000-2,000; a merge
moves them): a batch rewrites one
row per person and nothing else, since the pages a batch dirties are what a commit costs (measured: a uuid
table with its two indexes tripled them). An id merged into another keeps only ``merged_into``; rows not
written for the person TTL are deleted.

Writes run on one database thread per process inside ``BEGIN IMMEDIATE``, group-committed: batches that
arrive while a transaction runs share the next one, each in its own savepoint (all or nothing per batch; a
property-limit error rolls back only that batch). Reads run inline on the event loop (WAL readers never wait
for the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from store.errors import PersonLimitExceeded, StoreError, StoreTimeout, StoreUnavailable
from store.persons.model import Merge, PersonRecord, PersonView, ReadRequest, Step, Writes, properties_of
from store.persons.protocol import SeenPerson, StoreSettings

__all__ = ["SqlitePersonStore", "persons_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    project INTEGER NOT NULL, id TEXT NOT NULL, data BLOB, merged_into TEXT, seen INTEGER NOT NULL,
    uuids BLOB, PRIMARY KEY (project, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS persons_seen ON persons (project, seen);
CREATE TABLE IF NOT EXISTS person_groups (
    project INTEGER NOT NULL, group_type TEXT NOT NULL, group_key TEXT NOT NULL, data BLOB NOT NULL,
    seen INTEGER NOT NULL, PRIMARY KEY (project, group_type, group_key)) WITHOUT ROWID;
DROP TABLE IF EXISTS person_uuids;
CREATE TABLE IF NOT EXISTS person_counters (
    project INTEGER NOT NULL, counter TEXT NOT NULL, since INTEGER NOT NULL,
    PRIMARY KEY (project, counter)) WITHOUT ROWID;
"""
# An upsert that updates in place (INSERT OR REPLACE deletes and reinserts, touching every index).
_UPSERT = (
    "INSERT INTO persons (project, id, data, merged_into, seen, uuids) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (project, id) DO UPDATE SET data = excluded.data, merged_into = excluded.merged_into, "
    "seen = excluded.seen, uuids = excluded.uuids"
)
_MAX_HOPS = 5
_LOCK_SECONDS = 10.0
_READ_WAIT = 0.05  # a WAL reader waits only while the WAL index is rebuilt (rare); then the read fails
_Queued = tuple[int, Sequence[Step], int, int, "asyncio.Future[None]"]
_Row = tuple[str, PersonRecord, dict[str, int]]  # person id, record, uuids taken (digest -> ingest second)
_CLEAN_EVERY = 60
# A person's row keeps its newest 1,000-2,000 event uuids within the dedupe period (SDK retries come within
# minutes; the row is rewritten by every batch that touches the person, so it must stay small).
_KEEP_UUIDS = 1000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PersonRecord).decode
_decode_uuids = msgspec.json.Decoder(dict[str, int]).decode


def persons_path(data_path: Path) -> Path:
    """Where the embedded person store lives for the admin database at ``data_path``."""
    return data_path.with_name(data_path.stem + ".persons" + (data_path.suffix or ".db"))


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _add_uuids_column(conn: sqlite3.Connection) -> None:
    """Files written before the uuids moved into the person row get the column (once; racing workers ok)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(persons)")}
    if "uuids" not in columns:
        with contextlib.suppress(sqlite3.OperationalError):  # "duplicate column": another worker added it
            conn.execute("ALTER TABLE persons ADD COLUMN uuids BLOB")


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
        self._queue: list[_Queued] = []
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, path: Path | str, settings: StoreSettings | None = None) -> SqlitePersonStore:
        def connect() -> tuple[sqlite3.Connection, sqlite3.Connection]:
            writer = _connect(str(path), 10.0)
            writer.executescript(_SCHEMA)  # IF NOT EXISTS: workers opening together are fine
            _add_uuids_column(writer)
            writer.execute("PRAGMA busy_timeout=0")  # writes wait in _begin instead
            return writer, _connect(str(path), _READ_WAIT)  # reads run on the event loop: never wait long

        try:
            writer, reader = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        return cls(writer, reader, settings or StoreSettings())

    # -- writes ------------------------------------------------------------------------------------------
    async def apply(self, project_id: int, steps: Sequence[Step], *, now: int, retention: int) -> None:
        # Group commit: batches arriving while a transaction runs go together into the next one (each in
        # its own savepoint, so one batch's limit error rolls back only that batch).
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((project_id, steps, now, retention, future))
        if not self._flushing:
            self._flushing = True
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                async with self._lock:
                    try:
                        outcomes = await loop.run_in_executor(self._executor, self._apply_all, batch)
                    except sqlite3.Error as exc:
                        outcomes = [_translate(exc)] * len(batch)
                    except Exception as exc:
                        outcomes = [exc] * len(batch)
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(outcome)
        finally:
            self._flushing = False

    def _begin(self, conn: sqlite3.Connection) -> None:
        # Another process may hold the write lock: retry every half millisecond (SQLite's own busy handler
        # sleeps in steps of up to 100 ms, which is what p99 would show).
        deadline = time.monotonic() + _LOCK_SECONDS
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)

    def _apply_all(self, batch: list[_Queued]) -> list[Exception | None]:
        conn = self._writer
        outcomes: list[Exception | None] = []
        self._begin(conn)
        try:
            for project_id, steps, now, retention, _ in batch:
                conn.execute("SAVEPOINT batch")
                try:
                    for step in steps:
                        if isinstance(step, Merge):
                            self._merge(conn, project_id, step, now)
                        else:
                            self._writes(conn, project_id, step, now, retention)
                except (PersonLimitExceeded, StoreError) as exc:
                    conn.execute("ROLLBACK TO batch")
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
                conn.execute("RELEASE batch")
            now = max(item[2] for item in batch)
            if now - self._cleaned >= _CLEAN_EVERY:
                self._clean(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return outcomes

    def _clean(self, conn: sqlite3.Connection, now: int) -> None:
        self._cleaned = now
        ttl = self._settings.person_ttl_seconds
        conn.execute("DELETE FROM persons WHERE seen < ?", (now - ttl,))
        conn.execute("DELETE FROM person_groups WHERE seen < ?", (now - ttl,))

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

    @staticmethod
    def _load_for_write(conn: sqlite3.Connection, project_id: int, distinct_id: str) -> _Row:
        for _ in range(_MAX_HOPS):
            row = conn.execute(
                "SELECT data, merged_into, uuids FROM persons WHERE project = ? AND id = ?",
                (project_id, distinct_id),
            ).fetchone()
            if row is None:
                return distinct_id, PersonRecord(), {}
            if row[1] is None:
                return distinct_id, _decode(row[0]), _decode_uuids(row[2]) if row[2] else {}
            distinct_id = row[1]
        raise StoreUnavailable("person store: too many merged-id redirects")

    def _writes(
        self, conn: sqlite3.Connection, project_id: int, writes: Writes, now: int, retention: int
    ) -> None:
        limit = self._settings.max_person_properties
        dedupe = self._settings.dedupe_seconds
        # One SELECT for the batch's persons; one upsert per person (its uuids ride in its row).
        ids = list(writes.persons)
        marks = ",".join("?" * len(ids))
        rows = {
            row[0]: row
            for row in conn.execute(
                f"SELECT id, data, merged_into, uuids FROM persons WHERE project = ? AND id IN ({marks})",
                (project_id, *ids),
            )
        }
        persons: dict[str, tuple[PersonRecord, dict[str, int]]] = {}
        for distinct_id, events in writes.persons.items():
            row = rows.get(distinct_id)
            if row is None:
                person_id, record, uuids = distinct_id, PersonRecord(), {}
            elif row[2] is None:
                person_id, record = distinct_id, _decode(row[1])
                uuids = _decode_uuids(row[3]) if row[3] else {}
            else:
                person_id, record, uuids = self._load_for_write(conn, project_id, row[2])
            record, uuids = persons.setdefault(person_id, (record, uuids))
            fresh = []
            for event in events:
                if event.uuid:
                    if event.uuid in uuids:
                        continue
                    uuids[event.uuid] = now
                fresh.append(event)
            if len(record.props) + record.new_names(fresh) > limit:
                raise PersonLimitExceeded(person_id, limit)
            for event in fresh:
                record.apply(event, now=now, retention=retention)
        upserts = []
        for person_id, (record, uuids) in persons.items():
            if now >= record.trim_at and uuids:  # with the roll-up: at most every TRIM_EVERY seconds
                for uuid in [u for u, at in uuids.items() if at < now - dedupe]:
                    del uuids[uuid]
            if len(uuids) > 2 * _KEEP_UUIDS:  # a row rewritten per batch stays small: the newest ones
                uuids = dict(list(uuids.items())[-_KEEP_UUIDS:])
            record.maintain(now, retention, dedupe)
            stored = _encode(uuids) if uuids else None
            upserts.append((project_id, person_id, _encode(record), None, now, stored))
        conn.executemany(_UPSERT, upserts)
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
        source_id, source, source_uuids = self._load_for_write(conn, project_id, merge.source)
        target_id, target, target_uuids = self._load_for_write(conn, project_id, merge.target)
        if source_id == target_id:
            return
        if merge.identify and source.identified:  # PostHog does not merge two identified persons
            target.identified = True
            uuids = _encode(target_uuids) if target_uuids else None
            conn.execute(_UPSERT, (project_id, target_id, _encode(target), None, now, uuids))
            return
        target.absorb(source, self._settings.max_person_properties)
        target.identified = True
        for uuid, at in source_uuids.items():  # the source's events stay deduplicated under the target
            target_uuids.setdefault(uuid, at)
        uuids = _encode(target_uuids) if target_uuids else None
        conn.execute(_UPSERT, (project_id, target_id, _encode(target), None, now, uuids))
        conn.execute(_UPSERT, (project_id, source_id, None, target_id, now, None))

    # -- reads -------------------------------------------------------------------------------------------
    async def read(
        self, request: ReadRequest, *, now: int, retention: int, deadline: float | None = None
    ) -> PersonView:
        # A local file read in the event loop's thread: nothing to give up on at the deadline.
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
            self._begin(conn)
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
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        async with self._lock:
            self._executor.shutdown(wait=True)
            self._writer.close()
            self._reader.close()
