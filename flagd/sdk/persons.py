"""``Persons``: what the SDK endpoints do with the person store.

- ``ingest``: events -> ``store.persons.ingest`` steps (counting what the project's snapshot asks for) ->
  ``PersonStore.apply`` (the first batch under a new snapshot also records when its filtered counters started
  being counted: ``store.persons.tracking``); group types seen in ``$groups`` are registered in the project's
  ``group_type_mapping`` through the admin write path (so the change propagates like any other).
- ``evaluate`` (through ``enrich``): **the one place a flag check waits on the store.** When the flags being
  evaluated need stored data (``Snapshot.store_needs``), read it once and merge stored person/group
  properties *under* the request's (the request wins key by key) and set ``Context.behaviour``. No read when
  nothing is needed. The read is bound by the request's deadline (``deadline_seconds``, from
  ``FLAGD_STORE_DEADLINE_MS``; one deadline per request, shared by every store call it makes). When the read
  fails or misses the deadline, every flag that needed stored data answers failed (``error`` and reason
  code ``store_timeout`` or ``store_unavailable``; ``failed: true`` on the wire and
  ``errorsWhileComputingFlags``), and every other flag answers normally. No read either when only person
  properties are needed and the request sends every one the flags read (``StoreNeeds.covered_by``): stored
  values could not change an answer.

Per ``ProjectState`` (i.e. per compiled snapshot) the counters by event name and the retention are derived
once and cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import msgspec
import structlog
from cachetools import TTLCache

from evaluator import Context, Decision
from evaluator.behaviour import StoreNeeds
from store.catalog import ProjectState
from store.errors import StoreError, StoreTimeout, StoreUnavailable
from store.persons.ingest import Event, counters_by_event, ingest
from store.persons.model import ReadRequest
from store.persons.protocol import PersonStore

__all__ = ["STORE_TIMEOUT", "STORE_UNAVAILABLE", "Persons", "RegisterGroupTypes", "store_needs"]

RegisterGroupTypes = Callable[[int, list[str]], Awaitable[None]]
_log = structlog.get_logger("flagd.persons")
_MAX_GROUP_TYPES = 5
STORE_TIMEOUT = "store_timeout"  # the store did not answer before the request's deadline
STORE_UNAVAILABLE = "store_unavailable"  # the store failed (or every server's breaker is open)
_DESCRIPTIONS = {
    STORE_TIMEOUT: "Stored person data was not read before the request's deadline",
    STORE_UNAVAILABLE: "Stored person data could not be read",
}


def store_needs(state: ProjectState, keys: Collection[str] | None) -> StoreNeeds:
    """What evaluating ``keys`` (all flags when None) may read from the store."""
    return state.snapshot.store_needs(keys)


class _Derived:
    __slots__ = ("counters", "failed", "filtered", "longest", "state", "tracked")

    def __init__(self, state: ProjectState) -> None:
        self.state = state
        self.failed: dict[tuple[str, str], Decision] = {}  # (flag key, code) -> its failed decision
        self.counters = counters_by_event(state.snapshot.counters)
        self.filtered = [c.id for c in state.snapshot.counters if c.filters]
        self.tracked = not self.filtered
        longest = 0
        now = int(time.time())
        for query in store_needs(state, None).queries:
            span = query.window_seconds if query.window_seconds is not None else now - (query.since or now)
            longest = max(longest, span)
        self.longest = longest


class Persons:
    """Event intake and the flag-time read over one ``PersonStore`` (see the module docstring)."""

    def __init__(
        self,
        store: PersonStore | None = None,
        *,
        history_seconds: int,
        register_group_types: RegisterGroupTypes | None = None,
        max_distinct_id_chars: int = 200,
        max_value_chars: int = 10_000,
        max_person_properties: int = 1000,
        deadline_seconds: float = 0.025,
    ) -> None:
        self.store = store  # set by the app's lifespan once the backend is open
        self._history = history_seconds
        self.register_group_types = register_group_types
        self._max_id = max_distinct_id_chars
        self._max_value = max_value_chars
        self._max_props = max_person_properties
        self._derived: dict[int, _Derived] = {}
        # Group types recently registered (or attempted): the mapping propagates back within a moment.
        self._registered: TTLCache[tuple[int, str], bool] = TTLCache(maxsize=10_000, ttl=60)
        self._failures = 0
        self._last_failure_log = 0.0
        self.deadline_seconds = deadline_seconds

    def _for(self, state: ProjectState) -> _Derived:
        derived = self._derived.get(state.project_id)
        if derived is None or derived.state is not state:
            derived = self._derived[state.project_id] = _Derived(state)
        return derived

    def retention(self, state: ProjectState) -> int:
        """How long the coarsest count buckets live: the longest window in use, at least the history."""
        return max(self._history, self._for(state).longest)

    async def ingest(self, state: ProjectState, events: Sequence[Event], paths: Sequence[str]) -> None:
        """Apply ``events`` (well-formed; ``paths`` name them in errors) to the store; returns once applied.

        Raises ``ValidationFailed`` (a malformed person field; nothing written), ``PersonLimitExceeded`` or
        ``StoreError``.
        """
        store = self.store
        if store is None:
            raise StoreUnavailable("the person store is not open yet")
        derived = self._for(state)
        now_ms = int(time.time() * 1000)
        now = now_ms // 1000
        retention = max(self._history, derived.longest)
        ingested = ingest(
            events,
            paths,
            derived.counters,
            now_ms=now_ms,
            oldest_ms=(now - retention) * 1000,
            max_distinct_id_chars=self._max_id,
            max_value_chars=self._max_value,
            max_person_properties=self._max_props,
        )
        if ingested.group_types:
            await self._register_group_types(state, ingested.group_types)
        if not derived.tracked:  # record when filtered counters start being counted (tracking_since)
            await store.track(state.project_id, derived.filtered, now)
            derived.tracked = True
        await store.apply(state.project_id, ingested.steps, now=now, retention=retention)

    async def _register_group_types(self, state: ProjectState, group_types: list[str]) -> None:
        known = set(state.group_type_mapping.values())
        project = state.project_id
        new = [t for t in group_types if t not in known and (project, t) not in self._registered]
        if not new or self.register_group_types is None or len(known) >= _MAX_GROUP_TYPES:
            return
        for group_type in new:
            self._registered[(project, group_type)] = True
        try:
            await self.register_group_types(project, new)
        except StoreError as exc:
            _log.warning(
                "group type registration failed", project_id=project, group_types=new, error=str(exc)
            )

    async def evaluate(
        self, state: ProjectState, ctx: Context, keys: Collection[str] | None, deadline: float | None = None
    ) -> dict[str, Decision]:
        """The decisions for ``keys`` (all when None), stored data merged in when needed (module docstring).

        ``deadline`` is the request's (a ``loop.time()``); None: ``deadline_seconds`` from now."""
        ctx, failure = await self._enrich(state, ctx, keys, deadline)
        decisions = state.snapshot.evaluate(ctx, keys=keys)
        if failure is not None:
            self._degrade(state, decisions, failure)
        return decisions

    async def enrich(self, state: ProjectState, ctx: Context, keys: Collection[str] | None) -> Context:
        """``ctx`` with stored data merged in when the flags in ``keys`` need any (see module docstring)."""
        ctx, _ = await self._enrich(state, ctx, keys, None)
        return ctx

    async def _enrich(
        self, state: ProjectState, ctx: Context, keys: Collection[str] | None, deadline: float | None
    ) -> tuple[Context, str | None]:
        store = self.store
        if store is None:
            return ctx, None
        needs = store_needs(state, keys)
        if not needs or needs.covered_by(ctx.person_properties):
            return ctx, None
        groups = tuple((t, ctx.groups[t]) for t in sorted(needs.group_types) if t in ctx.groups)
        request = ReadRequest(
            state.project_id, ctx.distinct_id, groups, needs.queries, needs.person_properties
        )
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        try:
            async with asyncio.timeout_at(deadline):
                view = await store.read(
                    request, now=int(time.time()), retention=self.retention(state), deadline=deadline
                )
        except (StoreTimeout, TimeoutError) as exc:
            self._note_failure(exc)
            return ctx, STORE_TIMEOUT
        except StoreError as exc:
            self._note_failure(exc)
            return ctx, STORE_UNAVAILABLE
        person = ctx.person_properties
        if view.properties:
            person = {**view.properties, **person}
        group_props: Mapping[str, Mapping[str, Any]] = ctx.group_properties
        if any(view.groups.values()):
            merged = dict(group_props)
            for group_type, stored in view.groups.items():
                if stored:
                    merged[group_type] = {**stored, **group_props.get(group_type, {})}
            group_props = merged
        return (
            msgspec.structs.replace(
                ctx, person_properties=person, group_properties=group_props, behaviour=view.behaviour
            ),
            None,
        )

    def _degrade(self, state: ProjectState, decisions: dict[str, Decision], code: str) -> None:
        """Fail, in place, every decision whose flag needed stored data (its own or a dependency's)."""
        needs = state.snapshot.store_needs
        failed = self._for(state).failed
        for key, decision in decisions.items():
            if decision.error not in (None, STORE_UNAVAILABLE) or not needs((key,)):
                continue
            replacement = failed.get((key, code))
            if replacement is None:
                replacement = failed[(key, code)] = msgspec.structs.replace(
                    decision,
                    enabled=False,
                    variant=None,
                    payload=None,
                    reason=code,
                    condition_index=None,
                    description=_DESCRIPTIONS[code],
                    error=code,
                    value=False,
                )
            decisions[key] = replacement

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= 1.0:
            _log.warning(
                "person store read failed", error=str(exc) or type(exc).__name__, failures=self._failures
            )
            self._last_failure_log = now
            self._failures = 0
