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
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Most events one group transaction takes from the queue (a single larger request is never
/// split: it commits alone).
const MAX_GROUP_EVENTS: usize = 20_000;

/// Each batch's outcome, by the batch's index in its request.
pub(crate) type Outcomes = Vec<(usize, Result<Appended>)>;

pub(crate) struct Request {
    pub batches: Vec<PreparedBatch>,
    pub reply: oneshot::Sender<Result<Outcomes>>,
}

impl Request {
    fn events(&self) -> usize {
        self.batches.iter().map(|b| b.events.len()).sum()
    }
}

/// Starts the writer; it stops when every sender (every clone of the `EventLog`) is gone.
pub(crate) fn spawn(backend: Arc<Backend>, out: Outputs) -> mpsc::UnboundedSender<Request> {
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
pub type Tail = Arc<Vec<crate::RawRecordedEvent>>;

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
    }
    result
}

async fn commit_group(
    backend: &Backend,
    out: &Outputs,
    batches: &[PreparedBatch],
) -> Result<Outcomes> {
    let recorded_at = crate::plan::truncate_micros(Utc::now());
    // Build the committed events only while someone follows them (the relay).
    let follow = out.tail.receiver_count() > 0;
    let committed = match backend {
        Backend::Pg(b) => b.commit(batches, recorded_at, follow).await?,
        Backend::Sqlite(b) => b.commit(batches, recorded_at, follow).await?,
    };
    if let Some(events) = committed.events.filter(|e| !e.is_empty()) {
        // No receiver left is fine: followers fall back to reading the log.
        let _ = out.tail.send(Arc::new(events));
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
