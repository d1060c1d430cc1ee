"""structlog, configured once per process, and request ids.

``configure_logging(fmt, level)`` sets structlog up for the whole server: JSON lines (one object per line,
with ``timestamp``, ``level``, ``event`` and the bound fields) in production, a pretty coloured console on a
TTY; ``fmt="auto"`` picks by whether stderr is a terminal. The standard library's ``logging`` (Granian,
asyncpg, ...) is routed through the same renderer so a process writes one format.

Request ids: ``RequestIds`` takes the client's ``X-Request-Id`` when it sent a usable one, otherwise makes a
new UUID-shaped id (a random per-worker prefix plus a counter: unique, and far cheaper than ``uuid4()`` per
request). The SDK endpoints echo it in the ``X-Request-Id`` response header and in PostHog's ``requestId``.
Routes that do I/O (definitions, events) bind it with ``structlog.contextvars`` so every line logged below
them carries ``request_id``; the in-memory hot routes (``/flags``, OFREP) skip that cost and add it to the
few lines they write themselves.
"""

from __future__ import annotations

import itertools
import logging
import sys
import uuid
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def configure_logging(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog (and stdlib logging) for this process. Safe to call again; the last call wins."""
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"log format must be auto, json or console, got {fmt!r}")
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}, got {level!r}")
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    # The console renderer prints tracebacks itself; JSON needs them formatted into a field.
    exc_info: Any = _identity if console else structlog.processors.format_exc_info
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    # Route stdlib logging through the same renderer.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def _identity(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return event


class _StderrLogger:
    """Writes each line to the process's *current* ``sys.stderr``.

    structlog caches loggers on first use; a logger holding the stream object it was created with would
    keep writing to it after it is replaced (and, under pytest, closed). Looking it up per line costs one
    attribute read.
    """

    __slots__ = ()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler bound to the current ``sys.stderr`` (see ``_StderrLogger``)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class RequestIds:
    """Picks the id of each request: the client's ``X-Request-Id`` if usable, else a fresh UUID-shaped id."""

    __slots__ = ("_counter", "_max", "_prefix")

    def __init__(self, max_chars: int = 128) -> None:
        # 8-4-4-4- of a random UUID + a 12-hex-digit counter: a valid UUID string, unique per worker start.
        self._prefix = str(uuid.uuid4())[:24]
        self._counter = itertools.count(1)
        self._max = max_chars

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"

    def pick(self, incoming: bytes | None) -> str:
        """The client's id when it is printable ASCII of a sane length, otherwise a new one."""
        if incoming and len(incoming) <= self._max and incoming.isascii():
            text = incoming.decode("ascii")
            if text.isprintable():
                return text
        return self.new()
