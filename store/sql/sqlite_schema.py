"""The embedded backend's schema: the PostgreSQL migrations (``store/sql/migrations``), as SQLite runs them.

``store.sql.dialect.sqlite_ddl`` translates each migration, so a new column is one new migration file. Why the
differences are safe in one process: ``change_log.seq`` is an AUTOINCREMENT key (writes are serialised by the
repository, so seq order is commit order without an advisory lock); there is no NOTIFY (the embedded backend
rebuilds the catalog itself after each committed write). ``PRAGMA user_version`` is the number of migrations
a file has had.
"""

from __future__ import annotations

from store.sql.dialect import sqlite_ddl
from store.sql.migrate import migration_files

__all__ = ["PRAGMAS", "SCHEMA_VERSION", "upgrade"]

_MIGRATIONS = [sqlite_ddl(sql) for _name, sql in migration_files()]

SCHEMA_VERSION = len(_MIGRATIONS)

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

# SQLite only: the newest seq of each project (``project_versions``, ``load_projects``).
_EXTRA = ("CREATE INDEX IF NOT EXISTS change_log_project ON change_log (project_id, seq)",)


def upgrade(version: int) -> str:
    """The script that brings a file at ``version`` (0: new) to ``SCHEMA_VERSION``, in one transaction.

    The migrations after ``version`` run in full. Those the file has had run only their ``CREATE ... IF NOT
    EXISTS`` statements, which re-create a table or index the file lacks and leave the others as they are.
    """
    steps = [
        statement
        for number, statements in enumerate(_MIGRATIONS, start=1)
        for statement in statements
        if number > version or statement.startswith("CREATE ")
    ]
    body = "".join(f"{step};\n" for step in (*steps, *_EXTRA))
    return f"BEGIN;\n{body}PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;\n"
