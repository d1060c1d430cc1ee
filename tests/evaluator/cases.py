"""The shared JSON case files (bench/ reads them too): ``[{"name", "filter"|"flag", "context", "expect"}]``.

A ``filter`` case wraps the filter into a one-condition flag and expects ``{"match": bool}``; a ``flag`` case
evaluates the flag (with optional ``cohorts``, ``static_cohorts``, ``group_type_mapping``, ``others`` = more
flags) and expects any subset of the Decision's fields. ``now`` (ISO-8601) fixes the clock.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from evaluator import Context, Snapshot, compile_flags

CASES = Path(__file__).parent / "cases"


def load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CASES / name).read_text())
    return cases


def context(raw: dict[str, Any]) -> Context:
    return Context(
        distinct_id=raw.get("distinct_id", "user-1"),
        person_properties=raw.get("person_properties", {}),
        groups=raw.get("groups", {}),
        group_properties=raw.get("group_properties", {}),
        cohort_ids=frozenset(raw.get("cohort_ids", ())),
    )


def flag_for_filter(filter_: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": 1,
        "key": "case-flag",
        "active": True,
        "filters": {"groups": [{"properties": [filter_], "rollout_percentage": None}]},
    }


def snapshot(case: dict[str, Any]) -> tuple[Snapshot, str]:
    """The compiled snapshot for a case and the key to evaluate."""
    now = case.get("now")
    instant = datetime.fromisoformat(now).timestamp() if now else 1_718_452_800.0
    flag = flag_for_filter(case["filter"]) if "filter" in case else case["flag"]
    compiled = compile_flags(
        [*case.get("others", []), flag],
        cohorts=case.get("cohorts", {}),
        group_type_mapping=case.get("group_type_mapping", {}),
        static_cohorts={k: frozenset(v) for k, v in case.get("static_cohorts", {}).items()},
        clock=lambda: instant,
    )
    return compiled, flag["key"]
