"""The admin repository over SQL: PostgreSQL (the source of truth) and SQLite (embedded mode), one query set.

``repository.py`` is the contract (``AdminRepository``); ``postgres.py`` and ``sqlite.py`` supply connections;
``reads.py`` and ``transaction.py`` hold each query once, ``dialect.py`` what SQLite spells differently;
``operations.py`` the write steps (once for flags and cohorts; what differs per entity in ``entities.py``),
``writes.py`` the rules; ``migrations/`` the schema once (applied by ``migrate.py``, translated for SQLite by
``sqlite_schema.py``). Imports only the top of ``store``.
"""
