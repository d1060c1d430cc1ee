"""Server settings, read once from ``FLAGD_*`` environment variables and validated loudly.

Nothing else in flagd reads ``os.environ``: the CLI and the app factory call ``Settings.from_env()`` once and
pass the frozen result down. Every bad value is reported together, each naming its variable, e.g.
``FLAGD_PORT: expected an integer between 1 and 65535, got 'eighty'``.

Modes: ``FLAGD_DATABASE_URL`` and ``FLAGD_REDIS_URL`` together select the distributed mode (PostgreSQL is the
source of truth, Redis carries the change feed); neither selects the embedded mode (one process, a SQLite file
at ``FLAGD_DATA_PATH``). Setting only one of them is an error rather than a silent fallback. Embedded
workers (and ``flagd import`` run beside the server) see each other's writes by polling the SQLite change
log every ``FLAGD_EMBEDDED_POLL_SECONDS``; the worker that took a write serves it at once.

Person store (``store.persons``: Redis in the distributed mode, a ``<name>.persons.db`` SQLite file beside the
admin database in the embedded one): ``FLAGD_PERSON_TTL_DAYS`` (default 90) — a person or group not written
for that long expires; ``FLAGD_EVENT_HISTORY_DAYS`` (default 30) — how long plain per-event-name counts are
kept, so a new cohort on an event name sees that much history (counts live as long as the longest window in
use if that is longer). ``FLAGD_PERSON_STORE=0`` turns the store off: events are validated and dropped, flag
checks use only what the request sends (behavioural flags then fail).

Store reads on the flag path (``store.servers.hedging``): ``FLAGD_REDIS_URL`` may name a Redis Cluster
(``redis+cluster://host:port``, any node); ``FLAGD_REDIS_REPLICA_URLS`` (comma-separated ``redis://`` URLs,
not with a cluster) adds read replicas of the primary for person/behaviour reads; ``FLAGD_STORE_DEADLINE_MS``
(default 25) is each flag request's store deadline; ``FLAGD_STORE_HEDGING`` (default on),
``FLAGD_STORE_HEDGE_FLOOR_MS`` (default 2) and ``FLAGD_STORE_HEDGE_BUDGET`` (default 0.1: hedges at most
10 % of reads) tune hedging; ``FLAGD_REDIS_REPLICA_WAIT_MS`` (default 20) bounds how long a write waits for
the replicas to have it (read-your-writes).

Request limits and load-shedding knobs are passed through by name: ``FLAGD_LIMIT_<FIELD>`` sets the field
``<field>`` of ``flagd.limits.Limits`` and ``FLAGD_SHED_<ARG>`` the argument ``<arg>`` of
``flagd.shedding.LoadShedder``; unknown names and non-numeric values are rejected here, at start-up. For an
argument that may be None (e.g. ``target_delay``), 0 means None: that mechanism switched off.

``FLAGD_BACKPRESSURE`` (default 0 = Granian's own, backlog 2048 ÷ workers): Granian's per-worker cap on
what it serves at once. Measured (``bench/overload.py``): the cap holds per *connection* — a kept-alive
connection keeps its slot between requests — so connections beyond it are not served at all (they wait in
the kernel's listen queue until a served one closes) rather than queueing on the event loop. Set it above
the number of kept-alive clients a worker should serve; a small value starves the rest.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from flagd.limits import Limits
from flagd.shedding import LoadShedder

LogFormat = Literal["auto", "json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LIMIT_PREFIX = "FLAGD_LIMIT_"
SHED_PREFIX = "FLAGD_SHED_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class SettingsError(ValueError):
    """One or more ``FLAGD_*`` variables are invalid; ``problems`` lists each as ``VAR: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start. Build it with ``Settings.from_env()`` (or directly in tests)."""

    database_url: str | None = None
    redis_url: str | None = None
    data_path: Path = Path("flagd.db")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    backpressure: int = 0  # 0: Granian's default, backlog / workers
    log_format: LogFormat = "auto"
    log_level: str = "info"
    bootstrap_project_token: str | None = None
    bootstrap_project_secret: str | None = None
    bootstrap_admin_key: str | None = None
    demo: bool = False
    syncer: bool | None = None  # None: on in distributed mode
    reconcile_seconds: float = 60.0
    embedded_poll_seconds: float = 1.0
    admin_max_body_bytes: int = 1_048_576
    metrics_dir: Path | None = None
    person_store: bool = True
    person_ttl_days: int = 90
    max_behavioural_conditions: int = 200
    event_history_days: int = 30
    redis_replica_urls: tuple[str, ...] = ()
    redis_replica_wait_ms: int = 20
    store_deadline_ms: float = 25.0
    store_hedging: bool = True
    store_hedge_floor_ms: float = 2.0
    store_hedge_budget: float = 0.1
    limits: Mapping[str, int | float | None] = field(default_factory=dict)
    shedding: Mapping[str, int | float | None] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        """Whether PostgreSQL + Redis are configured (else: embedded SQLite)."""
        return self.database_url is not None

    @property
    def run_syncer(self) -> bool:
        """Whether this process should contend for the syncer lock."""
        if not self.distributed:
            return False
        return True if self.syncer is None else self.syncer

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (the CLI's ``--host/--port/...`` overrides)."""
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The variables that rebuild these settings (handed to Granian worker processes)."""
        env: dict[str, str] = {
            "FLAGD_DATA_PATH": str(self.data_path),
            "FLAGD_HOST": self.host,
            "FLAGD_PORT": str(self.port),
            "FLAGD_WORKERS": str(self.workers),
            "FLAGD_BACKPRESSURE": str(self.backpressure),
            "FLAGD_LOG_FORMAT": self.log_format,
            "FLAGD_LOG_LEVEL": self.log_level,
            "FLAGD_DEMO": "1" if self.demo else "0",
            "FLAGD_RECONCILE_SECONDS": repr(self.reconcile_seconds),
            "FLAGD_EMBEDDED_POLL_SECONDS": repr(self.embedded_poll_seconds),
            "FLAGD_ADMIN_MAX_BODY_BYTES": str(self.admin_max_body_bytes),
            "FLAGD_PERSON_STORE": "1" if self.person_store else "0",
            "FLAGD_PERSON_TTL_DAYS": str(self.person_ttl_days),
            "FLAGD_MAX_BEHAVIOURAL_CONDITIONS": str(self.max_behavioural_conditions),
            "FLAGD_EVENT_HISTORY_DAYS": str(self.event_history_days),
            "FLAGD_REDIS_REPLICA_URLS": ",".join(self.redis_replica_urls),
            "FLAGD_REDIS_REPLICA_WAIT_MS": str(self.redis_replica_wait_ms),
            "FLAGD_STORE_DEADLINE_MS": repr(self.store_deadline_ms),
            "FLAGD_STORE_HEDGING": "1" if self.store_hedging else "0",
            "FLAGD_STORE_HEDGE_FLOOR_MS": repr(self.store_hedge_floor_ms),
            "FLAGD_STORE_HEDGE_BUDGET": repr(self.store_hedge_budget),
        }
        optional = {
            "FLAGD_DATABASE_URL": self.database_url,
            "FLAGD_REDIS_URL": self.redis_url,
            "FLAGD_BOOTSTRAP_PROJECT_TOKEN": self.bootstrap_project_token,
            "FLAGD_BOOTSTRAP_PROJECT_SECRET": self.bootstrap_project_secret,
            "FLAGD_BOOTSTRAP_ADMIN_KEY": self.bootstrap_admin_key,
            "FLAGD_METRICS_DIR": str(self.metrics_dir) if self.metrics_dir else None,
        }
        env.update({k: v for k, v in optional.items() if v is not None})
        if self.syncer is not None:
            env["FLAGD_SYNCER"] = "1" if self.syncer else "0"
        env.update({LIMIT_PREFIX + k.upper(): repr(v or 0) for k, v in self.limits.items()})
        env.update({SHED_PREFIX + k.upper(): repr(v or 0) for k, v in self.shedding.items()})
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every ``FLAGD_*`` variable; raise ``SettingsError`` listing all problems."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        database_url = reader.get("FLAGD_DATABASE_URL", _url(("postgres://", "postgresql://")), None)
        redis_url = reader.get(
            "FLAGD_REDIS_URL",
            _url(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")),
            None,
        )
        no_replicas: tuple[str, ...] = ()
        replicas = reader.get(
            "FLAGD_REDIS_REPLICA_URLS", _url_list(("redis://", "rediss://", "unix://")), no_replicas
        )
        if replicas and (redis_url is None or "+cluster://" in redis_url):
            reader.problems.append(
                "FLAGD_REDIS_REPLICA_URLS: read replicas need FLAGD_REDIS_URL naming their primary "
                "(a Redis Cluster routes to its own replicas)"
            )
        if (database_url is None) != (redis_url is None):
            missing = "FLAGD_REDIS_URL" if redis_url is None else "FLAGD_DATABASE_URL"
            reader.problems.append(
                f"{missing}: distributed mode needs both FLAGD_DATABASE_URL and FLAGD_REDIS_URL "
                "(set neither for the embedded mode)"
            )
        settings = cls(
            database_url=database_url,
            redis_url=redis_url,
            data_path=reader.get("FLAGD_DATA_PATH", _path, Path("flagd.db")),
            host=reader.get("FLAGD_HOST", _nonempty, "127.0.0.1"),
            port=reader.get("FLAGD_PORT", _int_between(1, 65535), 8000),
            workers=reader.get("FLAGD_WORKERS", _int_between(1, 256), 1),
            backpressure=reader.get("FLAGD_BACKPRESSURE", _int_between(0, 1_000_000), 0),
            log_format=reader.get("FLAGD_LOG_FORMAT", _choice(LOG_FORMATS), "auto"),
            log_level=reader.get("FLAGD_LOG_LEVEL", _choice(LOG_LEVELS), "info"),
            bootstrap_project_token=reader.get("FLAGD_BOOTSTRAP_PROJECT_TOKEN", _token("phc_"), None),
            bootstrap_project_secret=reader.get("FLAGD_BOOTSTRAP_PROJECT_SECRET", _token("phs_"), None),
            bootstrap_admin_key=reader.get("FLAGD_BOOTSTRAP_ADMIN_KEY", _token("phx_"), None),
            demo=reader.get("FLAGD_DEMO", _bool, False),
            syncer=reader.get("FLAGD_SYNCER", _bool, None),
            reconcile_seconds=reader.get("FLAGD_RECONCILE_SECONDS", _positive_float, 60.0),
            embedded_poll_seconds=reader.get("FLAGD_EMBEDDED_POLL_SECONDS", _positive_float, 1.0),
            admin_max_body_bytes=reader.get(
                "FLAGD_ADMIN_MAX_BODY_BYTES", _int_between(1024, 1 << 30), 1_048_576
            ),
            metrics_dir=reader.get("FLAGD_METRICS_DIR", _path, None),
            person_store=reader.get("FLAGD_PERSON_STORE", _bool, True),
            person_ttl_days=reader.get("FLAGD_PERSON_TTL_DAYS", _int_between(1, 3650), 90),
            max_behavioural_conditions=reader.get(
                "FLAGD_MAX_BEHAVIOURAL_CONDITIONS", _int_between(1, 100_000), 200
            ),
            event_history_days=reader.get("FLAGD_EVENT_HISTORY_DAYS", _int_between(0, 3650), 30),
            redis_replica_urls=replicas,
            redis_replica_wait_ms=reader.get("FLAGD_REDIS_REPLICA_WAIT_MS", _int_between(1, 60_000), 20),
            store_deadline_ms=reader.get("FLAGD_STORE_DEADLINE_MS", _float_between(1, 60_000), 25.0),
            store_hedging=reader.get("FLAGD_STORE_HEDGING", _bool, True),
            store_hedge_floor_ms=reader.get("FLAGD_STORE_HEDGE_FLOOR_MS", _float_between(0.1, 60_000), 2.0),
            store_hedge_budget=reader.get("FLAGD_STORE_HEDGE_BUDGET", _float_between(0, 1), 0.1),
            limits=reader.prefixed(LIMIT_PREFIX, limit_fields()),
            shedding=reader.prefixed(SHED_PREFIX, shedder_args()),
        )
        for prefix, build in ((LIMIT_PREFIX, make_limits), (SHED_PREFIX, make_shedder)):
            try:
                build(settings)
            except (ValueError, TypeError) as exc:
                reader.problems.append(f"{prefix}*: {exc}")
        if reader.problems:
            raise SettingsError(reader.problems)
        return settings


def make_limits(settings: Settings) -> Limits:
    """``flagd.limits.Limits`` with the ``FLAGD_LIMIT_*`` overrides applied."""
    overrides: dict[str, Any] = dict(settings.limits)
    return Limits(**overrides)


def make_shedder(settings: Settings) -> LoadShedder:
    """A fresh ``flagd.shedding.LoadShedder`` (one per worker) with the ``FLAGD_SHED_*`` overrides applied."""
    overrides: dict[str, Any] = dict(settings.shedding)
    return LoadShedder(**overrides)


def limit_fields() -> dict[str, tuple[type, bool]]:
    """``flagd.limits.Limits`` numeric fields by name."""
    return _numeric_params(Limits)


def shedder_args() -> dict[str, tuple[type, bool]]:
    """``flagd.shedding.LoadShedder`` numeric constructor arguments by name."""
    return _numeric_params(LoadShedder)


def _numeric_params(cls: type) -> dict[str, tuple[type, bool]]:
    """Numeric keyword arguments by name, with whether each also accepts None."""
    params: dict[str, tuple[type, bool]] = {}
    for name, param in inspect.signature(cls).parameters.items():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue
        default = param.default
        annotation = str(param.annotation)
        if isinstance(default, bool) or "bool" in annotation or "Callable" in annotation or callable(default):
            continue
        if isinstance(default, float) or "float" in annotation:
            params[name] = (float, "None" in annotation)
        elif isinstance(default, int) or "int" in annotation:
            params[name] = (int, "None" in annotation)
    return params


class _Reader:
    """Collects problems instead of failing on the first one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}, got {raw!r}")
            return default

    def prefixed(self, prefix: str, known: Mapping[str, tuple[type, bool]]) -> dict[str, int | float | None]:
        values: dict[str, int | float | None] = {}
        for name in sorted(k for k in self.env if k.startswith(prefix)):
            arg = name[len(prefix) :].lower()
            if arg not in known:
                choices = ", ".join(prefix + k.upper() for k in sorted(known)) or "none available"
                self.problems.append(f"{name}: unknown setting (known: {choices})")
                continue
            kind, optional = known[arg]
            value: int | float | None
            if kind is int:
                value = self.get(name, _int_between(0, 1 << 62), 0)
            else:
                value = self.get(name, _float_between(0, 1e12), 0.0)
            values[arg] = None if optional and value == 0 else value
        return values


def _nonempty(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith(schemes):
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)}")
        return raw

    return parse


def _url_list(schemes: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    one = _url(schemes)

    def parse(raw: str) -> tuple[str, ...]:
        return tuple(one(part.strip()) for part in raw.split(",") if part.strip())

    return parse


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer between {low} and {high}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number between {low:g} and {high:g}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number between {low:g} and {high:g}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a positive number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _token(prefix: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith(prefix) or len(raw) < len(prefix) + 16 or not raw.isprintable() or " " in raw:
            raise ValueError(f"expected {prefix} followed by at least 16 characters")
        return raw

    return parse
