"""Mutation testing of ``evaluator/``: apply one small AST change at a time; ``tests/evaluator`` must fail.

``make mutation`` runs it (outside ``make test``; it is CPU-heavy). Each mutant is one change a slip of the
keyboard could make: a flipped or loosened comparison, ``and``/``or`` swapped, a dropped ``not``, an integer
limit off by one, ``True``/``False`` swapped, an arithmetic operator swapped, a dropped ``lower()`` or
``strip()``, a dropped slice (``text[:LIMIT]`` -> ``text``), ``never``/``_always`` swapped. The suite runs
on a copy of the tree (``PYTHONPATH`` puts the copy first), one mutant at a time, with ``-x``; a mutant is
killed when the tests fail (or time out), and survives when they pass.

Mutant ids are stable across unrelated edits: ``file:function:kind:n`` where ``n`` counts identical changes
within the function. ``tools/mutation_equivalent.txt`` lists the mutants that cannot change behaviour (with
the reason); they are excluded from the kill rate.

    python -m tools.mutation [--sample N] [--seed S] [--only ID ...] [--files evaluator/x.py ...] [--list]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
RESULTS = ROOT / ".mutation" / "results.jsonl"

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.RShift: ast.LShift,
    ast.LShift: ast.RShift,
    ast.Mod: ast.FloorDiv,
}
_DROPPED_CALLS = frozenset({"lower", "strip", "casefold", "upper", "translate"})
_NAME_SWAP = {"never": "_always", "_always": "never"}


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # relative to ROOT
    line: int
    description: str
    index: int  # the n-th candidate in the file, in walk order


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes inside annotations (never mutated)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.AST | None] = []
        if isinstance(node, ast.AnnAssign | ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(sub) for sub in ast.walk(annotation))
    return inside


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.add(id(value))
    return found


def _candidates(tree: ast.AST) -> Iterator[tuple[ast.AST, str, str]]:
    """(node, kind, description) for every mutation point, in a deterministic walk order."""
    skip = _annotation_nodes(tree) | _docstrings(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for position, cmpop in enumerate(node.ops):
                swapped = _COMPARE_SWAP.get(type(cmpop))
                if swapped is not None:
                    yield node, f"cmp{position}", f"{type(cmpop).__name__} -> {swapped.__name__}"
        elif isinstance(node, ast.BoolOp):
            other = "Or" if isinstance(node.op, ast.And) else "And"
            yield node, "boolop", f"{type(node.op).__name__} -> {other}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not", "drop not"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            yield node, "binop", f"{type(node.op).__name__} -> {_BINOP_SWAP[type(node.op)].__name__}"
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                yield node, "bool", f"{node.value} -> {not node.value}"
            elif isinstance(node.value, int):
                yield node, "int", f"{node.value} -> {node.value + 1}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _DROPPED_CALLS:
                yield node, "dropcall", f"drop .{node.func.attr}()"
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            yield node, "dropslice", "drop slice"
        elif isinstance(node, ast.Name) and node.id in _NAME_SWAP and isinstance(node.ctx, ast.Load):
            yield node, "name", f"{node.id} -> {_NAME_SWAP[node.id]}"


def _scopes(tree: ast.AST) -> dict[int, str]:
    """id(node) -> qualified name of the innermost enclosing function/class."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = f"{scope}.{child.name}" if scope else child.name
            names[id(child)] = inner
            visit(child, inner)

    visit(tree, "")
    return names


def mutants_of(path: Path) -> list[Mutant]:
    tree = ast.parse(path.read_text())
    scopes = _scopes(tree)
    seen: dict[str, int] = {}
    found: list[Mutant] = []
    rel = str(path.relative_to(ROOT))
    for index, (node, kind, description) in enumerate(_candidates(tree)):
        segment = ast.unparse(node)[:60]
        base = f"{rel}:{scopes.get(id(node)) or '<module>'}:{kind}:{description}:{segment}"
        count = seen.get(base, 0)
        seen[base] = count + 1
        line = getattr(node, "lineno", 0)
        found.append(Mutant(f"{base}#{count}", rel, line, description, index))
    return found


def mutate(source: str, mutant: Mutant) -> str:
    """The source with ``mutant`` applied."""
    tree = ast.parse(source)
    for index, (node, kind, _description) in enumerate(_candidates(tree)):
        if index != mutant.index:
            continue
        if isinstance(node, ast.Compare):
            position = int(kind[3:])
            node.ops[position] = _COMPARE_SWAP[type(node.ops[position])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp):
            return _replace(tree, node, node.operand)
        elif isinstance(node, ast.BinOp):
            node.op = _BINOP_SWAP[type(node.op)]()
        elif isinstance(node, ast.Constant):
            node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
        elif isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Attribute)
            return _replace(tree, node, node.func.value)
        elif isinstance(node, ast.Subscript):
            return _replace(tree, node, node.value)
        elif isinstance(node, ast.Name):
            node.id = _NAME_SWAP[node.id]
        return ast.unparse(ast.fix_missing_locations(tree))
    raise LookupError(mutant.id)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> str:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list):
                for position, item in enumerate(value):
                    if item is old:
                        value[position] = new
    return ast.unparse(ast.fix_missing_locations(tree))


def load_equivalent() -> dict[str, str]:
    """Excluded mutant ids -> why they are equivalent."""
    excluded: dict[str, str] = {}
    if EQUIVALENT.exists():
        for raw in EQUIVALENT.read_text().splitlines():
            if raw.strip() and not raw.startswith("#"):
                mutant_id, _, reason = raw.partition("  -- ")
                excluded[mutant_id.strip()] = reason.strip()
    return excluded


