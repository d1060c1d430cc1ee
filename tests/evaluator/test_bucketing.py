"""Bucketing schemes: known answers from the written formulas, and the properties every scheme must keep.

Expected hashes are recomputed here from the contract in ``evaluator/bucketing.py`` with ``hashlib``, ``mmh3``
and ``cbor2`` directly -- never by calling the module under test.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
from collections import Counter

import cbor2
import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.bucketing import (
    SCHEME_NAMES,
    BucketingScheme,
    Murmur3Bucketing,
    PostHogBucketing,
    get_scheme,
)

IDS = [f"user-{i}" for i in range(20_000)]
BINS = 20
# Chi-square critical value for 19 degrees of freedom at p = 0.001 (a uniform hash fails 1 run in 1000;
# the ids are fixed, so a given hash either always passes or always fails).
CHI2_CRITICAL_DF19 = 43.82

keys = st.text(min_size=1, max_size=40)
ids = st.text(max_size=300)
percentages = st.floats(min_value=0, max_value=100, allow_nan=False)
holdout_ids = st.one_of(st.integers(min_value=0, max_value=10**12), st.text(min_size=1, max_size=12))
schemes = st.sampled_from(SCHEME_NAMES).map(get_scheme)


def posthog_hash(text: str) -> float:
    """The PostHog formula, written out: 15 hex digits of SHA-1 over a float scale."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16) / float(0xFFFFFFFFFFFFFFF)


def murmur3_hash(*items: str) -> int:
    """The flagd formula, written out: unsigned MurmurHash3 x86_32 of the canonical CBOR array."""
    return int(mmh3.hash(cbor2.dumps(list(items), canonical=True), signed=False))


def chi_square(values: list[float]) -> float:
    """Pearson's statistic of ``values`` (in [0, 1]) against BINS equal bins."""
    counts = Counter(min(int(v * BINS), BINS - 1) for v in values)
    expected = len(values) / BINS
    return sum((counts[b] - expected) ** 2 / expected for b in range(BINS))


def within_sigmas(observed: int, n: int, share: float, sigmas: float = 4.5) -> bool:
    """Whether a binomial count is within ``sigmas`` standard deviations of ``n * share``."""
    sd = math.sqrt(n * share * (1 - share)) or 1.0
    return abs(observed - n * share) <= sigmas * sd


def test_unknown_scheme_raises_value_error() -> None:
    """Asking for a scheme that does not exist raises ValueError naming the known schemes."""
    for name in ("md5", "", "Murmur3", "posthog "):
        with pytest.raises(ValueError, match="murmur3, posthog"):
            get_scheme(name)


def test_every_scheme_name_resolves_to_a_shared_instance_of_that_name() -> None:
    """Each name in SCHEME_NAMES gives the scheme of that name, the same object every time."""
    assert SCHEME_NAMES == ("murmur3", "posthog")
    for name in SCHEME_NAMES:
        scheme: BucketingScheme = get_scheme(name)
        assert scheme.name == name
        assert get_scheme(name) is scheme


# --- known answers: posthog -------------------------------------------------------------------------------

POSTHOG_VECTORS = [  # (flag key, id) pinned to the formula, so a silent formula change is caught here too
    ("simple-flag", "distinct_id_0"),
    ("multivariate-flag", "distinct_id_999"),
    ("beta-feature", "user@example.com"),
    ("ünïcödé", "日本語"),
    ("k", ""),
]


@pytest.mark.parametrize(("flag_key", "bucketing_id"), POSTHOG_VECTORS)
def test_posthog_known_answers(flag_key: str, bucketing_id: str) -> None:
    """posthog values equal sha1 of "<key>.<id>" (rollout), "<key>.<id>variant" and "holdout-<id>"."""
    scheme = get_scheme("posthog")
    assert scheme.rollout_value(flag_key, bucketing_id) == posthog_hash(f"{flag_key}.{bucketing_id}")
    assert scheme.variant_value(flag_key, bucketing_id) == posthog_hash(f"{flag_key}.{bucketing_id}variant")
    assert scheme.holdout_value(7, bucketing_id) == posthog_hash(f"holdout-{bucketing_id}")


def test_posthog_pinned_value() -> None:
    """One value is pinned as a literal: 0xc8a05362b9f414f (sha1 of "simple-flag.distinct_id_0") / scale."""
    assert get_scheme("posthog").rollout_value("simple-flag", "distinct_id_0") == 0xC8A05362B9F414F / float(
        0xFFFFFFFFFFFFFFF
    )


