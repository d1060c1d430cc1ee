"""``Snapshot.evaluate`` alone: the evaluator's own time per user, without a benchmark adapter around it.

Run: ``.venv/bin/python -m bench.evaluate_alone [--passes 60]``

The workloads of ``bench/test_evaluator.py`` (bench/evaluator_workload.py), compiled once; the 1000 users'
``Context`` objects are built before timing, and nothing reads the answers. Each pass evaluates every user
once; the figure is the fastest pass, per user (on a shared machine the minimum is the least disturbed).
Says which build ran (``evaluator.COMPILED``). To compare with another commit, export it (``git archive``),
``python setup.py build_ext --inplace`` there, and run this with ``PYTHONPATH`` pointing at it.
"""

from __future__ import annotations

import argparse
import time

import evaluator
from bench.evaluator_workload import build
from evaluator import Context, compile_flags


def fastest_pass(size: int, passes: int, mix: str = "project") -> float:
    """Microseconds per user of the fastest of ``passes`` passes over the workload's users."""
    workload = build(size, mix=mix)
    snapshot = compile_flags(workload.posthog_flags, cohorts=workload.cohorts)
    contexts = [Context(distinct_id=u.distinct_id, person_properties=u.properties) for u in workload.users]
    evaluate = snapshot.evaluate
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for ctx in contexts:
            evaluate(ctx)
        best = min(best, time.perf_counter() - started)
    return best / len(contexts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=60)
    args = parser.parse_args()
    print(f"evaluator {evaluator.__file__} compiled={evaluator.COMPILED}")
    for label, size, mix in (
        ("plain 20 flags", 20, "plain"),
        ("20 flags", 20, "project"),
        ("50 flags", 50, "project"),
    ):
        print(
            f"{label}: {fastest_pass(size, args.passes, mix):.2f} µs / user (fastest of {args.passes} passes)"
        )


if __name__ == "__main__":
    main()
