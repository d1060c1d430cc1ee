"""The ``flagd`` command line: ``serve``, ``mcp``, ``migrate``, ``import``, ``export``, ``sync``,
``create-key``.

Configuration comes from ``FLAGD_*`` variables (see ``flagd.settings``); options override them. Exit codes:
0 done, 1 the operation failed (store unreachable, some flags did not import, ...), 2 bad usage or
configuration (the message names the option or variable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from flagd.admin.inputs import parse_id
from flagd.settings import Settings, SettingsError
from store.errors import NotFound, StoreError, StoreUnavailable
from store.sql.repository import AdminRepository

ACTOR = "cli"


class UsageError(Exception):
    """A bad option or argument (exit code 2)."""


def _id_argument(raw: str) -> int:
    value = parse_id(raw, "project")
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a project id (1 to 19 digits), got {raw[:40]!r}")
    return value


def _key_id_argument(raw: str) -> int:
    value = parse_id(raw, "key_id")
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a key id (1 to 19 digits), got {raw[:40]!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagd", description="Low-latency feature-flag server (PostHog /flags and OFREP compatible)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (Granian, RSGI)")
    serve.add_argument("--host", help="address to listen on (FLAGD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (FLAGD_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (FLAGD_WORKERS, default 1)")
    serve.add_argument("--demo", action="store_true", help="load demo flags into an empty default project")

    mcp = commands.add_parser("mcp", help="serve the MCP tools over stdio for a local agent")
    mcp.add_argument("--read-only", action="store_true", help="offer only the read tools")

    commands.add_parser("migrate", help="create or upgrade the database schema")

    imp = commands.add_parser("import", help="import PostHog flag JSON (a list, or {'flags': [...]})")
    imp.add_argument("file", help="JSON file, or - for standard input")
    imp.add_argument("--project", type=_id_argument, help="project id (default: the first project)")
    imp.add_argument(
        "--partial",
        action="store_true",
        help="write the valid flags even when others fail (default: all or nothing)",
    )

    exp = commands.add_parser("export", help="export a project's flags as PostHog flag JSON")
    exp.add_argument("--project", type=_id_argument, help="project id (default: the first project)")
    exp.add_argument("-o", "--output", help="file to write (default: standard output)")

    commands.add_parser("sync", help="run only the syncer (PostgreSQL change log -> Redis); distributed mode")

    key = commands.add_parser("create-key", help="create a personal API key and print it (shown once)")
    key.add_argument("--label", default="", help="what the key is for")
    key.add_argument("--scope", choices=("read", "write"), default="write")
    key.add_argument("--project", default="all", help="project id, or 'all' (default) for every project")

    keys = commands.add_parser("keys", help="list or revoke personal API keys (every project's and global)")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every key: id, prefix, reach, scope, label, created, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key by id (takes effect on every node)")
    revoke.add_argument("key_id", type=_key_id_argument, help="the key's id, from 'flagd keys list'")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        handler = _COMMANDS[args.command]
        return handler(args, settings)
    except (SettingsError, UsageError) as exc:
        print(f"flagd {args.command}: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"flagd {args.command}: the store is unreachable: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"flagd {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# serve ------------------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from flagd.logging import configure_logging
    from flagd.metrics import prepare_multiprocess

    overrides: dict[str, Any] = {k: getattr(args, k) for k in ("host", "port", "workers") if getattr(args, k)}
    if "port" in overrides and not 1 <= overrides["port"] <= 65535:
        raise UsageError("--port: expected 1-65535")
    if "workers" in overrides and overrides["workers"] < 1:
        raise UsageError("--workers: expected at least 1")
    settings = settings.replace(demo=settings.demo or args.demo, **overrides)
    try:
        result = asyncio.run(_bootstrap(settings))
    except StoreUnavailable:
        raise
    except StoreError as exc:
        hint = " (has the database been migrated? run: flagd migrate)" if settings.distributed else ""
        raise StoreError(f"{exc}{hint}") from exc
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    print(result.banner(f"http://{host}:{settings.port}"), flush=True)
    temporary: Path | None = None
    if settings.workers > 1:
        if settings.metrics_dir is None:
            # In memory when the machine has a tmpfs: workers write their metrics and status slices there
            # every second, and creating a file on a disk costs ~1 ms where tmpfs takes ~30 µs.
            shm = "/dev/shm"  # noqa: S108 - a private mkdtemp directory inside it
            memory = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
            temporary = Path(tempfile.mkdtemp(prefix="flagd-metrics-", dir=memory))
        directory = settings.metrics_dir or temporary
        assert directory is not None
        prepare_multiprocess(directory)
        settings = settings.replace(metrics_dir=directory)
    configure_logging(settings.log_format, settings.log_level)
    # Workers are separate processes: they rebuild the same settings from the environment.
    os.environ.update(settings.to_env())
    server = Granian(
        "flagd.app:app_factory",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_enabled=True,
        # Granian's own lines go through the root logger, which configure_logging renders (JSON or console).
        log_dictconfig={"loggers": {"_granian": {"handlers": [], "propagate": True}}},
        log_level=_granian_level(settings.log_level),
        websockets=False,
        backlog=2048,
        # Per worker; 0 = Granian's default (backlog / workers). See flagd/settings.py.
        backpressure=settings.backpressure or None,
    )
    try:
        server.serve()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


def _granian_level(level: str) -> Any:
    from granian.log import LogLevels

    return LogLevels(level)


async def _bootstrap(settings: Settings) -> Any:
    from flagd.bootstrap import bootstrap

    async with open_repository(settings) as repository:
        return await bootstrap(repository, settings, demo=settings.demo)


@contextlib.asynccontextmanager
async def open_repository(settings: Settings) -> AsyncIterator[AdminRepository]:
    """The source-of-truth repository for one CLI command, closed afterwards."""
    if settings.distributed:
        from store.sql.postgres import PostgresRepository

        assert settings.database_url is not None
        repository = await PostgresRepository.connect(settings.database_url, min_size=1, max_size=2)
        try:
            yield repository
        finally:
            await repository.close()
        return
    from store.stream.embedded import EmbeddedBackend

    backend = await EmbeddedBackend.open(settings.data_path)
    try:
        yield backend.repository
    finally:
        await backend.close()


# migrate ----------------------------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.distributed:
        asyncio.run(_touch_embedded(settings))
        print(f"embedded store ready at {settings.data_path}")
        return 0
    from store.sql.migrate import migrate

    assert settings.database_url is not None
    applied = asyncio.run(migrate(settings.database_url))
    print("applied: " + ", ".join(applied) if applied else "the schema is up to date")
    return 0


async def _touch_embedded(settings: Settings) -> None:
    async with open_repository(settings):
        pass


# import / export --------------------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from flagd.porting import ImportFormatError, import_flags, parse_document

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        document = parse_document(raw)
    except ImportFormatError as exc:
        raise UsageError(f"{args.file}: {exc}") from None

    async def run() -> int:
        async with open_repository(settings) as repository:
            project_id = await _project_id(repository, args.project, settings)
            report = await import_flags(repository, project_id, document, actor=ACTOR, partial=args.partial)
        if report.failed and not args.partial:
            print(
                f"project {project_id}: nothing imported: {len(report.failed)} invalid "
                "(fix them, or pass --partial to import the rest):",
                file=sys.stderr,
            )
            for key, issues in report.failed.items():
                for issue in issues:
                    where = f".{issue.path}" if issue.path else ""
                    print(f"  {key}{where}: {issue.message}", file=sys.stderr)
            return 1
        print(
            f"project {project_id}: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.skipped)} skipped (deleted), {report.cohorts_created} cohorts created, "
            f"{len(report.failed)} failed"
        )
        for key, issues in report.failed.items():
            for issue in issues:
                where = f".{issue.path}" if issue.path else ""
                print(f"  {key}{where}: {issue.message}", file=sys.stderr)
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from flagd.porting import export_flags

    async def run() -> dict[str, Any]:
        async with open_repository(settings) as repository:
            return await export_flags(repository, await _project_id(repository, args.project, settings))

    document = asyncio.run(run())
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"exported {len(document['flags'])} flags to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _project_id(repository: AdminRepository, requested: int | None, settings: Settings) -> int:
    """The project a command works on: ``--project``, else the first one (bootstrapped on an empty store)."""
    if requested is not None:
        try:
            return (await repository.get_project(requested)).id
        except NotFound:
            raise UsageError(f"--project: no project {requested}") from None
    projects = await repository.list_projects()
    if projects:
        return min(p.id for p in projects)
    from flagd.bootstrap import bootstrap

    result = await bootstrap(repository, settings)
    print(result.banner(f"http://{settings.host}:{settings.port}"), file=sys.stderr)
    return result.project.id


# sync -------------------------------------------------------------------------------------------------------
def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.distributed:
        raise UsageError("the syncer runs in distributed mode: set FLAGD_DATABASE_URL and FLAGD_REDIS_URL")
    from flagd.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(_run_syncer(settings))
    return 0


async def _run_syncer(settings: Settings) -> None:
    from store.redis.flag_store import RedisFlagStore
    from store.sql.postgres import PostgresRepository
    from store.stream.syncer import Syncer

    assert settings.database_url is not None
    assert settings.redis_url is not None
    repository = await PostgresRepository.connect(settings.database_url, min_size=1, max_size=2)
    store = RedisFlagStore(settings.redis_url)
    task = asyncio.create_task(
        Syncer(settings.database_url, store, repository, reconcile_seconds=settings.reconcile_seconds).run()
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.close()
        await repository.close()


# create-key -------------------------------------------------------------------------------------------------
def cmd_create_key(args: argparse.Namespace, settings: Settings) -> int:
    project: int | None = None
    if args.project != "all":
        project = parse_id(str(args.project), "project")
        if project is None:
            raise UsageError("--project: expected a project id or 'all'")

    async def run() -> str:
        async with open_repository(settings) as repository:
            if project is not None:
                await _project_id(repository, project, settings)
            created = await repository.create_api_key(
                label=args.label, scope=args.scope, project_id=project, actor=ACTOR
            )
            return created.raw_key

    raw = asyncio.run(run())
    reach = "every project" if project is None else f"project {project}"
    print(raw)
    print(f"({args.scope} access to {reach}; shown once, stored hashed)", file=sys.stderr)
    return 0


# keys -------------------------------------------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        async with open_repository(settings) as repository:
            keys = await repository.list_api_keys(None)
            if args.action == "list":
                print("id\tprefix\tproject\tscope\tcreated\trevoked\tlabel")
                for k in keys:
                    reach = "all" if k.project_id is None else str(k.project_id)
                    revoked = k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-"
                    created = k.created_at.isoformat(timespec="seconds")
                    print(f"{k.id}\t{k.key_prefix}\t{reach}\t{k.scope}\t{created}\t{revoked}\t{k.label}")
                return 0
            if not any(k.id == args.key_id for k in keys):
                raise UsageError(f"no API key with id {args.key_id} (see 'flagd keys list')")
            gone = await repository.revoke_api_key(args.key_id, actor=ACTOR)
            print(f"revoked key {gone.id} ({gone.key_prefix}..., {gone.label or 'no label'})")
            return 0

    return asyncio.run(run())


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """MCP over stdio (``flagd.mcp.stdio``): the same tools as ``/mcp``, on the store the settings name."""
    from flagd.logging import configure_logging
    from flagd.mcp.stdio import serve_stdio

    configure_logging(settings.log_format, settings.log_level)  # stderr: stdout carries the protocol
    asyncio.run(serve_stdio(settings, read_only=args.read_only))
    return 0


_COMMANDS = {
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "migrate": cmd_migrate,
    "import": cmd_import,
    "export": cmd_export,
    "sync": cmd_sync,
    "create-key": cmd_create_key,
    "keys": cmd_keys,
}
