"""Hypothesis strategies for the evaluator's property tests: JSON values, contexts, filters and flags, both
well-formed and arbitrary (malformed)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from evaluator import Context
from evaluator.operators import OPERATORS

KEYS = st.sampled_from(
    [
        "plan",
        "email",
        "age",
        "version",
        "signup",
        "tags",
        "distinct_id",
        "$group_key",
        "$feature_enrollment/flag-0",
    ]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["1.2.3", "v2", "2024-01-01", "2024-01-01T10:00:00Z", "-7d", "1e3", "TRUE", "ß", "İ"]),
)

json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)

# What exact/is_not compare by truthiness under property_matching_version 1, and the values that test it.
boolean_like = st.one_of(
    st.booleans(),
    st.sampled_from(["true", "false", "TRUE", "False", "yes", "no", "0", "1", ""]),
    st.integers(-2, 2),
    st.lists(st.booleans() | st.sampled_from(["true", "false", "True"]), max_size=3),
)

properties = st.dictionaries(KEYS | st.text(max_size=8), json_values, max_size=6)


@st.composite
def contexts(draw: st.DrawFn) -> Context:
    """A context with arbitrary person and group properties."""
    return Context(
        distinct_id=draw(st.text(min_size=1, max_size=20)),
        person_properties=draw(properties),
        groups=draw(st.dictionaries(st.sampled_from(["company", "team"]), st.text(max_size=8), max_size=2)),
        group_properties=draw(st.dictionaries(st.sampled_from(["company", "team"]), properties, max_size=2)),
        cohort_ids=frozenset(draw(st.lists(st.sampled_from(["1", "2", "3", "99"]), max_size=3))),
        device_id=draw(st.none() | st.text(max_size=8)),
    )


@st.composite
def property_filters(draw: st.DrawFn) -> dict[str, Any]:
    """A well-shaped person or group filter with any operator and any value (possibly unusable)."""
    operator = draw(st.sampled_from(sorted(OPERATORS)))
    filter_: dict[str, Any] = {"key": draw(KEYS), "operator": operator, "value": draw(json_values)}
    if draw(st.booleans()):
        filter_["negation"] = True
    if draw(st.integers(0, 4)) == 0:
        filter_.update(type="group", group_type_index=draw(st.sampled_from([0, 1, 5])))
    return filter_


special_filters = st.sampled_from(
    [
        {"type": "cohort", "key": "id", "value": 1},
        {"type": "cohort", "key": "id", "value": 2, "operator": "not_in"},
        {"type": "cohort", "key": "id", "value": 99},
        {"type": "flag", "key": "flag-0", "value": True, "operator": "flag_evaluates_to"},
        {"type": "flag", "key": "flag-1", "value": "b", "operator": "flag_evaluates_to"},
        {"type": "flag", "key": "missing", "value": False, "operator": "flag_evaluates_to"},
    ]
)


@st.composite
def flags(draw: st.DrawFn, key: str, malformed: bool = False) -> dict[str, Any]:
    """A flag definition; with ``malformed``, any part may be replaced by arbitrary JSON."""
    filter_strategy = property_filters() | special_filters
    if malformed:
        filter_strategy = filter_strategy | json_values
    conditions = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "properties": st.lists(filter_strategy, max_size=3),
                    "rollout_percentage": st.none() | st.floats(-10, 110) | st.integers(0, 100),
                },
                optional={
                    "variant": st.sampled_from(["a", "b", "zz"]),
                    "aggregation_group_type_index": st.just(1),
                },
            )
            | (json_values if malformed else st.nothing()),
            max_size=3,
        )
    )
    filters: dict[str, Any] = {"groups": conditions}
    if draw(st.booleans()):
        filters["multivariate"] = {
            "variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 40}]
        }
        filters["payloads"] = {"a": '{"x": 1}', "b": "2"}
    if draw(st.integers(0, 3)) == 0:
        filters["aggregation_group_type_index"] = 0
    if draw(st.integers(0, 4)) == 0:
        filters["holdout"] = {"id": 3, "exclusion_percentage": draw(st.integers(0, 100))}
    if draw(st.integers(0, 4)) == 0:
        filters["feature_enrollment"] = True
    if draw(st.integers(0, 4)) == 0:
        filters["early_exit"] = True
    definition: dict[str, Any] = {
        "id": draw(st.integers(1, 10)),
        "key": key,
        "active": draw(st.booleans() | st.just(True)),
        "bucketing": draw(st.sampled_from(["murmur3", "posthog"])),
        "filters": filters,
    }
    if draw(st.integers(0, 5)) == 0:
        definition["bucketing_identifier"] = "device_id"
    if malformed and draw(st.booleans()):
        path = draw(
            st.sampled_from(["filters", "bucketing", "active", "multivariate", "holdout", "payloads"])
        )
        junk = draw(json_values)
        if path in ("filters", "bucketing", "active"):
            definition[path] = junk
        else:
            filters[path] = junk
    return definition


COHORTS = {
    "1": {
        "type": "OR",
        "values": [{"type": "AND", "values": [{"key": "plan", "value": "pro", "type": "person"}]}],
    },
    "2": {
        "type": "AND",
        "values": [
            {"key": "id", "type": "cohort", "value": 1},
            {"key": "age", "operator": "gt", "value": 18},
        ],
    },
}


# --- fused vs generic: operator-shaped values; a property present, absent, null or of any JSON type ---

numeric_texts = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["1e3", "-0.5", ".5", "5.", " 12", "nan", "inf", "1_000", "0x10", ""]),
)
numbers = st.one_of(
    st.integers(-1000, 1000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 5, 5.0, 0.1 + 0.2, 2**53 + 1, 2**70]),
)
texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="aAbBßİıéÉ\u212a\ud800 .-", max_size=8),
    st.sampled_from(["pro", "PRO", "Pro", "true", "TRUE", "false", "null", "ß", "SS", "İ", "i̇"]),
)
dates = st.one_of(
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5, minutes=-30))])).map(
        lambda d: d.isoformat()
    ),
    st.dates().map(lambda d: d.isoformat()),
    st.integers(-(10**10), 10**10),
    st.sampled_from(["-7d", "-24h", "-2w", "-1m", "-1y", "2024-01-01 10:00:00 UTC", "1718452800"]),
)
versions = st.one_of(
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)).map(
        lambda v: ".".join(map(str, v))
    ),
    st.sampled_from(
        ["v1.2.3", "1.2", "1", "1.2.3-rc.1", "1.2.3+b", "1.2.*", "1.*", "x.y", "1..3", " 2.0.0 "]
    ),
)


def operator_values(operator: str) -> st.SearchStrategy[Any]:
    """Filter values for ``operator``: mostly of its own kind (the filter is usable), sometimes any JSON."""
    if operator in ("gt", "gte", "lt", "lte"):
        own: st.SearchStrategy[Any] = numbers | numeric_texts
    elif operator in ("between", "not_between"):
        bound = numbers | numeric_texts
        own = st.lists(bound, min_size=2, max_size=2) | st.fixed_dictionaries({"min": bound, "max": bound})
    elif operator.startswith("is_date"):
        own = dates
    elif operator.startswith("semver"):
        own = versions
    elif operator in ("exact", "is_not"):
        own = scalars | st.lists(scalars, max_size=4)
    else:
        own = texts
    return st.one_of(own, own, own, json_values)


def property_values(operator: str) -> st.SearchStrategy[Any]:
    """A property value an ``operator`` filter may meet: its own kind, numbers, text, or any JSON."""
    return st.one_of(operator_values(operator), numbers, texts, json_values)


def person_properties(operator: str) -> st.SearchStrategy[dict[str, Any]]:
    """Properties where "plan" is absent, null, or present with a value of any JSON type."""
    present = st.builds(lambda value: {"plan": value, "other": 1}, property_values(operator))
    return st.one_of(st.just({}), st.just({"plan": None}), present, present, present)
