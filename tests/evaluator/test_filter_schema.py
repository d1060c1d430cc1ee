"""Unknown keys at every level of a flag's filters are named with their path (PostHog's schema decides)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.filter_schema import (
    CONDITION_KEYS,
    FILTER_KEYS,
    HOLDOUT_KEYS,
    PROPERTY_KEYS,
    VARIANT_KEYS,
    filter_key_issues,
)
from tests.evaluator.strategies import flags

FULL: dict[str, Any] = {
    "groups": [
        {
            "properties": [
                {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"], "negation": False}
            ],
            "rollout_percentage": 50,
            "variant": None,
            "aggregation_group_type_index": None,
            "description": "paying customers",
            "sort_key": "6f1c",
            "users_affected": 10,
        }
    ],
    "super_groups": [
        {
            "properties": [
                {"key": "$feature_enrollment/x", "type": "person", "operator": "exact", "value": ["true"]}
            ],
            "rollout_percentage": 100,
        }
    ],
    "holdout_groups": [{"properties": [], "rollout_percentage": 10, "variant": "holdout-1"}],
    "holdout": {"id": 1, "exclusion_percentage": 10},
    "multivariate": {"variants": [{"key": "a", "name": "A", "rollout_percentage": 100}]},
    "payloads": {"a": '{"x": 1}', "true": "1"},
    "aggregation_group_type_index": None,
    "feature_enrollment": False,
}

# Where a typo can hide: (the container to add it to, the path of that container).
LEVELS = [
    (lambda f: f, "filters"),
    (lambda f: f["groups"][0], "filters.groups[0]"),
    (lambda f: f["groups"][0]["properties"][0], "filters.groups[0].properties[0]"),
    (lambda f: f["super_groups"][0], "filters.super_groups[0]"),
    (lambda f: f["holdout_groups"][0], "filters.holdout_groups[0]"),
    (lambda f: f["multivariate"], "filters.multivariate"),
    (lambda f: f["multivariate"]["variants"][0], "filters.multivariate.variants[0]"),
    (lambda f: f["holdout"], "filters.holdout"),
]
KNOWN = FILTER_KEYS | CONDITION_KEYS | PROPERTY_KEYS | VARIANT_KEYS | HOLDOUT_KEYS | {"variants"}


def test_every_posthog_key_is_accepted() -> None:
    """A definition using every optional key PostHog has at every level has no issue."""
    assert filter_key_issues(FULL) == []


@pytest.mark.parametrize("typo", ["rollout_percentag", "valu", "operater", "varient", "Properties"])
@pytest.mark.parametrize(("container", "path"), LEVELS, ids=[path for _, path in LEVELS])
def test_a_typo_at_any_level_is_named_with_its_path(container: Any, path: str, typo: str) -> None:
    """A misspelt key anywhere in the filters is reported at exactly its path."""
    filters = copy.deepcopy(FULL)
    container(filters)[typo] = 5
    assert [i.path for i in filter_key_issues(filters)] == [f"{path}.{typo}"]


@settings(max_examples=60, deadline=None)
@given(
    definition=flags("f"),
    level=st.sampled_from(LEVELS),
    name=st.text(min_size=1, max_size=12).filter(lambda n: n not in KNOWN),
)
def test_any_unknown_key_in_a_valid_definition_is_found(
    definition: dict[str, Any], level: Any, name: str
) -> None:
    """Any key PostHog does not know, added at any level of well-formed filters, is an issue at its path."""
    filters = json.loads(json.dumps({**FULL, **definition["filters"]}))  # no shared sub-objects
    filters.setdefault("multivariate", FULL["multivariate"])
    filters["groups"] = filters["groups"] or copy.deepcopy(FULL["groups"])
    if not filters["groups"][0]["properties"]:
        filters["groups"][0]["properties"] = copy.deepcopy(FULL["groups"][0]["properties"])
    container, path = level
    before = {i.path for i in filter_key_issues(filters)}
    container(filters)[name] = None
    after = {i.path for i in filter_key_issues(filters)}
    assert after - before == {f"{path}.{name}"}


def test_empty_variants_and_payloads_for_no_variant_are_issues() -> None:
    """`"variants": []` and a payload keyed by a variant that does not exist are reported."""
    issues = filter_key_issues({"multivariate": {"variants": []}, "payloads": {"ghost": "1", "true": "2"}})
    assert [i.path for i in issues] == ["filters.multivariate.variants", "filters.payloads.ghost"]
