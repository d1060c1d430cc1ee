"""Flag changes as agents and the what-if endpoint propose them, and every change described in words.

``proposed_fields`` turns a proposal (``rollout_percentage``, ``filters``, ``variants``, ``active``) into the
admin API's PATCH fields; the repository validates them like any PATCH (field paths in every error).
``describe`` says what changed and whether it widens or narrows who is served, with the count over the
population ``flagd.admin.impact`` evaluated ("rollout 10 % → 20 %: serves more users (widens), about 41 of
the 200 persons seen in the last 7 days, 19 newly").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import msgspec

from flagd.admin.errors import invalid
from flagd.admin.impact import Impact
from store.records import FlagRecord

_UNSET: Any = msgspec.UNSET


def merged_filters(current: Mapping[str, Any], sent: Any) -> Any:
    """``sent`` merged key by key into ``current`` filters: a top-level key not sent (``groups``,
    ``multivariate``, ``payloads``, ``aggregation_group_type_index``, ``holdout``, ...) keeps its value, one
    sent as null is removed. So an agent changing the conditions cannot demote a group flag or drop its
    variants by leaving them out. Anything but an object is returned as sent (validation names it)."""
    if not isinstance(sent, Mapping):
        return sent
    merged = {**copy.deepcopy(dict(current)), **sent}
    return {k: v for k, v in merged.items() if v is not None}


def proposed_fields(
    current: FlagRecord,
    *,
    rollout_percentage: Any = _UNSET,
    condition_index: Any = _UNSET,
    filters: Any = _UNSET,
    variants: Any = _UNSET,
    active: Any = _UNSET,
) -> dict[str, Any]:
    """The PATCH fields a proposal amounts to. ``rollout_percentage`` sets every condition's rollout (only
    condition ``condition_index`` when given; a flag without conditions gets one matching everyone);
    ``variants`` replaces ``filters.multivariate.variants``; ``filters`` is merged (``merged_filters``)."""
    if all(v is _UNSET for v in (rollout_percentage, filters, variants, active)):
        raise invalid("", "propose a change: rollout_percentage, filters, variants or active")
    changes: dict[str, Any] = {}
    new_filters: Any = (
        merged_filters(current.filters, filters) if filters is not _UNSET else copy.deepcopy(current.filters)
    )
    touched = filters is not _UNSET
    if rollout_percentage is not _UNSET:
        if isinstance(rollout_percentage, bool) or not isinstance(rollout_percentage, int | float | None):
            raise invalid("rollout_percentage", "must be a number between 0 and 100 (or null for 100)")
        if rollout_percentage is not None and not 0 <= rollout_percentage <= 100:
            raise invalid("rollout_percentage", "must be a number between 0 and 100 (or null for 100)")
        if not isinstance(new_filters, dict):
            raise invalid("filters", "must be an object")
        groups = new_filters.setdefault("groups", [])
        if not isinstance(groups, list):
            raise invalid("filters.groups", "must be a list")
        if not groups:
            groups.append({"properties": [], "rollout_percentage": rollout_percentage})
        elif condition_index is not _UNSET and condition_index is not None:
            if isinstance(condition_index, bool) or not isinstance(condition_index, int):
                raise invalid("condition_index", "must be an integer")
            if not 0 <= condition_index < len(groups):
                raise invalid("condition_index", f"must be between 0 and {len(groups) - 1}")
            groups[condition_index] = {**groups[condition_index], "rollout_percentage": rollout_percentage}
        else:
            new_filters["groups"] = [
                {**g, "rollout_percentage": rollout_percentage} if isinstance(g, dict) else g for g in groups
            ]
        touched = True
    if variants is not _UNSET:
        if not isinstance(new_filters, dict):
            raise invalid("filters", "must be an object")
        new_filters["multivariate"] = None if variants is None else {"variants": variants}
        touched = True
    if touched:
        changes["filters"] = new_filters
    if active is not _UNSET:
        changes["active"] = active
    return changes


def _pct(value: Any) -> str:
    if value is None:
        return "100 %"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value} %"


def _groups(flag: FlagRecord) -> list[Any]:
    groups = flag.filters.get("groups")
    return groups if isinstance(groups, list) else []


def _variants(flag: FlagRecord) -> list[Any]:
    multivariate = flag.filters.get("multivariate")
    found = multivariate.get("variants") if isinstance(multivariate, Mapping) else None
    return found if isinstance(found, list) else []


def _variant_text(variants: list[Any]) -> str:
    if not variants:
        return "none"
    return ", ".join(
        f"{v.get('key')} {_pct(v.get('rollout_percentage'))}" if isinstance(v, Mapping) else str(v)
        for v in variants
    )


def _what(before: FlagRecord, after: FlagRecord) -> list[str]:
    said: list[str] = []
    if before.key != after.key:
        said.append(f"key {before.key} → {after.key}")
    if before.name != after.name:
        said.append(f"name {before.name!r} → {after.name!r}")
    if before.active != after.active:
        said.append("turned on" if after.active else "turned off")
    old, new = _groups(before), _groups(after)
    if len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            a, b = (g if isinstance(g, dict) else {} for g in (a, b))
            where = "" if len(new) == 1 else f"condition {i + 1} "
            if a.get("rollout_percentage") != b.get("rollout_percentage"):
                old_pct, new_pct = _pct(a.get("rollout_percentage")), _pct(b.get("rollout_percentage"))
                said.append(f"{where}rollout {old_pct} → {new_pct}")
            if {k: v for k, v in a.items() if k != "rollout_percentage"} != {
                k: v for k, v in b.items() if k != "rollout_percentage"
            }:
                said.append(f"{where or 'condition '}properties changed")
    else:
        said.append(f"conditions changed ({len(old)} → {len(new)} condition sets)")
    if _variants(before) != _variants(after):
        said.append(f"variants {_variant_text(_variants(before))} → {_variant_text(_variants(after))}")
    rest = ("groups", "multivariate")
    if {k: v for k, v in before.filters.items() if k not in rest} != {
        k: v for k, v in after.filters.items() if k not in rest
    }:
        said.append("other filters changed (payloads, holdout, group aggregation or enrollment)")
    if before.bucketing != after.bucketing:
        said.append(f"bucketing {before.bucketing} → {after.bucketing} (reassigns every person's bucket)")
    if before.ensure_experience_continuity != after.ensure_experience_continuity:
        said.append(f"ensure_experience_continuity → {after.ensure_experience_continuity}")
    return said


def direction(impact: Impact) -> str:
    """``widens``, ``narrows``, ``moves`` (some gain, some lose), ``reshuffles`` (same persons, other
    variants) or ``none``."""
    if impact.turns_on_count and impact.turns_off_count:
        return "moves"
    if impact.turns_on_count:
        return "widens"
    if impact.turns_off_count:
        return "narrows"
    if impact.variant_changed_count:
        return "reshuffles"
    return "none"


_EFFECT = {
    "widens": "serves more users (widens)",
    "narrows": "serves fewer users (narrows)",
    "moves": "serves different users (widens for some, narrows for others)",
    "reshuffles": "serves the same users, some with another variant",
    "none": "serves the same users",
}


def describe_fields(before: FlagRecord | None, after: FlagRecord) -> str:
    """What changed, in words, without who it serves."""
    if before is None and not after.active:
        return f"created flag {after.key} inactive: it serves no one until it is turned on"
    if before is None:
        return f"created flag {after.key} active"
    if after.deleted:
        return f"deleted flag {after.key}"
    return "; ".join(_what(before, after)) or "nothing changed"


def describe(before: FlagRecord | None, after: FlagRecord, impact: Impact) -> str:
    """The change in words: what changed, widen/narrow, and how many of the population it serves."""
    what = describe_fields(before, after)
    if before is None and not after.active:
        return what
    who = impact.population.removeprefix("the ")
    counts = f"about {impact.served_after} of the {who}"
    if impact.evaluated == 0:
        counts = f"no persons to count ({impact.population})"
    moved = direction(impact)
    text = f"{what}: {_EFFECT[moved]}, {counts}"
    if impact.turns_on_count or impact.turns_off_count:
        text += f" ({impact.turns_on_count} newly served, {impact.turns_off_count} no longer)"
    if impact.variant_changed_count:
        text += (
            f"; {impact.variant_changed_count} change variant (variants are assigned by their own hash, so"
            " changing variant percentages reassigns persons across variants, not only adds them)"
        )
    if impact.group_flag:
        text += "; a group flag buckets by group key: persons without a group are not served either way"
    if before is not None and not before.active and not after.active:
        text += "; the flag is inactive, so no one is served before or after"
    return text


def change_summary(before: FlagRecord | None, after: FlagRecord, impact: Impact) -> dict[str, Any]:
    """The structured change every write (and what-if) returns: words, direction and the exact impact."""
    return {
        "description": describe(before, after, impact),
        "direction": direction(impact),
        "impact": msgspec.to_builtins(impact),
    }
