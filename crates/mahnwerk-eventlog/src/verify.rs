//! Verification of the hash chains: `EventLog::verify` over the whole log, and the offline
//! check of one stream's events (an exported case file) without the database.

use super::*;

/// Page size of [`EventLog::verify`].
const VERIFY_PAGE: usize = 5_000;

/// The result of [`EventLog::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub streams: u64,
    pub events: u64,
    /// The broken event with the lowest position, if any.
    pub first_broken: Option<BrokenEvent>,
}

/// An event whose stored hash, version or tenant does not match what it should be.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenEvent {
    pub position: i64,
    pub stream: StreamId,
    pub version: u64,
    pub event_id: EventId,
    pub reason: String,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// The text `mahnwerk verify` prints.
pub fn verify_report_text(r: &VerifyReport) -> String {
    match &r.first_broken {
        None => format!(
            "ok: {} events in {} streams, every hash chain intact",
            r.events, r.streams
        ),
        Some(b) => format!(
            "BROKEN: first broken event at position {} (stream {}, version {}, event {}): {}\n\
             checked {} events in {} streams",
            b.position, b.stream, b.version, b.event_id, b.reason, r.events, r.streams
        ),
    }
}

impl EventLog {
    /// Recomputes every stream's hash chain and checks versions; names the broken event with
    /// the lowest position.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let mut tips: std::collections::HashMap<StreamId, (u64, [u8; 32])> =
            std::collections::HashMap::new();
        let mut report = VerifyReport {
            streams: 0,
            events: 0,
            first_broken: None,
        };
        let mut after = 0;
        let mut previous_position = 0_i64;
        loop {
            let page = self.read_rows(after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for row in page {
                report.events += 1;
                let (position, version, event_id) =
                    (row.position, row.version, EventId(row.event_id));
                let (stream, stored_hash) = (row.stream.clone(), row.hash.clone());
                // Positions are dense (assigned under the append lock, never from a sequence):
                // a gap means events were deleted, e.g. the last event of a stream, which leaves
                // no version gap behind.
                let expected_position = previous_position + 1;
                previous_position = position;
                let gap = (position != expected_position).then(|| {
                    let missing = if position == expected_position + 1 {
                        format!("position {expected_position} is missing")
                    } else {
                        format!(
                            "positions {expected_position}..{} are missing",
                            position - 1
                        )
                    };
                    format!(
                        "{missing}: position {position} follows position {} (events deleted)",
                        expected_position - 1
                    )
                });
                let stored_text = row.payload.clone();
                let hash_version = row.hash_version;
                let e = match row.into_recorded() {
                    Ok(e) => e,
                    Err(err) => {
                        // A row that no longer reads back as an event (say, a payload edited
                        // into invalid JSON) is itself a broken event.
                        let stream: StreamId = stream.parse().map_err(|_| {
                            Error::Invalid(format!(
                                "stored stream id {stream:?} at position {position} is malformed"
                            ))
                        })?;
                        let version = u64::try_from(version).unwrap_or(0);
                        if report.first_broken.is_none() {
                            report.first_broken = Some(BrokenEvent {
                                position,
                                stream: stream.clone(),
                                version,
                                event_id,
                                reason: match &gap {
                                    Some(g) => {
                                        format!("stored row cannot be read back: {err}; {g}")
                                    }
                                    None => format!("stored row cannot be read back: {err}"),
                                },
                            });
                        }
                        let next = plan::decode_hash(&stored_hash).unwrap_or(canonical::GENESIS);
                        tips.insert(stream, (version, next));
                        continue;
                    }
                };
                let e = &e;
                let (prev_version, prev_hash) = tips
                    .get(&e.stream)
                    .copied()
                    .unwrap_or((0, canonical::GENESIS));
                let (problem, stored) = check_event(e, hash_version, prev_version, &prev_hash);
                let mut problem = match (gap.clone(), problem) {
                    (Some(g), Some(p)) => Some(format!("{p}; {g}")),
                    (g, p) => p.or(g),
                };
                // The stored bytes are the hashed bytes (ADR 003): a text that parses to the
                // same value but is not its canonical form (a duplicate key, reordered keys,
                // other whitespace) was written behind the log's back.
                if problem.is_none()
                    && canonical::canonical_json(&e.payload).is_ok_and(|c| c != stored_text)
                {
                    problem = Some(
                        "stored payload bytes differ from their canonical form \
                         (duplicate key, reordered keys or reformatted text)"
                            .to_owned(),
                    );
                }
                if let Some(reason) = problem
                    && report.first_broken.is_none()
                {
                    report.first_broken = Some(BrokenEvent {
                        position: e.position,
                        stream: e.stream.clone(),
                        version: e.version,
                        event_id: e.event_id,
                        reason,
                    });
                }
                // Chain on from what is stored, so one tampered event is reported once.
                tips.insert(e.stream.clone(), (e.version, stored));
            }
        }
        report.streams = u64::try_from(tips.len()).unwrap_or(u64::MAX);
        Ok(report)
    }
}

