"""The admin repository over SQL: PostgreSQL (the source of truth) and SQLite (embedded mode), one query set.

``postgres.py`` and ``sqlite.py`` supply connections; ``reads.py`` and ``transaction.py`` hold each query
once, ``dialect.py`` what SQLite spells differently; ``operations.py`` and ``writes.py`` the write steps and
rules; ``migrate.py``, ``migrations/`` and ``sqlite_schema.py`` the schema. Imports only the top of ``store``.
"""
