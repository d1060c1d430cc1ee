"""Errors raised by the store. The tree::

    StoreError
    ├── NotFound            the project, flag, cohort or key does not exist (or is not visible to the caller)
    ├── Conflict            a stale expected version, a live key already taken, or an entity others depend on;
    │                       carries the current version, or the dependents (``["flag:beta", "cohort:7"]``)
    ├── ValidationFailed    the input is invalid; carries every issue with its field path; nothing was written
    ├── PersonLimitExceeded an event batch would give a person more than max_person_properties; nothing of it
    │                       was written
    └── StoreUnavailable    PostgreSQL or Redis did not answer in time or refused the connection
        └── StoreTimeout    ... specifically: a deadline passed

Driver errors (asyncpg, redis-py, sqlite3) are translated once, at the boundary of the module that talks to
the server (``raise StoreUnavailable(...) from exc``); callers never see driver exception types.
"""

from __future__ import annotations

from collections.abc import Sequence

# One Issue type for the whole system: the evaluator's validators produce them, the store reports them.
from evaluator import Issue

__all__ = [
    "Conflict",
    "Issue",
    "NotFound",
    "PersonLimitExceeded",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "ValidationFailed",
]


class StoreError(Exception):
    """Root of every error the store raises."""


class NotFound(StoreError):  # noqa: N818 - public contract names, used by every caller
    """The entity does not exist, or is not visible to the caller."""


class Conflict(StoreError):  # noqa: N818 - public contract names, used by every caller
    """The write lost a race (``expected_version`` is stale, or a unique key is taken), or would break what
    depends on the entity (``dependents``: ``"flag:<key>"`` / ``"cohort:<id>"``, nothing written)."""

    def __init__(
        self, message: str, *, current_version: int | None = None, dependents: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.current_version = current_version
        self.dependents = list(dependents)


class ValidationFailed(StoreError):  # noqa: N818 - public contract names, used by every caller
    """The input is invalid; ``issues`` lists every problem found. Nothing was written."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{i.path}: {i.message}" for i in self.issues) or "invalid input")


class StoreUnavailable(StoreError):  # noqa: N818 - public contract names, used by every caller
    """A backing server (PostgreSQL, Redis) is unreachable or failing."""


class StoreTimeout(StoreUnavailable):
    """A backing server did not answer before the deadline."""


class PersonLimitExceeded(StoreError):  # noqa: N818 - reads as the 4xx it becomes
    """A write would give a person (or group) more than ``max_person_properties`` properties."""

    def __init__(self, distinct_id: str, limit: int) -> None:
        super().__init__(
            f"person {distinct_id!r} would have more than max_person_properties={limit} properties"
        )
        self.distinct_id = distinct_id
        self.limit = limit
