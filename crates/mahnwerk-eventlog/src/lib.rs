//! # Mahnwerk event log of record
//!
//! One append-only log of events on PostgreSQL (production) or SQLite (one machine), through sqlx.
//! Each event belongs to a stream (`{tenant}/{kind}/{id}`) and gets a stream version (1, 2, 3…
//! without gaps) and a global position (strictly increasing, dense, and committed in position
//! order, so a follower reading "position > last seen" never skips an event).
//!
//! ## Layout
//! - [`EventLog`]: connect (runs this crate's migrations), append with an expected version,
//!   group commit of many streams' batches in one transaction ([`EventLog::append_many`]), reads
//!   by stream and from a global position, a head watch for followers, relay checkpoints and
//!   [`EventLog::verify`].
//! - `writer`: one task per `EventLog` that commits every waiting append request in one
//!   transaction (group commit across callers; appends are cancellation-safe).
//! - `plan`: validation, canonical encoding, version/position assignment and hash chaining,
//!   shared by both backends; also the stream-tip cache.
//! - `canonical`: RFC 8785 canonical JSON and the chained SHA-256 of an event.
//! - `pg`, `sqlite`: the two backends (one schema design, one migration history each under
//!   `migrations/`).
//! - `stored`: a row as the backends read it, and [`JsonText`] (a payload as its stored text).
//! - `sealing`: where the log uses [`privacy`]: the keyring opened with the log, personal data
//!   sealed on append and opened on read ([`EventLog::open_events`]).
//! - `trace`: the trace context an appended event without one gets ([`set_trace_context`]).
//!
//! ## How an append runs
//! 1. In the caller's task: validate, canonicalise payloads (CPU work, in parallel).
//! 2. In the writer task: take every queued request (up to 20,000 events) as one group.
//! 3. Take the lock (PostgreSQL: `pg_advisory_xact_lock` on a constant key; SQLite:
//!    `BEGIN IMMEDIATE`), read the head, and the last version and hash of each stream of the
//!    group with ONE query — or none, when this process wrote last (the head is where it left
//!    it) and its tip cache knows the streams.
//! 4. Check expected versions in batch order, assign versions, positions (head + 1…) and hashes
//!    in Rust; insert every row with one `UNNEST` statement (PostgreSQL) or a few fixed-size
//!    multi-row `INSERT`s (SQLite); commit; wake `watch_head` (and `NOTIFY` on PostgreSQL).
//! 5. Recorded event ids are left to the unique index on this fast path; if the insert is
//!    refused, the group is redone with lookups so each batch gets its own
//!    [`Error::DuplicateEvent`] or [`Error::Conflict`] and the others still commit.
//!
//! ## Invariants
//! - Appends hold one lock from reading the head to commit: commit order is position order and
//!   positions have no gaps (no sequence hands out numbers before commit).
//! - The database refuses `UPDATE`, `DELETE` (and on PostgreSQL `TRUNCATE`, also with
//!   `session_replication_role = replica`; on SQLite `INSERT OR REPLACE`) of events by
//!   triggers; this crate never issues them.
//! - `hash = SHA-256(previous hash in the stream || canonical envelope)`, 32 zero bytes before
//!   version 1; the payload is hashed in RFC 8785 form and stored as exactly that text
//!   (PostgreSQL `json`, SQLite `TEXT`; ADR 003), and `verify` re-canonicalises what it reads, so
//!   a store or tool that reformats JSON cannot break [`EventLog::verify`].
//! - Followers in this process can take new commits from [`EventLog::tail`] instead of reading
//!   them back; [`EventLog::enqueue_many`] queues appends in call order for pipelines.
//! - Its tables live apart from other crates': PostgreSQL schema `eventlog` with migrations in
//!   `eventlog._sqlx_migrations`; on SQLite tables `events`/`checkpoints` and migrations in
//!   `_eventlog_migrations` (sqlx's default `_sqlx_migrations` is shared per database, and
//!   another crate's history there would make either migrator fail).
//! - Never depends on a service crate; never sends database error text upward except inside
//!   [`Error::Database`], whose `Display` is only "database unavailable".

mod canonical;
pub mod nodelay;
mod pg;
mod plan;
pub mod privacy;
mod sealing;
mod sqlite;
mod stored;
pub(crate) use stored::StoredRow;
pub use stored::{JsonText, RawRecordedEvent};
mod trace;
pub use trace::set_trace_context;
mod verify;
pub use verify::{BrokenEvent, VerifyReport, verify_report_text, verify_stream_events};
mod writer;

