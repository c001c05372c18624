//! The backend-independent half of an append: validation and canonical encoding before the lock,
//! and, under the lock, the expected-version checks, version and position assignment and hash
//! chaining of a whole group commit. Backends only fetch the current state and insert the rows.

use crate::canonical::{self, GENESIS, HashInput};
use crate::{AppendBatch, Appended, Error, ExpectedVersion, Metadata, Result};
use chrono::{DateTime, Timelike, Utc};
use mahnwerk_domain::{EventId, StreamId};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Longest accepted event type (e.g. `invoice.issued.v1`).
const MAX_TYPE_LEN: usize = 200;

/// One event, validated and canonically encoded, waiting for its version and position.
pub(crate) struct PreparedEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub payload_canonical: String,
    pub occurred_at: DateTime<Utc>,
    pub metadata: Metadata,
}

/// One batch that passed validation.
pub(crate) struct PreparedBatch {
    pub index: usize,
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
}

/// One row of the events table, ready to insert.
pub(crate) struct Row {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: String,
    pub version: i64,
    pub tenant: String,
    pub event_type: String,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub actor: String,
    pub traceparent: Option<String>,
    pub hash: String,
}

/// What the database holds now for the streams and event ids of a group commit.
#[derive(Default)]
pub(crate) struct CurrentState {
    /// Last version and last stored hash (hex) per stream that exists.
    pub streams: HashMap<String, (u64, String)>,
    /// Event ids of the group that are already recorded.
    pub existing_ids: HashSet<Uuid>,
    /// The highest position in the log (0 when empty).
    pub head: i64,
}

/// PostgreSQL keeps microseconds: truncate before hashing so a read-back event hashes alike.
pub(crate) fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

fn validate_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::Invalid(format!("{what} longer than {max} bytes")));
    }
    if s.contains('\0') {
        return Err(Error::Invalid(format!("{what} contains \\u0000")));
    }
    Ok(())
}

fn prepare_event(e: crate::NewEvent) -> Result<PreparedEvent> {
    if e.event_type.is_empty()
        || e.event_type.len() > MAX_TYPE_LEN
        || e.event_type
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::Invalid(format!(
            "event type {:?} must be 1 to {MAX_TYPE_LEN} bytes without spaces or control characters",
            e.event_type
        )));
    }
    validate_text("metadata.actor", &e.metadata.actor, 1024)?;
    for (what, v) in [
        ("metadata.correlation_id", &e.metadata.correlation_id),
        ("metadata.causation_id", &e.metadata.causation_id),
        ("metadata.traceparent", &e.metadata.traceparent),
    ] {
        if let Some(v) = v {
            validate_text(what, v, 1024)?;
        }
    }
    let year = chrono::Datelike::year(&e.occurred_at);
    if !(1..=9999).contains(&year) {
        return Err(Error::Invalid(format!(
            "occurred_at year {year} outside 1..=9999"
        )));
    }
    let payload_canonical = canonical::canonical_json(&e.payload)
        .map_err(|err| Error::Invalid(format!("payload of event {}: {}", e.event_id, err.0)))?;
    Ok(PreparedEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        payload_canonical,
        occurred_at: truncate_micros(e.occurred_at),
        metadata: e.metadata,
    })
}

