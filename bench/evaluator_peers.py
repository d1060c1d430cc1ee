"""Each engine under test as ``prepare(workload) -> evaluate(user) -> {flag key: True | False | variant}``.

``prepare`` does the once-per-flag-set work (compiling, building indexes), outside the timed region;
``evaluate`` is what a server does per request: build the engine's context for one user, evaluate every
flag.
Each adapter uses the cheapest public in-process path its library offers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mmh3

from bench.evaluator_workload import User, Workload

Result = dict[str, Any]
Evaluate = Callable[[User], Result]


def prepare_flagd(workload: Workload, bucketing: str | None = None) -> Evaluate:
    """flagd's engine: flags compiled once into a snapshot; per user one ``Context`` and ``evaluate``."""
    from evaluator import Context, compile_flags

    flags = workload.posthog_flags
    if bucketing is not None:
        flags = [{**flag, "bucketing": bucketing} for flag in flags]
    snapshot = compile_flags(flags, cohorts=workload.cohorts)

    def evaluate(user: User) -> Result:
        decisions = snapshot.evaluate(
            Context(distinct_id=user.distinct_id, person_properties=user.properties)
        )
        return {key: d.value for key, d in decisions.items()}

    return evaluate


def prepare_flagsmith(workload: Workload) -> Evaluate:
    """flagsmith-flag-engine: ``get_evaluation_result`` over a context with the identity and its traits."""
    from flag_engine.engine import get_evaluation_result

    base = workload.flagsmith_context
    multivariate = frozenset(k for k, f in base["features"].items() if "variants" in f)

    def evaluate(user: User) -> Result:
        context = {**base, "identity": {"identifier": user.distinct_id, "traits": user.properties}}
        flags = get_evaluation_result(context)["flags"]  # type: ignore[arg-type]
        return {k: f["value"] if k in multivariate else f["enabled"] for k, f in flags.items()}

    return evaluate


def prepare_growthbook(workload: Workload) -> Evaluate:
    """GrowthBook's Python SDK, local evaluation: one instance with the features, attributes set per user."""
    from growthbook import GrowthBook

    keys = list(workload.growthbook_features)
    gb = GrowthBook(features=workload.growthbook_features)

    def evaluate(user: User) -> Result:
        gb.set_attributes({"id": user.distinct_id, **user.properties})
        return {key: gb.eval_feature(key).value for key in keys}

    return evaluate


def prepare_posthog(workload: Workload) -> Evaluate:
    """posthog's local evaluator: ``match_feature_flag_properties`` per flag, one dependency cache a user."""
    from posthog.feature_flags import InconclusiveMatchError, match_feature_flag_properties

    flags = workload.posthog_flags
    flags_by_key = {flag["key"]: flag for flag in flags}
    cohorts = workload.cohorts

    def evaluate(user: User) -> Result:
        cache: dict[str, Any] = {}
        result: Result = {}
        for flag in flags:
            try:
                result[flag["key"]] = match_feature_flag_properties(
                    flag,
                    user.distinct_id,
                    user.properties,
                    cohort_properties=cohorts,
                    flags_by_key=flags_by_key,
                    evaluation_cache=cache,
                    bucketing_value=user.distinct_id,
                )
            except InconclusiveMatchError:
                result[flag["key"]] = None
        return result

    return evaluate


def prepare_floor(workload: Workload) -> Evaluate:
    """The floor: a bare loop of dict look-ups and one mmh3 per hashed flag, no engine at all."""
    plans = frozenset({"pro", "enterprise"})
    countries = frozenset({"DE", "FR"})
    variants = (("control", 50), ("test-a", 80), ("test-b", 100))
    specs = list(workload.kinds.items())

    def evaluate(user: User) -> Result:
        props = user.properties
        uid = user.distinct_id
        result: Result = {}
        in_plan = False
        for key, kind in specs:
            if kind == "static":
                value: Any = True
            elif kind == "targeted-in":
                value = in_plan = props.get("plan") in plans
            elif kind == "targeted-contains":
                value = "acme" in str(props.get("email", "")).lower()
            elif kind == "targeted-gt":
                value = props.get("age", 0) > 30
            elif kind == "rollout":
                value = mmh3.hash(key + uid, signed=False) % 100 < 30
            elif kind == "multivariate":
                bucket = mmh3.hash(key + uid, signed=False) % 100
                value = next(v for v, upper in variants if bucket < upper)
            elif kind == "dependency":
                value = in_plan
            else:
                value = props.get("country") in countries or "corp" in str(props.get("email", "")).lower()
            result[key] = value
        return result

    return evaluate


PEERS: dict[str, Callable[[Workload], Evaluate]] = {
    "flagd": prepare_flagd,
    "flagd-posthog-bucketing": lambda w: prepare_flagd(w, bucketing="posthog"),
    "flagsmith-flag-engine": prepare_flagsmith,
    "growthbook": prepare_growthbook,
    "posthog-local": prepare_posthog,
    "floor-dict-mmh3": prepare_floor,
}
