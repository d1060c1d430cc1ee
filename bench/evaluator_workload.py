"""One flag workload in every peer's form, for the in-process evaluator benchmark (bench/test_evaluator.py).

Per block of ten flags: two static, three property-targeted (any-of, substring, numeric), two 30 % rollouts,
one 50/30/20 multivariate experiment, one dependency (on the block's any-of flag) and one cohort flag (in
cohort "country is DE or FR, or email contains corp"). 20 and 50 flags are two and five blocks.

The same rules are written as PostHog flag definitions (evaluated by flagd's engine and by posthog's local
evaluator), a Flagsmith evaluation context (segments with overrides, percentage splits, multivariate
weights, a ``$.flags`` dependency) and GrowthBook features (force rules with conditions, coverage, an
experiment rule, ``parentConditions``). Each peer therefore evaluates every flag for one user, doing the same
work: match properties, hash for rollouts and variants, resolve a dependency and a cohort.

``mix="plain"`` is the simpler workload most flag sets look like: per block of ten, five property-targeted
flags (any-of, substring, numeric) and five 30 % rollouts, nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BLOCK = 10
PLANS = ("free", "pro", "enterprise")
COUNTRIES = ("DE", "US", "FR", "BR", "JP")
DOMAINS = ("example.com", "acme.io", "corp.com")
VARIANTS = (("control", 50), ("test-a", 30), ("test-b", 20))


@dataclass(frozen=True)
class User:
    """One evaluation subject: an id and person properties."""

    distinct_id: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Workload:
    """The flags of one size in every peer's form, and the users to evaluate them for."""

    size: int
    kinds: dict[str, str]  # flag key -> kind
    posthog_flags: list[dict[str, Any]]
    cohorts: dict[str, dict[str, Any]]
    flagsmith_context: dict[str, Any]
    growthbook_features: dict[str, Any]
    users: list[User]

    def cycle_users(self) -> Iterator[User]:
        """Users round-robin, so no engine can win by caching one user's answers."""
        return itertools.cycle(self.users)


PLAIN = (
    "targeted-in",
    "targeted-contains",
    "targeted-gt",
    "targeted-in",
    "targeted-contains",
    *["rollout"] * 5,
)


def _kind(index: int, mix: str = "project") -> str:
    slot = index % BLOCK
    if mix == "plain":
        return PLAIN[slot]
    return {
        0: "static",
        1: "static",
        2: "targeted-in",
        3: "targeted-contains",
        4: "targeted-gt",
        5: "rollout",
        6: "rollout",
        7: "multivariate",
        8: "dependency",
        9: "cohort",
    }[slot]


def make_users(count: int = 1000) -> list[User]:
    """``count`` users with varied plan, country, email domain and age."""
    return [
        User(
            distinct_id=f"user-{i}",
            properties={
                "plan": PLANS[i % 3],
                "country": COUNTRIES[i % 5],
                "email": f"user{i}@{DOMAINS[i % 7 % 3]}",
                "age": 18 + i % 50,
            },
        )
        for i in range(count)
    ]


def _person(key: str, value: Any, operator: str) -> dict[str, Any]:
    return {"key": key, "value": value, "operator": operator, "type": "person"}