@given(flag_key=keys, bucketing_id=ids, holdout_id=holdout_ids)
def test_posthog_matches_formula_for_any_input(
    flag_key: str, bucketing_id: str, holdout_id: int | str
) -> None:
    """For arbitrary text, posthog values equal the written SHA-1 formula; the holdout id is not hashed."""
    scheme = get_scheme("posthog")
    assert scheme.rollout_value(flag_key, bucketing_id) == posthog_hash(f"{flag_key}.{bucketing_id}")
    assert scheme.variant_value(flag_key, bucketing_id) == posthog_hash(f"{flag_key}.{bucketing_id}variant")
    assert scheme.holdout_value(holdout_id, bucketing_id) == posthog_hash(f"holdout-{bucketing_id}")


# --- known answers: murmur3 -------------------------------------------------------------------------------


def test_murmur3_pinned_cbor_bytes() -> None:
    """The variant hash input is the CBOR array 0x82, 0x66 "flag-x", 0x66 "user-1", written by hand here."""
    expected = mmh3.hash(b"\x82\x66flag-x\x66user-1", signed=False)
    assert get_scheme("murmur3").variant_value("flag-x", "user-1") == expected / 2**32
    rollout = mmh3.hash(b"\x83\x66flag-x\x66user-1\x67rollout", signed=False)
    assert get_scheme("murmur3").rollout_value("flag-x", "user-1") == rollout / 2**32
    holdout = mmh3.hash(b"\x83\x6242\x66user-1\x67holdout", signed=False)
    assert get_scheme("murmur3").holdout_value(42, "user-1") == holdout / 2**32


@pytest.mark.parametrize("size", [0, 1, 23, 24, 255, 256, 65_535, 65_536])
def test_murmur3_length_headers_at_every_cbor_boundary(size: int) -> None:
    """Ids whose UTF-8 length sits on a CBOR header boundary hash exactly as canonical CBOR says."""
    bucketing_id = "x" * size
    scheme = get_scheme("murmur3")
    assert scheme.variant_value("f", bucketing_id) * 2**32 == murmur3_hash("f", bucketing_id)
    assert scheme.rollout_value("k" * size, "u") * 2**32 == murmur3_hash("k" * size, "u", "rollout")


@given(flag_key=keys, bucketing_id=ids, holdout_id=holdout_ids)
def test_murmur3_matches_formula_for_any_input(
    flag_key: str, bucketing_id: str, holdout_id: int | str
) -> None:
    """For arbitrary text, murmur3 values equal mmh3 over the canonical CBOR arrays of the contract."""
    scheme = get_scheme("murmur3")
    assert scheme.variant_value(flag_key, bucketing_id) * 2**32 == murmur3_hash(flag_key, bucketing_id)
    assert scheme.rollout_value(flag_key, bucketing_id) * 2**32 == murmur3_hash(
        flag_key, bucketing_id, "rollout"
    )
    assert scheme.holdout_value(holdout_id, bucketing_id) * 2**32 == murmur3_hash(
        str(holdout_id), bucketing_id, "holdout"
    )


@given(
    value=st.integers(min_value=0, max_value=2**32 - 1), weights=st.lists(st.integers(0, 10_000), max_size=8)
)
def test_murmur3_variant_walk_is_flagds_integer_walk(value: int, weights: list[int]) -> None:
    """pick_variant equals (h * total) >> 32 walked over cumulative weights in hundredths of a percent."""
    variants = [(f"v{i}", w / 100) for i, w in enumerate(weights)]
    total = sum(weights)
    expected = None
    if total:
        bucket = (value * total) >> 32
        running = 0
        for (key, _), weight in zip(variants, weights, strict=True):
            running += weight
            if bucket < running:
                expected = key
                break
    assert get_scheme("murmur3").pick_variant(value / 2**32, variants) == expected


# --- properties every scheme keeps ------------------------------------------------------------------------