/// Checks one event against its stream's previous version and hash. Returns the problem, if any,
/// and the hash the next event of the stream chains from (the stored one when it parses).
/// Check one stream's events offline (e.g. an exported case file, without the database):
/// versions 1, 2, … without gaps, one tenant, and the hash chain recomputed from the genesis.
/// Returns the first broken event's version and why. Hashes of hash version 2 (which cover
/// `recorded_at`) are expected; an event that only matches the older version 1 is accepted as
/// such.
pub fn verify_stream_events(events: &[RecordedEvent]) -> Option<(u64, String)> {
    let mut prev = (0_u64, canonical::GENESIS);
    for e in events {
        let (problem, next) = check_event(e, 2, prev.0, &prev.1);
        if let Some(p) = problem {
            let (old, _) = check_event(e, 1, prev.0, &prev.1);
            if old.is_some() {
                return Some((e.version, p));
            }
        }
        prev = (e.version, next);
    }
    None
}

fn check_event(
    e: &RecordedEvent,
    hash_version: i64,
    prev_version: u64,
    prev_hash: &[u8; 32],
) -> (Option<String>, [u8; 32]) {
    let stored = plan::decode_hash(&e.hash);
    let occurred_at = canonical::format_time(&e.occurred_at);
    let recorded_at = canonical::format_time(&e.recorded_at);
    let recomputed = canonical::canonical_json(&e.payload).and_then(|payload| {
        canonical::chain_hash(
            prev_hash,
            &canonical::HashInput {
                event_id: &e.event_id,
                stream: &e.stream,
                version: e.version,
                event_type: &e.event_type,
                payload_canonical: &payload,
                occurred_at: &occurred_at,
                metadata: &e.metadata,
                // Version 1 hashes were written before `recorded_at` was covered.
                recorded_at: (hash_version >= 2).then_some(recorded_at.as_str()),
            },
        )
    });
    let next = stored
        .or(recomputed.as_ref().ok().copied())
        .unwrap_or(*prev_hash);
    let problem = if e.version != prev_version + 1 {
        Some(format!(
            "version {} follows version {prev_version} of the stream",
            e.version
        ))
    } else if e.tenant != e.stream.tenant() {
        Some(format!(
            "tenant {} does not match the stream's tenant",
            e.tenant
        ))
    } else {
        match (stored, recomputed) {
            (None, _) => Some(format!("stored hash {:?} is not 32 bytes of hex", e.hash)),
            (_, Err(err)) => Some(format!("payload cannot be canonicalised: {}", err.0)),
            (Some(s), Ok(r)) if s != r => Some(format!(
                "hash mismatch: stored {}, recomputed {} (payload, metadata, recorded_at or chain changed)",
                e.hash,
                hex::encode(r)
            )),
            _ => None,
        }
    };
    (problem, next)
}
