"""Admin API for feature flags, in process on an embedded store: CRUD, paging, versions, validation."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.flagd.admin_client import Admin, admin_settings, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


async def _count(admin: Admin) -> int:
    count: int = (await admin.client.get(admin.flags_url)).json()["count"]
    return count


async def _audit_count(admin: Admin) -> int:
    response = await admin.client.get(f"/api/projects/{admin.project_id}/audit_log/")
    count: int = response.json()["count"]
    return count


async def test_create_get_update_delete_round_trip(admin: Admin) -> None:
    """A flag can be created, read back, partially updated and soft-deleted, each step bumping the version."""
    created = await admin.create_flag("checkout", name="Checkout", bucketing="posthog")
    assert created["key"] == "checkout"
    assert created["version"] == 1
    assert created["bucketing"] == "posthog"
    url = f"{admin.flags_url}{created['id']}/"
    fetched = await admin.client.get(url)
    assert fetched.json()["name"] == "Checkout"
    assert fetched.headers["etag"] == '"1"'
    patched = await admin.client.patch(url, json={"name": "New checkout", "version": 1})
    assert patched.status_code == 200
    assert patched.json()["name"] == "New checkout"
    assert patched.json()["filters"] == created["filters"]  # untouched fields stay
    assert patched.json()["version"] == 2
    deleted = await admin.client.request("DELETE", url, headers={"If-Match": '"2"'})
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert await _count(admin) == 0


async def test_patch_deleted_true_soft_deletes_like_posthog(admin: Admin) -> None:
    """PATCH {"deleted": true} removes the flag from listings and from /flags answers."""
    flag = await admin.create_flag("old-banner")
    assert "old-banner" in await admin.evaluate()
    response = await admin.client.patch(f"{admin.flags_url}{flag['id']}/", json={"deleted": True})
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert "old-banner" not in await admin.evaluate()


async def test_edits_reach_the_next_flags_answer(admin: Admin) -> None:
    """An admin edit changes what the SDK endpoint answers on the very next request (embedded mode)."""
    flag = await admin.create_flag("beta")
    assert (await admin.evaluate())["beta"]["enabled"] is True
    await admin.client.patch(f"{admin.flags_url}{flag['id']}/", json={"active": False})
    assert (await admin.evaluate())["beta"]["enabled"] is False


async def test_search_matches_key_or_name(admin: Admin) -> None:
    """search filters by key or name, case-insensitively, and count reflects the filter."""
    await admin.create_flag("checkout-v2", name="Payment flow")
    await admin.create_flag("search-box", name="New SEARCH")
    await admin.create_flag("pricing", name="Pricing PAYMENT page")
    found = (await admin.client.get(admin.flags_url, params={"search": "payment"})).json()
    assert sorted(f["key"] for f in found["results"]) == ["checkout-v2", "pricing"]
    assert found["count"] == 2


@pytest.mark.parametrize(
    ("param", "value"), [("limit", "0"), ("limit", "abc"), ("offset", "-1"), ("limit", "5000")]
)
async def test_bad_paging_parameters_are_400_naming_the_parameter(
    admin: Admin, param: str, value: str
) -> None:
    """An out-of-range or non-numeric limit/offset is rejected with attr naming it."""
    response = await admin.client.get(admin.flags_url, params={param: value})
    assert response.status_code == 400
    assert response.json()["attr"] == param


async def test_stale_version_is_409_with_current_version_and_nothing_changes(admin: Admin) -> None:
    """PATCH or DELETE with an old version (body or If-Match) is a 409 carrying the current version."""
    flag = await admin.create_flag("race")
    url = f"{admin.flags_url}{flag['id']}/"
    assert (await admin.client.patch(url, json={"name": "first", "version": 1})).status_code == 200
    stale = await admin.client.patch(url, json={"name": "second", "version": 1})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    stale_header = await admin.client.patch(url, json={"name": "third"}, headers={"If-Match": '"1"'})
    assert stale_header.status_code == 409
    stale_delete = await admin.client.request("DELETE", url, json={"version": 1})
    assert stale_delete.status_code == 409
    current = (await admin.client.get(url)).json()
    assert current["name"] == "first"
    assert current["version"] == 2
    assert current["deleted"] is False


async def test_version_in_body_and_if_match_must_agree(admin: Admin) -> None:
    """Two different expected versions in one request are a 400, not a guess."""
    flag = await admin.create_flag("twice")
    response = await admin.client.patch(
        f"{admin.flags_url}{flag['id']}/", json={"name": "x", "version": 1}, headers={"If-Match": '"2"'}
    )
    assert response.status_code == 400
    assert response.json()["attr"] == "version"


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown operator",
        {
            "groups": [
                {"properties": [{"key": "plan", "type": "person", "operator": "resembles", "value": "x"}]}
            ]
        },
        "filters.groups[0].properties[0].operator",
    ),
    (
        "rollout over 100",
        {"groups": [{"properties": [], "rollout_percentage": 150}]},
        "filters.groups[0].rollout_percentage",
    ),
    (
        "variants summing to 90",
        {
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {
                "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 40}]
            },
        },
        "filters.multivariate.variants",
    ),
    (
        "invalid regex",
        {
            "groups": [
                {
                    "properties": [
                        {"key": "email", "type": "person", "operator": "regex", "value": "(unclosed"}
                    ]
                }
            ]
        },
        "filters.groups[0].properties[0].value",
    ),
]


@pytest.mark.parametrize(("case", "filters", "path"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_flag_is_400_with_field_path_and_nothing_written(
    admin: Admin, case: str, filters: dict[str, Any], path: str
) -> None:
    """Each validation error names its field path; no flag, audit entry or served flag appears."""
    audit_before = await _audit_count(admin)
    response = await admin.client.post(admin.flags_url, json={"key": "bad", "filters": filters})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "validation_error"
    attrs = [e["attr"] for e in body["errors"]]
    assert any(a == path or a.startswith(path) for a in attrs), attrs
    assert await _count(admin) == 0
    assert await _audit_count(admin) == audit_before
    assert "bad" not in await admin.evaluate()


async def test_invalid_update_changes_nothing(admin: Admin) -> None:
    """A PATCH that fails validation leaves the stored and the served flag as they were."""
    flag = await admin.create_flag("steady")
    url = f"{admin.flags_url}{flag['id']}/"
    response = await admin.client.patch(url, json={"filters": {"groups": [{"rollout_percentage": -5}]}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"].startswith("filters.groups[0]")
    current = (await admin.client.get(url)).json()
    assert current["version"] == 1
    assert current["filters"] == flag["filters"]
    assert (await admin.evaluate())["steady"]["enabled"] is True


async def test_unknown_field_and_bad_key_are_named(admin: Admin) -> None:
    """An unknown field and a malformed key are each reported by name."""
    unknown = await admin.client.post(admin.flags_url, json={"key": "ok-key", "colour": "red"})
    assert unknown.status_code == 400
    assert "colour" in [e["attr"] for e in unknown.json()["errors"]]
    bad_key = await admin.client.post(admin.flags_url, json={"key": "has spaces"})
    assert bad_key.status_code == 400
    assert "key" in [e["attr"] for e in bad_key.json()["errors"]]


async def test_duplicate_live_key_is_409(admin: Admin) -> None:
    """A second live flag with the same key is a conflict; after deleting the first, the key is free."""
    first = await admin.create_flag("unique")
    duplicate = await admin.client.post(admin.flags_url, json={"key": "unique"})
    assert duplicate.status_code == 409
    await admin.client.patch(f"{admin.flags_url}{first['id']}/", json={"deleted": True})
    again = await admin.client.post(admin.flags_url, json={"key": "unique"})
    assert again.status_code == 201


async def test_malformed_json_and_non_object_bodies_are_400(admin: Admin) -> None:
    """A body that is not JSON, or not a JSON object, is rejected before anything happens."""
    broken = await admin.client.post(
        admin.flags_url, content=b'{"key": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "parse_error"
    listed = await admin.client.post(admin.flags_url, json=["not", "an", "object"])
    assert listed.status_code == 400
    assert await _count(admin) == 0


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    """A body over FLAGD_ADMIN_MAX_BODY_BYTES is refused with 413 and nothing is written."""
    async with running_admin(admin_settings(tmp_path, admin_max_body_bytes=2048)) as admin:
        big = {"key": "big", "name": "x" * 5000}
        response = await admin.client.post(admin.flags_url, json=big)
        assert response.status_code == 413
        assert await _count(admin) == 0


async def test_unknown_flag_is_404(admin: Admin) -> None:
    """Reading, patching or deleting a flag id that does not exist is a 404."""
    assert (await admin.client.get(f"{admin.flags_url}999/")).status_code == 404
    assert (await admin.client.patch(f"{admin.flags_url}999/", json={"name": "x"})).status_code == 404
    assert (await admin.client.get(f"{admin.flags_url}abc/")).status_code == 404


async def test_activity_lists_the_flags_changes_newest_first(admin: Admin) -> None:
    """A flag's activity shows who created and changed it, with before/after, newest first."""
    flag = await admin.create_flag("tracked")
    await admin.client.patch(f"{admin.flags_url}{flag['id']}/", json={"active": False})
    other = await admin.create_flag("untracked")
    activity = (await admin.client.get(f"{admin.flags_url}{flag['id']}/activity/")).json()
    assert activity["count"] == 2
    newest, oldest = activity["results"]
    assert newest["before"]["active"] is True
    assert newest["after"]["active"] is False
    assert oldest["entity_id"] == flag["id"]
    assert all(e["entity_id"] != other["id"] for e in activity["results"])
    assert newest["actor"].startswith("key:")


