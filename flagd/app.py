"""Composition: the ASGI app flagd serves, and the backend its lifespan opens.

``create_app(settings)`` returns ``SdkApp`` (raw ASGI, the SDK hot path) with the Starlette admin API as its
fallback; nothing wraps ``SdkApp``. The admin app's lifespan (the ASGI lifespan scope falls through to it)
opens the backend — embedded (SQLite, one process) or distributed (PostgreSQL + Redis: a ``NodeFollower``
filling the catalog from the change feed and, unless ``FLAGD_SYNCER=0``, a ``Syncer`` contender) — runs
bootstrap when asked, stores ``AdminServices`` in the admin app's state, runs the MCP server's session
manager (``/mcp``, ``flagd.mcp.http``) and closes everything on shutdown.

``app_factory()`` is Granian's factory target (``flagd.app:app_factory``, RSGI interface): it reads
``Settings`` once, configures logging once and wraps the app in ``RsgiApp`` (SDK paths served natively over
RSGI, the admin API and its lifespan through a bridge); the CLI has already bootstrapped, so workers do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import structlog
from starlette.applications import Starlette

import evaluator
from flagd.admin import AdminServices, create_admin_app
from flagd.auth import Authenticator
from flagd.bootstrap import bootstrap
from flagd.logging import configure_logging
from flagd.mcp.http import mcp_route
from flagd.metrics import Metrics
from flagd.sdk import SdkApp
from flagd.sdk.persons import Persons
from flagd.sdk.rsgi import RsgiApp
from flagd.settings import Settings, make_limits, make_shedder
from flagd.store_metrics import StoreMetrics
from store.catalog import Catalog
from store.persons import PersonStore, StoreSettings
from store.records import ApiKey
from store.sql.repository import AdminRepository
from store.stream.embedded import EmbeddedBackend

if TYPE_CHECKING:
    from store.redis.flag_store import RedisFlagStore
    from store.sql.postgres import PostgresRepository
    from store.stream.node import NodeFollower
    from store.stream.syncer import Syncer

_log = structlog.get_logger("flagd.app")


class Backend(Protocol):
    """What the app needs from a storage mode."""

    @property
    def repository(self) -> AdminRepository: ...

    def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class EmbeddedMode:
    """One process on a SQLite file: writes install into the catalog as they commit."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self._backend = backend

    @property
    def repository(self) -> AdminRepository:
        return self._backend.repository

    def health(self) -> dict[str, Any]:
        """The same fields as the distributed node status (``store.stream.node.NodeStatus``), plus
        ready/mode."""
        catalog = self._backend.catalog
        return {
            "ready": catalog.loaded,
            "mode": "embedded",
            "loaded": catalog.loaded,
            "version": catalog.version,
            "source": "sqlite",
            "stale": self._backend.last_error is not None,
            "lag_seconds": 0.0,
            "last_error": self._backend.last_error,
            "projects": sum(1 for _ in catalog.projects()),
        }

    async def close(self) -> None:
        await self._backend.close()


class DistributedMode:
    """PostgreSQL (admin writes) + Redis (flag store and change feed) + a node follower (+ a syncer)."""

    def __init__(
        self,
        repository: PostgresRepository,
        store: RedisFlagStore,
        follower: NodeFollower,
        syncer: Syncer | None,
    ) -> None:
        self._repository = repository
        self._store = store
        self._follower = follower
        self._syncer = syncer
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def repository(self) -> AdminRepository:
        return self._repository

    async def start(self) -> None:
        """Start the syncer contender (if any), load the catalog, then follow the change feed."""
        if self._syncer is not None:
            self._tasks.append(asyncio.create_task(self._syncer.run(), name="flagd-syncer"))
        await self._follower.start()
        self._tasks.append(asyncio.create_task(self._follower.run(), name="flagd-node-follower"))

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = msgspec.structs.asdict(self._follower.status)
        health["ready"] = bool(health["loaded"])
        health["mode"] = "distributed"
        if self._syncer is not None:
            health["syncer"] = self._syncer.status
        return health

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._store.close()
        finally:
            await self._repository.close()


async def open_backend(settings: Settings, catalog: Catalog) -> Backend:
    """Open the storage mode ``settings`` select and fill ``catalog`` (``StoreError`` if unreachable)."""
    if not settings.distributed:
        from store.sql.sqlite import SqliteRepository

        backend = EmbeddedBackend(
            await SqliteRepository.open(settings.data_path),
            catalog,
            poll_interval=settings.embedded_poll_seconds,
        )
        try:
            await backend.start()
        except BaseException:
            await backend.close()
            raise
        return EmbeddedMode(backend)
    from store.redis.flag_store import RedisFlagStore
    from store.sql.postgres import PostgresRepository
    from store.stream.node import NodeFollower
    from store.stream.syncer import Syncer

    assert settings.database_url is not None
    assert settings.redis_url is not None
    repository = await PostgresRepository.connect(settings.database_url)
    store = RedisFlagStore(settings.redis_url)
    syncer = (
        Syncer(settings.database_url, store, repository, reconcile_seconds=settings.reconcile_seconds)
        if settings.run_syncer
        else None
    )
    follower = NodeFollower(store, catalog, fallback=repository)
    mode = DistributedMode(repository, store, follower, syncer)
    try:
        await mode.start()
    except BaseException:
        await mode.close()
        raise
    return mode


