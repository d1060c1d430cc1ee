"""Behavioural cohorts through the admin API (in process, embedded store): strict validation with field
paths, and flags using them kept out of the local-evaluation definitions SDKs fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.flagd.admin_client import PROJECT_SECRET, PROJECT_TOKEN, Admin, admin_settings, running_admin

LEAF = {
    "type": "behavioral",
    "key": "$pageview",
    "value": "performed_event_multiple",
    "event_type": "events",
    "operator": "gte",
    "operator_value": 3,
    "time_value": 5,
    "time_interval": "minute",
    "event_filters": [{"key": "$current_url", "operator": "icontains", "value": "/pricing", "type": "event"}],
}


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path)) as client:
        yield client


def _cohort(*values: Any) -> dict[str, Any]:
    return {"name": "Pricing visitors", "filters": {"properties": {"type": "AND", "values": list(values)}}}


@pytest.mark.parametrize(
    ("change", "attr"),
    [
        ({"time_interval": "fortnight"}, "filters.properties.values[0].time_interval"),
        ({"operator": "roughly"}, "filters.properties.values[0].operator"),
        ({"colour": "red"}, "filters.properties.values[0].colour"),
        (
            {"event_filters": [{"key": "a", "operator": "near", "value": 1}]},
            "filters.properties.values[0].event_filters[0].operator",
        ),
    ],
)
async def test_invalid_behavioural_cohort_is_400_with_its_path(
    admin: Admin, change: dict[str, Any], attr: str
) -> None:
    """A bad interval, operator, unknown key or event filter is a 400 naming the field; nothing is written."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    response = await admin.client.post(url, json=_cohort({**LEAF, **change}))
    assert response.status_code == 400, response.text
    assert attr in [e["attr"] for e in response.json()["errors"]]
    assert (await admin.client.get(url)).json()["count"] == 0


async def test_flags_on_behavioural_cohorts_are_not_served_for_local_evaluation(admin: Admin) -> None:
    """A flag on a behavioural cohort, and that cohort, never reach SDKs' local definitions; a flag on a
    property cohort does."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    behavioural = await admin.client.post(url, json=_cohort(LEAF))
    assert behavioural.status_code == 201, behavioural.text
    pro = await admin.client.post(url, json=_cohort({"key": "plan", "type": "person", "value": "pro"}))
    assert pro.status_code == 201, pro.text
    for key, cohort in (("pricing", behavioural.json()["id"]), ("pro", pro.json()["id"])):
        props = [{"key": "id", "type": "cohort", "value": cohort, "operator": "in"}]
        await admin.create_flag(key, filters={"groups": [{"properties": props}]}, bucketing="posthog")
    served: dict[str, Any] = {}
    for _ in range(100):  # the node picks the change up asynchronously
        response = await admin.client.get(
            f"/flags/definitions?token={PROJECT_TOKEN}&send_cohorts",
            headers={"Authorization": f"Bearer {PROJECT_SECRET}"},
        )
        assert response.status_code == 200, response.text
        served = response.json()
        if any(f["key"] == "pro" for f in served["flags"]):
            break
        await asyncio.sleep(0.05)
    assert [f["key"] for f in served["flags"]] == ["pro"]
    assert set(served["cohorts"]) == {str(pro.json()["id"])}