async def test_explain_returns_the_evaluators_trace(admin: Admin) -> None:
    """POST explain with a context returns the trace for that flag against the served snapshot."""
    targeted = {
        "groups": [
            {"properties": [{"key": "plan", "type": "person", "value": "pro"}], "rollout_percentage": 100}
        ]
    }
    flag = await admin.create_flag("pro-only", filters=targeted)
    url = f"{admin.flags_url}{flag['id']}/explain/"
    pro = await admin.client.post(url, json={"distinct_id": "u1", "person_properties": {"plan": "pro"}})
    free = await admin.client.post(url, json={"distinct_id": "u1", "person_properties": {"plan": "free"}})
    assert pro.status_code == 200, pro.text
    assert pro.json()["flag"]["key"] == "pro-only"
    assert pro.json()["explanation"]["decision"]["enabled"] is True
    assert free.json()["explanation"]["decision"]["enabled"] is False
    assert pro.json()["explanation"]["conditions"][0]["filters"][0]["actual"] == "pro"
    missing = await admin.client.post(url, json={"person_properties": {}})
    assert missing.status_code == 400
    assert missing.json()["attr"] == "distinct_id"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(0, 9), limit=st.integers(1, 4), start=st.integers(0, 3))
def test_following_next_links_visits_every_flag_once(
    tmp_path: Path, count: int, limit: int, start: int
) -> None:
    """From any offset, following `next` yields the remaining flags exactly once, in id order; following
    `previous` back from the last page walks contiguous pages down to the first flag."""

    async def run() -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            async with running_admin(admin_settings(Path(folder))) as admin:
                keys = [f"k{i}" for i in range(count)]
                for key in keys:
                    await admin.create_flag(key)
                url: str | None = f"{admin.flags_url}?limit={limit}&offset={start}"
                seen: list[str] = []
                while url is not None:
                    page = (await admin.client.get(url)).json()
                    assert page["count"] == count
                    assert len(page["results"]) <= limit
                    seen += [f["key"] for f in page["results"]]
                    url = page["next"]
                    last = page
                assert seen == keys[start:]
                url = last["previous"]
                reached: list[str] = []
                while url is not None:
                    page = (await admin.client.get(url)).json()
                    reached = [f["key"] for f in page["results"]]
                    assert len(reached) <= limit
                    if reached:
                        first = keys.index(reached[0])
                        assert reached == keys[first : first + len(reached)]
                    url = page["previous"]
                if last["previous"] is None:
                    assert start == 0
                elif count:
                    assert reached[0] == keys[0]

    asyncio.run(run())


