"""The flagd command line: migrate, import/export round trips, create-key, and clear exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flagd.cli import main
from store.stream.embedded import EmbeddedBackend

SOURCE = {
    "flags": [
        {
            "id": 101,
            "team_id": 7,
            "key": "base",
            "name": "Base rollout",
            "active": True,
            "deleted": False,
            "version": 4,
            "filters": {"groups": [{"properties": [], "rollout_percentage": 45}]},
        },
        {
            "id": 102,
            "team_id": 7,
            "key": "needs-base",
            "name": "Depends on base",
            "active": True,
            "filters": {
                "groups": [
                    {
                        "properties": [
                            {"key": "101", "type": "flag", "value": True, "operator": "flag_evaluates_to"}
                        ],
                        "rollout_percentage": 100,
                    }
                ]
            },
        },
        {
            "id": 103,
            "key": "pros",
            "name": "Cohort targeted",
            "active": True,
            "filters": {
                "groups": [
                    {"properties": [{"key": "id", "type": "cohort", "value": 55}], "rollout_percentage": 100}
                ],
                "multivariate": {
                    "variants": [
                        {"key": "a", "rollout_percentage": 50},
                        {"key": "b", "rollout_percentage": 50},
                    ]
                },
                "payloads": {"a": '{"x": 1}'},
            },
        },
        {"id": 104, "key": "gone", "active": True, "deleted": True, "filters": {"groups": []}},
        {
            "id": 106,
            "key": "by-device",
            "active": True,
            "bucketing_identifier": "device_id",
            "filters": {"groups": [{"properties": [], "rollout_percentage": 30}]},
        },
        {
            "id": 105,
            "key": "for-companies",
            "active": True,
            "filters": {
                "aggregation_group_type_index": 0,
                "groups": [{"properties": [], "rollout_percentage": 100}],
            },
        },
    ],
    "cohorts": {"55": {"type": "OR", "values": [{"key": "plan", "type": "person", "value": "pro"}]}},
    "group_type_mapping": {"0": "company"},
}


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment for the CLI in embedded mode on a fresh SQLite file (no other FLAGD_* leaks in)."""
    import os

    for name in [k for k in os.environ if k.startswith("FLAGD_")]:
        monkeypatch.delenv(name)
    db = tmp_path / "cli.db"
    monkeypatch.setenv("FLAGD_DATA_PATH", str(db))
    return db


def _flags_in(db: Path) -> dict[str, dict[str, Any]]:
    async def read() -> dict[str, dict[str, Any]]:
        backend = await EmbeddedBackend.open(db)
        try:
            projects = await backend.repository.list_projects()
            page = await backend.repository.list_flags(projects[0].id)
            return {f.key: f.definition() for f in page.items}
        finally:
            await backend.close()

    return asyncio.run(read())


def _cohort_ids(db: Path) -> set[str]:
    async def read() -> set[str]:
        backend = await EmbeddedBackend.open(db)
        try:
            projects = await backend.repository.list_projects()
            page = await backend.repository.list_cohorts(projects[0].id)
            return {str(c.id) for c in page.items}
        finally:
            await backend.close()

    return asyncio.run(read())


def _comparable(flags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f["key"]: (
            f["name"],
            f["active"],
            f["bucketing"],
            f["filters"].get("multivariate"),
            f.get("bucketing_identifier"),
        )
        for f in flags
    }


