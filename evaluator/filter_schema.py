"""Which keys a flag's ``filters`` may hold, level by level: PostHog's schema, nothing else.

A misspelt key is not harmless: ``{"rollout_percentag": 5}`` in a condition leaves the rollout at its
default, 100 %, so the flag goes to everyone. ``filter_key_issues`` names every key PostHog's flag model does
not have, with its path, so an editor gets a 400 instead. The keys accepted are PostHog's (its
``FeatureFlag`` serializer and the filters its SDKs and its Rust flag service read), including the optional
ones: ``super_groups``, ``holdout_groups`` (legacy holdouts), ``holdout``, ``feature_enrollment``,
``aggregation_group_type_index`` (flag and condition), a condition's ``description``/``sort_key``/
``users_affected`` (UI annotations) and a property's ``label``/``cohort_name``/``group_key_names``/
``dependency_chain``; plus flagd's ``early_exit`` and ``bucketing_identifier``. The evaluator itself stays
lenient (it ignores unknown keys), so definitions stored before this check still load.

Also shape rules an editor must hear about that the compile step tolerates: ``multivariate.variants`` must
not be empty, and a payload key must be ``"true"`` or a variant key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from evaluator.model import Issue

FILTER_KEYS: Final = frozenset(
    {
        "groups",
        "multivariate",
        "aggregation_group_type_index",
        "payloads",
        "super_groups",
        "feature_enrollment",
        "holdout",
        "holdout_groups",
        "early_exit",
        "bucketing_identifier",
    }
)
CONDITION_KEYS: Final = frozenset(
    {
        "properties",
        "rollout_percentage",
        "variant",
        "aggregation_group_type_index",
        "description",
        "sort_key",
        "users_affected",
    }
)
PROPERTY_KEYS: Final = frozenset(
    {
        "key",
        "value",
        "operator",
        "type",
        "negation",
        "group_type_index",
        "label",
        "cohort_name",
        "group_key_names",
        "dependency_chain",
    }
)
MULTIVARIATE_KEYS: Final = frozenset({"variants"})
VARIANT_KEYS: Final = frozenset({"key", "name", "rollout_percentage"})
HOLDOUT_KEYS: Final = frozenset({"id", "exclusion_percentage"})


def _unknown(raw: Mapping[str, Any], allowed: frozenset[str], path: str, issues: list[Issue]) -> None:
    for name in raw:
        if name not in allowed:
            where = f"{path}.{name}" if path else str(name)
            issues.append(Issue(where, f"unknown field (allowed: {', '.join(sorted(allowed))})"))


def _conditions(raw: Any, path: str, issues: list[Issue]) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        issues.append(Issue(path, "must be a list of conditions"))
        return
    for index, condition in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(condition, Mapping):
            continue  # the compile step reports it
        _unknown(condition, CONDITION_KEYS, where, issues)
        properties = condition.get("properties")
        for number, prop in enumerate(properties if isinstance(properties, list) else ()):
            if isinstance(prop, Mapping):
                _unknown(prop, PROPERTY_KEYS, f"{where}.properties[{number}]", issues)


def _variant_keys(raw: Any, issues: list[Issue]) -> set[str]:
    if not isinstance(raw, Mapping):
        return set()
    _unknown(raw, MULTIVARIATE_KEYS, "filters.multivariate", issues)
    variants = raw.get("variants")
    if variants == []:
        message = "must list at least one variant (or set multivariate to null)"
        issues.append(Issue("filters.multivariate.variants", message))
    names: set[str] = set()
    for index, variant in enumerate(variants if isinstance(variants, list) else ()):
        if isinstance(variant, Mapping):
            _unknown(variant, VARIANT_KEYS, f"filters.multivariate.variants[{index}]", issues)
            if isinstance(variant.get("key"), str):
                names.add(variant["key"])
    return names


def filter_key_issues(filters: Mapping[str, Any]) -> list[Issue]:
    """Every key in ``filters`` that PostHog's flag filters do not have, each with its path
    (``filters.groups[0].rollout_percentag``); also empty variant lists and payloads for no variant."""
    issues: list[Issue] = []
    _unknown(filters, FILTER_KEYS, "filters", issues)
    for name in ("groups", "super_groups", "holdout_groups"):
        _conditions(filters.get(name), f"filters.{name}", issues)
    variants = _variant_keys(filters.get("multivariate"), issues)
    holdout = filters.get("holdout")
    if isinstance(holdout, Mapping):
        _unknown(holdout, HOLDOUT_KEYS, "filters.holdout", issues)
    payloads = filters.get("payloads")
    if isinstance(payloads, Mapping):
        message = 'a payload key must be "true" or one of the variant keys'
        issues.extend(
            Issue(f"filters.payloads.{name}", message)
            for name in payloads
            if name != "true" and name not in variants
        )
    return issues


__all__ = ["filter_key_issues"]
