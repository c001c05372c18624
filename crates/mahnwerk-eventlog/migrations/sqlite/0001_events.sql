-- The event log of record (SQLite). sqlx tracks this history in `_eventlog_migrations`, apart
-- from any other migrations in the same file. Keep the design in step with
-- migrations/postgres/0001_events.sql.

CREATE TABLE events (
    -- Global position: assigned under BEGIN IMMEDIATE as head + 1 (dense, commit order).
    position        INTEGER PRIMARY KEY CHECK (position > 0),
    event_id        BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),  -- UUID, 16 bytes
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    tenant          TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,          -- RFC 8785 canonical JSON
    occurred_at     TEXT    NOT NULL,          -- YYYY-MM-DDTHH:MM:SS.ffffffZ
    recorded_at     TEXT    NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    actor           TEXT    NOT NULL,
    traceparent     TEXT,
    hash            TEXT    NOT NULL CHECK (length(hash) = 64),
    UNIQUE (stream_id, stream_version)
) STRICT;

CREATE TABLE checkpoints (
    name        TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL
) STRICT;

-- Append-only, enforced by the database. `INSERT OR REPLACE` would delete the old row without
-- firing the DELETE trigger (unless recursive_triggers is on), so an insert that would collide
-- with a stored event is refused before conflict resolution runs.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: DELETE refused');
END;

CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE position = NEW.position)
  OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id)
  OR EXISTS (SELECT 1 FROM events WHERE stream_id = NEW.stream_id AND stream_version = NEW.stream_version)
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: an event with this position, id or stream version exists');
END;