async def test_bucketing_identifier_is_accepted_kept_and_evaluated(admin: Admin) -> None:
    """A top-level ``bucketing_identifier: "device_id"`` is stored, shown, survives a filters-only PATCH, and
    makes /flags hash the device id (body ``$device_id``, or the ``$device_id`` person property)."""
    filters = {"groups": [{"properties": [], "rollout_percentage": 50}]}
    flag = await admin.create_flag(
        "by-device", bucketing="posthog", bucketing_identifier="device_id", filters=filters
    )
    assert flag["bucketing_identifier"] == "device_id"
    url = f"{admin.flags_url}{flag['id']}/"
    patched = await admin.client.patch(url, json={"filters": filters, "version": 1})
    assert patched.json()["bucketing_identifier"] == "device_id"
    listed = (await admin.client.get(admin.flags_url)).json()["results"]
    assert [f["bucketing_identifier"] for f in listed] == ["device_id"]
    for n in range(20):
        device = f"device-{n}"
        answers = {
            (await admin.evaluate(f"user-{n}-{m}", **{"$device_id": device}))["by-device"]["enabled"]
            for m in range(3)
        }
        by_property = await admin.evaluate(f"x-{n}", person_properties={"$device_id": device})
        assert answers == {by_property["by-device"]["enabled"]}  # one answer per device, any user
    nothing = await admin.evaluate("someone")
    assert nothing["by-device"]["reason"]["code"] == "out_of_rollout_bound"


