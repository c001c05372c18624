//! The backend-independent half of an append: validation and canonical encoding before the lock,
//! and, under the lock, the expected-version checks, version and position assignment and hash
//! chaining of a whole group commit. Backends only fetch the current state and insert the rows.

use crate::canonical::{self, GENESIS, HashInput};
use crate::{AppendBatch, Appended, Error, ExpectedVersion, Metadata, Result};
use chrono::{DateTime, Timelike, Utc};
use mahnwerk_domain::{EventId, StreamId, TenantId};
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
    /// `occurred_at` in the one text form of the hash and of SQLite.
    pub occurred_at_text: String,
    pub metadata: Metadata,
}

/// One batch that passed validation.
pub(crate) struct PreparedBatch {
    pub index: usize,
    pub stream: StreamId,
    /// `stream.tenant()`, computed once.
    pub tenant: TenantId,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
}

/// One row of the events table, ready to insert (borrowing from its [`PreparedBatch`]).
pub(crate) struct Row<'a> {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: &'a StreamId,
    pub version: i64,
    pub tenant: &'a TenantId,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub occurred_at_text: &'a str,
    pub metadata: &'a Metadata,
    pub hash: String,
}

/// What a backend's group commit did.
pub(crate) struct Committed {
    /// Each batch's outcome, by its index.
    pub outcomes: Vec<(usize, Result<Appended>)>,
    /// The new head, if anything was appended.
    pub head: Option<i64>,
    /// The appended events, when asked for (someone follows the tail).
    pub events: Option<Vec<crate::RawRecordedEvent>>,
}

