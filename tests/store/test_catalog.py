"""The node catalog: local-evaluation definitions that PostHog SDKs can evaluate, and atomic installs."""

from __future__ import annotations

import copy
from typing import Any

from posthog.feature_flags import match_feature_flag_properties

from evaluator import Context
from store.catalog import Catalog, ProjectData, build_project_state, sdk_definitions


def flag(fid: int, key: str, *deps: Any, rollout: int = 100) -> dict[str, Any]:
    props = [{"key": d, "type": "flag", "value": True, "operator": "flag_evaluates_to"} for d in deps]
    return {
        "id": fid,
        "key": key,
        "name": key,
        "active": True,
        "deleted": False,
        "version": 1,
        "bucketing": "posthog",
        "filters": {"groups": [{"properties": props, "rollout_percentage": rollout}]},
    }


def chains(defs: list[dict[str, Any]]) -> dict[str, list[tuple[str, list[str]]]]:
    return {
        f["key"]: [
            (p["key"], p["dependency_chain"])
            for g in f["filters"]["groups"]
            for p in g["properties"]
            if p.get("type") == "flag"
        ]
        for f in defs
    }


def test_dependencies_named_by_id_become_keys_with_chains_in_evaluation_order() -> None:
    """A dependency given by flag id is served by key, with every flag it needs listed before it."""
    live = [flag(1, "base"), flag(2, "middle", 1), flag(3, "top", "middle", "base")]
    served = chains(sdk_definitions(live, frozenset({"base", "middle", "top"})))
    assert served["base"] == []
    assert served["middle"] == [("base", ["base"])]
    assert served["top"] == [("middle", ["base", "middle"]), ("base", ["base"])]


def test_cycles_and_flags_behind_them_get_empty_chains_without_raising() -> None:
    """A cycle (and anything depending on it) gets an empty chain, which SDKs treat as unresolvable."""
    live = [flag(1, "a", "b"), flag(2, "b", "a"), flag(3, "c", "a"), flag(4, "d")]
    served = chains(sdk_definitions(live, frozenset({"a", "b", "c", "d"})))
    assert served["a"] == [("b", [])]
    assert served["c"] == [("a", [])]
    assert served["d"] == []


def test_stored_definitions_are_not_modified() -> None:
    """Rewriting filters for SDKs works on copies: the definitions the node compiled stay as stored."""
    live = [flag(1, "base"), flag(2, "child", 1)]
    before = copy.deepcopy(live)
    sdk_definitions(live, frozenset({"base", "child"}))
    assert live == before


def test_only_requested_flags_are_served() -> None:
    """Flags outside the reproducible set are left out of the local-evaluation definitions."""
    live = [flag(1, "base"), flag(2, "other")]
    assert [f["key"] for f in sdk_definitions(live, frozenset({"base"}))] == ["base"]


def test_posthog_sdk_evaluates_served_dependencies_like_flagd() -> None:
    """The SDK's own local evaluator, given the served definitions, agrees with flagd's answer."""
    live = [flag(1, "half", rollout=50), flag(2, "child", 1)]
    state = build_project_state(
        ProjectData(
            project_id=1,
            api_token="phc_x",
            secret_token_hash="0" * 64,
            group_type_mapping={},
            version=1,
            flags=live,
            cohorts=[],
        )
    )
    served = {f["key"]: f for f in sdk_definitions(live, state.snapshot.sdk_reproducible)}
    assert set(served) == {"half", "child"}

    agree = 0
    for n in range(200):
        distinct_id = f"user-{n}"
        cache: dict[str, Any] = {}
        sdk = match_feature_flag_properties(
            served["child"],
            distinct_id,
            {"distinct_id": distinct_id},
            flags_by_key=served,
            bucketing_value=distinct_id,
            evaluation_cache=cache,
        )
        ours = state.snapshot.evaluate(Context(distinct_id=distinct_id), keys=["child"])["child"].enabled
        assert sdk == ours, distinct_id
        agree += ours
    assert 60 < agree < 140  # the dependency really splits users


def test_install_never_moves_a_project_backwards() -> None:
    """Installing an older state than the one served is refused; the newer one stays."""

    def state(version: int) -> Any:
        return build_project_state(
            ProjectData(
                project_id=7,
                api_token="phc_y",
                secret_token_hash="0" * 64,
                group_type_mapping={},
                version=version,
                flags=[flag(1, f"v{version}")],
                cohorts=[],
            )
        )

    catalog = Catalog()
    assert catalog.install(state(5))
    assert not catalog.install(state(4))
    current = catalog.by_token("phc_y")
    assert current is not None
    assert current.version == 5
    assert "v5" in current.snapshot
