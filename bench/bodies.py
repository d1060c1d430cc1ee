"""Server time per hostile SDK body, in process: how long ``SdkApp.respond`` takes to answer each one.

Run: ``.venv/bin/python -m bench.bodies [--runs 30]``. To compare with an earlier commit, run the same file
against that commit's packages (``git archive <commit> flagd evaluator store tests | tar -x -C /tmp/old``),
``PYTHONPATH=/tmp/old .venv/bin/python bench/bodies.py``.

Each case is a body an unauthenticated client can send (the token is valid; every case but the baseline is
refused). The time is wall time of ``respond`` (decompression, structure check, decoding, validation,
rendering the error), the median and the maximum over ``--runs`` runs, with the body already read; peak
Python memory (tracemalloc) of one run is shown too.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import structlog

sys.path.append(str(Path(__file__).resolve().parent.parent))  # PYTHONPATH (another tree) comes first

from flagd.sdk.http import Request
from flagd.shedding import LoadShedder
from tests.flagd.sdk_support import TOKEN_A, make_app

MIB = 1024 * 1024


class Preloaded(Request):
    """A request whose body is already in memory (works with the old ``body`` and the new ``_read``)."""

    def __init__(self, path: str, body: bytes, headers: dict[bytes, bytes]) -> None:
        super().__init__(path, b"", headers)
        self.raw = body

    async def body(self, limit: int) -> bytes:  # type: ignore[override]
        return self.raw

    async def _read(self, limit: int) -> bytes:
        return self.raw


def lists(size: int) -> bytes:
    return b"[" + b",".join([b"[]"] * (size // 3)) + b"]"


def cases() -> list[tuple[str, str, bytes, dict[bytes, bytes]]]:
    token = TOKEN_A.encode()
    ofrep = {b"authorization": b"Bearer " + token}
    five = b'{"api_key":"' + token + b'","batch":' + lists(5 * MIB - 100) + b"}"
    keys = b'{"context":{"targetingKey":"u",' + b",".join(b'"k%d":1' % i for i in range(120_000)) + b"}}"
    return [
        (
            "baseline: a normal /flags body (accepted)",
            "/flags/",
            json.dumps(
                {
                    "api_key": TOKEN_A,
                    "distinct_id": "u",
                    "person_properties": {"email": "a@example.com", "plan": "pro"},
                }
            ).encode(),
            {},
        ),
        (
            "/batch/: 5 KB gzip → 5 MiB of [[],[],...]",
            "/batch/",
            gzip.compress(five, 9),
            {b"content-encoding": b"gzip"},
        ),
        ("/batch/: 5 MiB of [[],[],...] (plain)", "/batch/", five, {}),
        (
            "/flags: 1 MiB [[],...] as a property value",
            "/flags/",
            b'{"api_key":"'
            + token
            + b'","distinct_id":"u","person_properties":{"p":'
            + lists(MIB - 200)
            + b"}}",
            {},
        ),
        ("/flags: 1 MiB [[],...] as the body", "/flags/", lists(MIB), {}),
        (
            '/flags: 1 MiB of "" strings in a list',
            "/flags/",
            b'{"api_key":"'
            + token
            + b'","distinct_id":"u","flag_keys_to_evaluate":['
            + b",".join([b'""'] * (MIB // 3 - 100))
            + b"]}",
            {},
        ),
        (
            "/flags: nested 1,000 deep",
            "/flags/",
            b'{"api_key":"'
            + token
            + b'","distinct_id":"u","person_properties":{"p":'
            + b"[" * 1000
            + b"]" * 1000
            + b"}}",
            {},
        ),
        ("OFREP bulk: 1.3 MB context of 120k attributes", "/ofrep/v1/evaluate/flags", keys, ofrep),
    ]


async def measure(runs: int) -> None:
    # Shedding off: only the cost of each body is measured here (bench/overload.py measures shedding).
    app = make_app(shedder=LoadShedder(target_delay=None))
    print("| body | status | median ms | max ms | peak MB |")
    print("|---|---:|---:|---:|---:|")
    for label, path, body, headers in cases():
        route = app.route_for(path)
        assert route is not None
        times = []
        status = 0
        for _ in range(runs):
            start = time.perf_counter()
            status, _, _ = await app.respond(route, "POST", Preloaded(path, body, headers))
            times.append((time.perf_counter() - start) * 1000)
        tracemalloc.start()
        await app.respond(route, "POST", Preloaded(path, body, headers))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"| {label} | {status} | {statistics.median(times):.2f} | {max(times):.2f} | {peak / MIB:.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    asyncio.run(measure(args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
