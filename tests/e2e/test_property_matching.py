"""The project's property_matching_version, distributed: set over the admin API on PostgreSQL, carried by
the syncer through Redis to the node, which evaluates and publishes it."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_property_matching_version_reaches_nodes(flagd_distributed: FlagdServer) -> None:
    """After PATCH property_matching_version 2, the node answers ``beta exact false`` by text (0 no longer
    matches) and its definitions say 2."""
    s = flagd_distributed
    filters = {"groups": [{"properties": [{"key": "beta", "value": False}], "rollout_percentage": 100}]}
    s.create_flag("beta-off", filters, bucketing="posthog")

    def answer() -> bool:
        flags = s.flags("u", person_properties={"beta": 0})["flags"]
        return "beta-off" in flags and bool(flags["beta-off"]["enabled"])

    assert wait_until(answer)
    s.admin("PATCH", f"/api/projects/{s.project_id}/", json={"property_matching_version": 2})
    wait_until(lambda: not answer())
    definitions = httpx.get(
        f"{s.url}/flags/definitions?token={s.project_token}",
        headers={"Authorization": f"Bearer {s.project_secret}"},
    ).json()
    assert definitions["property_matching_version"] == 2
    assert s.flags("u", person_properties={"beta": "FALSE"})["flags"]["beta-off"]["enabled"] is True
