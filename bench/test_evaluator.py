"""In-process evaluation speed: flagd's engine side by side with its peers, one user at a time.

Run with ``make bench`` (``pytest bench --benchmark-enable --benchmark-only``); the default test run skips it.
Each benchmark evaluates every flag of a 20- or 50-flag workload (bench/evaluator_workload.py) for the next
user of a 1000-user cycle, building the engine's per-request context inside the timed call. Before timing,
each engine's answers are checked against the floor's for the flags whose outcome does not depend on a hash,
so every engine is shown to do the same work.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Any

import pytest

from bench.conftest import MEDIANS
from bench.evaluator_peers import PEERS, Evaluate
from bench.evaluator_workload import VARIANTS, Workload, build

# label -> workload; the label's number is the flag count (bench/conftest.py divides by it).
WORKLOADS = {"20 flags": build(20), "50 flags": build(50), "plain 20 flags": build(20, mix="plain")}
DETERMINISTIC = frozenset(
    {"static", "targeted-in", "targeted-contains", "targeted-gt", "dependency", "cohort"}
)


def _engine_ready() -> bool:
    if importlib.util.find_spec("evaluator") is None:
        return False
    import evaluator

    return hasattr(evaluator, "compile_flags")


def check_same_work(name: str, evaluate: Evaluate, workload: Workload) -> None:
    """Fail unless ``evaluate`` agrees with the floor on hash-free flags and splits hashed ones sensibly."""
    floor = PEERS["floor-dict-mmh3"](workload)
    users = workload.users[:300]
    rollouts: Counter[str] = Counter()
    for user in users:
        got, expected = evaluate(user), floor(user)
        for key, kind in workload.kinds.items():
            if kind in DETERMINISTIC:
                assert got[key] == expected[key], (name, key, user)
            elif kind == "rollout":
                rollouts[key] += got[key] is True
            else:
                assert got[key] in {v for v, _ in VARIANTS}, (name, key, got[key])
    for key, inside in rollouts.items():
        assert 0.2 * len(users) < inside < 0.4 * len(users), (name, key, inside)


@pytest.mark.parametrize("label", list(WORKLOADS))
@pytest.mark.parametrize("engine", list(PEERS))
def test_evaluate_all_flags_for_one_user(benchmark: Any, engine: str, label: str) -> None:
    """Time one user's evaluation of every flag, after checking the engine does the workload's work."""
    if engine.startswith("flagd") and not _engine_ready():
        pytest.skip("evaluator.compile_flags has not landed yet")
    workload = WORKLOADS[label]
    evaluate = PEERS[engine](workload)
    check_same_work(engine, evaluate, workload)
    users = workload.cycle_users()
    benchmark.group = f"{label}, one user"
    benchmark.extra_info.update(engine=engine, flags=workload.size)
    benchmark(lambda: evaluate(next(users)))
    if benchmark.stats is not None:
        MEDIANS[(label, engine)] = benchmark.stats.stats.median
