"""What a flag can answer: its Decisions (payload attached), and the parts of a definition that shape them --
payloads, variants and the holdout -- parsed once, problems recorded with their paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import msgspec

from evaluator.issues import Problems
from evaluator.model import DESCRIPTIONS, Decision

_encode = msgspec.json.encode


class Holdout(NamedTuple):
    id: int | str
    percentage: float
    decision: Decision


class Decisions:
    """Builds the flag's decisions, payload attached."""

    __slots__ = ("flag_id", "key", "payloads", "version")

    def __init__(
        self, key: str, flag_id: int | None, version: int | None, payloads: Mapping[str, str]
    ) -> None:
        self.key, self.flag_id, self.version, self.payloads = key, flag_id, version, payloads

    def make(
        self,
        reason: str,
        *,
        enabled: bool = False,
        variant: str | None = None,
        index: int | None = None,
        description: str | None = None,
        error: str | None = None,
    ) -> Decision:
        payload = None
        if enabled:
            payload = self.payloads.get(variant) if variant is not None else self.payloads.get("true")
        if description is None:
            description = DESCRIPTIONS.get(reason, reason)
        return Decision(
            self.key,
            enabled,
            variant,
            payload,
            reason,
            index,
            description,
            error,
            self.flag_id,
            self.version,
            variant if variant is not None else enabled,
        )


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_payloads(raw: Any, problems: Problems) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.error("filters.payloads", 'must be an object keyed by "true" or a variant key')
        return {}
    payloads: dict[str, str] = {}
    for name, value in raw.items():
        if value is None:
            continue
        payloads[str(name)] = value if isinstance(value, str) else _encode(value).decode()
    return payloads


def parse_variants(raw: Any, problems: Problems) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    variants = raw.get("variants") if isinstance(raw, dict) else None
    if variants is None:
        return ()
    if not isinstance(variants, list):
        problems.error("filters.multivariate.variants", "must be a list")
        return ()
    found: list[tuple[str, float]] = []
    total = 0.0
    for index, variant in enumerate(variants):
        path = f"filters.multivariate.variants[{index}]"
        name = variant.get("key") if isinstance(variant, dict) else None
        pct = number(variant.get("rollout_percentage")) if isinstance(variant, dict) else None
        if not isinstance(name, str) or not name:
            problems.error(f"{path}.key", "must be a non-empty string")
            continue
        if pct is None or not 0 <= pct <= 100:
            problems.error(f"{path}.rollout_percentage", "must be a number from 0 to 100")
            continue
        if any(name == seen for seen, _ in found):
            problems.error(f"{path}.key", f"duplicate variant key {name!r}")
            continue
        found.append((name, pct))
        total += pct
    if found and abs(total - 100) > 1e-9:
        problems.error("filters.multivariate.variants", f"variant percentages sum to {total:g}, not 100")
    return tuple(found)


def parse_holdout(raw: Any, problems: Problems, made: Decisions) -> Holdout | None:
    if not raw:
        return None
    if not isinstance(raw, dict):
        problems.error("filters.holdout", 'must be {"id": ..., "exclusion_percentage": ...}')
        return None
    holdout_id = raw.get("id")
    pct = number(raw.get("exclusion_percentage"))
    if isinstance(holdout_id, bool) or not isinstance(holdout_id, int | str) or holdout_id == "":
        problems.error("filters.holdout.id", "must be an id")
        return None
    if pct is None or not 0 <= pct <= 100:
        problems.error("filters.holdout.exclusion_percentage", "must be a number from 0 to 100")
        return None
    variant = f"holdout-{holdout_id}"
    decision = made.make("holdout_condition_value", enabled=True, variant=variant)
    return Holdout(holdout_id, pct, decision)
