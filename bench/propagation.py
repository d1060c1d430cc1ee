"""Propagation lag: from an admin edit's commit to the new version installed in every node's catalog.

Starts a throwaway PostgreSQL and Redis (``tests/servers.py``), a syncer process and N node processes (each a
separate OS process running a ``NodeFollower``), then edits one flag ``--edits`` times through the real
``PostgresRepository`` (one edit every ``--interval`` seconds) in a project of ``--flags`` flags, so every
install recompiles a realistic project. Each node prints ``<flag version> <time.time()>`` whenever it
installs a new state of the project; the lag of version v on a node is the first install of a version >= v
minus the moment ``update_flag`` returned (the commit was acknowledged). Reports p50 / p99 / max over every
(node, edit).

    .venv/bin/python bench/propagation.py                 # 3 nodes, 1000 edits, 100 flags, 10 ms apart
    .venv/bin/python bench/propagation.py --edits 2000 --interval 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import structlog

from store.catalog import Catalog, ProjectState
from store.redis.feed import FeedEntry
from store.redis.flag_store import RedisFlagStore
from store.sql.migrate import migrate
from store.sql.postgres import PostgresRepository
from store.stream.node import FOLLOWER_PACE, NodeFollower
from store.stream.syncer import SYNCER_PACE, Syncer
from tests.servers import postgres_server, redis_server

FLAG = "bench-flag"
# The node blocks up to 5 s on the feed (wakes on every entry); the syncer polls each second besides NOTIFY.
_FOLLOWER_PACE = msgspec.structs.replace(FOLLOWER_PACE, wait_seconds=5.0)
_SYNCER_PACE = msgspec.structs.replace(SYNCER_PACE, wait_seconds=1.0)


def quiet_logs() -> None:
    """structlog prints to stdout by default; our processes talk over stdout, so log to stderr."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def flag_input(key: str, rollout: int) -> dict[str, Any]:
    return {
        "key": key,
        "name": key,
        "filters": {
            "groups": [
                {
                    "properties": [{"key": "plan", "value": ["pro"], "operator": "exact", "type": "person"}],
                    "rollout_percentage": rollout,
                },
                {"properties": [], "rollout_percentage": 25},
            ]
        },
    }


# Child processes ----------------------------------------------------------------------------------------
async def run_node(redis_url: str, project_id: int, freeze: bool) -> None:
    from evaluator import Context

    ctx = Context(distinct_id="bench-user")

    def on_install(state: ProjectState, covered: Sequence[FeedEntry]) -> None:
        if state.project_id != project_id:
            return
        decision = state.snapshot.evaluate(ctx, keys=[FLAG]).get(FLAG)
        if decision is not None:
            # The stream id's first part is Redis' clock (ms) when the syncer published the newest entry.
            published = int(covered[-1].id.split("-")[0]) / 1000 if covered else 0.0
            sys.stdout.write(f"{decision.version} {time.time()} {published}\n")
            sys.stdout.flush()

    follower = NodeFollower(RedisFlagStore(redis_url), Catalog(), on_install=on_install, pace=_FOLLOWER_PACE)
    await follower.start()
    if freeze:
        # Move start-up objects (modules, the first catalog) out of the collector's reach, as a server
        # should after loading: full collections then no longer walk them, which removes the ~20-30 ms
        # tail that gen-2 collections add to a recompile.
        gc.collect()
        gc.freeze()
    await follower.run()


async def run_syncer(dsn: str, redis_url: str) -> None:
    repo = await PostgresRepository.connect(dsn)
    await Syncer(dsn, RedisFlagStore(redis_url), repo, pace=_SYNCER_PACE, reconcile_seconds=600).run()


# Driver -------------------------------------------------------------------------------------------------
async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )


async def collect(
    proc: asyncio.subprocess.Process, installs: list[tuple[int, float]], published: dict[int, float]
) -> None:
    assert proc.stdout is not None
    async for line in proc.stdout:
        version, at, published_at = line.split()
        installs.append((int(version), float(at)))
        if float(published_at):
            published.setdefault(int(version), float(published_at))