/// The committed rows as readers see them (for the in-process tail, see `EventLog::tail`).
pub(crate) fn recorded(
    rows: &[Row<'_>],
    recorded_at: DateTime<Utc>,
) -> Vec<crate::RawRecordedEvent> {
    rows.iter()
        .map(|r| crate::RecordedEvent {
            position: r.position,
            event_id: EventId(r.event_id),
            stream: r.stream.clone(),
            // Assigned from a u64 in `assign_batch`: never negative.
            version: r.version.unsigned_abs(),
            tenant: r.tenant.clone(),
            event_type: r.event_type.to_owned(),
            payload: crate::JsonText::new_unchecked(r.payload),
            occurred_at: r.occurred_at,
            recorded_at,
            metadata: r.metadata.clone(),
            hash: r.hash.clone(),
        })
        .collect()
}

/// Last version and hash of a stream.
pub(crate) type Tip = (u64, [u8; 32]);

/// What the database holds now for the streams and event ids of a group commit.
#[derive(Default)]
pub(crate) struct CurrentState {
    /// Last version and hash per stream of the group that exists.
    pub streams: HashMap<String, Tip>,
    /// Event ids of the group that are already recorded (only looked up on the slow path).
    pub existing_ids: HashSet<Uuid>,
    /// The highest position in the log (0 when empty).
    pub head: i64,
}

/// Most stream tips a [`TipCache`] keeps (≈150 B each) before it drops them (the existence
/// filter stays).
const TIP_CACHE_CAP: usize = 250_000;

/// Most streams the existence filter of a [`TipCache`] tracks (≈10 B each) before the cache
/// stops claiming to know every stream.
const EXISTENCE_FILTER_CAP: usize = 4_000_000;

/// The tips this process wrote or read, valid while the log's head is where this process left
/// it: every writer takes the append lock and positions are dense, so an unchanged head proves
/// nobody else appended in between. Spares the per-stream version/hash lookups of a group
/// commit in the common single-writer case; any doubt (another writer, an error, an unknown
/// commit outcome) empties it.
///
/// Besides the tips (bounded) it keeps an existence filter: a 64-bit hash of every stream of
/// the log. A new stream (the common case of an import: one stream per invoice) whose hash is
/// not in the filter certainly does not exist and needs no lookup even after the tips were
/// dropped; a hash collision only costs a lookup.
pub(crate) struct TipCache {
    /// The head at which `tips` is known to match the database; -1 when unknown.
    valid_at: i64,
    /// `existing` holds the hash of every stream of the log (true from an empty log on).
    complete: bool,
    tips: HashMap<String, Tip>,
    existing: HashSet<u64>,
    tip_cap: usize,
    filter_cap: usize,
}

fn stream_hash(stream: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same value for the same stream for this process's life.
    let mut h = std::hash::DefaultHasher::new();
    stream.hash(&mut h);
    h.finish()
}

impl TipCache {
    pub(crate) fn new(head: i64) -> Self {
        Self::with_caps(head, TIP_CACHE_CAP, EXISTENCE_FILTER_CAP)
    }

    pub(crate) fn with_caps(head: i64, tip_cap: usize, filter_cap: usize) -> Self {
        TipCache {
            valid_at: head,
            complete: head == 0,
            tips: HashMap::new(),
            existing: HashSet::new(),
            tip_cap,
            filter_cap,
        }
    }

    fn start_over(&mut self, valid_at: i64) {
        self.valid_at = valid_at;
        self.complete = valid_at == 0;
        self.tips.clear();
        self.existing.clear();
    }

    pub(crate) fn invalidate(&mut self) {
        self.start_over(-1);
        self.complete = false;
    }

    /// Assuming the cache is still valid: the tips it knows, and the streams to look up.
    pub(crate) fn plan(&self, streams: &[String]) -> (HashMap<String, Tip>, Vec<String>) {
        let mut known = HashMap::new();
        let mut fetch = Vec::new();
        if self.valid_at < 0 {
            return (known, streams.to_vec());
        }
        for s in streams {
            match self.tips.get(s) {
                Some(t) => {
                    known.insert(s.clone(), *t);
                }
                None if self.complete && !self.existing.contains(&stream_hash(s)) => {}
                None => fetch.push(s.clone()),
            }
        }
        (known, fetch)
    }

    /// Whether what [`TipCache::plan`] assumed holds at the head read under the lock; if not,
    /// the cache starts over at that head (and the caller looks up every stream).
    pub(crate) fn check(&mut self, head: i64) -> bool {
        if self.valid_at >= 0 && self.valid_at == head {
            return true;
        }
        self.start_over(head);
        false
    }

    /// After a successful commit that moved the head from `read_head` to `new_head`.
    pub(crate) fn committed(&mut self, read_head: i64, new_head: i64, tips: HashMap<String, Tip>) {
        if self.valid_at != read_head {
            self.invalidate();
            return;
        }
        if self.complete {
            self.existing.extend(tips.keys().map(|s| stream_hash(s)));
            if self.existing.len() > self.filter_cap {
                self.complete = false;
                self.existing = HashSet::new();
            }
        }
        if self.tips.len() + tips.len() > self.tip_cap {
            self.tips.clear();
        }
        self.tips.extend(tips);
        self.valid_at = new_head;
    }
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
    let occurred_at = truncate_micros(e.occurred_at);
    Ok(PreparedEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        payload_canonical,
        occurred_at,
        occurred_at_text: canonical::format_time(&occurred_at),
        metadata: e.metadata,
    })
}