use chrono::{DateTime, Utc};
pub use mahnwerk_domain::{EventId, StreamId, TenantId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Who and what caused an event; carried to JetStream headers and into the case file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// API key id or service name.
    pub actor: String,
    /// W3C trace context of the request or event that caused this one.
    pub traceparent: Option<String>,
}

/// An event to append. Version, position, hash and `recorded_at` are assigned by the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: EventId,
    /// Versioned type, e.g. `invoice.issued.v1`.
    pub event_type: String,
    pub payload: serde_json::Value,
    /// Business time; stored with microsecond precision (finer digits are dropped).
    pub occurred_at: DateTime<Utc>,
    pub metadata: Metadata,
}

/// Optimistic concurrency: what the writer believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet (same as `Exact(0)`).
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u64),
}

/// Events for one stream, appended atomically: all or none.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub stream: StreamId,
    pub first_version: u64,
    pub last_version: u64,
    pub first_position: i64,
    pub last_position: i64,
}

/// An event as stored. The payload is a parsed [`serde_json::Value`] by default;
/// [`RawRecordedEvent`] carries the stored JSON text unparsed, for code that only passes it on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEvent<P = serde_json::Value> {
    pub position: i64,
    pub event_id: EventId,
    pub stream: StreamId,
    pub version: u64,
    pub tenant: TenantId,
    pub event_type: String,
    pub payload: P,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
    /// Hex SHA-256 chained over the stream (see the crate docs).
    pub hash: String,
}

/// See [`EventLog::commit_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub events: u64,
    pub busy: std::time::Duration,
}

/// Commits an [`EventLog::tail`] follower may fall behind before it must read the log.
pub const TAIL_COMMITS: usize = 256;

/// Memory bounds of the append path ([`EventLog::connect_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of appends queued for the writer; beyond it [`EventLog::enqueue_many`] (and so
    /// every append) waits until the writer has committed enough (backpressure). A single
    /// request larger than this waits for an empty queue and commits alone.
    pub queue_bytes: usize,
    /// Bytes of committed events held for [`EventLog::tail`] followers (besides the
    /// [`TAIL_COMMITS`] count); beyond it commits are left off the tail and followers read
    /// them from the log.
    pub tail_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            queue_bytes: 64 << 20,
            tail_bytes: 64 << 20,
        }
    }
}

pub use writer::{Commit, Tail};

/// Appends queued by [`EventLog::enqueue_many`], not yet known to be committed.
#[must_use = "an append's outcome says whether it was recorded"]
pub struct QueuedAppend {
    slots: Vec<Option<Result<Appended>>>,
    reply: Option<tokio::sync::oneshot::Receiver<Result<writer::Outcomes>>>,
}

impl QueuedAppend {
    /// Waits for the commit: one outcome per batch, as [`EventLog::append_many`] returns them.
    pub async fn outcome(self) -> Result<Vec<Result<Appended>>> {
        let mut slots = self.slots;
        if let Some(reply) = self.reply {
            let outcomes = reply.await.map_err(|_| writer::stopped())??;
            for (index, outcome) in outcomes {
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(outcome);
                }
            }
        }
        Ok(slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(Error::Invalid("batch not processed".into()))))
            .collect())
    }
}

/// What can go wrong. Kinds: [`Error::Conflict`] is retryable after re-reading the stream;
/// [`Error::DuplicateEvent`] means "already done" to an idempotent handler; [`Error::Invalid`]
/// is the caller's fault; [`Error::Database`]/[`Error::Migrate`] are infrastructure
/// (`UNAVAILABLE`), and their text must not be sent to API callers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("version conflict on {stream}: expected {expected:?}, actual {actual:?}")]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Option<u64>,
    },
    /// The event id is already recorded (unique `event_id`): lets handlers be idempotent with
    /// deterministic ids ([`derived_event_id`]).
    #[error("event {0} already recorded")]
    DuplicateEvent(EventId),
    #[error("invalid: {0}")]
    Invalid(String),
    /// The batch would record personal data of a debtor whose data key was erased (`privacy`):
    /// an erased debtor cannot be written to. The subject id names no personal data.
    #[error(
        "debtor {subject} was erased (GDPR Art. 17): no personal data can be recorded for them"
    )]
    Erased { subject: String },
    #[error("database unavailable")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A fresh, time-ordered event id (UUIDv7).
