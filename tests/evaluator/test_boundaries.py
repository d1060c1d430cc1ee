"""The evaluator's documented limits and edges, at their exact numbers: regex pattern and search lengths,
pathological patterns, rollout and holdout comparisons, cache bounds, ids that are not valid UTF-8, bucketing
values that are not a scheme, and the operators PostHog SDKs cannot evaluate locally."""

from __future__ import annotations

import hashlib
from typing import Any

import mmh3
import msgspec
import pytest

from evaluator import Context, compile_flags
from evaluator.behaviour import StoreNeeds, query
from evaluator.bucketing import Murmur3Bucketing, PostHogBucketing, get_scheme


def _flag(filter_: dict[str, Any], key: str = "f", **extra: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "key": key,
        "active": True,
        "filters": {"groups": [{"properties": [filter_], "rollout_percentage": None}]},
        **extra,
    }


def _enabled(filter_: dict[str, Any], props: dict[str, Any]) -> bool:
    decision = compile_flags([_flag(filter_)]).evaluate(Context("u", props))["f"]
    assert decision.error is None
    return decision.enabled


# --- regex limits: patterns up to 1,000 characters, values searched up to 10,000 (README) -----------------


def test_a_pattern_of_exactly_1000_characters_is_used() -> None:
    """The README allows patterns up to 1,000 characters: one of exactly that length matches as written."""
    pattern = "a" * 1000
    assert _enabled({"key": "s", "operator": "regex", "value": pattern}, {"s": "a" * 1000})
    assert not _enabled({"key": "s", "operator": "regex", "value": pattern}, {"s": "a" * 999})
    assert not _enabled({"key": "s", "operator": "not_regex", "value": pattern}, {"s": "a" * 1000})
    assert _enabled({"key": "s", "operator": "not_regex", "value": pattern}, {"s": "b"})


def test_a_pattern_of_1001_characters_never_matches() -> None:
    """One character over the limit: regex and not_regex are both false, and validation says why."""
    pattern = "a" * 1001
    assert not _enabled({"key": "s", "operator": "regex", "value": pattern}, {"s": "a" * 1001})
    assert not _enabled({"key": "s", "operator": "not_regex", "value": pattern}, {"s": "b"})
    snapshot = compile_flags([_flag({"key": "s", "operator": "regex", "value": pattern})])
    assert any("1000 characters" in issue.message for issue in snapshot.issues("f"))


def test_a_match_ending_at_character_10000_is_seen_and_one_past_it_is_not() -> None:
    """Only the first 10,000 characters of a value are searched: a match ending exactly there counts."""
    inside = "x" * 9994 + "needle"  # 10,000 characters, the match ends at the last one
    outside = "x" * 9995 + "needle"
    assert len(inside) == 10_000
    assert _enabled({"key": "s", "operator": "regex", "value": "needle"}, {"s": inside})
    assert not _enabled({"key": "s", "operator": "regex", "value": "needle"}, {"s": outside})
    assert not _enabled({"key": "s", "operator": "not_regex", "value": "needle"}, {"s": inside})
    assert _enabled({"key": "s", "operator": "not_regex", "value": "needle"}, {"s": outside})


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*c", "(x+x+)+y", "^(a|aa)+$"])
def test_pathological_patterns_answer(pattern: str) -> None:
    """Patterns that take exponential time in a backtracking engine answer on a 10,000-character value."""
    value = "a" * 9_999 + "!"
    assert not _enabled({"key": "s", "operator": "regex", "value": pattern}, {"s": value})
    assert _enabled({"key": "s", "operator": "not_regex", "value": pattern}, {"s": value})


def test_a_pattern_over_re2s_memory_budget_never_matches_and_is_reported() -> None:
    """RE2 compiles each pattern within 8 MiB: a short pattern expanding past that (500 Unicode letters)
    never matches, for regex and not_regex alike, and validation says RE2 refused it."""
    letters = "é" * 500
    assert not _enabled({"key": "s", "operator": "regex", "value": "\\pL{500}"}, {"s": letters})
    assert not _enabled({"key": "s", "operator": "not_regex", "value": "\\pL{500}"}, {"s": "1"})
    assert _enabled({"key": "s", "operator": "regex", "value": "\\pL{50}"}, {"s": letters})
    snapshot = compile_flags([_flag({"key": "s", "operator": "regex", "value": "\\pL{500}"})])
    assert any("RE2" in issue.message for issue in snapshot.issues("f"))


# --- number, date and version parsing limits ---------------------------------------------------------------


def test_numeric_strings_up_to_400_characters_are_numbers() -> None:
    """A numeric string of 400 characters compares as a number; one of 401 characters is not a number."""
    assert _enabled({"key": "n", "operator": "gt", "value": 5}, {"n": "0" * 399 + "9"})
    assert not _enabled({"key": "n", "operator": "gt", "value": 5}, {"n": "0" * 400 + "9"})


