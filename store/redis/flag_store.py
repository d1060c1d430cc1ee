"""The Redis flag store: every project's flag definitions, cohorts and metadata, derived from PostgreSQL's
change_log by the syncer and read by the nodes.

Key layout (``flagd`` is the configurable prefix). A project's keys share the hash tag ``{p<id>}`` and the
global keys share ``{g}``, so every script touches one Redis Cluster slot::

    flagd:{p<id>}:meta       hash   seq (change_log seq of the newest change applied to the project),
                                    api_token, secret_token_hash, group_type_mapping (JSON), project_version,
                                    property_matching_version
    flagd:{p<id>}:versions   hash   "<entity type>:<entity id>" -> entity version (flag/cohort/project)
    flagd:{p<id>}:flags      hash   flag id -> FlagRecord.definition() JSON (deleted flags stay as tombstones)
    flagd:{p<id>}:cohorts    hash   cohort id -> CohortRecord.definition() JSON (tombstones as for flags)
    flagd:{p<id>}:static     hash   cohort id -> JSON list of member distinct ids (static cohorts only)
    flagd:{g}:projects       set    project ids
    flagd:{g}:tokens         hash   public project token -> project id
    flagd:{g}:cursor         string the seq up to which the syncer has applied and published the change_log.
                                    Its absence means Redis lost its data (or was never filled): full resync.
    flagd:{g}:resync         string token of the full resync in progress; the cursor is set at its end only
                                    if the token survived (no flush while the projects were being rewritten)
    flagd:{g}:feed           stream the change feed the nodes follow (MAXLEN ~ trimmed); one entry per change,
                                    each naming the previous entry (``prev``) so followers detect gaps

Writes are Lua scripts, atomic per slot. ``apply`` applies a change only if its seq is newer than the
project's applied seq AND the entity's version is newer than the stored one, so a replayed, duplicated or
reordered change never moves anything backwards. ``commit`` publishes a batch of feed entries and advances
the cursor in one step, only if the cursor is still where the caller read it: each change is published
exactly once even when two syncers briefly overlap, and a cursor that vanished (Redis flushed) is reported,
not recreated.

Redis errors are translated once, here: ``StoreTimeout`` for timeouts, ``StoreUnavailable`` otherwise.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from store.catalog import ProjectData
from store.errors import StoreTimeout, StoreUnavailable
from store.records import ChangeRow
from store.redis import scripts as scripts
from store.redis.feed import Change, FeedEntry, FeedOp
from store.servers.connections import AnyRedis, redis_client

__all__ = ["APPLIED", "CURSOR_LOST", "CURSOR_MOVED", "SKIPPED", "RedisFlagStore"]

APPLIED, SKIPPED = 1, 0  # apply() results (SKIPPED: already applied, or older than what is stored)
COMMITTED, CURSOR_LOST, CURSOR_MOVED = 1, -1, -2  # commit() results

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_decode_dicts = msgspec.json.Decoder(list[dict[str, Any]]).decode


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate redis-py errors, once, at the boundary."""
    try:
        yield
    except redis_errors.TimeoutError as exc:
        raise StoreTimeout(f"Redis timed out during {what}") from exc
    except TimeoutError as exc:
        raise StoreTimeout(f"Redis timed out during {what}") from exc
    except (redis_errors.RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis failed during {what}: {exc}") from exc


class _Sequential:
    """Stands in for a pipeline on a Redis Cluster: queues calls (scripts included) and runs them in order."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._calls: list[Callable[[], Awaitable[Any]]] = []

    def queue(self, call: Callable[[], Awaitable[Any]]) -> None:
        self._calls.append(call)

    def __getattr__(self, name: str) -> Callable[..., None]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._calls.append(lambda: method(*args, **kwargs))

    async def execute(self) -> list[Any]:
        calls, self._calls = self._calls, []
        return [await call() for call in calls]

    async def __aenter__(self) -> _Sequential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._calls.clear()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisFlagStore:
    """Projects, flags and cohorts in Redis (see the module docstring for the layout and guarantees)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "flagd",
        socket_timeout: float = 2.0,
        feed_maxlen: int = 100_000,
        max_connections: int = 32,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._socket_timeout = socket_timeout
        self.feed_maxlen = feed_maxlen
        # A single server or a Redis Cluster (``redis+cluster://``, ``store.servers.connections``): every key
        # below is hash-tagged, so each script and multi-key command stays in one slot either way.
        self._redis: AnyRedis = redis_client(
            url, timeout=socket_timeout, max_connections=max_connections, health_check_interval=30
        )
        self._blocking: AnyRedis | None = None  # separate client for XREAD BLOCK
        self._apply = self._redis.register_script(scripts.APPLY)
        self._replace = self._redis.register_script(scripts.REPLACE)
        self._publish_one = self._redis.register_script(scripts.PUBLISH_ONE)
        self._commit = self._redis.register_script(scripts.COMMIT)
        self._finish_resync = self._redis.register_script(scripts.FINISH_RESYNC)
        g = f"{prefix}:{{g}}"
        self.projects_key, self.tokens_key = f"{g}:projects", f"{g}:tokens"
        self.cursor_key, self.feed_key = f"{g}:cursor", f"{g}:feed"
        self.resync_key = f"{g}:resync"

    def _pipeline(self) -> Any:
        """A non-transactional pipeline; on a Redis Cluster (whose pipelines refuse scripts) a stand-in
        that runs the queued calls one after another."""
        if isinstance(self._redis, RedisCluster):
            return _Sequential(self._redis)
        return self._redis.pipeline(transaction=False)

    @staticmethod
    async def _queue_script(pipe: Any, script: Any, keys: list[str], args: Sequence[Any]) -> None:
        if isinstance(pipe, _Sequential):
            pipe.queue(lambda: script(keys=keys, args=args))
        else:
            await script(keys=keys, args=args, client=pipe)

    # Keys ----------------------------------------------------------------------------------------------
    def project_keys(self, project_id: int) -> tuple[str, str, str, str, str]:
        """(meta, versions, flags, cohorts, static) for one project."""
        p = f"{self._prefix}:{{p{project_id}}}"
        return f"{p}:meta", f"{p}:versions", f"{p}:flags", f"{p}:cohorts", f"{p}:static"

    async def close(self) -> None:
        await self._redis.aclose()
        if self._blocking is not None:
            await self._blocking.aclose()

    async def ping(self) -> None:
        with _translated("ping"):
            await self._redis.ping()

    # Cursor and feed -----------------------------------------------------------------------------------
    async def cursor(self) -> int | None:
        """The syncer's cursor, or None when Redis holds no synced data (never filled, or lost)."""
        with _translated("reading the cursor"):
            value = await self._redis.get(self.cursor_key)
        return None if value is None else int(value)

    async def apply(self, changes: Sequence[Change]) -> list[int]:
        """Apply changes in order; for each, ``APPLIED`` or ``SKIPPED`` (already applied or stale)."""
        if not changes:
            return []
        with _translated("applying changes"):
            async with self._pipeline() as pipe:
                for change in changes:
                    await self._queue_apply(pipe, change)
                results = await pipe.execute()
        return [int(r) for r in results[::3]]

    async def _queue_apply(self, pipe: Any, change: Change) -> None:
        meta, versions, flags, cohorts, static = self.project_keys(change.project_id)
        payload = change.payload
        members, body, token, secret, gtm, matching = "", "", "", "", "{}", "1"
        if change.entity_type == "project":
            target = meta
            token = str(payload.get("api_token", ""))
            secret = str(payload.get("secret_token_hash", ""))
            gtm = _encode(payload.get("group_type_mapping") or {}).decode()
            matching = str(payload.get("property_matching_version") or 1)
        elif change.entity_type == "cohort":
            target = cohorts
            definition = {k: v for k, v in payload.items() if k != "members"}
            body = _encode(definition).decode()
            if "members" in payload:
                members = _encode(sorted(payload["members"])).decode()
        else:
            target = flags
            body = _encode(payload).decode()
        deleted = "1" if change.op == "delete" or payload.get("deleted") else "0"
        await self._queue_script(
            pipe,
            self._apply,
            [meta, versions, target, static],
            [
                change.seq,
                change.entity_type,
                change.entity_id,
                change.entity_version,
                body,
                members,
                deleted,
                token,
                secret,
                gtm,
                matching,
            ],
        )
        pipe.sadd(self.projects_key, change.project_id)
        if token:
            pipe.hset(self.tokens_key, token, change.project_id)
        else:
            pipe.hlen(self.tokens_key)  # keeps three replies per change

    async def commit(self, expected_cursor: int, new_cursor: int, entries: Sequence[Change]) -> int:
        """Publish one feed entry per change and move the cursor from ``expected_cursor`` to ``new_cursor``,
        atomically. Returns ``COMMITTED``, ``CURSOR_LOST`` (no cursor: Redis lost its data; nothing done) or
        ``CURSOR_MOVED`` (another syncer moved it; nothing done)."""
        args: list[str | int | float] = [expected_cursor, new_cursor, self.feed_maxlen]
        for c in entries:
            args += [c.seq, c.project_id, c.op, c.entity_type, c.entity_id, c.entity_version, c.committed_at]
        with _translated("committing the cursor"):
            return int(await self._commit(keys=[self.cursor_key, self.feed_key], args=args))

    async def begin_resync(self) -> str:
        """Mark the start of a full resync; pass the returned token to ``finish_resync``."""
        token = secrets.token_hex(8)
        with _translated("starting a resync"):
            await self._redis.set(self.resync_key, token)
        return token

    async def finish_resync(self, token: str, seq: int) -> bool:
        """Set the cursor to ``seq`` and tell every follower to reload everything, unless Redis lost its data
        since ``begin_resync`` (then False: some rewritten projects may be gone; resync again)."""
        with _translated("finishing a resync"):
            done = await self._finish_resync(
                keys=[self.cursor_key, self.resync_key, self.feed_key], args=[token, seq, self.feed_maxlen]
            )
        return bool(done)

    async def reset_cursor(self, seq: int) -> None:
        """Set the cursor unconditionally (with a "reload everything" entry)."""
        await self.finish_resync(await self.begin_resync(), seq)

    async def publish_reload(self, project_id: int, seq: int) -> str:
        """Publish a ``reload`` entry (``project_id`` 0: every project)."""
        with _translated("publishing to the feed"):
            new_id = await self._publish_one(
                keys=[self.feed_key],
                args=[self.feed_maxlen, seq, project_id, "reload", "project", project_id, seq, 0],
            )
        return _text(new_id)

    async def feed_tail(self) -> str:
        """The id of the newest feed entry ("0-0" when the feed is empty)."""
        with _translated("reading the feed"):
            last: Any = await self._redis.xrevrange(self.feed_key, count=1)
        return _text(last[0][0]) if last else "0-0"

    async def read_feed(
        self, after: str, *, count: int = 1000, block_ms: int | None = None
    ) -> list[FeedEntry]:
        """Entries after stream id ``after``, oldest first; waits up to ``block_ms`` for one to arrive."""
        client = self._redis
        if block_ms is not None:
            if self._blocking is None:
                timeout = self._socket_timeout + block_ms / 1000
                self._blocking = redis_client(
                    self._url,
                    timeout=timeout,
                    socket_connect_timeout=self._socket_timeout,
                    max_connections=4,
                )
            client = self._blocking
        with _translated("reading the feed"):
            reply: Any = await client.xread({self.feed_key: after}, count=count, block=block_ms)
        if not reply:
            return []
        return [_feed_entry(entry_id, fields) for entry_id, fields in reply[0][1]]

    async def feed_entries(self) -> list[FeedEntry]:
        """The whole feed, oldest first (for tests and diagnostics)."""
        with _translated("reading the feed"):
            entries: Any = await self._redis.xrange(self.feed_key)
        return [_feed_entry(entry_id, fields) for entry_id, fields in entries]

    # Whole projects ------------------------------------------------------------------------------------
    async def replace_project(self, data: ProjectData) -> bool:
        """Rewrite a project wholesale from ``data`` (full resync, reconciliation), unless Redis already holds
        a newer seq for it. Returns whether it did."""
        args: list[str | int] = [
            data.version,
            data.api_token,
            data.secret_token_hash,
            _encode(data.group_type_mapping).decode(),
            len(data.flags),
        ]
        for flag in data.flags:
            args += [flag["id"], flag.get("version", 0), _encode(flag).decode()]
        args.append(len(data.cohorts))
        for cohort in data.cohorts:
            definition = {k: v for k, v in cohort.items() if k != "members"}
            args += [cohort["id"], cohort.get("version", 0), _encode(definition).decode()]
        args.append(len(data.static_members))
        for cohort_id, members in data.static_members.items():
            args += [cohort_id, _encode(sorted(members)).decode()]
        args.append(data.property_matching_version)
        with _translated("replacing a project"):
            async with self._pipeline() as pipe:
                await self._queue_script(pipe, self._replace, list(self.project_keys(data.project_id)), args)
                pipe.sadd(self.projects_key, data.project_id)
                pipe.hset(self.tokens_key, data.api_token, data.project_id)
                done, _, _ = await pipe.execute()
        return bool(done)

    async def project_for_token(self, token: str) -> int | None:
        with _translated("looking up a token"):
            value = await self._redis.hget(self.tokens_key, token)
        return None if value is None else int(value)

    async def project_ids(self) -> list[int]:
        with _translated("listing projects"):
            members = await self._redis.smembers(self.projects_key)
        return sorted(int(m) for m in members)

    async def load_project(self, project_id: int) -> ProjectData | None:
        """One project as stored (live flags and cohorts only), or None when Redis has no metadata for it."""
        found = await self._load([project_id])
        return found[0] if found else None

    async def load_all(self) -> list[ProjectData] | None:
        """Every project, or None when Redis holds no synced data (no cursor): the caller must not mistake an
        empty or half-rebuilt Redis for a store without projects."""
        with _translated("loading projects"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self.cursor_key)
                pipe.smembers(self.projects_key)
                cursor, members = await pipe.execute()
        if cursor is None:
            return None
        return await self._load(sorted(int(m) for m in members))

    async def load_changes(self, project_id: int, entries: Sequence[FeedEntry]) -> list[ChangeRow] | None:
        """The entities ``entries`` (flag, cohort and project entries of one project) name, as Redis holds
        them now, shaped as change_log rows for ``store.catalog.apply_changes``: a node applies a change by
        reading that entity alone, not the whole project (a flag write next to a large static cohort does
        not decode the cohort again). None when Redis has no metadata for the project."""
        flag_ids = sorted({e.entity_id for e in entries if e.entity_type == "flag"})
        cohort_ids = sorted({e.entity_id for e in entries if e.entity_type == "cohort"})
        meta, _, flags, cohorts, static = self.project_keys(project_id)
        with _translated("loading changes"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(
                    meta,
                    ["api_token", "secret_token_hash", "group_type_mapping", "property_matching_version"],
                )
                pipe.hmget(flags, flag_ids or ["-"])
                pipe.hmget(cohorts, cohort_ids or ["-"])
                pipe.hmget(static, cohort_ids or ["-"])
                (token, secret, mapping, matching), flag_bodies, cohort_bodies, members = await pipe.execute()
        if token is None:
            return None
        seq = {(e.entity_type, e.entity_id): e.seq for e in entries}
        rows: list[ChangeRow] = []
        for fid, body in zip(flag_ids, flag_bodies, strict=False):
            payload = _decode(body) if body is not None else {}
            rows.append(_row(project_id, "flag", fid, seq[("flag", fid)], payload))
        for cid, body, ids in zip(cohort_ids, cohort_bodies, members, strict=False):
            payload = _decode(body) if body is not None else {}
            if payload.get("is_static"):
                payload["members"] = _decode(ids) if ids is not None else []
            rows.append(_row(project_id, "cohort", cid, seq[("cohort", cid)], payload))
        for e in entries:
            if e.entity_type == "project":
                payload = {
                    "api_token": _text(token),
                    "secret_token_hash": _text(secret or b""),
                    "group_type_mapping": _decode(mapping or b"{}"),
                    "property_matching_version": int(matching or b"1"),
                }
                rows.append(_row(project_id, "project", project_id, e.seq, payload))
        return rows

    async def _load(self, project_ids: Sequence[int]) -> list[ProjectData]:
        if not project_ids:
            return []
        with _translated("loading projects"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for pid in project_ids:
                    meta, _, flags, cohorts, static = self.project_keys(pid)
                    pipe.hgetall(meta)
                    pipe.hgetall(flags)
                    pipe.hgetall(cohorts)
                    pipe.hgetall(static)
                replies = await pipe.execute()
        loaded = []
        for n, pid in enumerate(project_ids):
            meta, flags, cohorts, static = replies[4 * n : 4 * n + 4]
            if b"api_token" not in meta:
                continue  # changes seen before the project itself: not servable yet
            live_flags = [f for f in _decode_all(flags.values()) if not f.get("deleted")]
            live_cohorts = [c for c in _decode_all(cohorts.values()) if not c.get("deleted")]
            live_ids = {str(c["id"]) for c in live_cohorts}
            members = {_text(k): _decode(v) for k, v in static.items() if _text(k) in live_ids}
            loaded.append(
                ProjectData(
                    project_id=pid,
                    api_token=_text(meta[b"api_token"]),
                    secret_token_hash=_text(meta.get(b"secret_token_hash", b"")),
                    group_type_mapping=_decode(meta.get(b"group_type_mapping", b"{}")),
                    property_matching_version=int(meta.get(b"property_matching_version", b"1")),
                    version=int(meta.get(b"seq", b"0")),
                    flags=sorted(live_flags, key=lambda f: int(f["id"])),
                    cohorts=sorted(live_cohorts, key=lambda c: int(c["id"])),
                    static_members=members,
                )
            )
        return loaded


def _row(project_id: int, kind: str, entity_id: int, seq: int, payload: dict[str, Any]) -> ChangeRow:
    gone = not payload or bool(payload.get("deleted"))
    return ChangeRow(
        seq=seq,
        project_id=project_id,
        entity_type=kind,  # type: ignore[arg-type]
        entity_id=entity_id,
        entity_version=int(payload.get("version") or 0),
        op="delete" if gone else "upsert",
        payload=payload,
    )


def _decode_all(values: Iterable[bytes]) -> list[dict[str, Any]]:
    """Decode many JSON objects in one call (one parser pass instead of one per object)."""
    return _decode_dicts(b"[" + b",".join(values) + b"]")


def _feed_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> FeedEntry:
    op: FeedOp = _text(fields[b"op"])  # type: ignore[assignment]
    return FeedEntry(
        id=_text(entry_id),
        prev=_text(fields[b"prev"]),
        seq=int(fields[b"seq"]),
        project_id=int(fields[b"project"]),
        op=op,
        entity_type=_text(fields[b"type"]),
        entity_id=int(fields[b"id"]),
        version=int(fields[b"version"]),
        committed_at=float(fields[b"committed"]),
    )
