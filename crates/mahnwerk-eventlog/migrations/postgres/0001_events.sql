-- The event log of record (PostgreSQL). Lives in the schema `eventlog`; sqlx tracks this history
-- in `eventlog._sqlx_migrations`, apart from other crates' migrations in the same database.
-- Keep the design in step with migrations/sqlite/0001_events.sql.

CREATE TABLE eventlog.events (
    -- Global position: assigned under the append lock as head + 1, so it is dense and commit
    -- order == position order (no sequence: sequences hand out numbers before commit).
    position        BIGINT      PRIMARY KEY CHECK (position > 0),
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL CHECK (stream_version > 0),
    tenant          TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    actor           TEXT        NOT NULL,
    traceparent     TEXT,
    -- hex SHA-256(previous hash of the stream || canonical envelope), see src/canonical.rs
    hash            TEXT        NOT NULL CHECK (length(hash) = 64),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- Relay and consumer progress (positions in the log).
CREATE TABLE eventlog.checkpoints (
    name        TEXT        PRIMARY KEY,
    position    BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Append-only, enforced by the database: every UPDATE, DELETE and TRUNCATE of events is refused,
-- whoever sends it. The triggers are ENABLE ALWAYS, so `session_replication_role = replica`
-- does not switch them off; only the table owner or a superuser can disable them explicitly
-- (`ALTER TABLE … DISABLE TRIGGER`), and `mahnwerk verify` then shows what was changed.
CREATE FUNCTION eventlog.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventlog.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON eventlog.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog.refuse_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON eventlog.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventlog.refuse_change();
ALTER TABLE eventlog.events ENABLE ALWAYS TRIGGER events_no_update_delete;
ALTER TABLE eventlog.events ENABLE ALWAYS TRIGGER events_no_truncate;