def test_date_strings_up_to_64_characters_are_read() -> None:
    """A date string padded to 64 characters is read; at 65 characters it is not a date."""
    stamp = "2024-01-01T00:00:00+00:00"
    fits = stamp + " " * (64 - len(stamp))
    assert _enabled({"key": "d", "operator": "is_date_before", "value": "2024-06-01"}, {"d": fits})
    assert not _enabled({"key": "d", "operator": "is_date_before", "value": "2024-06-01"}, {"d": fits + " "})


def test_version_strings_up_to_256_characters_are_read() -> None:
    """A version of 256 characters (a long pre-release tag) is read; at 257 characters it is not a version."""
    fits = "1.2.3-" + "r" * 250
    assert _enabled({"key": "v", "operator": "semver_eq", "value": "1.2.3"}, {"v": fits})
    assert not _enabled({"key": "v", "operator": "semver_eq", "value": "1.2.3"}, {"v": fits + "r"})


# --- rollout and holdout comparisons at their exact boundary ----------------------------------------------


def test_murmur3_rollout_and_holdout_are_strict_at_the_boundary() -> None:
    """murmur3 lets a position in iff it is below pct/100: a position exactly at 50 % is out of 50 %."""
    scheme = Murmur3Bucketing()
    assert not scheme.in_rollout(0.5, 50)
    assert scheme.in_rollout(0.4999999, 50)
    assert not scheme.in_rollout(0.0, 0)
    assert scheme.in_rollout(0.9999999, 100)
    assert not scheme.in_holdout(0.5, 50)
    assert scheme.in_holdout(0.4999999, 50)
    assert not scheme.in_holdout(0.0, 0)
    assert scheme.in_holdout(0.9999999, 100)


def test_posthog_rollout_and_holdout_are_inclusive_at_the_boundary() -> None:
    """posthog lets a position in iff it is at most pct/100 (PostHog's rule); holdouts clamp to 0-100."""
    scheme = PostHogBucketing()
    assert scheme.in_rollout(0.5, 50)
    assert not scheme.in_rollout(0.5000001, 50)
    assert scheme.in_rollout(1.0, 100)
    assert scheme.in_rollout(0.0, 0)
    assert scheme.in_holdout(0.5, 50)
    assert not scheme.in_holdout(0.5000001, 50)
    assert scheme.in_holdout(1.0, 100)
    assert scheme.in_holdout(1.0, 250)
    assert scheme.in_holdout(0.0, -5)
    assert not scheme.in_holdout(0.1, -5)