async def test_an_unknown_bucketing_identifier_is_400_naming_the_field(admin: Admin) -> None:
    """Only distinct_id, device_id or null are accepted; anything else names the field and writes nothing."""
    response = await admin.client.post(
        admin.flags_url, json={"key": "bad", "bucketing_identifier": "session_id"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "bucketing_identifier"
    assert await _count(admin) == 0


async def test_explain_hashes_the_device_id_of_device_bucketed_flags(admin: Admin) -> None:
    """Explaining a device-bucketed flag with a ``device_id`` traces the device id as the bucketing id and
    reaches the same decision /flags gives for that device."""
    flag = await admin.create_flag("by-device", bucketing="posthog", bucketing_identifier="device_id")
    url = f"{admin.flags_url}{flag['id']}/explain/"
    traced = (await admin.client.post(url, json={"distinct_id": "u1", "device_id": "d-7"})).json()
    assert traced["explanation"]["bucketing_id"] == "d-7"
    wire = await admin.evaluate("u1", **{"$device_id": "d-7"})
    assert traced["explanation"]["decision"]["enabled"] == wire["by-device"]["enabled"]


@pytest.mark.parametrize(
    ("filters", "path"),
    [
        ({"groups": [{"properties": [], "rollout_percentag": 5}]}, "filters.groups[0].rollout_percentag"),
        (
            {"groups": [{"properties": [{"key": "plan", "operater": "exact", "valu": "pro"}]}]},
            "filters.groups[0].properties[0].operater",
        ),
        ({"groups": [], "multivariate": {"variants": []}}, "filters.multivariate.variants"),
        ({"groups": [], "holdout": {"id": 1, "exclusion_percent": 5}}, "filters.holdout.exclusion_percent"),
        ({"groups": [], "payload": {"true": "1"}}, "filters.payload"),
    ],
)
async def test_typos_inside_filters_are_400_and_nothing_is_served(
    admin: Admin, filters: dict[str, Any], path: str
) -> None:
    """A misspelt key inside filters (which would silently serve the flag to everyone) is a 400 naming it."""
    created = await admin.client.post(admin.flags_url, json={"key": "typo", "filters": filters})
    assert created.status_code == 400, created.text
    assert path in [e["attr"] for e in created.json()["errors"]]
    assert await _count(admin) == 0
    flag = await admin.create_flag("steady")
    patched = await admin.client.patch(f"{admin.flags_url}{flag['id']}/", json={"filters": filters})
    assert patched.status_code == 400
    assert path in [e["attr"] for e in patched.json()["errors"]]
    assert (await admin.evaluate())["steady"]["enabled"] is True


async def test_deleting_a_flag_others_depend_on_is_409_naming_them(admin: Admin) -> None:
    """DELETE (or PATCH deleted) of a flag another flag depends on is a 409 listing the dependents."""
    base = await admin.create_flag("base")
    needs = {"properties": [{"key": "base", "type": "flag", "value": True}], "rollout_percentage": 100}
    await admin.create_flag("child", filters={"groups": [needs]})
    for response in (
        await admin.client.delete(f"{admin.flags_url}{base['id']}/"),
        await admin.client.patch(f"{admin.flags_url}{base['id']}/", json={"deleted": True}),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "has_dependents"
        assert response.json()["dependents"] == ["flag:child"]
    assert (await admin.evaluate())["child"]["enabled"] is True
