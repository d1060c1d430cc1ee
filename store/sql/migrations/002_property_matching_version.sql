-- The exact/is_not rule a project's flags evaluate with (evaluator/operators.py), published to SDKs in the
-- local-evaluation definitions: 1 (PostHog's default, truthiness on true/false values) or 2 (text).
ALTER TABLE projects
    ADD COLUMN property_matching_version smallint NOT NULL DEFAULT 1
        CHECK (property_matching_version IN (1, 2));
