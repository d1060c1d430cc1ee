"""Admin API and the person store: the per-project limit on behavioural conditions, and tracking_since."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.flagd.admin_client import Admin, admin_settings, running_admin


def _leaf(event: str, url: str | None = None) -> dict[str, Any]:
    leaf: dict[str, Any] = {
        "type": "behavioral",
        "key": event,
        "value": "performed_event",
        "event_type": "events",
        "time_value": 5,
        "time_interval": "minute",
    }
    if url is not None:
        leaf["event_filters"] = [
            {"key": "$current_url", "operator": "icontains", "value": url, "type": "event"}
        ]
    return leaf


def _cohort(name: str, *leaves: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "filters": {"properties": {"type": "OR", "values": list(leaves)}}}


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(admin_settings(tmp_path, max_behavioural_conditions=2)) as client:
        yield client


async def test_behavioural_conditions_per_project_are_limited(admin: Admin) -> None:
    """With a limit of 2, a cohort adding a third distinct condition is a 400 on filters and is not written;
    reusing a condition, or replacing a cohort's own conditions, stays within the limit."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    first = await admin.client.post(url, json=_cohort("a", _leaf("signup"), _leaf("$pageview", "/pricing")))
    assert first.status_code == 201, first.text
    reuse = await admin.client.post(url, json=_cohort("b", _leaf("signup")))
    assert reuse.status_code == 201, reuse.text
    over = await admin.client.post(url, json=_cohort("c", _leaf("purchase")))
    assert over.status_code == 400
    assert over.json()["errors"][0]["attr"] == "filters"
    assert "max_behavioural_conditions=2" in over.json()["errors"][0]["detail"]
    assert (await admin.client.get(url)).json()["count"] == 2
    cohort = first.json()
    replaced = await admin.client.patch(
        f"{url}{cohort['id']}/",
        json={
            "filters": _cohort("a", _leaf("signup"), _leaf("purchase"))["filters"],
            "version": cohort["version"],
        },
    )
    assert replaced.status_code == 200, replaced.text


async def test_tracking_since_is_set_for_filtered_conditions_only(admin: Admin) -> None:
    """A cohort with an event-filtered condition gets tracking_since; a plain-event one gets null."""
    url = f"/api/projects/{admin.project_id}/cohorts/"
    filtered = (await admin.client.post(url, json=_cohort("f", _leaf("$pageview", "/pricing")))).json()
    plain = (await admin.client.post(url, json=_cohort("p", _leaf("signup")))).json()
    assert filtered["tracking_since"] is not None
    assert plain["tracking_since"] is None
    again = (await admin.client.get(f"{url}{filtered['id']}/")).json()
    assert again["tracking_since"] == filtered["tracking_since"]
