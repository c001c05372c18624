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
//! - [`consumer`]: the consumer library: durable pull consumer, explicit acks after commit, an
//!   inbox table for idempotency, bounded retries with backoff, dead letters.
//!
//! ## Invariants
//! The relay never publishes out of log order and never skips an event; a consumer never acks an
//! event before its handler's transaction committed, and a redelivered event changes nothing twice.

pub mod consumer;
pub mod envelope;
pub mod relay;

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
    /// The relay's log reader task ended without reporting an error (it panicked).
    #[error("relay reader task ended")]
    ReaderGone,
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
}

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
        }
    }

    /// Create (or open) the event and dead-letter streams with file storage.
    pub async fn ensure_streams(
        &self,
        js: &async_nats::jetstream::Context,
    ) -> Result<async_nats::jetstream::stream::Stream> {
        use async_nats::jetstream::stream::{Config, StorageType};
        let events = js
            .get_or_create_stream(Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.subject_prefix)],
                storage: StorageType::File,
                duplicate_window: self.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(nats_err)?;
        js.get_or_create_stream(Config {
            name: self.dead_letter_stream.clone(),
            subjects: vec![format!("{}.>", self.dead_letter_prefix)],
            storage: StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(nats_err)?;
        Ok(events)
    }
}

/// Connect to NATS and open JetStream.
pub async fn connect(url: &str) -> Result<async_nats::jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .name("mahnwerk")
        .connect(url)
        .await
        .map_err(nats_err)?;
    Ok(async_nats::jetstream::new(client))
}
