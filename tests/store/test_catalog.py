"""The node catalog: local-evaluation definitions that PostHog SDKs can evaluate, and atomic installs."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from posthog.feature_flags import match_feature_flag_properties

from evaluator import Context, compile_flags
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


def served(live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sdk_definitions(live, compile_flags(live))


def test_dependencies_named_by_id_become_keys_with_chains_in_evaluation_order() -> None:
    """A dependency given by flag id is served by key, with every flag it needs listed before it."""
    live = [flag(1, "base"), flag(2, "middle", 1), flag(3, "top", "middle", "base")]
    chained = chains(served(live))
    assert chained["base"] == []
    assert chained["middle"] == [("base", ["base"])]
    assert chained["top"] == [("middle", ["base", "middle"]), ("base", ["base"])]


def test_stored_definitions_are_not_modified() -> None:
    """Rewriting filters for SDKs works on copies: the definitions the node compiled stay as stored."""
    live = [flag(1, "base"), flag(2, "child", 1)]
    before = copy.deepcopy(live)
    served(live)
    assert live == before


def test_only_sdk_reproducible_flags_are_served() -> None:
    """Flags an SDK cannot reproduce (murmur3 bucketing, or on a dependency cycle) are left out."""
    live = [
        flag(1, "base"),
        {**flag(2, "server-side"), "bucketing": "murmur3"},
        flag(3, "a", "b"),
        flag(4, "b", "a"),
    ]
    assert [f["key"] for f in served(live)] == ["base"]


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
    by_key = {f["key"]: f for f in sdk_definitions(live, state.snapshot)}
    assert set(by_key) == {"half", "child"}

    agree = 0
    for n in range(200):
        distinct_id = f"user-{n}"
        cache: dict[str, Any] = {}
        sdk = match_feature_flag_properties(
            by_key["child"],
            distinct_id,
            {"distinct_id": distinct_id},
            flags_by_key=by_key,
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


def test_behavioural_cohorts_never_reach_sdks() -> None:
    """Flags using a behavioural cohort (directly, nested or through a dependency) and the cohort itself are
    left out of the local-evaluation body, so SDKs ask the server; property cohorts are still served."""
    behavioural = {
        "type": "behavioral",
        "key": "$pageview",
        "value": "performed_event",
        "event_type": "events",
        "time_value": 5,
        "time_interval": "minute",
    }
    pro = {"key": "plan", "value": "pro", "type": "person"}
    cohorts = [
        {"id": 10, "filters": {"properties": {"type": "AND", "values": [behavioural]}}},
        {
            "id": 11,
            "filters": {
                "properties": {"type": "OR", "values": [{"type": "cohort", "key": "id", "value": 10}, pro]}
            },
        },
        {"id": 12, "filters": {"properties": {"type": "AND", "values": [pro]}}},
    ]

    def on(fid: int, key: str, cohort: int) -> dict[str, Any]:
        made = flag(fid, key)
        made["filters"]["groups"][0]["properties"] = [{"key": "id", "type": "cohort", "value": cohort}]
        return made

    live = [on(1, "direct", 10), on(2, "nested", 11), on(3, "property", 12), flag(4, "dependent", "direct")]
    state = build_project_state(
        ProjectData(
            project_id=1,
            api_token="phc_b",
            secret_token_hash="0" * 64,
            group_type_mapping={},
            version=1,
            flags=live,
            cohorts=cohorts,
        )
    )
    body = msgspec.json.decode(state.local_eval_body)
    assert [f["key"] for f in body["flags"]] == ["property"]
    assert set(body["cohorts"]) == {"12"}
    assert b"behavioral" not in state.local_eval_body
