"""``RedisPersonStore``: persons, groups and behaviour counts in Redis, hash-tagged per person.

Key layout (``flagd`` is the configurable prefix; fields: ``store.persons.model``), the same on a single Redis
and on a Redis Cluster (``redis+cluster://``)::

    flagd:P{p<project>:<distinct id>}   hash   properties, count buckets, '_n' (property count), '_t' (next
                                               trim), or only '@' -> the id this one was merged into (and
                                               '~' -> merge id while a Cluster merge is unfinished)
    flagd:U{p<project>:<distinct id>}   zset   event uuids seen recently (dedupe), scored by ingest second
    flagd:M{p<project>:<distinct id>}   hash   } a merged person's data on its way to the target (Cluster
    flagd:N{p<project>:<distinct id>}   zset   } merges only, ``store.persons.handover``), for one step
    flagd:G{p<project>:<len>:<type>:<key>}  hash   group properties
    flagd:S{p<project>}                 zset   distinct ids by last write (seen_persons), trimmed to the TTL
    flagd:C{p<project>}                 hash   filtered counter id -> epoch second it was first tracked

Every person's keys share one hash tag, so a person's write or read is one script on one slot, and on a
Cluster one project's persons spread over every shard (slots by person). A person or group hash expires
``FLAGD_PERSON_TTL_DAYS`` after its last write (the TTL and the ``seen`` time are refreshed when its buckets
are rolled up, at most every 10 minutes per person).

**Writes**: one ``WRITE`` script call per batch step on a single Redis (all persons and groups of the step,
and the seen set: atomic). On a Cluster the step is split into one ``WRITE`` per slot, sent in one pipeline
(a round trip per shard); each is atomic on its slot. So that a step over the property limit still writes
nothing, a step spanning several slots with property operations first sends the same calls check-only (one
more round trip); a concurrent write pushing a person over the limit between the two can still leave the
other slots written. The seen set (its own slot) is updated after the persons, by a separate ``SEEN`` call
with the ids whose roll-up came due: if that call fails, the batch fails and those ids join the seen set at
their next roll-up (at most 10 minutes of writes later); the seen set only samples the population
(``seen_persons``, which skips merged ids), so lagging a write is harmless.
A write to an id that was merged elsewhere comes back as a redirect and is resent to the target (ids
resolved once are cached; an id whose Cluster merge is unfinished is not, and that merge is finished first).
**Merges** (``$identify``, ``$create_alias``): one ``MERGE`` script on a single Redis (both persons and the
seen set). On a Cluster the two persons are on different slots: three steps, each atomic on its slot,
convergent under retries (``store.persons.handover`` has the sequence and its failure cases).
**Reads** are coalesced: every ``read`` issued during one event-loop turn goes out together (measured:
redis-py spends ~60 µs of client CPU per command, so one command per request would cost more than the whole
flag evaluation): one ``READ`` script call on a single Redis; on a Cluster one ``READ`` per slot (a person's
hash in its slot's call, each group hash in its own), in one pipeline. That call (or pipeline) goes through a
``store.servers.hedging.HedgedReader`` over the primary and the read replicas (``replicas=``): to the server
answering best, hedged to another one when slow, bounded by the latest deadline of the reads it carries,
skipping servers whose circuit breaker is open. On a Cluster a slot that failed fails only the reads that
needed it.

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
from collections.abc import Sequence
from typing import Any

import msgspec
from cachetools import LRUCache
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from store.errors import PersonLimitExceeded, StoreUnavailable
from store.persons import lua
from store.persons.handover import Handover
from store.persons.model import Merge, PersonView, ReadRequest, Step, Writes, properties_of
from store.persons.protocol import SeenPerson, StoreSettings
from store.persons.slots import ReadCall, WriteCall, failure, per_slot, text, translated
from store.servers.connections import AnyRedis, redis_client, server_name
from store.servers.hedging import HedgedReader

__all__ = ["RedisPersonStore"]

_encode = msgspec.json.Encoder().encode
_decode_props = msgspec.json.Decoder(dict[str, Any]).decode
_MAX_HOPS = 5


class _Pending:
    __slots__ = ("at", "deadline", "future", "groups", "hops", "now", "request", "retention", "target")

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
        self.at: tuple[ReadCall, int]  # set per flush: the call reading the person, and its index there
        self.groups: list[tuple[str, ReadCall, int]] = []  # (group type, call, index among its groups)


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
        self._seen = client.register_script(lua.SEEN)
        self._handover = Handover(client, self._settings, self.keyed, self.seen_key)
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
    def keyed(self, kind: str, project_id: int, distinct_id: str) -> str:
        """A person's key of ``kind`` (P, U; M, N: the stash of a Cluster merge), tagged by the person."""
        return f"{self._prefix}:{kind}{{p{project_id}:{distinct_id}}}"

    def person_key(self, project_id: int, distinct_id: str) -> str:
        return self.keyed("P", project_id, distinct_id)

    def dedupe_key(self, project_id: int, distinct_id: str) -> str:
        return self.keyed("U", project_id, distinct_id)

    def group_key(self, project_id: int, group_type: str, key: str) -> str:
        return f"{self._prefix}:G{{p{project_id}:{len(group_type)}:{group_type}:{key}}}"

    def _slot(self, key: str) -> int:
        """The key's Cluster slot (0 on a single Redis: everything goes in one call there)."""
        return key_slot(key.encode()) if self._cluster else 0

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
        with translated("waiting for replicas"):
            acknowledged = int(await self._client.wait(expected, self._replica_wait_ms))
        if acknowledged < expected:
            self.replica_shortfalls += 1
            self._acknowledging = acknowledged
            self._primary_only_until = asyncio.get_running_loop().time() + self._primary_grace

    async def _apply_writes(self, project_id: int, writes: Writes, now: int, retention: int) -> None:
        persons = {self._resolve(project_id, did): events for did, events in writes.persons.items()}
        # Two ids resolving to one person within a step: concatenate (order kept per id).
        if len(persons) != len(writes.persons):
            persons = {}
            for did, events in writes.persons.items():
                persons.setdefault(self._resolve(project_id, did), []).extend(events)
        groups = writes.groups
        for _ in range(_MAX_HOPS):
            calls = self._write_calls(project_id, persons, groups)
            # Split over slots, a step is atomic per slot only: check the property limit on every slot
            # before writing any, so a step over it writes nothing (unless a concurrent write races it).
            if len(calls) > 1 and any(
                e.ops for events in (*persons.values(), *groups.values()) for e in events
            ):
                await self._run_writes(calls, now, retention, check=True)
            redirected: dict[str, list[Any]] = {}
            seen: list[str] = []
            for call, result in zip(calls, await self._run_writes(calls, now, retention), strict=True):
                for owner, outcome in zip(call.owners, result[1], strict=True):
                    if isinstance(outcome, int) or owner is None:
                        continue
                    if isinstance(outcome, list):
                        # That merge is unfinished: finish it before writing to its target, or a retried
                        # event the source counted would count again there (store.persons.handover).
                        target = text(outcome[0])
                        with translated("person merge"):
                            await self._handover.merge(project_id, owner, target, identify=False, now=now)
                    else:
                        target = text(outcome)
                        self._aliases[(project_id, owner)] = target
                    redirected.setdefault(self._resolve(project_id, target), []).extend(persons[owner])
                seen.extend(text(member) for member in result[2])
            if seen:  # on a Cluster: the seen set is on its own slot (module docstring)
                with translated("seen set update"):
                    await self._seen(
                        keys=[self.seen_key(project_id)],
                        args=[now, self._settings.person_ttl_seconds, "", *seen],
                    )
            if not redirected:
                return
            persons, groups = redirected, {}
        raise StoreUnavailable("person write: too many merged-id redirects")

    def _write_calls(
        self, project_id: int, persons: dict[str, list[Any]], groups: dict[tuple[str, str], list[Any]]
    ) -> list[WriteCall]:
        """One ``WRITE`` call per slot (one in all on a single Redis, with the seen set as its first key)."""
        calls: dict[int, WriteCall] = {}

        def call_for(key: str) -> WriteCall:
            slot = self._slot(key)
            call = calls.get(slot)
            if call is None:
                call = calls[slot] = WriteCall([] if self._cluster else [self.seen_key(project_id)])
            return call

        for did, events in persons.items():
            key = self.person_key(project_id, did)
            call = call_for(key)
            call.keys += (key, self.dedupe_key(project_id, did))
            call.entries.append([len(call.keys) - 1, len(call.keys), did, events])
            call.owners.append(did)
        for (group_type, group), events in groups.items():
            key = self.group_key(project_id, group_type, group)
            call = call_for(key)
            call.keys.append(key)
            call.entries.append([len(call.keys), 0, "", events])
            call.owners.append(None)
        return list(calls.values())

    async def _run_writes(
        self, calls: list[WriteCall], now: int, retention: int, *, check: bool = False
    ) -> list[Any]:
        """The calls (pipelined on a Cluster); raises ``PersonLimitExceeded`` if one answers the limit."""
        s = self._settings
        head = [now, s.person_ttl_seconds, s.dedupe_seconds, retention, s.max_person_properties]
        tail = [0 if self._cluster else 1, int(check)]
        with translated("person write"):
            results = await per_slot(
                self._client, self._write, [(c.keys, [_encode([*head, c.entries, *tail])]) for c in calls]
            )
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, Exception):
                raise failure("person write", result)
            if text(result[0]) == "limit":
                owner = call.owners[int(result[1]) - 1]
                raise PersonLimitExceeded(owner or "group", s.max_person_properties)
        return results

    async def _apply_merge(self, project_id: int, merge: Merge, now: int) -> None:
        source = self._resolve(project_id, merge.source)
        target = self._resolve(project_id, merge.target)
        # On a Cluster the two persons are on different slots: the multi-step merge of store.persons.handover.
        attempt = self._handover.merge if self._cluster else self._merge_in_one_script
        for _ in range(_MAX_HOPS):
            if source == target:
                return
            with translated("person merge"):
                status, moved = await attempt(project_id, source, target, identify=merge.identify, now=now)
            if status == "ok":
                self._aliases[(project_id, source)] = target
                return
            if status == "kept":  # $identify of an already identified person: two persons stay
                return
            if status == "a":
                self._aliases[(project_id, source)] = moved
                source = self._resolve(project_id, moved)
            else:
                self._aliases[(project_id, target)] = moved
                target = self._resolve(project_id, moved)
        raise StoreUnavailable("person merge: too many merged-id redirects")

    async def _merge_in_one_script(
        self, project_id: int, source: str, target: str, *, identify: bool, now: int
    ) -> tuple[str, str]:
        s = self._settings
        keys = [
            self.person_key(project_id, source),
            self.dedupe_key(project_id, source),
            self.person_key(project_id, target),
            self.dedupe_key(project_id, target),
            self.seen_key(project_id),
        ]
        args: list[str | int] = [
            *(target, now, s.person_ttl_seconds, s.dedupe_seconds, source, s.max_person_properties),
            int(identify),
        ]
        result = await self._merge(keys=keys, args=args)
        return text(result[0]), text(result[1]) if len(result) > 1 else ""

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
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _read_calls(self, batch: list[_Pending]) -> list[ReadCall]:
        """One ``READ`` call per slot (one in all on a single Redis): each item's person hash goes in its
        slot's call, each of its group hashes in theirs."""
        calls: dict[int, ReadCall] = {}

        def call_for(key: str) -> ReadCall:
            slot = self._slot(key)
            call = calls.get(slot)
            if call is None:
                call = calls[slot] = ReadCall()
            return call

        for item in batch:
            request = item.request
            key = self.person_key(request.project_id, item.target)
            call = call_for(key)
            item.at = (call, call.add_person(key, request.queries, item.now))
            item.groups = []
            for group_type, group in request.groups:
                key = self.group_key(request.project_id, group_type, group)
                call = call_for(key)
                call.groups.append(key)
                item.groups.append((group_type, call, len(call.groups) - 1))
        return list(calls.values())

    async def _flush(self, batch: list[_Pending]) -> None:
        calls = self._read_calls(batch)
        self.flushes += 1
        script_calls = [([*c.persons, *c.groups], [_encode(c.plans), len(c.persons)]) for c in calls]
        clients = self._read_clients
        script = self._read

        async def read_on(server: int) -> list[Any]:
            with translated("person read"):
                return await per_slot(clients[server], script, script_calls)

        loop = asyncio.get_running_loop()
        only = (0,) if self._primary_only_until > loop.time() else None
        try:
            answers = await self.reader(read_on, max(item.deadline for item in batch), only=only)
        except Exception as exc:
            answers = [exc] * len(calls)
        for call, answer in zip(calls, answers, strict=True):
            call.answer = failure("person read", answer) if isinstance(answer, Exception) else answer
        for item in batch:
            if not item.future.done():
                self._answer(item, loop)

    def _answer(self, item: _Pending, loop: asyncio.AbstractEventLoop) -> None:
        call, index = item.at
        if isinstance(call.answer, BaseException):
            item.future.set_exception(call.answer)
            return
        answer = call.answer[index]
        redirect = text(answer[0])
        if redirect:
            request = item.request
            if len(answer) == 1:  # not while that merge is unfinished (len 2: see store.persons.handover)
                self._aliases[(request.project_id, item.target)] = redirect
            item.hops += 1
            if item.hops >= _MAX_HOPS:
                item.future.set_exception(StoreUnavailable("person read: too many merged-id redirects"))
            else:
                item.target = self._resolve(request.project_id, redirect)
                self._enqueue(item, loop)
            return
        groups = {}
        for group_type, group_call, at in item.groups:
            if isinstance(group_call.answer, BaseException):
                item.future.set_exception(group_call.answer)
                return
            groups[group_type] = _decode_props(group_call.answer[len(group_call.persons) + at])
        totals = answer[2]
        counts = {
            q.key: int(totals[at]) for q, at in zip(item.request.queries, call.wanted[index], strict=True)
        }
        item.future.set_result(PersonView(_decode_props(answer[1]), groups, counts))

    # -- population --------------------------------------------------------------------------------------
    async def seen_persons(self, project_id: int, since_seconds: int, limit: int) -> list[SeenPerson]:
        import time

        now = int(time.time())
        with translated("seen persons"):
            rows: list[tuple[bytes, float]] = await self._client.zrevrangebyscore(  # type: ignore[assignment]
                self.seen_key(project_id), "+inf", now - since_seconds, start=0, num=limit, withscores=True
            )
            async with self._client.pipeline(transaction=False) as pipe:
                for member, _ in rows:
                    pipe.hgetall(self.person_key(project_id, text(member)))
                hashes = await pipe.execute()
        seen: list[SeenPerson] = []
        for (member, score), fields in zip(rows, hashes, strict=True):
            if b"@" in fields or "@" in fields:  # merged (on a Cluster the seen set may lag a merge)
                continue
            props = {text(f)[1:]: text(v) for f, v in fields.items() if text(f).startswith("p")}
            seen.append(SeenPerson(text(member), int(score), properties_of(props)))
        return seen

    async def track(self, project_id: int, counters: Sequence[str], now: int) -> dict[str, int]:
        if not counters:
            return {}
        with translated("counter tracking"):
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
