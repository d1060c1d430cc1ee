"""`flagd import` is all-or-nothing by default: every error listed with its path, nothing written."""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagd.cli import main
from flagd.porting import FlagDocument, import_flags, parse_document
from store.stream.embedded import EmbeddedBackend
from tests.evaluator.strategies import flags
from tests.flagd.test_cli import SOURCE, _cohort_ids, _flags_in, embedded_env  # noqa: F401

BAD = [
    {"key": "typo", "filters": {"groups": [{"properties": [], "rollout_percentag": 5}]}},
    {
        "key": "orphan",
        "filters": {
            "groups": [
                {"properties": [{"key": "nope", "type": "flag", "value": True}], "rollout_percentage": 1}
            ]
        },
    },
]


def _document(extra: list[dict[str, Any]]) -> str:
    document = copy.deepcopy(SOURCE)
    document["flags"] = [*document["flags"], *extra]
    return json.dumps(document)


def test_one_bad_flag_imports_nothing_and_every_error_is_listed(
    embedded_env: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Good flags, cohorts and group types are not written when any flag is bad; each error has its path."""
    source = tmp_path / "mixed.json"
    source.write_text(_document(BAD))
    assert main(["import", str(source)]) == 1
    err = capsys.readouterr().err
    assert "nothing imported" in err
    assert "typo.filters.groups[0].rollout_percentag" in err
    assert "orphan.filters.groups[0].properties[0]" in err
    assert _flags_in(embedded_env) == {}
    assert _cohort_ids(embedded_env) == set()


def test_partial_imports_what_is_valid_and_lists_the_rest(
    embedded_env: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --partial the valid flags are written and the invalid ones are listed (exit 1)."""
    source = tmp_path / "mixed.json"
    source.write_text(_document(BAD))
    assert main(["import", "--partial", str(source)]) == 1
    err = capsys.readouterr().err
    assert "typo.filters.groups[0].rollout_percentag" in err
    stored = _flags_in(embedded_env)
    assert {"base", "needs-base", "pros", "for-companies"} <= set(stored)
    assert "typo" not in stored


def test_a_repeated_key_or_a_cycle_across_the_file_is_caught_before_writing(
    embedded_env: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Problems only visible across flags (a repeated key, a dependency cycle) also stop the whole import."""

    def depends_on(key: str) -> dict[str, Any]:
        return {"groups": [{"properties": [{"key": key, "type": "flag", "value": True}]}]}

    cycle = [{"key": "a", "filters": depends_on("b")}, {"key": "b", "filters": depends_on("a")}]
    source = tmp_path / "cycle.json"
    source.write_text(json.dumps([*cycle, {"key": "a"}]))
    assert main(["import", str(source)]) == 1
    err = capsys.readouterr().err
    assert "a.key" in err
    assert _flags_in(embedded_env) == {}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(["f0", "f1", "f2", "f3"]), min_size=1, max_size=4, unique=True).flatmap(
        lambda keys: st.tuples(*[flags(key, malformed=True) for key in keys])
    )
)
def test_any_document_is_imported_whole_or_not_at_all(tmp_path: Path, definitions: tuple[Any, ...]) -> None:
    """For arbitrary (possibly malformed) flags, an import either writes every flag or writes nothing."""

    async def run() -> None:
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            backend = await EmbeddedBackend.open(Path(folder) / "p.db")
            try:
                repo = backend.repository
                project = (await repo.create_project("p", actor="t")).project
                document = parse_document(
                    json.dumps([{k: v for k, v in d.items() if k != "id"} for d in definitions])
                )
                assert isinstance(document, FlagDocument)
                report = await import_flags(repo, project.id, document, actor="t")
                stored = (await repo.list_flags(project.id)).total
                if report.ok:
                    assert stored == len(definitions)
                else:
                    assert stored == 0, report.failed
                    assert all(issues for issues in report.failed.values())
            finally:
                await backend.close()

    asyncio.run(run())
