"""Settings come from FLAGD_* variables once, and every bad value is reported naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagd.settings import Settings, SettingsError, make_limits, make_shedder


def test_defaults_are_embedded_mode_on_localhost() -> None:
    """With no variables set, flagd runs embedded on 127.0.0.1:8000 with ./flagd.db and no syncer."""
    settings = Settings.from_env({})
    assert settings.distributed is False
    assert settings.run_syncer is False
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.data_path == Path("flagd.db")


def test_distributed_mode_needs_both_urls_and_runs_a_syncer_by_default() -> None:
    """Database and Redis URLs together select distributed mode, where the syncer is on unless disabled."""
    both = {"FLAGD_DATABASE_URL": "postgresql://db/flagd", "FLAGD_REDIS_URL": "redis://cache:6379/0"}
    settings = Settings.from_env(both)
    assert settings.distributed is True
    assert settings.run_syncer is True
    assert Settings.from_env({**both, "FLAGD_SYNCER": "off"}).run_syncer is False
    with pytest.raises(SettingsError, match="FLAGD_REDIS_URL"):
        Settings.from_env({"FLAGD_DATABASE_URL": "postgresql://db/flagd"})
    with pytest.raises(SettingsError, match="FLAGD_DATABASE_URL"):
        Settings.from_env({"FLAGD_REDIS_URL": "redis://cache:6379/0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLAGD_PORT", "eighty"),
        ("FLAGD_PORT", "70000"),
        ("FLAGD_WORKERS", "0"),
        ("FLAGD_LOG_FORMAT", "xml"),
        ("FLAGD_LOG_LEVEL", "loud"),
        ("FLAGD_SYNCER", "maybe"),
        ("FLAGD_DEMO", "2"),
        ("FLAGD_RECONCILE_SECONDS", "-1"),
        ("FLAGD_EMBEDDED_POLL_SECONDS", "never"),
        ("FLAGD_ADMIN_MAX_BODY_BYTES", "10"),
        ("FLAGD_DATABASE_URL", "mysql://db"),
        ("FLAGD_BOOTSTRAP_PROJECT_TOKEN", "short"),
        ("FLAGD_BOOTSTRAP_ADMIN_KEY", "phc_wrong_prefix_0000000000000"),
        ("FLAGD_LIMIT_MAX_BODY_BYTES", "lots"),
        ("FLAGD_LIMIT_NO_SUCH_LIMIT", "1"),
        ("FLAGD_SHED_MAX_IN_FLIGHT", "1.5"),
        ("FLAGD_SHED_INTERVAL", "0"),
        ("FLAGD_LIMIT_LOG_SAMPLE_RATE", "2"),
        ("FLAGD_STORE_DEADLINE_MS", "0"),
        ("FLAGD_STORE_DEADLINE_MS", "soon"),
        ("FLAGD_STORE_HEDGING", "sometimes"),
        ("FLAGD_STORE_HEDGE_FLOOR_MS", "-1"),
        ("FLAGD_STORE_HEDGE_BUDGET", "1.5"),
        ("FLAGD_REDIS_REPLICA_WAIT_MS", "0"),
        ("FLAGD_REDIS_REPLICA_URLS", "http://replica:6379"),
        ("FLAGD_REDIS_URL", "cluster://cache:7000"),
        ("FLAGD_PERSON_TTL_DAYS", "0"),
        ("FLAGD_PERSON_STORE", "sometimes"),
        ("FLAGD_EVENT_HISTORY_DAYS", "-3"),
        ("FLAGD_MAX_BEHAVIOURAL_CONDITIONS", "0"),
        ("FLAGD_LIMIT_MAX_PERSON_PROPERTIES", "0"),
    ],
)
def test_bad_value_names_its_variable(name: str, value: str) -> None:
    """Each invalid value fails start-up with a message naming the variable (or its prefix family)."""
    env = {name: value}
    if name == "FLAGD_DATABASE_URL":
        env["FLAGD_REDIS_URL"] = "redis://cache/0"
    if name == "FLAGD_REDIS_REPLICA_URLS":
        env |= {"FLAGD_DATABASE_URL": "postgresql://db/flagd", "FLAGD_REDIS_URL": "redis://cache/0"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    family = name if not name.startswith(("FLAGD_LIMIT_", "FLAGD_SHED_")) else name[: name.index("_", 6) + 1]
    assert any(p.startswith((name, family)) for p in caught.value.problems), caught.value.problems


def test_replicas_and_cluster_urls_are_read_and_checked() -> None:
    """Replica URLs are a comma-separated list next to a primary; a Redis Cluster is named by
    ``redis+cluster://`` and takes no replica list; the store deadline defaults to 25 ms."""
    base = {"FLAGD_DATABASE_URL": "postgresql://db/flagd", "FLAGD_REDIS_URL": "redis://primary:6379/0"}
    settings = Settings.from_env({**base, "FLAGD_REDIS_REPLICA_URLS": "redis://r1:6379/0, redis://r2:6379/0"})
    assert settings.redis_replica_urls == ("redis://r1:6379/0", "redis://r2:6379/0")
    assert settings.store_deadline_ms == 25.0
    assert settings.store_hedging is True
    cluster = {**base, "FLAGD_REDIS_URL": "redis+cluster://node1:7000"}
    assert Settings.from_env(cluster).redis_url == "redis+cluster://node1:7000"
    with pytest.raises(SettingsError, match="FLAGD_REDIS_REPLICA_URLS"):
        Settings.from_env({**cluster, "FLAGD_REDIS_REPLICA_URLS": "redis://r1:6379/0"})
    with pytest.raises(SettingsError, match="FLAGD_REDIS_REPLICA_URLS"):
        Settings.from_env({"FLAGD_REDIS_REPLICA_URLS": "redis://r1:6379/0"})


