"""What one flag write costs next to a large static cohort, and how long it stalls the event loop.

Embedded mode, in process: a project with a static cohort of ``--members`` members, then ``--writes`` flag
creations through the real ``SqliteRepository`` (each returns once the catalog holds the new flag). A task
that only yields (``await asyncio.sleep(0)``) measures the longest gap between two of its turns: how long
any other request (another project's ``/flags``) would have waited on this event loop.

    .venv/bin/python bench/write_stall.py                   # 50,000 members, 20 writes
    .venv/bin/python /path/to/other/checkout/bench/write_stall.py   # the same on other code (a copy there)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store.stream.embedded import EmbeddedBackend


async def run(members: int, writes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        backend = await EmbeddedBackend.open(Path(folder) / "bench.db", poll_interval=0)
        await backend.start()
        repo = backend.repository
        big = (await repo.create_project("big", actor="bench")).project.id
        ids = [f"user-{i:08d}" for i in range(members)]
        await repo.create_cohort(big, {"name": "vip", "is_static": True, "members": ids}, actor="bench")
        gaps: list[float] = []
        done = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        costs = []
        for n in range(writes):
            started = time.perf_counter()
            body = {"key": f"f{n}", "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}}
            await repo.create_flag(big, body, actor="bench")
            costs.append(time.perf_counter() - started)
        done = True
        await task
        await backend.close()
    ms = sorted(c * 1000 for c in costs)
    print(
        f"members={members} writes={writes}: write p50 {statistics.median(ms):.1f} ms, "
        f"max {ms[-1]:.1f} ms; longest event-loop stall {max(gaps) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--writes", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.writes))


if __name__ == "__main__":
    main()
