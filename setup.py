"""Build: ``evaluator/`` compiled to a C extension with mypyc when a C compiler is there, else pure Python.

Everything else about the package is in pyproject.toml. Wheels (``pip install .``, ``pip wheel .``, the
Docker image) ship the compiled modules next to their sources; when no compiler, no ``Python.h`` or no mypyc
is available the build says so in one line and the package installs pure (same behaviour, slower).
``FLAGD_PURE_BUILD=1`` skips compiling on purpose.

Editable installs (``pip install -e .``) stay pure so edits take effect at once; ``make compile`` (run by
``make serve`` and ``make test``) compiles into the tree with ``python setup.py build_ext --inplace`` and
records the hash of every source it compiled in ``evaluator/.compiled-sources``, so an edited source is
never shadowed by an older compiled module (``evaluator/__init__.py`` checks it; see there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "evaluator"
# Never compiled: the package entry point and its loader decide which evaluator loads; and the modules
# declaring msgspec Structs, because mypyc drops class keywords (``frozen=True``, ``gc=False``) from the
# classes it builds: Decisions would come out mutable and unhashable. (Structs are C types either way.)
PURE_ONLY = frozenset({"__init__.py", "_loading.py", "model.py", "behaviour.py", "explain.py"})
MANIFEST = PACKAGE / ".compiled-sources"
# Commands that build a wheel or extensions; anything else (egg_info, sdist, editable_wheel) stays cheap.
BUILDING = frozenset({"build_ext", "build", "bdist_wheel", "install"})


def notice(message: str) -> None:
    print(f"flagd: {message}", file=sys.stderr, flush=True)


def sources() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.glob("*.py") if p.name not in PURE_ONLY)


def compiler_missing() -> str | None:
    """Why compiling cannot work here, or None."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        return f"no C compiler ({cc[0] if cc else 'cc'})"
    include = sysconfig.get_paths().get("include")
    if not include or not Path(include, "Python.h").exists():
        return "no Python headers (Python.h)"
    return None


def digests() -> dict[str, str]:
    """The hash of every source of the package (compiled or not), as the build reads them."""
    every = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.glob("*.py"))
    return {name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest() for name in every}


# Taken before mypyc reads the sources: an edit made during the build then shows as stale afterwards.
BUILT_FROM = digests()


def extensions() -> list[Any]:
    if os.environ.get("FLAGD_PURE_BUILD") == "1":
        notice("FLAGD_PURE_BUILD=1: installing the pure-Python evaluator")
        return []
    why = compiler_missing()
    if why is None:
        try:
            from mypyc.build import mypycify
        except ImportError:
            why = "mypyc is not installed"
    if why is not None:
        notice(f"{why}: installing the pure-Python evaluator (same behaviour, slower)")
        return []
    try:
        # One group, its shared library inside the package (evaluator/_native__mypyc.*.so): importable
        # wherever the package is, editable installs included.
        return list(mypycify(sources(), opt_level="3", group_name="evaluator._native"))
    except (SystemExit, Exception) as exc:  # a type error mypyc rejects: fall back, never fail the install
        notice(f"mypyc could not compile evaluator/ ({exc}): installing the pure-Python evaluator")
        return []


class BuildExt(build_ext):
    """Builds the compiled evaluator; on a compile or link failure, removes what it built and goes on pure."""

    def run(self) -> None:
        if self.inplace:  # whatever an earlier in-tree build left must not outlive this one
            MANIFEST.unlink(missing_ok=True)
            for old in [*PACKAGE.glob("*.so"), *PACKAGE.glob("*.pyd")]:
                old.unlink()
        try:
            super().run()
        except Exception as exc:
            for ext in self.extensions:
                for path in (self.get_ext_fullpath(ext.name), Path(self.build_lib, *ext.name.split("."))):
                    Path(path).unlink(missing_ok=True)
            notice(f"compiling the evaluator failed ({exc}): installing the pure-Python evaluator")
            return
        if self.inplace and self.extensions:
            MANIFEST.write_text(json.dumps(BUILT_FROM, indent=1, sort_keys=True) + "\n")


setup(
    ext_modules=extensions() if BUILDING.intersection(sys.argv[1:]) else [],
    cmdclass={"build_ext": BuildExt},
)