def build(size: int, users: list[User] | None = None, mix: str = "project") -> Workload:
    """The workload with ``size`` flags (a multiple of ten); ``mix`` "project" or "plain" (see above)."""
    assert size % BLOCK == 0, "the mix is defined per block of ten flags"
    assert mix in ("project", "plain"), mix
    kinds = {f"flag-{i:03d}-{_kind(i, mix)}": _kind(i, mix) for i in range(size)}
    keys = list(kinds)
    cohorts: dict[str, dict[str, Any]] = {}
    posthog_flags: list[dict[str, Any]] = []
    segments: dict[str, Any] = {}
    features: dict[str, Any] = {}
    growthbook: dict[str, Any] = {}

    def segment(key: str, rule_type: str, conditions: list[dict[str, Any]]) -> None:
        segments[f"seg-{key}"] = {
            "key": f"seg-{key}",
            "name": f"seg-{key}",
            "rules": [{"type": "ALL", "rules": [{"type": rule_type, "conditions": conditions}]}],
            "overrides": [{"key": f"fo-{key}", "name": key, "enabled": True, "value": True, "priority": 0}],
        }

    for index, (key, kind) in enumerate(kinds.items()):
        block_start = index - index % BLOCK
        properties: list[dict[str, Any]] = []
        rollout = 100
        multivariate = None
        feature: dict[str, Any] = {"key": f"fk-{key}", "name": key, "enabled": False, "value": False}
        rules: list[dict[str, Any]] = []
        if kind == "static":
            feature["enabled"] = feature["value"] = True
            growthbook[key] = {"defaultValue": True}
        elif kind == "targeted-in":
            properties = [_person("plan", ["pro", "enterprise"], "exact")]
            segment(key, "ALL", [{"property": "plan", "operator": "IN", "value": "pro,enterprise"}])
            rules = [{"condition": {"plan": {"$in": ["pro", "enterprise"]}}, "force": True}]
        elif kind == "targeted-contains":
            properties = [_person("email", "acme", "icontains")]
            segment(key, "ALL", [{"property": "email", "operator": "CONTAINS", "value": "acme"}])
            rules = [{"condition": {"email": {"$regex": "acme"}}, "force": True}]
        elif kind == "targeted-gt":
            properties = [_person("age", 30, "gt")]
            segment(key, "ALL", [{"property": "age", "operator": "GREATER_THAN", "value": "30"}])
            rules = [{"condition": {"age": {"$gt": 30}}, "force": True}]
        elif kind == "rollout":
            rollout = 30
            segment(key, "ALL", [{"property": "", "operator": "PERCENTAGE_SPLIT", "value": "30"}])
            rules = [{"force": True, "coverage": 0.3, "hashAttribute": "id"}]
        elif kind == "multivariate":
            multivariate = {
                "variants": [{"key": v, "name": v, "rollout_percentage": pct} for v, pct in VARIANTS]
            }
            feature["enabled"] = True
            feature["variants"] = [
                {"key": v, "value": v, "weight": pct, "priority": n} for n, (v, pct) in enumerate(VARIANTS)
            ]
            rules = [
                {
                    "key": key,
                    "variations": [v for v, _ in VARIANTS],
                    "weights": [pct / 100 for _, pct in VARIANTS],
                    "hashAttribute": "id",
                }
            ]
        elif kind == "dependency":
            target = keys[block_start + 2]
            # dependency_chain: what PostHog's local-evaluation endpoint adds for SDKs (flagd ignores it).
            properties = [
                {
                    "key": target,
                    "type": "flag",
                    "value": True,
                    "operator": "flag_evaluates_to",
                    "dependency_chain": [target],
                }
            ]
            segment(
                key, "ALL", [{"property": f"$.flags.{target}.enabled", "operator": "EQUAL", "value": "true"}]
            )
            rules = [{"parentConditions": [{"id": target, "condition": {"value": True}}], "force": True}]
        else:  # cohort
            cohort_id = str(1000 + index)
            cohorts[cohort_id] = {
                "type": "OR",
                "values": [
                    {"type": "OR", "values": [_person("country", ["DE", "FR"], "exact")]},
                    {"type": "OR", "values": [_person("email", "corp", "icontains")]},
                ],
            }
            properties = [{"key": "id", "value": int(cohort_id), "type": "cohort", "operator": "in"}]
            segment(
                key,
                "ANY",
                [
                    {"property": "country", "operator": "IN", "value": "DE,FR"},
                    {"property": "email", "operator": "CONTAINS", "value": "corp"},
                ],
            )
            rules = [
                {
                    "condition": {"$or": [{"country": {"$in": ["DE", "FR"]}}, {"email": {"$regex": "corp"}}]},
                    "force": True,
                }
            ]
        filters: dict[str, Any] = {"groups": [{"properties": properties, "rollout_percentage": rollout}]}
        if multivariate is not None:
            filters["multivariate"] = multivariate
        posthog_flags.append(
            {
                "id": index + 1,
                "team_id": 1,
                "key": key,
                "name": key,
                "active": True,
                "deleted": False,
                "filters": filters,
                "version": 1,
                "ensure_experience_continuity": False,
            }
        )
        features[key] = feature
        if kind != "static":
            growthbook[key] = {"defaultValue": False, "rules": rules}
    return Workload(
        size=size,
        kinds=kinds,
        posthog_flags=posthog_flags,
        cohorts=cohorts,
        flagsmith_context={
            "environment": {"key": "bench-env", "name": "bench"},
            "segments": segments,
            "features": features,
        },
        growthbook_features=growthbook,
        users=users if users is not None else make_users(),
    )