/// Validates and encodes every batch (CPU work, done before any lock is taken). Returns a result
/// slot per batch (filled with the error of each invalid batch) and the valid batches.
pub(crate) fn prepare(
    batches: Vec<AppendBatch>,
) -> (Vec<Option<Result<Appended>>>, Vec<PreparedBatch>) {
    let mut results: Vec<Option<Result<Appended>>> = Vec::with_capacity(batches.len());
    let mut prepared = Vec::with_capacity(batches.len());
    for (index, batch) in batches.into_iter().enumerate() {
        match prepare_batch(index, batch) {
            Ok(p) => {
                results.push(None);
                prepared.push(p);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    (results, prepared)
}

fn prepare_batch(index: usize, batch: AppendBatch) -> Result<PreparedBatch> {
    if batch.events.is_empty() {
        return Err(Error::Invalid(format!(
            "append to {} without events",
            batch.stream
        )));
    }
    let mut seen = HashSet::with_capacity(batch.events.len());
    let mut events = Vec::with_capacity(batch.events.len());
    for e in batch.events {
        if !seen.insert(e.event_id) {
            return Err(Error::DuplicateEvent(e.event_id));
        }
        events.push(prepare_event(e)?);
    }
    Ok(PreparedBatch {
        index,
        stream: batch.stream,
        expected: batch.expected,
        events,
    })
}

/// The distinct streams and all event ids of a group, for the one state query.
pub(crate) fn keys(batches: &[PreparedBatch]) -> (Vec<String>, Vec<Uuid>) {
    let mut streams: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for b in batches {
        if seen.insert(b.stream.as_str()) {
            streams.push(b.stream.as_str().to_owned());
        }
        ids.extend(b.events.iter().map(|e| e.event_id.0));
    }
    (streams, ids)
}

/// Under the lock: checks each batch's expected version against the state (as left by the
/// batches before it in the same group), refuses recorded or repeated event ids, and assigns
/// versions, positions and chained hashes. Returns the rows to insert and each batch's outcome.
pub(crate) fn assign(
    batches: Vec<PreparedBatch>,
    state: CurrentState,
) -> (Vec<Row>, Vec<(usize, Result<Appended>)>) {
    let CurrentState {
        streams,
        mut existing_ids,
        mut head,
    } = state;
    let total: usize = batches.iter().map(|b| b.events.len()).sum();
    let mut rows = Vec::with_capacity(total);
    let mut outcomes = Vec::with_capacity(batches.len());
    // Current version and last hash per stream as the group goes on.
    let mut tips: HashMap<String, (u64, [u8; 32])> = HashMap::with_capacity(streams.len());
    for (stream, (version, hash_hex)) in streams {
        let hash = decode_hash(&hash_hex);
        tips.insert(stream, (version, hash.unwrap_or(GENESIS)));
    }
    for batch in batches {
        let index = batch.index;
        let outcome = assign_batch(batch, &mut tips, &mut existing_ids, &mut head, &mut rows);
        outcomes.push((index, outcome));
    }
    (rows, outcomes)
}

fn assign_batch(
    batch: PreparedBatch,
    tips: &mut HashMap<String, (u64, [u8; 32])>,
    existing_ids: &mut HashSet<Uuid>,
    head: &mut i64,
    rows: &mut Vec<Row>,
) -> Result<Appended> {
    let tip = tips.get(batch.stream.as_str()).copied();
    let actual = tip.map(|(v, _)| v);
    let ok = match batch.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => actual.is_none(),
        ExpectedVersion::Exact(n) => actual == Some(n),
    };
    if !ok {
        return Err(Error::Conflict {
            stream: batch.stream,
            expected: batch.expected,
            actual,
        });
    }
    if let Some(e) = batch
        .events
        .iter()
        .find(|e| existing_ids.contains(&e.event_id.0))
    {
        return Err(Error::DuplicateEvent(e.event_id));
    }
    let (start_version, mut prev) = tip.unwrap_or((0, GENESIS));
    // Hash first (the only step that can fail), then move the events into rows.
    let mut hashes = Vec::with_capacity(batch.events.len());
    for (i, e) in batch.events.iter().enumerate() {
        let version = start_version + 1 + i as u64;
        prev = canonical::chain_hash(
            &prev,
            &HashInput {
                event_id: &e.event_id,
                stream: &batch.stream,
                version,
                event_type: &e.event_type,
                payload_canonical: &e.payload_canonical,
                occurred_at: &e.occurred_at,
                metadata: &e.metadata,
            },
        )
        .map_err(|err| Error::Invalid(err.0))?;
        hashes.push(prev);
    }
    let first_position = *head + 1;
    let tenant = batch.stream.tenant().as_str().to_owned();
    let stream = batch.stream.as_str().to_owned();
    let mut version = start_version;
    for (e, hash) in batch.events.into_iter().zip(hashes) {
        version += 1;
        *head += 1;
        existing_ids.insert(e.event_id.0);
        rows.push(Row {
            position: *head,
            event_id: e.event_id.0,
            stream: stream.clone(),
            version: i64::try_from(version).unwrap_or(i64::MAX),
            tenant: tenant.clone(),
            event_type: e.event_type,
            payload: e.payload_canonical,
            occurred_at: e.occurred_at,
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            actor: e.metadata.actor,
            traceparent: e.metadata.traceparent,
            hash: hex::encode(hash),
        });
    }
    tips.insert(stream, (version, prev));
    Ok(Appended {
        stream: batch.stream,
        first_version: start_version + 1,
        last_version: version,
        first_position,
        last_position: *head,
    })
}

pub(crate) fn decode_hash(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}