def test_every_problem_is_reported_at_once() -> None:
    """Several bad variables produce one error listing all of them."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLAGD_PORT": "x", "FLAGD_LOG_LEVEL": "y", "FLAGD_WORKERS": "z"})
    names = {p.split(":")[0] for p in caught.value.problems}
    assert names == {"FLAGD_PORT", "FLAGD_LOG_LEVEL", "FLAGD_WORKERS"}


def test_several_workers_are_allowed_in_both_modes() -> None:
    """Embedded workers follow each other's writes through the SQLite change log, so more than one is fine."""
    assert Settings.from_env({"FLAGD_WORKERS": "4"}).workers == 4
    distributed = Settings.from_env(
        {"FLAGD_WORKERS": "4", "FLAGD_DATABASE_URL": "postgres://db/x", "FLAGD_REDIS_URL": "redis://r/0"}
    )
    assert distributed.workers == 4
    assert Settings.from_env({"FLAGD_EMBEDDED_POLL_SECONDS": "0.25"}).embedded_poll_seconds == 0.25


def test_limit_and_shedding_knobs_reach_their_objects() -> None:
    """FLAGD_LIMIT_* and FLAGD_SHED_* set the named Limits field and LoadShedder argument (0 = off)."""
    settings = Settings.from_env(
        {"FLAGD_LIMIT_MAX_FLAG_KEYS": "17", "FLAGD_SHED_MAX_IN_FLIGHT": "33", "FLAGD_SHED_TARGET_DELAY": "0"}
    )
    assert make_limits(settings).max_flag_keys == 17
    shedder = make_shedder(settings)
    assert shedder.max_in_flight == 33
    assert shedder.target_delay is None


@given(
    port=st.integers(1, 65535),
    workers=st.integers(1, 64),
    level=st.sampled_from(["debug", "info", "warning", "error", "critical"]),
    fmt=st.sampled_from(["auto", "json", "console"]),
    demo=st.booleans(),
    syncer=st.none() | st.booleans(),
    max_keys=st.integers(1, 10_000),
)
def test_to_env_round_trips(
    port: int, workers: int, level: str, fmt: str, demo: bool, syncer: bool | None, max_keys: int
) -> None:
    """Settings handed to worker processes through the environment come back identical."""
    settings = Settings(
        database_url="postgresql://db/flagd",
        redis_url="redis://cache/0",
        port=port,
        workers=workers,
        log_level=level,
        log_format=fmt,  # type: ignore[arg-type]
        demo=demo,
        syncer=syncer,
        bootstrap_admin_key="phx_" + "a" * 20,
        limits={"max_flag_keys": max_keys},
        redis_replica_urls=("redis://r1/0", "redis://r2/0"),
        store_deadline_ms=40.0,
        store_hedging=False,
        store_hedge_floor_ms=1.5,
        store_hedge_budget=0.05,
        redis_replica_wait_ms=80,
    )
    assert Settings.from_env(settings.to_env()) == settings


def test_person_store_settings_round_trip_to_workers() -> None:
    """The person store settings are read from the environment and handed on to Granian workers unchanged."""
    env = {
        "FLAGD_PERSON_TTL_DAYS": "7",
        "FLAGD_PERSON_STORE": "0",
        "FLAGD_EVENT_HISTORY_DAYS": "3",
        "FLAGD_MAX_BEHAVIOURAL_CONDITIONS": "50",
    }
    settings = Settings.from_env(env)
    assert (settings.person_ttl_days, settings.person_store, settings.event_history_days) == (7, False, 3)
    assert settings.max_behavioural_conditions == 50
    assert Settings.from_env(settings.to_env()) == settings
