-- Payloads as `json`, not `jsonb` (ADR 003): the log writes each payload once, as the RFC 8785
-- canonical text it hashes, and reads it back many times (relay, catch-up, case files). `json`
-- keeps that text byte for byte (PostgreSQL still checks it is JSON), so reads are a copy
-- instead of a jsonb-to-text conversion and the stored bytes are the hashed bytes. Ad-hoc
-- queries keep working (`payload->>'x'`, or `payload::jsonb` for jsonb operators).
-- The table is rewritten by ALTER TABLE; no row trigger fires, the rows keep their values.
ALTER TABLE eventlog.events ALTER COLUMN payload TYPE JSON USING payload::json;
