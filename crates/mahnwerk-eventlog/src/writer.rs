//! Group commit across callers: one writer task per [`crate::EventLog`] takes every append
//! request waiting in its queue (up to [`MAX_GROUP_EVENTS`] events) and commits them in one
//! transaction, so concurrent `append`s share one lock acquisition, one round trip per step and
//! one fsync. Each request keeps its own outcomes; batches are applied in arrival order, so two
//! requests for one stream behave exactly as if they had run one after the other.
//!
//! Running the commit in its own task also makes appends cancellation-safe: a caller that
//! stops waiting cannot leave a transaction half-done; its append commits or fails as a whole.

use crate::plan::PreparedBatch;
use crate::{Appended, Backend, Error, Result, raise_head};
use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Most events one group transaction takes from the queue (a single larger request is never
/// split: it commits alone).
const MAX_GROUP_EVENTS: usize = 20_000;

/// Each batch's outcome, by the batch's index in its request.
pub(crate) type Outcomes = Vec<(usize, Result<Appended>)>;

pub(crate) struct Request {
    pub batches: Vec<PreparedBatch>,
    pub reply: oneshot::Sender<Result<Outcomes>>,
    /// Its share of the queue's byte budget, given back when the request is done with.
    pub _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Unit of the queue's byte budget (a semaphore permit per KiB).
pub(crate) const QUEUE_UNIT: usize = 1024;

/// Roughly the bytes a prepared request holds, in [`QUEUE_UNIT`]s (at least one).
pub(crate) fn queue_units(batches: &[PreparedBatch]) -> usize {
    let bytes: usize = batches
        .iter()
        .flat_map(|b| &b.events)
        .map(|e| {
            e.payload_canonical.len()
                + e.event_type.len()
                + e.occurred_at_text.len()
                + metadata_len(&e.metadata)
                + 128
        })
        .sum();
    bytes.div_ceil(QUEUE_UNIT).max(1)
}

fn metadata_len(m: &crate::Metadata) -> usize {
    m.actor.len()
        + m.correlation_id.as_ref().map_or(0, String::len)
        + m.causation_id.as_ref().map_or(0, String::len)
        + m.traceparent.as_ref().map_or(0, String::len)
}

impl Request {
    fn events(&self) -> usize {
        self.batches.iter().map(|b| b.events.len()).sum()
    }
}

/// Starts the writer; it stops when every sender (every clone of the `EventLog`) is gone.
pub(crate) fn spawn(backend: Arc<Backend>, out: Outputs) -> mpsc::UnboundedSender<Request> {
    // Unbounded as a channel, bounded by bytes: senders hold a permit of the log's queue
    // semaphore for every request (see `EventLog::enqueue_many`).
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(backend, out, rx));
    tx
}

/// What the writer tells the rest of the process after each commit.
pub(crate) struct Outputs {
    /// The new head (wakes followers).
    pub head: watch::Sender<i64>,
    /// The committed events, for in-process followers (see [`crate::EventLog::tail`]).
    pub tail: broadcast::Sender<Tail>,
    /// Bytes of commits held for tail followers now, and the most it may hold.
    pub tail_held: Arc<AtomicUsize>,
    pub tail_limit: usize,
    pub stats: Arc<Counters>,
}

/// Running totals of the writer (see [`crate::EventLog::commit_stats`]).
#[derive(Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    events: AtomicU64,
    busy_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> crate::CommitStats {
        crate::CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            busy: std::time::Duration::from_micros(self.busy_micros.load(Ordering::Relaxed)),
        }
    }
}

/// The events of one commit, in position order, for in-process followers.
pub type Tail = Arc<Commit>;