/// Validates and encodes every batch (CPU work, done before any lock is taken). Returns a result
/// slot per batch (filled with the error of each invalid batch) and the valid batches.
pub(crate) fn prepare(
    batches: Vec<AppendBatch>,
    mut refused: Vec<Option<Error>>,
) -> (Vec<Option<Result<Appended>>>, Vec<PreparedBatch>) {
    let mut results: Vec<Option<Result<Appended>>> = Vec::with_capacity(batches.len());
    let mut prepared = Vec::with_capacity(batches.len());
    for (index, batch) in batches.into_iter().enumerate() {
        if let Some(e) = refused.get_mut(index).and_then(Option::take) {
            results.push(Some(Err(e)));
            continue;
        }
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
    let tenant = batch.stream.tenant();
    Ok(PreparedBatch {
        index,
        stream: batch.stream,
        tenant,
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

/// The rows to insert, each batch's outcome (by its index), and the group's stream tips after it.
pub(crate) type Assigned<'a> = (
    Vec<Row<'a>>,
    Vec<(usize, Result<Appended>)>,
    HashMap<String, Tip>,
);

/// Under the lock: checks each batch's expected version against the state (as left by the
/// batches before it in the same group), refuses recorded or repeated event ids, and assigns
/// versions, positions and chained hashes. Returns the rows to insert, each batch's outcome and
/// the tips of the group's streams after it.
pub(crate) fn assign<'a>(
    batches: &'a [PreparedBatch],
    state: CurrentState,
    recorded_at: &str,
) -> Assigned<'a> {
    let CurrentState {
        streams: mut tips,
        mut existing_ids,
        mut head,
    } = state;
    let total: usize = batches.iter().map(|b| b.events.len()).sum();
    let mut rows = Vec::with_capacity(total);
    let mut outcomes = Vec::with_capacity(batches.len());
    for batch in batches {
        let outcome = assign_batch(
            batch,
            &mut tips,
            &mut existing_ids,
            &mut head,
            &mut rows,
            recorded_at,
        );
        outcomes.push((batch.index, outcome));
    }
    (rows, outcomes, tips)
}

fn assign_batch<'a>(
    batch: &'a PreparedBatch,
    tips: &mut HashMap<String, Tip>,
    existing_ids: &mut HashSet<Uuid>,
    head: &mut i64,
    rows: &mut Vec<Row<'a>>,
    recorded_at: &str,
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
            stream: batch.stream.clone(),
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
    // Hash first (the only step that can fail), then build the rows.
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
                occurred_at: &e.occurred_at_text,
                metadata: &e.metadata,
                recorded_at: Some(recorded_at),
            },
        )
        .map_err(|err| Error::Invalid(err.0))?;
        hashes.push(prev);
    }
    let first_position = *head + 1;
    let stream = batch.stream.as_str();
    let mut version = start_version;
    for (e, hash) in batch.events.iter().zip(hashes) {
        version += 1;
        *head += 1;
        existing_ids.insert(e.event_id.0);
        rows.push(Row {
            position: *head,
            event_id: e.event_id.0,
            stream: &batch.stream,
            version: i64::try_from(version).unwrap_or(i64::MAX),
            tenant: &batch.tenant,
            event_type: &e.event_type,
            payload: &e.payload_canonical,
            occurred_at: e.occurred_at,
            occurred_at_text: &e.occurred_at_text,
            metadata: &e.metadata,
            hash: hex::encode(hash),
        });
    }
    tips.insert(stream.to_owned(), (version, prev));
    Ok(Appended {
        stream: batch.stream.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("acme/case/{i}")).collect()
    }

    fn tips(streams: &[String], version: u64) -> HashMap<String, Tip> {
        streams
            .iter()
            .map(|s| (s.clone(), (version, [7; 32])))
            .collect()
    }

    #[test]
    fn new_streams_need_no_lookup_even_after_the_tips_were_dropped() {
        let mut cache = TipCache::with_caps(0, 10, 1000);
        assert!(cache.check(0));
        let first = names(0..8);
        cache.committed(0, 8, tips(&first, 1));
        // Over the tip cap: tips dropped, the filter still knows every stream.
        let second = names(8..16);
        assert!(cache.check(8));
        cache.committed(8, 16, tips(&second, 1));
        assert!(cache.check(16));
        let (known, fetch) = cache.plan(&names(100..140));
        assert!(
            known.is_empty() && fetch.is_empty(),
            "unknown streams are new"
        );
        // Streams whose tips were dropped are looked up, never assumed new.
        let (known, fetch) = cache.plan(&first);
        assert!(known.is_empty());
        assert_eq!(fetch, first);
        // Kept tips are used.
        let (known, fetch) = cache.plan(&second);
        assert_eq!(known.len(), second.len());
        assert!(fetch.is_empty());
    }

    #[test]
    fn past_the_filter_cap_every_unknown_stream_is_looked_up() {
        let mut cache = TipCache::with_caps(0, 10, 12);
        cache.committed(0, 8, tips(&names(0..8), 1));
        cache.committed(8, 16, tips(&names(8..16), 1));
        let (_, fetch) = cache.plan(&names(100..103));
        assert_eq!(fetch, names(100..103));
    }

    #[test]
    fn another_writer_or_an_error_empties_the_cache() {
        let mut cache = TipCache::with_caps(0, 10, 1000);
        cache.committed(0, 4, tips(&names(0..4), 1));
        // Someone else appended: the head moved without us.
        assert!(!cache.check(9));
        let (_, fetch) = cache.plan(&names(50..52));
        assert_eq!(fetch, names(50..52), "not complete any more: look up");
        cache.invalidate();
        let (_, fetch) = cache.plan(&names(0..2));
        assert_eq!(fetch, names(0..2));
    }
}