@pytest.mark.parametrize(
    ("rollout", "error"),
    [(0, None), (100, None), (-0.01, "invalid_definition"), (100.01, "invalid_definition")],
)
def test_rollout_percentage_accepts_exactly_0_to_100(rollout: float, error: str | None) -> None:
    """0 and 100 are valid rollouts (nobody, everybody); just outside the range the flag is an error."""
    flag = {"id": 1, "key": "f", "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]}}
    snapshot = compile_flags([flag])
    decisions = [snapshot.evaluate(Context(f"user-{n}"))["f"] for n in range(200)]
    assert {d.error for d in decisions} == {error}
    if error is None:
        assert {d.enabled for d in decisions} == {rollout == 100}


def test_variant_split_boundaries_follow_the_integer_walk() -> None:
    """murmur3: a position just below a cumulative boundary gets the earlier variant, at it the later one."""
    scheme = Murmur3Bucketing()
    variants = (("a", 25.0), ("b", 75.0))
    assert scheme.pick_variant(0.0, variants) == "a"
    assert scheme.pick_variant((2**30 - 1) / 2**32, variants) == "a"
    assert scheme.pick_variant(2**30 / 2**32, variants) == "b"
    assert scheme.pick_variant(0.999999, variants) == "b"
    assert scheme.pick_variant(0.5, (("a", 0.0), ("b", 0.0))) is None
    assert scheme.pick_variant(0.5, [("a", 50.0), ("b", 50.0)]) == "b"
    posthog = PostHogBucketing()
    assert posthog.pick_variant(0.25, variants) == "b"
    assert posthog.pick_variant(0.2499999, variants) == "a"
    assert posthog.pick_variant(1.0, variants) is None


# --- bounded caches ---------------------------------------------------------------------------------------


def test_murmur3_caches_stay_bounded() -> None:
    """Flag keys, holdout ids and variant lists are cached for speed, never beyond 65,536 entries each."""
    scheme = Murmur3Bucketing()
    for n in range(65_537 + 3):
        key = f"flag-{n}"
        scheme.variant_value(key, "u")
        scheme.rollout_value(key, "u")
        scheme.pick_variant(0.5, ((key, 100.0),))
    assert 0 < len(scheme._pair_prefix) <= 65_536
    assert 0 < len(scheme._triple_prefix) <= 65_536
    assert 0 < len(scheme._tables) <= 65_536
    # values after the caches were cleared are the same as before
    assert scheme.variant_value("flag-0", "u") == Murmur3Bucketing().variant_value("flag-0", "u")


def test_murmur3_variant_hash_is_flagds_fractional_hash() -> None:
    """variant_hash is the unsigned MurmurHash3 of the CBOR array [flag key, id], written out here, and
    the variant position is that hash over 2**32, for new and repeated keys alike."""
    scheme = Murmur3Bucketing()
    for _ in range(2):  # the second round reads the cached key prefix
        assert scheme.variant_hash("flag-x", "user-1") == mmh3.hash(b"\x82\x66flag-x\x66user-1", signed=False)
        assert scheme.variant_value("flag-x", "user-1") == scheme.variant_hash("flag-x", "user-1") / 2**32


# --- ids that are not valid UTF-8 --------------------------------------------------------------------------


def test_lone_surrogate_ids_hash_their_surrogatepass_bytes() -> None:
    """A lone surrogate (JSON "\\ud800") hashes as its surrogatepass UTF-8 bytes in both schemes."""
    raw = "bad-\ud800-id".encode("utf-8", "surrogatepass")
    assert raw == b"bad-\xed\xa0\x80-id"
    expected = mmh3.hash(b"\x83\x64flag\x6a" + raw + b"\x67rollout", signed=False) / 2**32
    assert get_scheme("murmur3").rollout_value("flag", "bad-\ud800-id") == expected
    expected = mmh3.hash(b"\x82\x64flag\x6a" + raw, signed=False) / 2**32
    assert get_scheme("murmur3").variant_value("flag", "bad-\ud800-id") == expected
    digest = hashlib.sha1(b"flag." + raw).digest()
    expected = (int.from_bytes(digest[:8], "big") >> 4) / float(0xFFFFFFFFFFFFFFF)
    assert get_scheme("posthog").rollout_value("flag", "bad-\ud800-id") == expected


def test_lone_surrogate_distinct_ids_and_values_evaluate() -> None:
    """Flags with rollouts, variants and text filters answer a lone-surrogate id without an error."""
    flag = {
        "id": 1,
        "key": "f",
        "filters": {
            "groups": [
                {
                    "properties": [{"key": "s", "operator": "icontains", "value": "A"}],
                    "rollout_percentage": 99,
                }
            ],
            "multivariate": {
                "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
            },
        },
    }
    for bucketing in ("murmur3", "posthog"):
        snapshot = compile_flags([{**flag, "bucketing": bucketing}])
        decision = snapshot.evaluate(Context("\ud800", {"s": "\udfffa"}))["f"]
        assert decision.error is None
        assert decision == snapshot.evaluate(Context("\ud800", {"s": "\udfffa"}))["f"]


# --- a bucketing value that is not a scheme fails that flag alone -----------------------------------------


@pytest.mark.parametrize("bucketing", ["md5", ["murmur3"], {"scheme": "posthog"}, 5, True])
def test_a_malformed_bucketing_value_fails_only_its_flag(bucketing: Any) -> None:
    """An unknown or non-string bucketing is an error decision for that flag, naming the field; others
    work."""
    good = {"id": 1, "key": "good", "filters": {"groups": [{"properties": []}]}}
    bad = {"id": 2, "key": "bad", "bucketing": bucketing, "filters": {"groups": [{"properties": []}]}}
    decisions = compile_flags([good, bad]).evaluate(Context("u"))
    assert decisions["good"].enabled is True
    assert (decisions["bad"].enabled, decisions["bad"].error) == (False, "invalid_definition")
    assert "bucketing" in decisions["bad"].description


# --- operators PostHog SDKs cannot evaluate locally -------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "local"),
    [
        ("between", [1, 3], False),
        ("not_between", [1, 3], False),
        ("is_date_exact", "2024-01-02", False),
        ("is_date_before", "2024-01-02", True),
        ("gt", 3, True),
        ("exact", "pro", True),
    ],
)
def test_server_only_operators_keep_a_flag_out_of_local_evaluation(
    operator: str, value: Any, local: bool
) -> None:
    """A posthog-bucketed flag using between, not_between or is_date_exact is not offered to SDKs."""
    flag = _flag({"key": "k", "operator": operator, "value": value}, bucketing="posthog")
    other = _flag({"key": "k", "operator": "exact", "value": "x"}, key="other", bucketing="posthog")
    snapshot = compile_flags([flag, other])
    assert snapshot.sdk_reproducible == ({"f", "other"} if local else {"other"})


# --- the behaviour contract is immutable ------------------------------------------------------------------


def test_contexts_are_immutable() -> None:
    """Contexts and decisions are shared (by every flag of a request, by every request): assigning to
    them raises."""
    ctx = Context("u", {"plan": "pro"})
    with pytest.raises(AttributeError):
        ctx.distinct_id = "other"  # type: ignore[misc]
    decision = compile_flags([_flag({"key": "plan", "value": "pro"})]).evaluate(ctx)["f"]
    with pytest.raises(AttributeError):
        decision.enabled = False  # type: ignore[misc]


def test_behaviour_queries_and_needs_are_immutable() -> None:
    """Queries and store needs are shared between flags: assigning to one raises instead of changing all."""
    needs = StoreNeeds(person_properties=True)
    with pytest.raises(AttributeError):
        needs.person_properties = False  # type: ignore[misc]
    built = query("counter", window_seconds=60)
    with pytest.raises(AttributeError):
        built.key = "other"  # type: ignore[misc]
    assert msgspec.structs.replace(built, key="x").key == "x"
