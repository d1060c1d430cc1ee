"""Which evaluator runs: the mypyc-compiled build when it is current, the sources when asked or when stale."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

import evaluator
from evaluator._loading import PURE_ENV, RECORD, current

PACKAGE = Path(evaluator.__file__).parent
ROOT = PACKAGE.parent
BUILT = current(PACKAGE)
needs_build = pytest.mark.skipif(not BUILT, reason="no current in-tree build (make compile)")


def probe(root: Path, **env: str) -> dict[str, object]:
    """Import ``evaluator`` from ``root`` in a fresh interpreter; where its modules came from."""
    code = (
        "import json, evaluator as e, evaluator.flag as f; "
        "print(json.dumps({'compiled': e.COMPILED, 'reason': e.PURE_REASON, 'flag': f.__file__}))"
    )
    clean = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**clean, "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_every_struct_keeps_its_declared_config() -> None:
    """Decisions, contexts and every other evaluator Struct stay frozen and hashable in either build."""
    found = 0
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        module = importlib.import_module(f"evaluator.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
            ):
                found += 1
                assert value.__struct_config__.frozen, value
    assert found >= 3
    decision = evaluator.Decision("k", True, None, None, "condition_match", 0, "Matched", None, 1, 1, False)
    assert hash(decision) == hash(msgspec.structs.replace(decision))
    with pytest.raises(AttributeError):
        decision.value = False  # type: ignore[misc]


@needs_build
def test_a_current_build_is_what_runs() -> None:
    """After ``make compile`` the compiled modules load, unless the pure sources were asked for."""
    pure_asked = os.environ.get(PURE_ENV) == "1"
    assert evaluator.COMPILED is not pure_asked


def test_pure_sources_load_on_request() -> None:
    """FLAGD_PURE_EVALUATOR=1 loads every module from its .py source, compiled modules present or not."""
    got = probe(ROOT, **{PURE_ENV: "1"})
    assert got["compiled"] is False
    assert got["reason"] == f"{PURE_ENV}=1"
    assert str(got["flag"]).endswith("flag.py")


@needs_build
def test_an_edited_source_is_never_shadowed_by_an_older_build(tmp_path: Path) -> None:
    """Editing a source after ``make compile`` makes the sources load (and says which file) until rebuilt."""
    copy = tmp_path / "evaluator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert probe(tmp_path)["compiled"] is True
    with (copy / "flag.py").open("a") as source:
        source.write("\n# an edit\n")
    got = probe(tmp_path)
    assert got["compiled"] is False
    assert "evaluator/flag.py" in str(got["reason"])
    assert str(got["flag"]).endswith("flag.py")
    assert (copy / RECORD).is_file()