def test_import_then_export_round_trips(
    embedded_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imported flags keep posthog bucketing; export, re-import elsewhere, export again: same flags."""
    source = tmp_path / "source.json"
    source.write_text(json.dumps(SOURCE))
    assert main(["import", str(source)]) == 0
    out = capsys.readouterr().out
    assert "5 created" in out
    assert "1 skipped" in out
    stored = _flags_in(embedded_env)
    assert set(stored) == {"base", "needs-base", "pros", "for-companies", "by-device"}
    assert stored["by-device"]["bucketing_identifier"] == "device_id"
    assert {f["bucketing"] for f in stored.values()} == {"posthog"}
    dependency = stored["needs-base"]["filters"]["groups"][0]["properties"][0]
    assert dependency["key"] == "base"  # the source id was rewritten to the key
    cohort_ref = stored["pros"]["filters"]["groups"][0]["properties"][0]["value"]
    assert str(cohort_ref) in _cohort_ids(embedded_env)  # rewritten to the imported cohort's new id

    exported = tmp_path / "exported.json"
    assert main(["export", "-o", str(exported)]) == 0
    first = json.loads(exported.read_text())
    live_source = [{"name": "", **f, "bucketing": "posthog"} for f in SOURCE["flags"] if not f.get("deleted")]
    assert _comparable(first["flags"]) == _comparable(live_source)
    assert len(first["cohorts"]) == 1
    assert first["group_type_mapping"] == {"0": "company"}  # added to the project by the import

    monkeypatch.setenv("FLAGD_DATA_PATH", str(tmp_path / "second.db"))
    assert main(["import", str(exported)]) == 0
    again = tmp_path / "again.json"
    assert main(["export", "-o", str(again)]) == 0
    second = json.loads(again.read_text())
    assert _comparable(second["flags"]) == _comparable(first["flags"])


def test_import_updates_existing_keys_instead_of_duplicating(embedded_env: Path, tmp_path: Path) -> None:
    """Importing the same file twice updates the flags in place (one flag per key, version bumped)."""
    source = tmp_path / "source.json"
    source.write_text(json.dumps(SOURCE["flags"][:1]))
    assert main(["import", str(source)]) == 0
    assert main(["import", str(source)]) == 0
    stored = _flags_in(embedded_env)
    assert list(stored) == ["base"]
    assert stored["base"]["version"] == 2


def test_import_reports_invalid_flags_with_their_path(
    embedded_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flag that fails validation is named with its field path and the exit code is 1."""
    bad = [{"key": "broken", "filters": {"groups": [{"properties": [], "rollout_percentage": 300}]}}]
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(bad))
    assert main(["import", str(source)]) == 1
    err = capsys.readouterr().err
    assert "broken.filters.groups[0].rollout_percentage" in err
    assert "broken" not in _flags_in(embedded_env)


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not JSON"), ('{"nope": 1}', '"flags"'), ('[{"name": "no key"}]', "flags[0].key")],
)
def test_import_rejects_malformed_files_with_exit_2(
    embedded_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    """A file that is not PostHog flag JSON is a usage error (exit 2) saying where it is wrong."""
    source = tmp_path / "input.json"
    source.write_text(content)
    assert main(["import", str(source)]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_and_unknown_project_are_usage_errors(
    embedded_env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file that does not exist or a project that does not exist exits 2 with the reason."""
    assert main(["import", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["export", "--project", "42"]) == 2
    assert "no project 42" in capsys.readouterr().err


def test_bad_configuration_exits_2_naming_the_variable(
    embedded_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid FLAGD_* variable stops every command with exit code 2 and the variable's name."""
    monkeypatch.setenv("FLAGD_PORT", "eighty")
    assert main(["migrate"]) == 2
    assert "FLAGD_PORT" in capsys.readouterr().err


def test_create_key_prints_a_working_key(embedded_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """create-key prints a raw key once; the repository authenticates it with the requested scope."""
    assert main(["export"]) == 0  # bootstraps the default project
    capsys.readouterr()
    assert main(["create-key", "--label", "ci", "--scope", "read", "--project", "1"]) == 0
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("phx_")

    async def check() -> Any:
        backend = await EmbeddedBackend.open(embedded_env)
        try:
            return await backend.repository.authenticate(raw)
        finally:
            await backend.close()

    key = asyncio.run(check())
    assert key is not None
    assert (key.scope, key.project_id, key.label) == ("read", 1, "ci")
    assert main(["create-key", "--project", "nine"]) == 2


def test_embedded_migrate_creates_the_file(embedded_env: Path) -> None:
    """In embedded mode, migrate creates the SQLite store."""
    assert not embedded_env.exists()
    assert main(["migrate"]) == 0
    assert embedded_env.exists()


@pytest.mark.integration
def test_migrate_on_postgresql_is_idempotent(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """migrate creates the schema once; a second run reports it is up to date."""
    monkeypatch.setenv("FLAGD_DATABASE_URL", database_url)
    monkeypatch.setenv("FLAGD_REDIS_URL", redis_url)
    assert main(["migrate"]) == 0
    assert "001_initial.sql" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out

    async def tables() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    assert {"projects", "feature_flags", "change_log"} <= asyncio.run(tables())


@pytest.mark.integration
def test_import_export_on_postgresql(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same import/export round trip works in distributed mode against PostgreSQL."""
    monkeypatch.setenv("FLAGD_DATABASE_URL", database_url)
    monkeypatch.setenv("FLAGD_REDIS_URL", redis_url)
    assert main(["migrate"]) == 0
    source = tmp_path / "source.json"
    source.write_text(json.dumps(SOURCE))
    assert main(["import", str(source)]) == 0
    exported = tmp_path / "out.json"
    assert main(["export", "-o", str(exported)]) == 0
    flags = json.loads(exported.read_text())["flags"]
    assert sorted(f["key"] for f in flags) == ["base", "by-device", "for-companies", "needs-base", "pros"]
    assert {f["key"]: f["bucketing_identifier"] for f in flags}["by-device"] == "device_id"


ROOT = Path(__file__).resolve().parents[2]


def _cli_commands(text: str, marker: str) -> list[list[str]]:
    """JSON-array commands (``CMD [...]`` / ``command: [...]``) that start with ``flagd``."""
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(marker) and "[" in stripped:
            argv = json.loads(stripped[stripped.index("[") :])
            if argv and argv[0] == "flagd":
                found.append(argv)
    return found


def test_dockerfile_runs_real_commands_as_non_root() -> None:
    """The image is python:3.11-slim, runs as a non-root user, checks /healthz and starts `flagd serve`."""
    from flagd.cli import build_parser

    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER flagd" in text
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]
    commands = _cli_commands(text, "CMD")
    assert commands == [["flagd", "serve", "--host", "0.0.0.0"]]
    assert build_parser().parse_args(commands[0][1:]).command == "serve"


def test_compose_file_runs_migrate_then_two_nodes() -> None:
    """compose.yaml has PostgreSQL, Redis, a one-shot migrate and two flagd nodes, all with valid commands."""
    from flagd.cli import build_parser

    text = (ROOT / "compose.yaml").read_text()
    services = {
        line.strip().rstrip(":")
        for line in text.splitlines()
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":")
    }
    assert {"postgres", "redis", "migrate", "flagd-1", "flagd-2"} <= services
    commands = _cli_commands(text, "command:")
    assert [c[1] for c in commands] == ["migrate", "serve", "serve"]
    for argv in commands:
        build_parser().parse_args(argv[1:])
    environment = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.strip().startswith("FLAGD_")
    }
    defaults = {
        name: value.split(":-", 1)[1].rstrip("}") if ":-" in value else value.strip('"')
        for name, value in environment.items()
    }
    from flagd.settings import Settings

    settings = Settings.from_env(defaults)  # the compose environment is a valid configuration
    assert settings.distributed is True


@pytest.mark.integration
def test_serve_on_an_unmigrated_database_says_to_migrate(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve refuses to start on an empty database (exit 1) and tells the user to run flagd migrate."""
    monkeypatch.setenv("FLAGD_DATABASE_URL", database_url)
    monkeypatch.setenv("FLAGD_REDIS_URL", redis_url)
    assert main(["serve", "--port", "1"]) == 1
    assert "flagd migrate" in capsys.readouterr().err


def test_serve_rejects_a_bad_port_option(embedded_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range --port is a usage error naming the option."""
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