pub fn event_id_now() -> EventId {
    EventId(Uuid::now_v7())
}

/// Namespace of [`derived_event_id`] (a fixed random UUID; never change it).
const DERIVED_NAMESPACE: Uuid = Uuid::from_u128(0x3c0e_8f8a_51b4_4d7e_9a55_e7f1_06b2_c4d9);

/// The `n`-th event that `handler` writes in reaction to `source`, as a deterministic UUIDv5: a
/// handler that runs twice for the same source gets the same ids, and the second append fails
/// with [`Error::DuplicateEvent`] instead of writing twice.
pub fn derived_event_id(source: EventId, handler: &str, n: u32) -> EventId {
    let name = format!("{}\u{1f}{handler}\u{1f}{n}", source.0.hyphenated());
    EventId(Uuid::new_v5(&DERIVED_NAMESPACE, name.as_bytes()))
}

enum Backend {
    Pg(pg::Pg),
    Sqlite(sqlite::Sqlite),
}

struct Inner {
    backend: Arc<Backend>,
    head: watch::Sender<i64>,
    tail: tokio::sync::broadcast::Sender<writer::Tail>,
    stats: Arc<writer::Counters>,
    /// Queue of the group-commit writer task (see `writer`), bounded by `queue` (permits of
    /// `writer::QUEUE_UNIT` bytes, `queue_units` in all).
    writer: tokio::sync::mpsc::UnboundedSender<writer::Request>,
    queue: Arc<tokio::sync::Semaphore>,
    queue_units: usize,
    listener: Option<tokio::task::AbortHandle>,
    /// Seals personal data on append and opens it on read (`privacy`), when a master key is
    /// configured.
    privacy: Option<privacy::Keyring>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

/// The event log. Cheap to clone (shares the pool and the head watch).
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("backend", &self.backend_name())
            .finish()
    }
}

