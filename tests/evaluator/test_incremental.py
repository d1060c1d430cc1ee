"""Incremental compiles (``compile_flags(..., previous=...)``) evaluate exactly like fresh ones, and reuse."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator import Context, compile_flags

KEYS = [f"f{i}" for i in range(8)]
CONTEXTS = [
    Context(
        distinct_id=f"user-{n}",
        person_properties={"plan": ["free", "pro"][n % 2], "age": 20 + n},
        groups={"company": f"c{n % 3}"},
    )
    for n in range(25)
]


def make_flag(
    fid: int, key: str, *, rollout: int, deps: list[Any], plan: str | None, cohort: bool, group: bool
) -> dict[str, Any]:
    props: list[dict[str, Any]] = [
        {"key": d, "type": "flag", "value": True, "operator": "flag_evaluates_to"} for d in deps
    ]
    if plan is not None:
        props.append({"key": "plan", "value": plan, "operator": "exact", "type": "person"})
    if cohort:
        props.append({"key": "id", "value": 1, "operator": "in", "type": "cohort"})
    flag: dict[str, Any] = {
        "id": fid,
        "key": key,
        "active": True,
        "deleted": False,
        "version": 1,
        "filters": {"groups": [{"properties": props, "rollout_percentage": rollout}]},
    }
    if group:
        flag["filters"]["aggregation_group_type_index"] = 0
    return flag


@st.composite
def flags(draw: st.DrawFn, key: str, fid: int) -> dict[str, Any]:
    # Dependencies by key or by id, on any flag (cycles and missing targets included).
    deps = draw(st.lists(st.sampled_from([*KEYS, *range(1, 9)]), max_size=2))
    return make_flag(
        fid,
        key,
        rollout=draw(st.sampled_from([0, 30, 70, 100])),
        deps=deps,
        plan=draw(st.sampled_from([None, "pro"])),
        cohort=draw(st.booleans()),
        group=draw(st.booleans()),
    )


@st.composite
def projects(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=8, unique=True))
    return {k: draw(flags(k, KEYS.index(k) + 1)) for k in keys}


Edit = tuple[str, Any]


@st.composite
def edits(draw: st.DrawFn) -> list[Edit]:
    out: list[Edit] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["put", "put", "delete", "cohort", "mapping", "none"]))
        if kind == "put":
            key = draw(st.sampled_from(KEYS))
            out.append(("put", draw(flags(key, KEYS.index(key) + 1))))
        elif kind == "delete":
            out.append(("delete", draw(st.sampled_from(KEYS))))
        elif kind == "cohort":
            out.append(("cohort", draw(st.sampled_from(["pro", "free"]))))
        elif kind == "mapping":
            out.append(("mapping", draw(st.sampled_from(["company", "org"]))))
        else:
            out.append(("none", None))
    return out


def answers(snapshot: Any) -> list[dict[str, tuple[Any, ...]]]:
    return [
        {
            k: (d.enabled, d.variant, d.reason, d.condition_index, d.error)
            for k, d in snapshot.evaluate(c).items()
        }
        for c in CONTEXTS
    ]


@settings(max_examples=60, deadline=None)
@given(projects(), edits())
def test_incremental_compile_evaluates_like_a_fresh_compile(
    project: dict[str, dict[str, Any]], steps: list[Edit]
) -> None:
    """After any sequence of edits, a snapshot compiled from the previous one answers every context exactly
    as a snapshot compiled from scratch."""
    cohort_plan, group_name = "pro", "company"

    def inputs() -> dict[str, Any]:
        return {
            "cohorts": {
                "1": {
                    "type": "OR",
                    "values": [{"key": "plan", "value": cohort_plan, "operator": "exact", "type": "person"}],
                }
            },
            "group_type_mapping": {"0": group_name},
        }

    snapshot = compile_flags(copy.deepcopy(list(project.values())), **inputs())
    for kind, arg in steps:
        if kind == "put":
            project[arg["key"]] = arg
        elif kind == "delete":
            project.pop(arg, None)
        elif kind == "cohort":
            cohort_plan = arg
        elif kind == "mapping":
            group_name = arg
        definitions = copy.deepcopy(list(project.values()))  # fresh objects, as a node decodes them
        incremental = compile_flags(definitions, previous=snapshot, **inputs())
        fresh = compile_flags(copy.deepcopy(definitions), **inputs())
        assert answers(incremental) == answers(fresh)
        assert incremental.sdk_reproducible == fresh.sdk_reproducible
        assert sorted(incremental.keys()) == sorted(fresh.keys())
        snapshot = incremental


def test_an_edit_recompiles_only_the_flag_and_its_dependents() -> None:
    """Editing one flag of a project reuses every other compiled flag, except the ones depending on it."""
    base = [
        make_flag(1, "a", rollout=50, deps=[], plan=None, cohort=False, group=False),
        make_flag(2, "b", rollout=100, deps=["a"], plan=None, cohort=False, group=False),
        make_flag(3, "c", rollout=30, deps=[], plan="pro", cohort=False, group=False),
    ]
    first = compile_flags(copy.deepcopy(base))
    edited = copy.deepcopy(base)
    edited[0]["filters"]["groups"][0]["rollout_percentage"] = 60
    second = compile_flags(edited, previous=first)
    assert second.flag("c") is first.flag("c")
    assert second.flag("a") is not first.flag("a")
    assert second.flag("b") is not first.flag("b")  # its dependency changed


def test_a_changed_shared_input_recompiles_everything() -> None:
    """A new group type mapping (or cohort set) invalidates every compiled flag."""
    base = [make_flag(1, "a", rollout=50, deps=[], plan=None, cohort=False, group=True)]
    first = compile_flags(copy.deepcopy(base), group_type_mapping={"0": "company"})
    same = compile_flags(copy.deepcopy(base), group_type_mapping={"0": "company"}, previous=first)
    other = compile_flags(copy.deepcopy(base), group_type_mapping={"0": "org"}, previous=first)
    assert same.flag("a") is first.flag("a")
    assert other.flag("a") is not first.flag("a")
    ctx = Context(distinct_id="u", groups={"org": "o1"})
    assert other.evaluate(ctx)["a"].reason != "no_group_type"