@given(scheme=schemes, flag_key=keys, bucketing_id=ids, holdout_id=holdout_ids)
def test_values_are_in_range_and_deterministic(
    scheme: BucketingScheme, flag_key: str, bucketing_id: str, holdout_id: int | str
) -> None:
    """Every value is in [0, 1] (variant in [0, 1)) and a fresh instance gives the same answer."""
    fresh: BucketingScheme = Murmur3Bucketing() if scheme.name == "murmur3" else PostHogBucketing()
    rollout = scheme.rollout_value(flag_key, bucketing_id)
    variant = scheme.variant_value(flag_key, bucketing_id)
    holdout = scheme.holdout_value(holdout_id, bucketing_id)
    assert 0.0 <= rollout <= 1.0
    assert 0.0 <= variant < 1.0
    assert 0.0 <= holdout <= 1.0
    assert fresh.rollout_value(flag_key, bucketing_id) == rollout
    assert fresh.variant_value(flag_key, bucketing_id) == variant
    assert fresh.holdout_value(holdout_id, bucketing_id) == holdout


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_lone_surrogates_hash_like_their_surrogatepass_bytes(name: str) -> None:
    """An id that is not valid UTF-8 (a lone surrogate from JSON) hashes as its surrogatepass bytes, and the
    same as the id "bad-\\ud800-id" with the surrogate written out as those bytes would in the formula."""
    scheme = get_scheme(name)
    raw = "bad-\ud800-id".encode("utf-8", "surrogatepass")
    if name == "posthog":
        expected = int(hashlib.sha1(b"flag." + raw).hexdigest()[:15], 16) / float(0xFFFFFFFFFFFFFFF)
    else:
        expected = (
            mmh3.hash(b"\x83\x64flag" + bytes((0x60 | len(raw),)) + raw + b"\x67rollout", signed=False)
            / 2**32
        )
    assert scheme.rollout_value("flag", "bad-\ud800-id") == expected
    assert 0.0 <= scheme.variant_value("fl\udfffag", "\ud800") < 1.0
    assert 0.0 <= scheme.holdout_value("\ud800", "\udfff") <= 1.0


@pytest.mark.parametrize("name", SCHEME_NAMES)
@pytest.mark.parametrize("kind", ["rollout", "variant", "holdout"])
def test_values_are_uniform(name: str, kind: str) -> None:
    """20,000 ids spread over 20 equal bins pass a chi-square test at p = 0.001."""
    scheme = get_scheme(name)
    if kind == "rollout":
        values = [scheme.rollout_value("uniformity-flag", i) for i in IDS]
    elif kind == "variant":
        values = [scheme.variant_value("uniformity-flag", i) for i in IDS]
    else:
        values = [scheme.holdout_value(99, i) for i in IDS]
    assert chi_square(values) < CHI2_CRITICAL_DF19


@given(scheme=schemes, flag_key=keys, bucketing_id=ids, p=percentages, q=percentages)
def test_rollout_and_holdout_are_monotone(
    scheme: BucketingScheme, flag_key: str, bucketing_id: str, p: float, q: float
) -> None:
    """A user inside a rollout (or holdout) at p is inside at every q >= p."""
    low, high = min(p, q), max(p, q)
    rollout = scheme.rollout_value(flag_key, bucketing_id)
    if scheme.in_rollout(rollout, low):
        assert scheme.in_rollout(rollout, high)
    holdout = scheme.holdout_value(1, bucketing_id)
    if scheme.in_holdout(holdout, low):
        assert scheme.in_holdout(holdout, high)


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_raising_a_rollout_only_adds_users_and_matches_the_percentage(name: str) -> None:
    """Each step up in percentage keeps every user already in, and lets in about that share of ids."""
    scheme = get_scheme(name)
    values = [scheme.rollout_value("growing-flag", i) for i in IDS]
    previous: set[int] = set()
    for pct in (0, 1, 5, 12.5, 45, 50, 99, 99.9, 100):
        inside = {n for n, v in enumerate(values) if scheme.in_rollout(v, pct)}
        assert previous <= inside
        assert within_sigmas(len(inside), len(IDS), pct / 100)
        previous = inside
    assert len(previous) == len(IDS)


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_holdout_edges_and_share(name: str) -> None:
    """Holdouts of 0 % hold out nobody, 100 % (or more) everybody, and 10 % about a tenth of ids."""
    scheme = get_scheme(name)
    values = [scheme.holdout_value(5, i) for i in IDS]
    assert not any(scheme.in_holdout(v, 0) for v in values)
    assert all(scheme.in_holdout(v, 100) for v in values)
    assert all(scheme.in_holdout(v, 150) for v in values)
    assert within_sigmas(sum(scheme.in_holdout(v, 10) for v in values), len(IDS), 0.10)