/// One commit's events on the tail; its bytes count against the tail's budget while it lives.
#[derive(Debug)]
pub struct Commit {
    events: Vec<crate::RawRecordedEvent>,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl std::ops::Deref for Commit {
    type Target = [crate::RawRecordedEvent];
    fn deref(&self) -> &Self::Target {
        &self.events
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Roughly the bytes the committed events hold.
fn tail_bytes(events: &[crate::RawRecordedEvent]) -> usize {
    events
        .iter()
        .map(|e| {
            e.payload.as_str().len()
                + e.event_type.len()
                + e.stream.as_str().len()
                + e.hash.len()
                + metadata_len(&e.metadata)
                + 160
        })
        .sum()
}

async fn run(backend: Arc<Backend>, out: Outputs, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut events = first.events();
        let mut requests = vec![first];
        while events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(r) => {
                    events += r.events();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }
        if requests.len() == 1 {
            if let Some(r) = requests.pop() {
                let result = commit(&backend, &out, &r.batches).await;
                let _ = r.reply.send(result);
            }
            continue;
        }
        // One group: renumber the batches, remembering whose they are.
        let mut all = Vec::with_capacity(requests.iter().map(|r| r.batches.len()).sum());
        let mut owners = Vec::with_capacity(all.capacity());
        for (ri, r) in requests.iter_mut().enumerate() {
            for mut b in std::mem::take(&mut r.batches) {
                owners.push((ri, b.index));
                b.index = all.len();
                all.push(b);
            }
        }
        match commit(&backend, &out, &all).await {
            Ok(outcomes) => {
                let mut per: Vec<Outcomes> = requests.iter().map(|_| Vec::new()).collect();
                for (i, outcome) in outcomes {
                    if let Some(&(ri, index)) = owners.get(i)
                        && let Some(p) = per.get_mut(ri)
                    {
                        p.push((index, outcome));
                    }
                }
                for (r, outcomes) in requests.into_iter().zip(per) {
                    let _ = r.reply.send(Ok(outcomes));
                }
            }
            Err(err) => {
                // The group failed as a whole (database trouble): give every request its own
                // transaction and so its own outcome or error.
                tracing::debug!(error = %err, requests = requests.len(), "eventlog group commit failed, retrying alone");
                for (mut b, (ri, index)) in all.into_iter().zip(owners) {
                    b.index = index;
                    if let Some(r) = requests.get_mut(ri) {
                        r.batches.push(b);
                    }
                }
                for r in requests {
                    let result = commit(&backend, &out, &r.batches).await;
                    let _ = r.reply.send(result);
                }
            }
        }
    }
}

async fn commit(backend: &Backend, out: &Outputs, batches: &[PreparedBatch]) -> Result<Outcomes> {
    let started = std::time::Instant::now();
    let result = commit_group(backend, out, batches).await;
    let stats = &out.stats;
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.busy_micros.fetch_add(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    if let Ok(outcomes) = &result {
        let appended: u64 = outcomes
            .iter()
            .filter_map(|(_, o)| o.as_ref().ok())
            .map(|a| a.last_version - a.first_version + 1)
            .sum();
        stats.events.fetch_add(appended, Ordering::Relaxed);
        count_types(batches, outcomes);
    }
    result
}

/// `mahnwerk_events_appended_total{type}`: what the services decided, by event type (steps,
/// letters, payments, hand-overs, …), counted where every service's appends meet.
fn count_types(batches: &[PreparedBatch], outcomes: &Outcomes) {
    let committed: std::collections::HashSet<usize> = outcomes
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(i, _)| *i)
        .collect();
    let mut by_type: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for b in batches.iter().filter(|b| committed.contains(&b.index)) {
        for e in &b.events {
            *by_type.entry(e.event_type.as_str()).or_default() += 1;
        }
    }
    for (t, n) in by_type {
        metrics::counter!("mahnwerk_events_appended_total", "type" => t.to_owned()).increment(n);
    }
}

async fn commit_group(
    backend: &Backend,
    out: &Outputs,
    batches: &[PreparedBatch],
) -> Result<Outcomes> {
    let recorded_at = crate::plan::truncate_micros(Utc::now());
    // Build the committed events only while someone follows them (the relay) and the tail
    // has room: followers that find a commit missing read it from the log.
    let follow =
        out.tail.receiver_count() > 0 && out.tail_held.load(Ordering::Relaxed) < out.tail_limit;
    let committed = match backend {
        Backend::Pg(b) => b.commit(batches, recorded_at, follow).await?,
        Backend::Sqlite(b) => b.commit(batches, recorded_at, follow).await?,
    };
    if let Some(events) = committed.events.filter(|e| !e.is_empty()) {
        let bytes = tail_bytes(&events);
        if out.tail_held.load(Ordering::Relaxed) + bytes <= out.tail_limit {
            out.tail_held.fetch_add(bytes, Ordering::Relaxed);
            // No receiver left is fine (the commit is dropped again): followers fall back to
            // reading the log.
            let _ = out.tail.send(Arc::new(Commit {
                events,
                bytes,
                held: out.tail_held.clone(),
            }));
        } else {
            tracing::debug!(
                bytes,
                limit = out.tail_limit,
                "eventlog tail full; followers read the log"
            );
        }
    }
    if let Some(h) = committed.head {
        raise_head(&out.head, h);
    }
    Ok(committed.outcomes)
}

/// What an append gets when the writer is gone (its runtime shut down): infrastructure.
pub(crate) fn stopped() -> Error {
    Error::Database(sqlx::Error::PoolClosed)
}