pub(crate) fn raise_head(head: &watch::Sender<i64>, position: i64) {
    head.send_if_modified(|h| {
        if position > *h {
            *h = position;
            true
        } else {
            false
        }
    });
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl EventLog {
    /// `postgres://…` or `sqlite:path?mode=rwc` / `sqlite::memory:`; runs the backend's
    /// migrations (`sqlx::migrate!`). On PostgreSQL also listens for other processes' commits.
    /// Memory bounds are [`Limits::default`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, Limits::default()).await
    }

    /// [`EventLog::connect`] with the given memory bounds. Personal data is sealed with the
    /// master key from `MAHNWERK_MASTER_KEY` / `MAHNWERK_MASTER_KEY_FILE` when set (`privacy`).
    pub async fn connect_with(url: &str, limits: Limits) -> Result<Self> {
        let master = privacy::MasterKey::from_env()?;
        Self::connect_with_key(url, limits, master).await
    }

    /// [`EventLog::connect_with`] with the master key given (`None`: personal data in clear).
    pub async fn connect_with_key(
        url: &str,
        limits: Limits,
        master: Option<privacy::MasterKey>,
    ) -> Result<Self> {
        let (backend, listen) = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Pg(pg::Pg::connect(url).await?), true)
        } else if url.starts_with("sqlite:") {
            (Backend::Sqlite(sqlite::Sqlite::connect(url).await?), false)
        } else {
            return Err(Error::Invalid(
                "event log URL must start with postgres:// or sqlite:".into(),
            ));
        };
        let start = match &backend {
            Backend::Pg(b) => b.head_position().await?,
            Backend::Sqlite(b) => b.head_position().await?,
        };
        let (head, _) = watch::channel(start);
        let listener = match (&backend, listen) {
            (Backend::Pg(b), true) => Some(b.spawn_listener(head.clone())),
            _ => None,
        };
        let backend = Arc::new(backend);
        let (tail, _) = tokio::sync::broadcast::channel(TAIL_COMMITS);
        let stats = Arc::new(writer::Counters::default());
        let writer = writer::spawn(
            backend.clone(),
            writer::Outputs {
                head: head.clone(),
                tail: tail.clone(),
                tail_held: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
                tail_limit: limits.tail_bytes,
                stats: stats.clone(),
            },
        );
        let queue_units = (limits.queue_bytes / writer::QUEUE_UNIT).clamp(1, u32::MAX as usize);
        let privacy = sealing::open_keyring(&backend, master).await?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                backend,
                head,
                tail,
                stats,
                writer,
                queue: Arc::new(tokio::sync::Semaphore::new(queue_units)),
                queue_units,
                listener,
                privacy,
            }),
        })
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match *self.inner.backend {
            Backend::Pg(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Appends one batch atomically, checking the expected version.
    pub async fn append(&self, batch: AppendBatch) -> Result<Appended> {
        let mut results = self.append_many(vec![batch]).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(Error::Invalid("no result".into())))
    }

    /// Group commit: all batches in ONE transaction; a batch whose expected version fails (or
    /// whose event id is a duplicate, or that is invalid) gets its own `Err` in the result vector
    /// and is not written, the others commit together. Batches are applied in order, so two
    /// batches for one stream chain (the second's expected version sees the first).
    pub async fn append_many(&self, batches: Vec<AppendBatch>) -> Result<Vec<Result<Appended>>> {
        self.enqueue_many(batches).await.outcome().await
    }

    /// Validates and encodes `batches` in the caller's thread and queues them with the writer
    /// before returning: appends queued one after the other are applied in that order (and may
    /// share a group commit), while their outcomes are awaited later, e.g. by a pipeline that
    /// keeps several chunks in flight. [`EventLog::append_many`] is this plus the wait.
    ///
    /// Waits while the writer's queue is full ([`Limits::queue_bytes`]); waiters are served in
    /// order. Dropped while waiting, it queues nothing.
    pub async fn enqueue_many(&self, mut batches: Vec<AppendBatch>) -> QueuedAppend {
        if let Some(current) = trace::TRACE_CONTEXT.get() {
            self.fill_trace_context(&mut batches, *current).await;
        }
        let refused = match &self.inner.privacy {
            Some(keyring) => sealing::seal_batches(keyring, &mut batches).await,
            None => Vec::new(),
        };
        let (slots, prepared) = plan::prepare(batches, refused);
        let reply = if prepared.is_empty() {
            None
        } else {
            let units = writer::queue_units(&prepared).min(self.inner.queue_units);
            let (reply, outcome) = tokio::sync::oneshot::channel();
            // The semaphore is never closed; were it, the closed reply channel says so.
            if let Ok(permit) = self
                .inner
                .queue
                .clone()
                .acquire_many_owned(u32::try_from(units).unwrap_or(u32::MAX))
                .await
            {
                // A send error (writer gone) surfaces as the closed reply channel.
                let _ = self.inner.writer.send(writer::Request {
                    batches: prepared,
                    reply,
                    _permit: permit,
                });
            }
            Some(outcome)
        };
        QueuedAppend { slots, reply }
    }

    /// Events of `stream` with version ≥ `from_version`, ascending, at most `limit`.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let (from, limit) = (to_i64(from_version), limit_i64(limit));
        let rows = match &*self.inner.backend {
            Backend::Pg(b) => b.read_stream(stream.as_str(), from, limit).await?,
            Backend::Sqlite(b) => b.read_stream(stream.as_str(), from, limit).await?,
        };
        let events = rows
            .into_iter()
            .map(StoredRow::into_recorded)
            .collect::<Result<Vec<_>>>()?;
        self.open_events(events).await
    }

    /// Every event of each of `streams` (whole streams, ascending by version), in one read
    /// instead of one per stream: for a batch of short streams (the dunning scheduler's case
    /// streams). The result has one entry per requested stream, in the order given (empty for
    /// a stream without events).
    pub async fn read_streams(&self, streams: &[StreamId]) -> Result<Vec<Vec<RecordedEvent>>> {
        let ids: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        let rows = match &*self.inner.backend {
            Backend::Pg(b) => b.read_streams(&ids).await?,
            Backend::Sqlite(b) => b.read_streams(&ids).await?,
        };
        let events = rows
            .into_iter()
            .map(StoredRow::into_recorded)
            .collect::<Result<Vec<_>>>()?;
        let events = self.open_events(events).await?;
        let mut by_stream: std::collections::HashMap<String, Vec<RecordedEvent>> =
            std::collections::HashMap::with_capacity(ids.len());
        for e in events {
            by_stream
                .entry(e.stream.as_str().to_owned())
                .or_default()
                .push(e);
        }
        let mut out: Vec<Vec<RecordedEvent>> = Vec::with_capacity(ids.len());
        let mut first_at: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let events = match first_at.get(id) {
                // A stream asked for twice gets its events twice.
                Some(&at) => out[at].clone(),
                None => {
                    first_at.insert(id, i);
                    by_stream.remove(*id).unwrap_or_default()
                }
            };
            out.push(events);
        }
        Ok(out)
    }

    /// Like [`EventLog::read_stream`], with the payloads as stored and hashed: personal data
    /// still sealed (ADR 006), so the events verify against their hashes anywhere (archives).
    pub async fn read_stream_stored(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let (from, limit) = (to_i64(from_version), limit_i64(limit));
        let rows = match &*self.inner.backend {
            Backend::Pg(b) => b.read_stream(stream.as_str(), from, limit).await?,
            Backend::Sqlite(b) => b.read_stream(stream.as_str(), from, limit).await?,
        };
        rows.into_iter().map(StoredRow::into_recorded).collect()
    }

    /// Events with position > `after_position`, ascending, at most `limit`.
    pub async fn read_all(&self, after_position: i64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let events = self
            .read_rows(after_position, limit)
            .await?
            .into_iter()
            .map(StoredRow::into_recorded)
            .collect::<Result<Vec<_>>>()?;
        self.open_events(events).await
    }

    /// Like [`EventLog::read_all`], with each payload as the stored JSON text, not parsed into
    /// a tree: for relaying events without re-encoding them.
    pub async fn read_all_raw(
        &self,
        after_position: i64,
        limit: usize,
    ) -> Result<Vec<RawRecordedEvent>> {
        self.read_rows(after_position, limit)
            .await?
            .into_iter()
            .map(StoredRow::into_raw)
            .collect()
    }

    async fn read_rows(&self, after_position: i64, limit: usize) -> Result<Vec<StoredRow>> {
        let limit = limit_i64(limit);
        match &*self.inner.backend {
            Backend::Pg(b) => b.read_all(after_position, limit).await,
            Backend::Sqlite(b) => b.read_all(after_position, limit).await,
        }
    }

    /// The highest position in the log, 0 when empty.
    pub async fn head_position(&self) -> Result<i64> {
        let head = match &*self.inner.backend {
            Backend::Pg(b) => b.head_position().await?,
            Backend::Sqlite(b) => b.head_position().await?,
        };
        raise_head(&self.inner.head, head);
        Ok(head)
    }

    /// The stream's last version, `None` if it has no events.
    pub async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>> {
        let v = match &*self.inner.backend {
            Backend::Pg(b) => b.stream_version(stream.as_str()).await?,
            Backend::Sqlite(b) => b.stream_version(stream.as_str()).await?,
        };
        Ok(v.map(|v| u64::try_from(v).unwrap_or(0)))
    }

    /// Receives the head position after every commit made through this `EventLog` (and, on
    /// PostgreSQL, other processes' commits via `LISTEN/NOTIFY`). A wake-up hint: followers
    /// still poll as a fallback.
    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.inner.head.subscribe()
    }

    /// Totals of this handle's group-commit writer since it started: how many transactions,
    /// how many events, and how long the writer spent committing (for metrics, and to tell a
    /// writer-bound append path from a starved one).
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.stats.snapshot()
    }

    /// The events this process commits from now on, one message per group commit, in position
    /// order, so a follower that is caught up (the relay) need not read them back from the
    /// database. Only this process's appends appear, and a follower that falls more than
    /// [`TAIL_COMMITS`] commits behind gets `Lagged`: a gap between the position it has and the
    /// first one it receives means "read the log". While nobody subscribes, nothing is built.
    pub fn tail(&self) -> tokio::sync::broadcast::Receiver<writer::Tail> {
        self.inner.tail.subscribe()
    }

    /// Saved position of a relay or consumer, 0 if unknown.
    pub async fn load_checkpoint(&self, name: &str) -> Result<i64> {
        match &*self.inner.backend {
            Backend::Pg(b) => b.load_checkpoint(name).await,
            Backend::Sqlite(b) => b.load_checkpoint(name).await,
        }
    }

    /// Saves a relay's or consumer's position (overwrites).
    pub async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        match &*self.inner.backend {
            Backend::Pg(b) => b.save_checkpoint(name, position).await,
            Backend::Sqlite(b) => b.save_checkpoint(name, position).await,
        }
    }

    /// The PostgreSQL pool (search_path `eventlog`), for tools and tests that need raw SQL.
    #[doc(hidden)]
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &*self.inner.backend {
            Backend::Pg(b) => Some(b.pool()),
            Backend::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, for tools and tests that need raw SQL.
    #[doc(hidden)]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &*self.inner.backend {
            Backend::Pg(_) => None,
            Backend::Sqlite(b) => Some(b.pool()),
        }
    }
}
