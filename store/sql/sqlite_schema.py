"""The embedded backend's schema: ``store/sql/migrations/001_initial.sql`` translated to SQLite.

Differences from PostgreSQL, and why they are safe in one process: ``change_log.seq`` is an AUTOINCREMENT key
(writes are serialised by the repository, so seq order is commit order without an advisory lock); JSON columns
are TEXT holding JSON; booleans are 0/1; timestamps are ISO-8601 UTC text. There is no NOTIFY: the embedded
backend rebuilds the catalog itself after each committed write. ``PRAGMA user_version`` is the schema version.
"""

from __future__ import annotations

__all__ = ["PRAGMAS", "SCHEMA", "SCHEMA_VERSION", "UPGRADES"]

SCHEMA_VERSION = 2

PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_token           TEXT    NOT NULL UNIQUE,
    secret_token_hash   TEXT    NOT NULL,
    group_type_mapping  TEXT    NOT NULL DEFAULT '{}',
    property_matching_version INTEGER NOT NULL DEFAULT 1 CHECK (property_matching_version IN (1, 2)),
    version             INTEGER NOT NULL DEFAULT 1,
    created_at          TEXT    NOT NULL,
    created_by          TEXT    NOT NULL DEFAULT 'system'
);

CREATE TABLE IF NOT EXISTS api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    label         TEXT    NOT NULL DEFAULT '',
    key_hash      TEXT    NOT NULL UNIQUE,
    key_prefix    TEXT    NOT NULL,
    project_id    INTEGER REFERENCES projects(id),
    scope         TEXT    NOT NULL CHECK (scope IN ('read', 'write')),
    created_at    TEXT    NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT 'system',
    revoked_at    TEXT
);

CREATE TABLE IF NOT EXISTS feature_flags (
    id                            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id                    INTEGER NOT NULL REFERENCES projects(id),
    key                           TEXT    NOT NULL,
    name                          TEXT    NOT NULL DEFAULT '',
    filters                       TEXT    NOT NULL DEFAULT '{}',
    active                        INTEGER NOT NULL DEFAULT 1,
    deleted                       INTEGER NOT NULL DEFAULT 0,
    bucketing                     TEXT    NOT NULL DEFAULT 'murmur3'
                                  CHECK (bucketing IN ('murmur3', 'posthog')),
    ensure_experience_continuity  INTEGER NOT NULL DEFAULT 0,
    version                       INTEGER NOT NULL DEFAULT 1,
    created_at                    TEXT    NOT NULL,
    created_by                    TEXT    NOT NULL,
    updated_at                    TEXT    NOT NULL,
    updated_by                    TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS feature_flags_live_key ON feature_flags (project_id, key) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS feature_flags_project ON feature_flags (project_id, id);

CREATE TABLE IF NOT EXISTS cohorts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    filters      TEXT    NOT NULL DEFAULT '{}',
    is_static    INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    updated_by   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS cohorts_project ON cohorts (project_id, id);

CREATE TABLE IF NOT EXISTS cohort_members (
    cohort_id    INTEGER NOT NULL REFERENCES cohorts(id),
    distinct_id  TEXT    NOT NULL,
    PRIMARY KEY (cohort_id, distinct_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER REFERENCES projects(id),
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    entity_type  TEXT    NOT NULL,
    entity_id    INTEGER,
    before       TEXT,
    after        TEXT,
    created_at   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_entity ON audit_log (project_id, entity_type, entity_id, id);

CREATE TABLE IF NOT EXISTS change_log (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    entity_type    TEXT    NOT NULL CHECK (entity_type IN ('flag', 'cohort', 'project')),
    entity_id      INTEGER NOT NULL,
    entity_version INTEGER NOT NULL,
    op             TEXT    NOT NULL CHECK (op IN ('upsert', 'delete')),
    payload        TEXT    NOT NULL,
    created_at     TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS change_log_project ON change_log (project_id, seq);
"""

# What brings a file of an older version up to date: {version it is at: SQL}. CREATE TABLE IF NOT EXISTS
# leaves existing tables as they were, so each new column is added here too (002_property_matching_version).
UPGRADES = {
    1: "ALTER TABLE projects ADD COLUMN property_matching_version INTEGER NOT NULL DEFAULT 1"
    " CHECK (property_matching_version IN (1, 2))",
}
