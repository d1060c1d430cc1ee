"""``flagd.admin.impact``: the exact what-if over a population, checked against independent fresh compiles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from evaluator import Context, compile_flags
from flagd.admin.errors import ApiError
from flagd.admin.impact import MAX_POPULATION, Evaluator, Population, Subject, population
from flagd.admin.reasoning import check_ids, check_limit
from store.catalog import ProjectData, ProjectState, build_project_state
from tests.flagd.impact.strategies import bucketings, distinct_ids, rollouts, variant_splits


def definition(rollout: float | None, *, bucketing: str = "murmur3", variants: Any = None) -> dict[str, Any]:
    filters: dict[str, Any] = {"groups": [{"properties": [], "rollout_percentage": rollout}]}
    if variants is not None:
        filters["multivariate"] = {"variants": variants}
    return {
        "id": 7,
        "key": "checkout",
        "name": "checkout",
        "active": True,
        "deleted": False,
        "version": 1,
        "bucketing": bucketing,
        "filters": filters,
    }


def state_with(flag: dict[str, Any]) -> ProjectState:
    other = {**definition(50), "id": 8, "key": "other"}
    data = ProjectData(1, "phc_t", "0" * 64, {}, 1, [flag, other], [])
    return build_project_state(data)


def people(ids: list[str]) -> Population:
    return Population([Subject(i, {}) for i in dict.fromkeys(ids)], "given")


def served(flag: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """The oracle: a fresh compile of the flag alone, evaluated per id (False, True or the variant)."""
    snapshot = compile_flags([flag])
    out = {}
    for i in ids:
        decision = snapshot.evaluate(Context(distinct_id=i))["checkout"]
        out[i] = (decision.variant or True) if decision.enabled else False
    return out


@settings(max_examples=60, deadline=None)
@given(ids=distinct_ids, old=rollouts, new=rollouts, bucketing=bucketings)
async def test_rollout_what_if_names_exactly_the_persons_whose_answer_changes(
    ids: list[str], old: int, new: int, bucketing: str
) -> None:
    """Moving a rollout from old to new %, the persons named turn on (or off) exactly when an independent
    evaluation of the two definitions differs for them; an increase never turns anyone off."""
    before, after = definition(old, bucketing=bucketing), definition(new, bucketing=bucketing)
    impact = await Evaluator(state_with(before), None).measure(before, after, people(ids), limit=1000)
    unique = list(dict.fromkeys(ids))
    was, now = served(before, unique), served(after, unique)
    assert set(impact.turns_on) == {i for i in unique if now[i] and not was[i]}
    assert set(impact.turns_off) == {i for i in unique if was[i] and not now[i]}
    assert impact.evaluated == len(unique)
    assert impact.unchanged == sum(was[i] == now[i] for i in unique)
    assert impact.served_after - impact.served_before == impact.turns_on_count - impact.turns_off_count
    if new >= old:
        assert impact.turns_off == []
    if new <= old:
        assert impact.turns_on == []


@settings(max_examples=40, deadline=None)
@given(ids=distinct_ids, old=variant_splits(), new=variant_splits())
async def test_variant_changes_are_reported_as_reshuffles_not_as_new_users(
    ids: list[str], old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> None:
    """With everyone served, changing variant percentages turns no one on or off; the persons reported as
    changing variant are exactly those whose variant differs, with the right before/after."""
    before, after = definition(100, variants=old), definition(100, variants=new)
    impact = await Evaluator(state_with(before), None).measure(before, after, people(ids), limit=1000)
    unique = list(dict.fromkeys(ids))
    was, now = served(before, unique), served(after, unique)
    assert impact.turns_on == impact.turns_off == []
    assert {(c.distinct_id, c.before, c.after) for c in impact.variant_changes} == {
        (i, was[i], now[i]) for i in unique if was[i] != now[i]
    }


async def test_lists_stop_at_the_limit_but_counts_stay_exact() -> None:
    """``limit`` caps the ids listed, never the counts."""
    ids = [f"user-{i}" for i in range(400)]
    before, after = definition(0), definition(100)
    impact = await Evaluator(state_with(before), None).measure(before, after, people(ids), limit=5)
    assert impact.turns_on_count == 400
    assert len(impact.turns_on) == 5


async def test_a_new_flag_and_a_deleted_flag_are_measured_from_and_to_no_one() -> None:
    """Creating serves from nothing (no before), deleting serves no one after."""
    flag = definition(100)
    ids = ["a", "b", "c"]
    evaluator = Evaluator(state_with(definition(0)), None)
    created = await evaluator.measure(None, flag, people(ids))
    assert created.turns_on_count == 3
    deleted = await evaluator.measure(flag, {**flag, "deleted": True}, people(ids))
    assert deleted.turns_off_count == 3
    assert deleted.served_after == 0


@pytest.mark.parametrize(
    ("call", "attr"),
    [
        (lambda: check_ids([f"id-{i}" for i in range(1001)]), "distinct_ids"),
        (lambda: check_ids(["ok", ""]), "distinct_ids"),
        (lambda: check_limit(0), "limit"),
        (lambda: check_limit(1001), "limit"),
    ],
)
def test_what_if_limits_are_400s_naming_the_field(call: Any, attr: str) -> None:
    """More than 1,000 distinct ids, an empty id, or a limit outside 1..1000 is refused, naming the field."""
    with pytest.raises(ApiError) as error:
        call()
    assert error.value.status == 400
    assert error.value.attr == attr


async def test_the_population_is_capped_at_the_newest_persons_and_says_so() -> None:
    """Given ids are deduplicated in order; without a person store nothing is evaluated and it says why."""
    given = await population(None, 1, ["a", "b", "a"])
    assert [s.distinct_id for s in given.subjects] == ["a", "b"]
    assert given.describe() == "the 2 distinct ids given"
    none = await population(None, 1, None)
    assert none.subjects == []
    assert "person store is off" in none.describe()
    assert Population([Subject("x")] * 3, "seen", capped=True).describe() == (
        f"the 3 newest persons seen in the last 7 days (at most {MAX_POPULATION})"
    )
