-- Hash versions (issue 10): version 1 hashes cover everything but `recorded_at`; version 2 also
-- covers `recorded_at`. Existing rows keep version 1 and are verified as they were written; the
-- writer inserts 2 explicitly (SQLite cannot change a column default). Keep in step with
-- migrations/postgres/0003_hash_version.sql.
ALTER TABLE events ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1 CHECK (hash_version IN (1, 2));
