"""``flagd.admin.changes``: proposals as PATCH fields, and every change described in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from flagd.admin.changes import describe, direction, proposed_fields
from flagd.admin.errors import ApiError
from flagd.admin.impact import Impact, VariantChange
from store.records import FlagRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(**changes: Any) -> FlagRecord:
    base = FlagRecord(
        id=1,
        project_id=1,
        key="checkout",
        name="Checkout",
        filters={"groups": [{"properties": [{"key": "plan", "value": "pro"}], "rollout_percentage": 10}]},
        active=True,
        deleted=False,
        bucketing="murmur3",
        ensure_experience_continuity=False,
        version=3,
        created_at=NOW,
        created_by="t",
        updated_at=NOW,
        updated_by="t",
    )
    return msgspec.structs.replace(base, **changes)


def impact(on: int = 0, off: int = 0, moved: int = 0, before: int = 10, evaluated: int = 200) -> Impact:
    return Impact(
        population=f"the {evaluated} persons seen in the last 7 days",
        evaluated=evaluated,
        served_before=before,
        served_after=before + on - off,
        turns_on=[],
        turns_on_count=on,
        turns_off=[],
        turns_off_count=off,
        variant_changes=[VariantChange("x", "a", "b")] if moved else [],
        variant_changed_count=moved,
        unchanged=evaluated - on - off - moved,
        group_flag=False,
    )


def test_a_rollout_increase_reads_as_widening_with_the_counts() -> None:
    """'rollout 10 % → 20 %: serves more users (widens), about N of the M persons seen in the last 7 days'."""
    before = record()
    after = proposed_fields(before, rollout_percentage=20)
    text = describe(before, record(filters=after["filters"]), impact(on=21))
    assert text.startswith(
        "rollout 10 % → 20 %: serves more users (widens), about 31 of the 200 persons seen"
    )
    assert "21 newly served" in text


def test_turning_off_narrows_and_creating_inactive_says_it_serves_no_one() -> None:
    """Turning a flag off narrows; a flag created inactive serves no one until turned on."""
    assert "serves fewer users (narrows)" in describe(record(), record(active=False), impact(off=10))
    assert direction(impact(off=10)) == "narrows"
    created = describe(None, record(active=False), impact())
    assert created == "created flag checkout inactive: it serves no one until it is turned on"


def test_variant_changes_are_described_as_reassignment() -> None:
    """A change of variant percentages says persons change variant, and why (their own hash)."""
    old = [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
    new = [{"key": "a", "rollout_percentage": 20}, {"key": "b", "rollout_percentage": 80}]
    before = record(filters={"groups": [{"rollout_percentage": 100}], "multivariate": {"variants": old}})
    after = record(filters=proposed_fields(before, variants=new)["filters"])
    text = describe(before, after, impact(moved=30))
    assert "variants a 50 %, b 50 % → a 20 %, b 80 %" in text
    assert "30 change variant" in text
    assert direction(impact(moved=30)) == "reshuffles"


def test_proposals_keep_what_they_do_not_change() -> None:
    """Setting a rollout keeps each condition's properties; condition_index touches one condition only."""
    flag = record(
        filters={
            "groups": [{"properties": [{"key": "a"}], "rollout_percentage": 10}, {"rollout_percentage": 5}]
        }
    )
    everywhere = proposed_fields(flag, rollout_percentage=40)["filters"]["groups"]
    assert everywhere == [
        {"properties": [{"key": "a"}], "rollout_percentage": 40},
        {"rollout_percentage": 40},
    ]
    one = proposed_fields(flag, rollout_percentage=40, condition_index=1)["filters"]["groups"]
    assert one == [{"properties": [{"key": "a"}], "rollout_percentage": 10}, {"rollout_percentage": 40}]
    assert flag.filters["groups"][0]["rollout_percentage"] == 10  # the record itself is untouched
    assert proposed_fields(flag, active=False) == {"active": False}


@pytest.mark.parametrize(
    ("proposal", "attr"),
    [
        ({"rollout_percentage": 101}, "rollout_percentage"),
        ({"rollout_percentage": "half"}, "rollout_percentage"),
        ({"rollout_percentage": 10, "condition_index": 5}, "condition_index"),
        ({}, ""),
    ],
)
def test_bad_proposals_name_the_field(proposal: dict[str, Any], attr: str) -> None:
    """A bad proposal is a 400 naming the argument, before anything is evaluated."""
    with pytest.raises(ApiError) as error:
        proposed_fields(record(), **proposal)
    assert error.value.status == 400
    assert error.value.attr == attr


def test_filters_sent_are_merged_so_a_group_flag_is_not_demoted() -> None:
    """Filters an agent sends are merged key by key: leaving out aggregation_group_type_index or the variants
    keeps them; null removes a key."""
    variants = {"variants": [{"key": "a", "rollout_percentage": 100}]}
    flag = record(
        filters={
            "aggregation_group_type_index": 0,
            "groups": [{"rollout_percentage": 10}],
            "multivariate": variants,
        }
    )
    changed = proposed_fields(flag, filters={"groups": [{"rollout_percentage": 50}]})["filters"]
    assert changed == {
        "aggregation_group_type_index": 0,
        "groups": [{"rollout_percentage": 50}],
        "multivariate": variants,
    }
    dropped = proposed_fields(flag, filters={"multivariate": None})["filters"]
    assert "multivariate" not in dropped
    assert dropped["aggregation_group_type_index"] == 0
