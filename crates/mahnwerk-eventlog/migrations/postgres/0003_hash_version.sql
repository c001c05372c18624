-- Hash versions (issue 10): version 1 hashes cover everything but `recorded_at`; version 2 (every
-- event appended from now on) also covers `recorded_at`. Existing rows keep version 1 and are
-- verified as they were written; the log never rewrites them. Adding a column with a default is a
-- catalogue change: no row is updated, no trigger fires.
ALTER TABLE eventlog.events ADD COLUMN hash_version SMALLINT NOT NULL DEFAULT 1
    CHECK (hash_version IN (1, 2));
ALTER TABLE eventlog.events ALTER COLUMN hash_version SET DEFAULT 2;