def lags_for(installs: list[tuple[int, float]], committed: dict[int, float]) -> list[float]:
    """Lag of every committed version on one node: first install of any version >= it, minus its commit."""
    lags = []
    ordered = sorted(installs, key=lambda i: i[1])
    for version, commit_at in committed.items():
        first = next((at for v, at in ordered if v >= version and at >= commit_at - 1), None)
        if first is None:
            raise SystemExit(f"version {version} never reached a node")
        lags.append(max(0.0, first - commit_at))
    return lags


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drive(args: argparse.Namespace) -> None:
    with postgres_server() as pg, redis_server() as rd:
        await migrate(pg.url)
        repo = await PostgresRepository.connect(pg.url)
        project = (await repo.create_project("bench", actor="bench")).project
        flag = await repo.create_flag(project.id, flag_input(FLAG, 100), actor="bench")
        for i in range(args.flags - 1):
            await repo.create_flag(project.id, flag_input(f"filler-{i}", i % 100), actor="bench")
        procs = [await spawn("--syncer", pg.url, rd.url)]
        installs: list[list[tuple[int, float]]] = [[] for _ in range(args.nodes)]
        for _ in range(args.nodes):
            freeze = "0" if args.no_gc_freeze else "1"
            procs.append(await spawn("--node", rd.url, str(project.id), freeze))
        published: dict[int, float] = {}  # version -> when the syncer published it (Redis clock)
        readers = [asyncio.create_task(collect(p, installs[i], published)) for i, p in enumerate(procs[1:])]
        try:
            deadline = time.monotonic() + 30
            while not all(any(v >= flag.version for v, _ in node) for node in installs):
                if time.monotonic() > deadline:
                    raise SystemExit("nodes did not load the project within 30 s")
                await asyncio.sleep(0.05)
            committed: dict[int, float] = {}
            started = time.monotonic()
            for n in range(args.edits):
                changes = {"filters": flag_input(FLAG, n % 101)["filters"]}
                flag = await repo.update_flag(project.id, flag.id, changes, actor="bench")
                committed[flag.version] = time.time()
                if args.interval:
                    await asyncio.sleep(args.interval)
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 30
            while not all(any(v >= flag.version for v, _ in node) for node in installs):
                if time.monotonic() > deadline:
                    raise SystemExit("nodes did not reach the last version within 30 s")
                await asyncio.sleep(0.05)
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
            for p in procs:
                await p.wait()
            for r in readers:
                r.cancel()
            await repo.close()
    per_node = [lags_for(node, committed) for node in installs]
    every = [lag * 1000 for lags in per_node for lag in lags]
    print(
        f"edits: {args.edits} in {elapsed:.1f} s ({args.edits / elapsed:.0f}/s), project of {args.flags} "
        f"flags, {args.nodes} node processes, interval {args.interval * 1000:.0f} ms, "
        f"gc.freeze {'off' if args.no_gc_freeze else 'on'}"
    )
    print(
        f"lag commit -> installed (ms) over {len(every)} (node, edit) pairs: "
        f"p50 {statistics.median(every):.2f}  p90 {pct(every, 0.9):.2f}  p99 {pct(every, 0.99):.2f}  "
        f"max {max(every):.2f}  mean {statistics.fmean(every):.2f}"
    )
    to_feed = [(published[v] - at) * 1000 for v, at in committed.items() if v in published]
    if to_feed:
        print(
            f"  of which commit -> published to the feed by the syncer ({len(to_feed)} edits seen published "
            f"as the newest entry of a batch): p50 {statistics.median(to_feed):.2f}  "
            f"p99 {pct(to_feed, 0.99):.2f}  max {max(to_feed):.2f}"
        )
    for i, lags in enumerate(per_node):
        ms = [lag * 1000 for lag in lags]
        print(
            f"  node {i}: p50 {statistics.median(ms):.2f}  p99 {pct(ms, 0.99):.2f}  max {max(ms):.2f}  "
            f"installs {len(installs[i])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--flags", type=int, default=100, help="flags in the edited project")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between edits")
    parser.add_argument("--no-gc-freeze", action="store_true", help="nodes skip gc.freeze() after loading")
    parser.add_argument(
        "--node", nargs=3, metavar=("REDIS_URL", "PROJECT_ID", "FREEZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--syncer", nargs=2, metavar=("DSN", "REDIS_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_logs()
    if args.node:
        asyncio.run(run_node(args.node[0], int(args.node[1]), args.node[2] == "1"))
    elif args.syncer:
        asyncio.run(run_syncer(*args.syncer))
    else:
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()
