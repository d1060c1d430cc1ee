"""Which evaluator loads: the mypyc-compiled modules when they are there and current, the sources otherwise.

Never compiled itself (nor is ``__init__``). Runs once, when ``evaluator`` is first imported, before any
other module of the package: it is the package's only I/O and only environment read, and nothing on the
evaluation path depends on it.

The sources load instead of compiled modules sitting next to them when

* ``FLAGD_PURE_EVALUATOR=1`` is set (the test suite's second pass; comparing both), or
* an in-tree build (``make compile``) recorded source hashes in ``.compiled-sources`` and a source has
  changed since: an edit is never shadowed by an older compiled module (``make compile`` rebuilds).

Installed wheels carry no record: their compiled modules and sources come from one build.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

RECORD = ".compiled-sources"
PURE_ENV = "FLAGD_PURE_EVALUATOR"


def stale_source(directory: Path) -> str | None:
    """The first source changed, added or removed since the in-tree build recorded in ``directory``, or
    None (also when there is no record: nothing was built in the tree)."""
    try:
        recorded: dict[str, str] = json.loads((directory / RECORD).read_text())
    except (OSError, ValueError):
        return None
    present = {f"{directory.name}/{path.name}": path for path in directory.glob("*.py")}
    for name in sorted(present.keys() ^ recorded.keys()):
        return name
    for name, path in sorted(present.items()):
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() != recorded[name]:
                return name
        except OSError:
            return name
    return None


def current(directory: Path) -> bool:
    """Whether an in-tree build exists and matches every source (``make compile`` then has nothing to do)."""
    return (directory / RECORD).is_file() and stale_source(directory) is None


class _Sources(importlib.abc.MetaPathFinder):
    """Finds ``<package>.<module>`` in the package's ``.py`` sources only, ahead of compiled modules."""

    def __init__(self, package: str, directory: Path) -> None:
        self.prefix = package + "."
        self.directory = directory

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix):
            return None
        source = self.directory / (fullname[len(self.prefix) :] + ".py")
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def choose(package: str, directory: Path) -> str | None:
    """Make the package's modules load from sources when they must; why, or None (compiled ones may load)."""
    if os.environ.get(PURE_ENV) == "1":
        why: str | None = f"{PURE_ENV}=1"
    else:
        stale = stale_source(directory)
        why = None if stale is None else f"{stale} changed since `make compile`"
    if why is not None:
        sys.meta_path.insert(0, _Sources(package, directory))
    return why
