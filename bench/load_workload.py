"""The 50-flag workload for the HTTP load test, in flagd's (PostHog) form and Unleash's form.

The mix is what a product team runs: static kill switches, property-targeted flags, percentage rollouts,
multivariate experiments and targeted rollouts. Both forms express the same rules, so flagd and
``@unleash/proxy`` do the same work per request. (flagd's form also has a flag dependency, which Unleash's
proxy cannot express; it only makes flagd's side of the comparison harder.)
"""

from __future__ import annotations

import random
from typing import Any

PLANS = ("free", "pro", "enterprise")


def _kind(i: int) -> str:
    # 10 static, 15 targeted, 10 rollout, 10 multivariate, 5 targeted rollout.
    if i < 10:
        return "static"
    if i < 25:
        return "targeted"
    if i < 35:
        return "rollout"
    if i < 45:
        return "multivariate"
    return "targeted_rollout"


def posthog_flags(n: int = 50) -> list[dict[str, Any]]:
    """``n`` flags in PostHog filter JSON (as the admin API takes them)."""
    flags: list[dict[str, Any]] = []
    for i in range(n):
        key = f"flag-{i:02d}"
        kind = _kind(i % 50)
        filters: dict[str, Any]
        if kind == "static":
            filters = {"groups": [{"properties": [], "rollout_percentage": 100}]}
        elif kind == "targeted":
            prop = [
                {"key": "plan", "value": ["pro", "enterprise"], "operator": "exact", "type": "person"},
                {"key": "email", "value": "@example.com", "operator": "icontains", "type": "person"},
                {"key": "age", "value": 30, "operator": "gt", "type": "person"},
            ][i % 3]
            filters = {"groups": [{"properties": [prop], "rollout_percentage": 100}]}
        elif kind == "rollout":
            filters = {"groups": [{"properties": [], "rollout_percentage": 10 + 8 * (i % 10)}]}
        elif kind == "multivariate":
            filters = {
                "groups": [{"properties": [], "rollout_percentage": 100}],
                "multivariate": {
                    "variants": [
                        {"key": "control", "rollout_percentage": 50},
                        {"key": "test", "rollout_percentage": 50},
                    ]
                },
                "payloads": {"test": '{"color": "blue"}'},
            }
        else:
            filters = {
                "groups": [
                    {
                        "properties": [
                            {"key": "plan", "value": "enterprise", "operator": "exact", "type": "person"}
                        ],
                        "rollout_percentage": 50,
                    }
                ]
            }
        flags.append({"key": key, "name": key, "active": True, "filters": filters})
    # One dependency: the last flag follows the first.
    flags[-1]["filters"]["groups"][0]["properties"] = [
        {"key": "flag-00", "type": "flag", "operator": "flag_evaluates_to", "value": True}
    ]
    return flags


def unleash_features(n: int = 50) -> dict[str, Any]:
    """The same ``n`` flags in Unleash's client API form (``/api/client/features``)."""
    features: list[dict[str, Any]] = []
    for i in range(n):
        name = f"flag-{i:02d}"
        kind = _kind(i % 50)
        strategy: dict[str, Any] = {"name": "default", "parameters": {}, "constraints": []}
        variants: list[dict[str, Any]] = []
        if kind == "targeted":
            strategy["constraints"] = [
                [
                    {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]},
                    {
                        "contextName": "email",
                        "operator": "STR_CONTAINS",
                        "values": ["@example.com"],
                        "caseInsensitive": True,
                    },
                    {"contextName": "age", "operator": "NUM_GT", "value": "30"},
                ][i % 3]
            ]
        elif kind in ("rollout", "targeted_rollout"):
            pct = 10 + 8 * (i % 10) if kind == "rollout" else 50
            strategy = {
                "name": "flexibleRollout",
                "parameters": {"rollout": str(pct), "stickiness": "userId", "groupId": name},
                "constraints": [],
            }
            if kind == "targeted_rollout":
                strategy["constraints"] = [
                    {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}
                ]
        elif kind == "multivariate":
            variants = [
                {"name": "control", "weight": 500, "stickiness": "userId", "weightType": "variable"},
                {
                    "name": "test",
                    "weight": 500,
                    "stickiness": "userId",
                    "weightType": "variable",
                    "payload": {"type": "json", "value": '{"color": "blue"}'},
                },
            ]
        features.append(
            {
                "name": name,
                "enabled": True,
                "strategies": [strategy],
                "variants": variants,
                "type": "release",
                "project": "default",
                "stale": False,
            }
        )
    return {"version": 2, "features": features}


def users(count: int = 1000, seed: int = 7) -> list[dict[str, Any]]:
    """Varied users: distinct ids and person properties."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        out.append(
            {
                "distinct_id": f"user-{i}-{rng.randrange(10**9)}",
                "plan": rng.choice(PLANS),
                "email": f"u{i}@{rng.choice(['example.com', 'corp.io', 'mail.net'])}",
                "age": rng.randrange(15, 70),
            }
        )
    return out
