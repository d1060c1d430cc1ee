-- flagd schema, version 1. PostgreSQL is the source of truth; Redis and the nodes are derived from it.
--
-- Every flag, cohort or project change writes, in ONE transaction: the row, an audit_log row and a
-- change_log row. change_log.seq is assigned under a transaction-scoped advisory lock (see the trigger
-- below), so seq order equals commit order: a syncer that has applied everything up to seq N can never
-- later see a commit with a seq <= N. A trigger NOTIFYs `flagd_changes` with the seq; NOTIFY is delivered
-- at commit, and only for committed transactions.

CREATE TABLE projects (
    id                  bigserial PRIMARY KEY,
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_token           text        NOT NULL UNIQUE,           -- public project token, phc_...
    secret_token_hash   text        NOT NULL,                  -- sha256 hex of the project secret (phs_...)
    group_type_mapping  jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- {"0": "company", ...}
    version             integer     NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text        NOT NULL DEFAULT 'system'
);

CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    label         text        NOT NULL DEFAULT '',
    key_hash      text        NOT NULL UNIQUE,                 -- sha256 hex of the raw key; the raw key is shown once
    key_prefix    text        NOT NULL,                        -- first characters, for display
    project_id    bigint      REFERENCES projects(id),         -- NULL: every project
    scope         text        NOT NULL CHECK (scope IN ('read', 'write')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL DEFAULT 'system',
    revoked_at    timestamptz
);

CREATE TABLE feature_flags (
    id                            bigserial PRIMARY KEY,
    project_id                    bigint      NOT NULL REFERENCES projects(id),
    key                           text        NOT NULL,
    name                          text        NOT NULL DEFAULT '',
    filters                       jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- PostHog filters JSON
    active                        boolean     NOT NULL DEFAULT true,
    deleted                       boolean     NOT NULL DEFAULT false,
    bucketing                     text        NOT NULL DEFAULT 'murmur3' CHECK (bucketing IN ('murmur3', 'posthog')),
    ensure_experience_continuity  boolean     NOT NULL DEFAULT false,
    version                       integer     NOT NULL DEFAULT 1,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    created_by                    text        NOT NULL,
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    updated_by                    text        NOT NULL
);
-- A key is unique among a project's live flags; a deleted flag's key may be reused.
CREATE UNIQUE INDEX feature_flags_live_key ON feature_flags (project_id, key) WHERE NOT deleted;
CREATE INDEX feature_flags_project ON feature_flags (project_id, id);

CREATE TABLE cohorts (
    id           bigserial PRIMARY KEY,
    project_id   bigint      NOT NULL REFERENCES projects(id),
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    -- Property cohorts: {"properties": {"type": "AND"|"OR", "values": [...]}} (PostHog shape).
    filters      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    is_static    boolean     NOT NULL DEFAULT false,
    deleted      boolean     NOT NULL DEFAULT false,
    version      integer     NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL
);
CREATE INDEX cohorts_project ON cohorts (project_id, id);

-- Members of static cohorts (distinct ids).
CREATE TABLE cohort_members (
    cohort_id    bigint NOT NULL REFERENCES cohorts(id),
    distinct_id  text   NOT NULL,
    PRIMARY KEY (cohort_id, distinct_id)
);

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    project_id   bigint      REFERENCES projects(id),
    actor        text        NOT NULL,           -- "key:<id> <label>", "system", "cli"
    action       text        NOT NULL,           -- flag.created | flag.updated | flag.deleted | cohort.* | project.* | api_key.*
    entity_type  text        NOT NULL,           -- flag | cohort | project | api_key
    entity_id    bigint,
    before       jsonb,
    after        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity ON audit_log (project_id, entity_type, entity_id, id);

CREATE TABLE change_log (
    seq            bigint      PRIMARY KEY,
    project_id     bigint      NOT NULL REFERENCES projects(id),
    entity_type    text        NOT NULL CHECK (entity_type IN ('flag', 'cohort', 'project')),
    entity_id      bigint      NOT NULL,
    entity_version integer     NOT NULL,
    op             text        NOT NULL CHECK (op IN ('upsert', 'delete')),
    -- The entity as it is after this change (the same JSON the Redis store holds), so applying a change
    -- never needs to read the live table and a replay is deterministic.
    payload        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE change_log_seq OWNED BY change_log.seq;

CREATE FUNCTION change_log_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until commit: writers of change_log commit one at a time, in seq order.
    PERFORM pg_advisory_xact_lock(7420130001);
    NEW.seq := nextval('change_log_seq');
    RETURN NEW;
END $$;

CREATE TRIGGER change_log_seq BEFORE INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION change_log_assign_seq();

CREATE FUNCTION change_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flagd_changes', NEW.seq::text);
    RETURN NULL;
END $$;

CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION change_log_notify();
