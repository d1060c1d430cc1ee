"""Snapshot sizes: compile + swap time for a big project, and a node's resident memory for many flags.

Uses the evaluator benchmark's flag mix (``bench/evaluator_workload.py``: static, property-targeted,
rollout, multivariate, dependency and cohort flags) and a throwaway Redis (``tests/servers.py``).

1. One project of ``--flags`` flags (default 1,000) in Redis: time ``build_project_state`` alone (compile +
   pre-encoding the local-evaluation body) and the node's whole path for one change (``load_project`` from
   Redis + compile + ``Catalog.install``), ``--repeat`` times each.
2. ``--projects`` projects of ``--per-project`` flags each (default 100 x 100 = 10,000 flags) in Redis: a
   fresh node process loads them all (``NodeFollower.start``) and reports its resident set size (VmRSS)
   before and after, and the load time.

    .venv/bin/python bench/snapshot_sizes.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from bench.evaluator_workload import build
from store.catalog import Catalog, ProjectData, build_project_state
from store.redis.flag_store import RedisFlagStore
from store.stream.node import NodeFollower
from tests.servers import redis_server


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def project(project_id: int, size: int) -> ProjectData:
    """A project of ``size`` flags from the benchmark mix, in the shape Redis and PostgreSQL hand out."""
    workload = build(size)
    flags: list[dict[str, Any]] = []
    for flag in workload.posthog_flags:
        # Half SDK-reproducible (posthog bucketing), so the local-evaluation body has a realistic size.
        bucketing = "posthog" if flag["id"] % 2 else "murmur3"
        flags.append({**flag, "team_id": project_id, "bucketing": bucketing})
    cohorts = [
        {
            "id": int(cid),
            "name": f"cohort {cid}",
            "filters": {"properties": body},
            "is_static": False,
            "deleted": False,
            "version": 1,
        }
        for cid, body in workload.cohorts.items()
    ]
    return ProjectData(
        project_id=project_id,
        api_token=f"phc_bench_{project_id}",
        secret_token_hash="0" * 64,
        group_type_mapping={"0": "company"},
        version=1,
        flags=flags,
        cohorts=cohorts,
    )


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"median {statistics.median(ms):.1f} ms  min {ms[0]:.1f}  max {ms[-1]:.1f}  (n={len(ms)})"


async def big_project(redis_url: str, size: int, repeat: int) -> None:
    store = RedisFlagStore(redis_url, socket_timeout=10)
    data = project(1, size)
    await store.replace_project(data)
    await store.reset_cursor(1)
    compile_times, path_times, load_times = [], [], []
    catalog = Catalog()
    gc.collect()
    gc.freeze()  # as a node does after start-up (see bench/propagation.py): no full walks of the heap
    for _ in range(repeat):
        started = time.perf_counter()
        build_project_state(data)
        compile_times.append(time.perf_counter() - started)
    for _ in range(repeat):
        started = time.perf_counter()
        loaded = await store.load_project(1)
        assert loaded is not None
        loaded_at = time.perf_counter()
        catalog.install(build_project_state(loaded))
        path_times.append(time.perf_counter() - started)
        load_times.append(loaded_at - started)
    # What a node does since incremental compiles: one flag edited, the rest reused from the installed state.
    incremental_times = []
    for n in range(repeat):
        started = time.perf_counter()
        loaded = await store.load_project(1)
        assert loaded is not None
        edited = loaded.flags[n % len(loaded.flags)]  # stands in for the change the feed announced
        edited["version"] = int(edited.get("version") or 1) + 1 + n
        catalog.install(build_project_state(loaded, previous=catalog.by_id(1)))
        incremental_times.append(time.perf_counter() - started)
    state = catalog.by_id(1)
    assert state is not None
    assert len(state.snapshot) == size
    print(f"project of {size} flags ({len(data.cohorts)} cohorts):")
    print(f"  compile + pre-encode (build_project_state): {summary(compile_times)}")
    print(f"  node path per change (Redis load + compile + install): {summary(path_times)}")
    print(f"    of which Redis load_project + decode: {summary(load_times)}")
    print(f"  node path per change, incremental compile (one flag edited): {summary(incremental_times)}")
    print(f"  local-evaluation body: {len(state.local_eval_body) / 1024:.0f} KiB")
    await store.close()


async def fill(redis_url: str, projects: int, per_project: int) -> None:
    store = RedisFlagStore(redis_url, socket_timeout=10)
    await store._redis.flushall()
    for pid in range(1, projects + 1):
        await store.replace_project(project(pid, per_project))
    await store.reset_cursor(1)
    await store.close()


async def measure_node(redis_url: str) -> None:
    """Runs in a fresh process: RSS before and after a node loads every project."""
    gc.collect()
    before = rss_mib()
    store = RedisFlagStore(redis_url, socket_timeout=30)
    catalog = Catalog()
    started = time.perf_counter()
    assert await NodeFollower(store, catalog).start()
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_mib()
    flags = sum(len(p.snapshot) for p in catalog.projects())
    sys.stdout.write(f"{before:.1f} {after:.1f} {elapsed:.3f} {flags} {sum(1 for _ in catalog.projects())}\n")
    await store.close()


async def many_projects(redis_url: str, projects: int, per_project: int) -> None:
    await fill(redis_url, projects, per_project)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--measure-node", redis_url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    before, after, elapsed, flags, loaded = out.split()
    print(f"node loading {int(loaded)} projects / {int(flags)} flags from Redis:")
    print(
        f"  RSS {float(before):.0f} MiB after imports -> {float(after):.0f} MiB loaded "
        f"(+{float(after) - float(before):.0f} MiB, {(float(after) - float(before)) * 1024 / int(flags):.1f} "
        f"KiB per flag); full load {float(elapsed) * 1000:.0f} ms"
    )


async def drive(args: argparse.Namespace) -> None:
    with redis_server() as server:
        await big_project(server.url, args.flags, args.repeat)
        await many_projects(server.url, args.projects, args.per_project)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--per-project", type=int, default=100)
    parser.add_argument("--measure-node", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.measure_node:
        asyncio.run(measure_node(args.measure_node))
    else:
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()
