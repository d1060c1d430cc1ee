"""``RedisPersonStore``: persons, groups and behaviour counts in Redis, hash-tagged per person.

Key layout (``flagd`` is the configurable prefix; fields: ``store.persons.model``)::

    flagd:P{p<project>:<distinct id>}   hash   properties, count buckets, '_n' (property count), '_t' (next
                                               trim), or only '@' -> the id this one was merged into
    flagd:U{p<project>:<distinct id>}   zset   event uuids seen recently (dedupe), scored by ingest second
    flagd:G{p<project>:<len>:<type>:<key>}  hash   group properties
    flagd:S{p<project>}                 zset   distinct ids by last write (seen_persons), trimmed to the TTL
    flagd:C{p<project>}                 hash   filtered counter id -> epoch second it was first tracked

Every person's keys share one hash tag, so a person's write or read is one script on one slot. A person or
group hash expires ``FLAGD_PERSON_TTL_DAYS`` after its last write (the TTL and the ``seen`` time are refreshed
when its buckets are rolled up, at most every 10 minutes per person).

**On a Redis Cluster** (``redis+cluster://``) the tag is the project alone (``flagd:P{p<project>}:<distinct
id>``, ``flagd:U{p<project>}:<id>``, ``flagd:G{p<project>}:<len>:<type>:<key>``): a write step, a merge
(two persons and the seen set) and a coalesced read (split per project) are each one script on one slot,
so they stay atomic. The cost: one project's persons live on one shard (projects spread over shards).

**Writes**: one ``WRITE`` script call per batch step (all persons of the step: their keys are declared, so a
cluster client would split the call by slot; flagd runs it on one Redis today). A write to an id that was
merged elsewhere comes back as a redirect and is resent to the target (ids resolved once are cached).
**Reads** are coalesced: every ``read`` issued during one event-loop turn goes out in one ``READ`` script
call (measured: redis-py spends ~60 µs of client CPU per command, so one command per request would cost more
than the whole flag evaluation). That call goes through a ``store.servers.hedging.HedgedReader`` over the
primary and the read replicas (``replicas=``): to the server answering best, hedged to another one when slow,
bounded by the latest deadline of the reads it carries, skipping servers whose circuit breaker is open.

**Read-your-writes with replicas**: ``apply`` returns only after ``WAIT <replicas> <replica_wait_ms>`` on the
primary, i.e. once every replica has the write (so a /batch answered 200 is visible to the next /flags on
any node, whichever server that reads). If some replica did not acknowledge in time (down, or lagging), the
write still succeeds (it is on the primary), and this node reads only the primary for ``primary_grace``
seconds, during which its writes wait only for as many replicas as did acknowledge (a dead replica costs one
slow write per ``primary_grace``, not every write); other nodes reading the late replica may see the write
late until it catches up (the README says so).
On a Redis Cluster (``redis+cluster://``) reads go to the shard primaries and no WAIT is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from cachetools import LRUCache
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from evaluator.behaviour import BehaviourQuery
from store.errors import PersonLimitExceeded, StoreTimeout, StoreUnavailable
from store.persons import lua
from store.persons.model import Merge, PersonView, ReadRequest, Step, Writes, properties_of
from store.persons.protocol import SeenPerson, StoreSettings
from store.persons.windows import counter_token, firsts
from store.servers.connections import AnyRedis, redis_client, server_name
from store.servers.hedging import HedgedReader

__all__ = ["RedisPersonStore"]

_encode = msgspec.json.Encoder().encode
_decode_props = msgspec.json.Decoder(dict[str, Any]).decode
_MAX_HOPS = 5


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except (redis_errors.TimeoutError, TimeoutError) as exc:
        raise StoreTimeout(f"Redis timed out during {what}") from exc
    except (redis_errors.RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis failed during {what}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _plan(query: BehaviourQuery, now: int) -> tuple[str | int, ...]:
    return (counter_token(query.counter), *firsts(query, now))


class _Pending:
    __slots__ = ("deadline", "future", "hops", "now", "request", "retention", "target")

    def __init__(
        self,
        request: ReadRequest,
        future: asyncio.Future[PersonView],
        now: int,
        retention: int,
        deadline: float,
    ) -> None:
        self.request = request
        self.future = future
        self.deadline = deadline
        self.target = request.distinct_id
        self.hops = 0
        self.now = now
        self.retention = retention


class RedisPersonStore:
    """``PersonStore`` on Redis (see the module docstring)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: AnyRedis | None = None,
        replicas: Sequence[str] = (),
        settings: StoreSettings | None = None,
        prefix: str = "flagd",
        alias_cache_size: int = 100_000,
        reader: HedgedReader | None = None,
        read_timeout: float = 1.0,
        replica_wait_ms: int = 20,
        primary_grace: float = 1.0,
    ) -> None:
        if client is None:
            assert url is not None
            client = redis_client(url, timeout=5.0)
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        # Reads: the primary first, then the replicas, on clients without retries of their own (the reader
        # decides). A cluster keeps its client's retries: they follow MOVED and failovers to the new primary.
        fail_fast = url is not None and not self._cluster
        self._read_clients: list[AnyRedis] = [
            redis_client(url, timeout=5.0, fail_fast=True) if fail_fast and url is not None else client,
            *(redis_client(r, timeout=5.0, fail_fast=True) for r in replicas),
        ]
        names = [server_name(url) if url is not None else "redis", *(server_name(r) for r in replicas)]
        self.reader = reader or HedgedReader(names)
        if len(self.reader.names) != len(names):
            raise ValueError("the HedgedReader must be built over the primary and the replicas, in order")
        self._replicas = len(replicas)
        self._read_timeout = read_timeout
        self._replica_wait_ms = replica_wait_ms
        self._primary_grace = primary_grace
        self._primary_only_until = 0.0
        self._acknowledging = len(replicas)  # replicas that acknowledged the last short WAIT
        self._settings = settings or StoreSettings()
        self._prefix = prefix
        self._write = client.register_script(lua.WRITE)
        self._merge = client.register_script(lua.MERGE)
        self._read = client.register_script(lua.READ)
        self._track = client.register_script(lua.TRACK)
        # (project, id) -> the id it was merged into; stale entries are safe (the target redirects further).
        self._aliases: LRUCache[tuple[int, str], str] = LRUCache(alias_cache_size)
        self._pending: list[_Pending] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0  # read script calls made (tests and bench see the coalescing)
        self.replica_shortfalls = 0  # writes some replica did not acknowledge within replica_wait_ms

    async def warm(self) -> None:
        """Connect to every read server and load the read script there, so the first flag checks after a
        start do not spend their deadline on a connect and a ``NOSCRIPT`` round trip. A server that is down
        is skipped (its breaker will deal with it)."""
        for client in self._read_clients:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await client.script_load(lua.READ)

    # -- keys --------------------------------------------------------------------------------------------
    def person_key(self, project_id: int, distinct_id: str) -> str:
        if self._cluster:
            return f"{self._prefix}:P{{p{project_id}}}:{distinct_id}"
        return f"{self._prefix}:P{{p{project_id}:{distinct_id}}}"

    def dedupe_key(self, project_id: int, distinct_id: str) -> str:
        if self._cluster:
            return f"{self._prefix}:U{{p{project_id}}}:{distinct_id}"
        return f"{self._prefix}:U{{p{project_id}:{distinct_id}}}"

    def group_key(self, project_id: int, group_type: str, key: str) -> str:
        if self._cluster:
            return f"{self._prefix}:G{{p{project_id}}}:{len(group_type)}:{group_type}:{key}"
        return f"{self._prefix}:G{{p{project_id}:{len(group_type)}:{group_type}:{key}}}"

    def counters_key(self, project_id: int) -> str:
        return f"{self._prefix}:C{{p{project_id}}}"

    def seen_key(self, project_id: int) -> str:
        return f"{self._prefix}:S{{p{project_id}}}"

    def _resolve(self, project_id: int, distinct_id: str) -> str:
        aliases = self._aliases
        for _ in range(_MAX_HOPS):
            target = aliases.get((project_id, distinct_id))
            if target is None:
                return distinct_id
            distinct_id = target
        return distinct_id

    # -- writes ------------------------------------------------------------------------------------------
    async def apply(self, project_id: int, steps: Sequence[Step], *, now: int, retention: int) -> None:
        for step in steps:
            if isinstance(step, Merge):
                await self._apply_merge(project_id, step, now)
            else:
                await self._apply_writes(project_id, step, now, retention)
        if self._replicas and steps:
            await self._wait_for_replicas()

    async def _wait_for_replicas(self) -> None:
        now = asyncio.get_running_loop().time()
        # After a shortfall, wait only for as many replicas as acknowledged then (a dead replica must not
        # add replica_wait_ms to every write), and for all of them again once primary_grace has passed.
        expected = self._replicas if now >= self._primary_only_until else self._acknowledging
        if expected == 0:
            return
        with _translated("waiting for replicas"):
            acknowledged = int(await self._client.wait(expected, self._replica_wait_ms))
        if acknowledged < expected:
            self.replica_shortfalls += 1
            self._acknowledging = acknowledged
            self._primary_only_until = asyncio.get_running_loop().time() + self._primary_grace

    async def _apply_writes(self, project_id: int, writes: Writes, now: int, retention: int) -> None:
        s = self._settings
        persons = {self._resolve(project_id, did): events for did, events in writes.persons.items()}
        # Two ids resolving to one person within a step: concatenate (order kept per id).
        if len(persons) != len(writes.persons):
            persons = {}
            for did, events in writes.persons.items():
                persons.setdefault(self._resolve(project_id, did), []).extend(events)
        groups = writes.groups
        for _ in range(_MAX_HOPS):
            keys: list[str] = [self.seen_key(project_id)]
            entries: list[Any] = []
            owners: list[str | None] = []
            for did, events in persons.items():
                keys.append(self.person_key(project_id, did))
                keys.append(self.dedupe_key(project_id, did))
                entries.append([len(keys) - 1, len(keys), did, events])
                owners.append(did)
            for (group_type, key), events in groups.items():
                keys.append(self.group_key(project_id, group_type, key))
                entries.append([len(keys), 0, "", events])
                owners.append(None)
            arg = _encode(
                [now, s.person_ttl_seconds, s.dedupe_seconds, retention, s.max_person_properties, entries]
            )
            with _translated("person write"):
                result = await self._write(keys=keys, args=[arg])
            if _text(result[0]) == "limit":
                owner = owners[int(result[1]) - 1]
                raise PersonLimitExceeded(owner or "group", s.max_person_properties)
            redirected: dict[str, list[Any]] = {}
            for owner, outcome in zip(owners, result[1], strict=True):
                if isinstance(outcome, bytes) and owner is not None:
                    target = outcome.decode()
                    self._aliases[(project_id, owner)] = target
                    redirected.setdefault(self._resolve(project_id, target), []).extend(persons[owner])
            if not redirected:
                return
            persons, groups = redirected, {}
        raise StoreUnavailable("person write: too many merged-id redirects")

    async def _apply_merge(self, project_id: int, merge: Merge, now: int) -> None:
        s = self._settings
        source = self._resolve(project_id, merge.source)
        target = self._resolve(project_id, merge.target)
        for _ in range(_MAX_HOPS):
            if source == target:
                return
            keys = [
                self.person_key(project_id, source),
                self.dedupe_key(project_id, source),
                self.person_key(project_id, target),
                self.dedupe_key(project_id, target),
                self.seen_key(project_id),
            ]
            args: list[str | int] = [
                *(target, now, s.person_ttl_seconds, s.dedupe_seconds, source, s.max_person_properties),
                int(merge.identify),
            ]
            with _translated("person merge"):
                result = await self._merge(keys=keys, args=args)
            status = _text(result[0])
            if status == "ok":
                self._aliases[(project_id, source)] = target
                return
            if status == "kept":  # $identify of an already identified person: two persons stay
                return
            moved = _text(result[1])
            if status == "a":
                self._aliases[(project_id, source)] = moved
                source = self._resolve(project_id, moved)
            else:
                self._aliases[(project_id, target)] = moved
                target = self._resolve(project_id, moved)
        raise StoreUnavailable("person merge: too many merged-id redirects")

    # -- reads -------------------------------------------------------------------------------------------
    async def read(
        self, request: ReadRequest, *, now: int, retention: int, deadline: float | None = None
    ) -> PersonView:
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self._read_timeout
        pending = _Pending(request, loop.create_future(), now, retention, deadline)
        pending.target = self._resolve(request.project_id, request.distinct_id)
        self._enqueue(pending, loop)
        return await pending.future

    def _enqueue(self, pending: _Pending, loop: asyncio.AbstractEventLoop) -> None:
        self._pending.append(pending)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        batches = [batch]
        if self._cluster:  # one script call per slot: per project (see the module docstring)
            by_project: dict[int, list[_Pending]] = {}
            for item in batch:
                by_project.setdefault(item.request.project_id, []).append(item)
            batches = list(by_project.values())
        loop = asyncio.get_running_loop()
        for one in batches:
            task = loop.create_task(self._flush(one))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[_Pending]) -> None:
        keys: list[str] = []
        # Distinct (query, now) plans, sent once: concurrent checks of one project ask the same queries.
        plans: list[tuple[str | int, ...]] = []
        index_of: dict[tuple[str, int], int] = {}
        wanted: list[list[int]] = []
        for item in batch:
            request = item.request
            keys.append(self.person_key(request.project_id, item.target))
            indexes = []
            for q in request.queries:
                at = index_of.get((q.key, item.now))
                if at is None:
                    at = index_of[(q.key, item.now)] = len(plans)
                    plans.append(_plan(q, item.now))
                indexes.append(at)
            wanted.append(indexes)
        group_slots: list[list[tuple[str, int]]] = []
        for item in batch:
            slots = []
            for group_type, key in item.request.groups:
                keys.append(self.group_key(item.request.project_id, group_type, key))
                slots.append((group_type, len(keys) - 1))
            group_slots.append(slots)
        self.flushes += 1
        args: list[bytes | int] = [_encode(plans), len(batch)]
        clients = self._read_clients
        script = self._read

        async def read_on(server: int) -> Any:
            with _translated("person read"):
                return await script(keys=keys, args=args, client=clients[server])

        loop = asyncio.get_running_loop()
        only = (0,) if self._primary_only_until > loop.time() else None
        try:
            result = await self.reader(read_on, max(item.deadline for item in batch), only=only)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for index, item in enumerate(batch):
            if item.future.done():
                continue
            answer = result[index]
            redirect = _text(answer[0])
            if redirect:
                request = item.request
                self._aliases[(request.project_id, item.target)] = redirect
                item.hops += 1
                if item.hops >= _MAX_HOPS:
                    item.future.set_exception(StoreUnavailable("person read: too many merged-id redirects"))
                else:
                    item.target = self._resolve(request.project_id, redirect)
                    self._enqueue(item, loop)
                continue
            groups = {gtype: _decode_props(result[slot]) for gtype, slot in group_slots[index]}
            totals = answer[2]
            queries = item.request.queries
            counts = {q.key: int(totals[at]) for q, at in zip(queries, wanted[index], strict=True)}
            item.future.set_result(PersonView(_decode_props(answer[1]), groups, counts))

    # -- population --------------------------------------------------------------------------------------
    async def seen_persons(self, project_id: int, since_seconds: int, limit: int) -> list[SeenPerson]:
        import time

        now = int(time.time())
        with _translated("seen persons"):
            rows: list[tuple[bytes, float]] = await self._client.zrevrangebyscore(  # type: ignore[assignment]
                self.seen_key(project_id), "+inf", now - since_seconds, start=0, num=limit, withscores=True
            )
            async with self._client.pipeline(transaction=False) as pipe:
                for member, _ in rows:
                    pipe.hgetall(self.person_key(project_id, _text(member)))
                hashes = await pipe.execute()
        seen: list[SeenPerson] = []
        for (member, score), fields in zip(rows, hashes, strict=True):
            props = {_text(f)[1:]: _text(v) for f, v in fields.items() if _text(f).startswith("p")}
            seen.append(SeenPerson(_text(member), int(score), properties_of(props)))
        return seen

    async def track(self, project_id: int, counters: Sequence[str], now: int) -> dict[str, int]:
        if not counters:
            return {}
        with _translated("counter tracking"):
            since = await self._track(keys=[self.counters_key(project_id)], args=[now, *counters])
        return {c: int(s) for c, s in zip(counters, since, strict=True)}

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._client.aclose()
        for client in self._read_clients:
            if client is not self._client:
                await client.aclose()