async def open_person_store(settings: Settings, metrics: Metrics | None = None) -> PersonStore:
    """The person store of the mode ``settings`` select: Redis (distributed: the primary or cluster, plus
    read replicas, reads hedged per ``FLAGD_STORE_*``) or a SQLite file (embedded)."""
    store_settings = StoreSettings(
        person_ttl_seconds=settings.person_ttl_days * 86400,
        max_person_properties=make_limits(settings).max_person_properties,
    )
    if settings.distributed:
        from store.persons.redis import RedisPersonStore
        from store.servers.connections import server_name
        from store.servers.hedging import HedgedReader

        assert settings.redis_url is not None
        urls = [settings.redis_url, *settings.redis_replica_urls]
        reader = HedgedReader(
            [server_name(url) for url in urls],
            hedging=settings.store_hedging,
            floor=settings.store_hedge_floor_ms / 1000,
            cap=max(settings.store_deadline_ms / 2000, settings.store_hedge_floor_ms / 1000),
            ratio=settings.store_hedge_budget,
            observer=StoreMetrics(metrics) if metrics is not None else None,
        )
        store = RedisPersonStore(
            settings.redis_url,
            replicas=settings.redis_replica_urls,
            settings=store_settings,
            reader=reader,
            replica_wait_ms=settings.redis_replica_wait_ms,
        )
        await store.warm()
        return store
    from store.persons.sqlite import SqlitePersonStore, persons_path

    return await SqlitePersonStore.open(persons_path(settings.data_path), store_settings)


def group_type_registrar(repository: AdminRepository) -> Callable[[int, list[str]], Awaitable[None]]:
    """Registers group types seen in events in the project's mapping (next free index, at most 5) through
    the admin write path, so the new mapping propagates to every node like any admin change."""

    async def register(project_id: int, group_types: list[str]) -> None:
        project = await repository.get_project(project_id)
        mapping = dict(project.group_type_mapping)
        free = [str(i) for i in range(5) if str(i) not in mapping]
        added = False
        for group_type in group_types:
            if group_type in mapping.values() or not free:
                continue
            mapping[free.pop(0)] = group_type
            added = True
        if added:
            await repository.update_project(project_id, actor="flagd:events", group_type_mapping=mapping)

    return register


class _Runtime:
    """The per-app holder the lifespan fills; the SDK app's callbacks read through it."""

    __slots__ = ("backend", "catalog", "persons", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog()
        self.backend: Backend | None = None
        limits = make_limits(settings)
        self.persons = Persons(
            history_seconds=settings.event_history_days * 86400,
            max_distinct_id_chars=limits.max_distinct_id_chars,
            max_value_chars=limits.max_property_value_chars,
            max_person_properties=limits.max_person_properties,
            deadline_seconds=settings.store_deadline_ms / 1000,
        )

    async def authenticate(self, raw_key: str) -> ApiKey | None:
        if self.backend is None:
            return None
        return await self.backend.repository.authenticate(raw_key)

    def health(self) -> dict[str, Any]:
        if self.backend is None:
            return {
                "ready": False,
                "mode": "distributed" if self.settings.distributed else "embedded",
                "status": "starting",
            }
        return self.backend.health()


def create_app(settings: Settings, *, run_bootstrap: bool = True, metrics: Metrics | None = None) -> SdkApp:
    """The flagd ASGI app; ``run_bootstrap`` creates the default project and admin key on an empty store."""
    runtime = _Runtime(settings)
    metrics = metrics or Metrics(
        multiprocess_dir=str(settings.metrics_dir) if settings.metrics_dir is not None else None
    )
    mcp, mcp_server = mcp_route()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend = await open_backend(settings, runtime.catalog)
        persons: PersonStore | None = None
        try:
            if settings.person_store:
                persons = await open_person_store(settings, metrics)
                runtime.persons.store = persons
            runtime.persons.register_group_types = group_type_registrar(backend.repository)
            if run_bootstrap:
                await bootstrap(backend.repository, settings, demo=settings.demo)
            app.state.services = AdminServices(
                repository=backend.repository,
                catalog=runtime.catalog,
                # No cache on the admin path: it reads the database anyway, and a key revoked on any
                # worker or node is refused by every other one from the moment the DELETE answers.
                authenticator=Authenticator(backend.repository.authenticate, ttl=0),
                max_body_bytes=settings.admin_max_body_bytes,
                persons=persons,
                enricher=runtime.persons if persons is not None else None,
                max_behavioural_conditions=settings.max_behavioural_conditions,
            )
            runtime.backend = backend
            ticker = asyncio.create_task(sdk.status.run(), name="flagd-status-ticker")
            # Move everything loaded so far (modules, the first catalog) out of the collector's reach:
            # full collections triggered by recompiles then scan only new objects. Measured in
            # bench/RESULTS.md (change stream): propagation p99 ~53 ms without, ~18 ms with.
            gc.collect()
            gc.freeze()
            _log.info(
                "flagd.started",
                **{k: v for k, v in backend.health().items() if k in ("mode", "version")},
                evaluator_compiled=evaluator.COMPILED,
                evaluator_pure_reason=evaluator.PURE_REASON,
            )
            try:
                async with mcp_server.session_manager.run():
                    yield
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        finally:
            runtime.backend = None
            runtime.persons.store = None
            try:
                if persons is not None:
                    await persons.close()
            finally:
                await backend.close()
            _log.info("flagd.stopped")

    admin = create_admin_app(lifespan, [mcp])
    sdk = SdkApp(
        catalog=runtime.catalog,
        fallback=admin,
        authenticate=runtime.authenticate,
        health=runtime.health,
        limits=make_limits(settings),
        shedder=make_shedder(settings),
        persons=runtime.persons if settings.person_store else None,
        metrics=metrics,
    )
    return sdk


def app_factory() -> RsgiApp:
    """Granian's (RSGI) factory target: settings from the environment, logging configured, no bootstrap."""
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return RsgiApp(create_app(settings, run_bootstrap=False))
