"""README promises of the SDK endpoints, through the real app and a real compiled catalog: flags using
operators PostHog SDKs lack stay out of local evaluation; after an edit, a poll with the old ETag gets the new
body (not a 304); a pathological regex on a 10,000-character value still answers."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from store.catalog import Catalog, ProjectData, build_project_state
from tests.flagd.sdk_support import SECRET_A, TOKEN_A, client, flag, make_app, project_data


def _data(flags: list[dict[str, Any]], version: int = 8) -> ProjectData:
    return msgspec.structs.replace(project_data(1, TOKEN_A, SECRET_A, flags), version=version)


def _catalog(flags: list[dict[str, Any]]) -> Catalog:
    catalog = Catalog()
    catalog.replace_all({1: build_project_state(_data(flags))})
    return catalog


def _on(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"properties": [{"type": "person", **prop}], "rollout_percentage": 100}]


AUTH = {"Authorization": f"Bearer {SECRET_A}"}
DEFINITIONS = f"/api/feature_flag/local_evaluation?token={TOKEN_A}"


async def test_server_only_operators_are_kept_out_of_local_evaluation() -> None:
    """Flags filtering with is_date_exact, between or not_between are not in the definitions SDKs poll, yet
    /flags evaluates them; a flag with is_date_after is offered for local evaluation."""
    flags = [
        flag(1, "exact-day", _on({"key": "d", "operator": "is_date_exact", "value": "2024-01-02"})),
        flag(2, "in-range", _on({"key": "n", "operator": "between", "value": [1, 3]})),
        flag(3, "out-of-range", _on({"key": "n", "operator": "not_between", "value": [1, 3]})),
        flag(4, "after-day", _on({"key": "d", "operator": "is_date_after", "value": "2024-01-01"})),
    ]
    async with client(make_app(_catalog(flags))) as http:
        definitions = await http.get(DEFINITIONS, headers=AUTH)
        person = {"d": "2024-01-02T10:00:00Z", "n": 2}
        body = {"api_key": TOKEN_A, "distinct_id": "u", "person_properties": person}
        remote = await http.post("/flags?v=2", content=json.dumps(body))
    assert definitions.status_code == 200
    assert {f["key"] for f in definitions.json()["flags"]} == {"after-day"}
    answers = {key: record["enabled"] for key, record in remote.json()["flags"].items()}
    assert answers == {"exact-day": True, "in-range": True, "out-of-range": False, "after-day": True}


async def test_an_edit_answers_a_poll_with_the_old_etag_with_the_new_body() -> None:
    """A poll carrying the ETag from before an edit gets 200 and the edited definitions, then 304 again."""
    before = [flag(1, "rollout", _on({"key": "plan", "value": "pro"}))]
    after = [flag(1, "rollout", _on({"key": "plan", "value": "enterprise"}))]
    catalog = _catalog(before)
    async with client(make_app(catalog)) as http:
        first = await http.get(DEFINITIONS, headers=AUTH)
        old_etag = first.headers["etag"]
        assert (await http.get(DEFINITIONS, headers={**AUTH, "If-None-Match": old_etag})).status_code == 304
        catalog.replace_all({1: build_project_state(_data(after, version=9))})
        polled = await http.get(DEFINITIONS, headers={**AUTH, "If-None-Match": old_etag})
        assert polled.status_code == 200
        assert polled.headers["etag"] != old_etag
        (edited,) = polled.json()["flags"]
        assert edited["filters"]["groups"][0]["properties"][0]["value"] == "enterprise"
        again = await http.get(DEFINITIONS, headers={**AUTH, "If-None-Match": polled.headers["etag"]})
        assert again.status_code == 304


async def test_a_pathological_regex_on_a_long_value_answers() -> None:
    """A backtracking-killer pattern against a 10,000-character value is evaluated (RE2) and answered."""
    flags = [
        flag(1, "nested", _on({"key": "s", "operator": "regex", "value": "^(a+)+$"})),
        flag(2, "not-nested", _on({"key": "s", "operator": "not_regex", "value": "^(a|aa)+$"})),
    ]
    body = {"api_key": TOKEN_A, "distinct_id": "u", "person_properties": {"s": "a" * 9_999 + "!"}}
    async with client(make_app(_catalog(flags))) as http:
        response = await http.post("/flags?v=2", content=json.dumps(body))
    assert response.status_code == 200
    flags_answer = response.json()["flags"]
    assert (flags_answer["nested"]["enabled"], flags_answer["not-nested"]["enabled"]) == (False, True)
