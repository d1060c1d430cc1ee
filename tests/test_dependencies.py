"""Dependencies point one way (STYLE rule 1): the evaluator imports no I/O, asyncio or logging machinery and
nothing from store or flagd; inside store, the parts import only the parts below them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_MODULES = ("asyncio", "redis", "asyncpg", "starlette", "granian", "structlog", "logging")


def test_importing_evaluator_pulls_in_no_io_or_logging() -> None:
    """A fresh interpreter importing evaluator (and compiling/evaluating a regex flag) loads none of them."""
    script = (
        "import sys, json, evaluator\n"
        "s = evaluator.compile_flags([{'key': 'f', 'filters': {'groups': [{'properties': "
        "[{'key': 'e', 'operator': 'regex', 'value': 'a+'}]}]}}])\n"
        "s.evaluate(evaluator.Context('u', {'e': 'aa'}))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    offending = [m for m in loaded if m.split(".")[0] in FORBIDDEN_MODULES]
    assert offending == []


def test_no_evaluator_module_imports_store_or_flagd() -> None:
    """No module under evaluator/ imports store or flagd, directly or from a function body."""
    offending = []
    for path in sorted((ROOT / "evaluator").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offending += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("store", "flagd")]
    assert offending == []


# store's parts, each importing only the ones after it; "store" is the top-level modules every part shares.
STORE_LAYERS = ("store.stream", "store.redis", "store.sql", "store.persons", "store.servers", "store")


def _store_imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [n for n in names if n.split(".")[0] in ("store", "flagd")]


def _layer(module: str) -> int:
    return next(
        i for i, layer in enumerate(STORE_LAYERS) if module == layer or module.startswith(layer + ".")
    )


def test_store_parts_import_only_the_parts_below_them() -> None:
    """No store module imports flagd or a part above its own (stream, redis, sql, persons, servers, then the
    top)."""
    offending = []
    for path in sorted((ROOT / "store").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = _layer(module)
        for name in _store_imports(path):
            if name.startswith("flagd") or (name != "store" and _layer(name) < own):
                offending.append(f"{module}: {name}")
    assert offending == []
