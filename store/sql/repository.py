"""``AdminRepository``: the admin write/read path, the seam the admin API, the CLI and bootstrap use.

Both backends are one class each over the same two halves, so the contract is stated once, where it is
implemented: the reads in ``store.sql.reads.SqlReads``, the writes in ``store.sql.operations.WriteOperations``
(PostgreSQL in distributed mode, ``store.sql.postgres``; SQLite in embedded mode, ``store.sql.sqlite``; one
test suite runs on both). A backend adds its connection primitives and ``close``.

Every write is one transaction: the row, an audit_log row and a change_log row (which wakes the syncer).
Inputs are validated before anything is written; invalid input raises ``ValidationFailed`` with every issue.
"""

from __future__ import annotations

from abc import abstractmethod

from store.sql.operations import WriteOperations
from store.sql.reads import SqlReads

__all__ = ["AdminRepository"]


class AdminRepository(SqlReads, WriteOperations):
    """Source-of-truth reads and writes for the admin API, the CLI and bootstrap."""

    @abstractmethod
    async def close(self) -> None: ...