def _copy_tree(target: Path) -> None:
    for name in ("evaluator", "tests"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml",):
        shutil.copy2(ROOT / name, target / name)


# Run first: fast table tests that kill most mutants in seconds (pytest runs files in the order given and
# -x stops at the first failure); last: the slow hypothesis suites.
_FIRST = ("test_operator_paths.py", "test_boundaries.py", "test_operators.py", "test_flags.py")
_LAST = ("test_explain.py", "test_posthog_parity.py", "test_properties.py")


def _ordered(workdir: Path, tests: str) -> list[str]:
    root = workdir / tests
    if not root.is_dir():
        return [tests]
    files = sorted(str(path.relative_to(workdir)) for path in root.rglob("test_*.py"))

    def rank(name: str) -> tuple[int, int, str]:
        base = Path(name).name
        if base in _FIRST:
            return (0, _FIRST.index(base), name)
        if base in _LAST:
            return (2, _LAST.index(base), name)
        return (1, 0, name)

    return sorted(files, key=rank)


def _run_tests(workdir: Path, tests: str, timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    env["FLAGD_HYPOTHESIS_PROFILE"] = "mutation"
    command = [
        sys.executable,
        "-m",
        "pytest",
        *_ordered(workdir, tests),
        "-x",
        "-q",
        "--no-header",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    outcome = {0: "survived", 5: "no-tests"}.get(done.returncode, "killed")
    return outcome, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=None, help="evaluator modules (default: all)")
    parser.add_argument("--sample", type=int, default=0, help="run a random sample of N mutants (0: all)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutant ids")
    parser.add_argument(
        "--survivors-of", type=Path, default=None, help="rerun the survivors of a results file"
    )
    parser.add_argument("--tests", default="tests/evaluator")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--report",
        nargs="*",
        type=Path,
        default=None,
        help="summarise results files (later files override earlier ones per mutant), without running",
    )
    args = parser.parse_args(argv)
    if args.report is not None:
        return report(args.report or [args.results])

    files = [ROOT / f for f in args.files] if args.files else sorted((ROOT / "evaluator").glob("*.py"))
    everything = [m for path in files for m in mutants_of(path)]
    excluded = load_equivalent()
    selected = [m for m in everything if m.id not in excluded]
    if args.only:
        wanted = set(args.only)
        selected = [m for m in selected if m.id in wanted]
    if args.survivors_of:
        rows = [json.loads(line) for line in args.survivors_of.read_text().splitlines() if line]
        wanted = {row["id"] for row in rows if row["outcome"] == "survived"}
        selected = [m for m in selected if m.id in wanted]
    if args.sample and len(selected) > args.sample:
        selected = sorted(random.Random(args.seed).sample(selected, args.sample), key=lambda m: m.index)
        selected.sort(key=lambda m: (m.path, m.index))
    if args.list:
        for m in selected:
            print(f"{m.path}:{m.line}  {m.description}  [{m.id}]")
        print(f"{len(selected)} mutants ({len(everything)} in all, {len(excluded)} listed as equivalent)")
        return 0

    args.results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flagd-mutation-") as tmp:
        workdir = Path(tmp)
        _copy_tree(workdir)
        baseline, took = _run_tests(workdir, args.tests, timeout=3600)
        if baseline != "survived":
            print(f"the unmutated suite does not pass ({baseline}); fix it first", file=sys.stderr)
            return 2
        timeout = max(90.0, took * 4)  # generous: a busy machine must not pass off slowness as a kill
        print(f"baseline {took:.1f}s; {len(selected)} mutants; timeout {timeout:.0f}s", flush=True)
        counts: dict[str, int] = {}
        with args.results.open("w") as out:
            for number, m in enumerate(selected, 1):
                original = (ROOT / m.path).read_text()
                target = workdir / m.path
                target.write_text(mutate(original, m))
                try:
                    outcome, spent = _run_tests(workdir, args.tests, timeout)
                finally:
                    target.write_text(original)
                counts[outcome] = counts.get(outcome, 0) + 1
                row = {"id": m.id, "path": m.path, "line": m.line, "outcome": outcome, "seconds": spent}
                out.write(json.dumps(row) + "\n")
                out.flush()
                mark = "SURVIVED " if outcome == "survived" else ""
                print(
                    f"[{number}/{len(selected)}] {mark}{outcome} {m.path}:{m.line} {m.description}",
                    flush=True,
                )
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    total = killed + counts.get("survived", 0)
    rate = 100.0 * killed / total if total else 0.0
    print(f"killed {killed}/{total} = {rate:.1f}% of non-equivalent mutants ({counts})")
    return 0


def report(paths: list[Path]) -> int:
    """The kill rate over results files: the last outcome per mutant wins (a rerun of the survivors after
    new tests overrides the first run); mutants now listed as equivalent are left out and named."""
    excluded = load_equivalent()
    outcomes: dict[str, dict[str, object]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line:
                row = json.loads(line)
                outcomes[row["id"]] = row
    counted = {k: v for k, v in outcomes.items() if k not in excluded}
    killed = sum(1 for row in counted.values() if row["outcome"] in ("killed", "timeout"))
    survivors = sorted(k for k, row in counted.items() if row["outcome"] == "survived")
    total = killed + len(survivors)
    for mutant_id in survivors:
        print(f"SURVIVED {mutant_id}")
    left_out = len(outcomes) - len(counted)
    rate = 100.0 * killed / total if total else 0.0
    print(f"killed {killed}/{total} = {rate:.1f}% of non-equivalent mutants ({left_out} equivalent left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