def test_posthog_holdout_ignores_the_holdout_id_and_murmur3_does_not() -> None:
    """PostHog holds out the same users in every holdout; murmur3 draws each holdout independently."""
    posthog, murmur3 = get_scheme("posthog"), get_scheme("murmur3")
    assert all(posthog.holdout_value(1, i) == posthog.holdout_value("other", i) for i in IDS[:500])
    first = {i for i in IDS if murmur3.in_holdout(murmur3.holdout_value(1, i), 20)}
    second = {i for i in IDS if murmur3.in_holdout(murmur3.holdout_value(2, i), 20)}
    # Independent 20 % draws overlap on about 4 % of ids, not 20 %.
    assert within_sigmas(len(first & second), len(IDS), 0.04)


@pytest.mark.parametrize("name", SCHEME_NAMES)
@pytest.mark.parametrize(
    "split",
    [(50, 20, 20, 5, 5), (33.33, 33.33, 33.34), (0, 100), (99.99, 0.01), (25, 0, 75)],
)
def test_variant_shares_converge_to_percentages(name: str, split: tuple[float, ...]) -> None:
    """Over 20,000 ids each variant gets about its percentage, a 0 % variant nobody, and none is left out."""
    scheme = get_scheme(name)
    variants = [(f"variant-{n}", pct) for n, pct in enumerate(split)]
    counts = Counter(scheme.pick_variant(scheme.variant_value("experiment", i), variants) for i in IDS)
    assert None not in counts
    for key, pct in variants:
        assert within_sigmas(counts[key], len(IDS), pct / 100)
        if pct == 0:
            assert counts[key] == 0


@given(scheme=schemes, value=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_variant_list_and_tuple_give_the_same_answer(scheme: BucketingScheme, value: float) -> None:
    """pick_variant answers the same whether the variants come as a list or a tuple."""
    variants = [("control", 34.5), ("test", 65.5)]
    assert scheme.pick_variant(value, variants) == scheme.pick_variant(value, tuple(variants))
    assert scheme.pick_variant(value, variants) in {"control", "test"}


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_no_variants_or_zero_total_picks_none(name: str) -> None:
    """With no variants, or only 0 % variants, no variant is picked."""
    scheme = get_scheme(name)
    assert scheme.pick_variant(0.5, []) is None
    assert scheme.pick_variant(0.0, [("a", 0), ("b", 0)]) is None


def test_percentages_short_of_100_differ_by_scheme_as_documented() -> None:
    """Variants summing to 60: posthog leaves the top 40 % without a variant, murmur3 scales to the sum."""
    variants = [("a", 30), ("b", 30)]
    assert get_scheme("posthog").pick_variant(0.7, variants) is None
    assert get_scheme("murmur3").pick_variant(0.7, variants) == "b"
    assert get_scheme("murmur3").pick_variant(0.4, variants) == "a"


def test_murmur3_rollout_and_variant_are_uncorrelated() -> None:
    """Among the users a 30 % rollout lets in, a 50/50 split still gives each variant about half."""
    scheme = get_scheme("murmur3")
    variants = (("control", 50.0), ("test", 50.0))
    inside = [i for i in IDS if scheme.in_rollout(scheme.rollout_value("checkout", i), 30)]
    assert within_sigmas(len(inside), len(IDS), 0.30)
    tests = sum(scheme.pick_variant(scheme.variant_value("checkout", i), variants) == "test" for i in inside)
    assert within_sigmas(tests, len(inside), 0.5)


@settings(max_examples=50)
@given(flag_key=keys, other_key=keys)
def test_different_flags_bucket_the_same_ids_differently(flag_key: str, other_key: str) -> None:
    """Two flags with different keys do not put the same 64 ids in the same order (the key is hashed)."""
    if flag_key == other_key:
        return
    for scheme in map(get_scheme, SCHEME_NAMES):
        first = [scheme.variant_value(flag_key, i) for i in IDS[:64]]
        second = [scheme.variant_value(other_key, i) for i in IDS[:64]]
        assert first != second


def test_concurrent_threads_get_their_own_ids_answers() -> None:
    """Four threads hashing different ids at once each get exactly the formula's values (smoke test)."""
    scheme = Murmur3Bucketing()
    errors: list[str] = []

    def work(offset: int) -> None:
        for n in range(3000):
            bucketing_id = f"thread-{offset}-{n}"
            # Several calls per id, as in a request: the later ones take the cached encoding.
            for key in ("flag-a", "flag-b", "flag-c"):
                value = scheme.rollout_value(key, bucketing_id)
                if value * 2**32 != murmur3_hash(key, bucketing_id, "rollout"):
                    errors.append(bucketing_id)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to interleave inside the hash calls
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
