//! The public wire format of events on JetStream.
//!
//! Subject: `{prefix}.{tenant}.{stream kind}.{event type}`, e.g.
//! `mahnwerk.events.acme.case.invoice.issued.v1` (the dots of the versioned type become subject
//! tokens, so `mahnwerk.events.acme.case.invoice.>` selects all invoice events of one tenant).
//! Headers: `Nats-Msg-Id` (the event id), `Mahnwerk-Event-Type`, `Mahnwerk-Stream`,
//! `Mahnwerk-Version`, `Mahnwerk-Position` and, when known, `traceparent`.
//! Body: the JSON [`Envelope`].

use chrono::{DateTime, Utc};
use mahnwerk_eventlog::{Metadata, RecordedEvent};
use serde::{Deserialize, Serialize};

pub const HDR_EVENT_TYPE: &str = "Mahnwerk-Event-Type";
pub const HDR_STREAM: &str = "Mahnwerk-Stream";
pub const HDR_VERSION: &str = "Mahnwerk-Version";
pub const HDR_POSITION: &str = "Mahnwerk-Position";

/// One event as published: everything the log recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: String,
    /// `{tenant}/{kind}/{id}`.
    pub stream: String,
    pub version: u64,
    pub position: i64,
    pub tenant: String,
    /// Versioned type, e.g. `invoice.issued.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
    pub payload: serde_json::Value,
    /// Hex SHA-256 of the event in its stream's hash chain.
    pub hash: String,
}

impl From<&RecordedEvent> for Envelope {
    fn from(e: &RecordedEvent) -> Self {
        Envelope {
            event_id: e.event_id.to_string(),
            stream: e.stream.to_string(),
            version: e.version,
            position: e.position,
            tenant: e.tenant.to_string(),
            event_type: e.event_type.clone(),
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            metadata: e.metadata.clone(),
            payload: e.payload.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// The subject an event is published on.
pub fn subject(prefix: &str, e: &RecordedEvent) -> String {
    format!("{prefix}.{}.{}.{}", e.tenant, e.stream.kind(), e.event_type)
}

/// The case id of a `{tenant}/case/{id}` stream, for routing and ordering.
pub fn case_of(env: &Envelope) -> Option<&str> {
    let mut parts = env.stream.splitn(3, '/');
    let _tenant = parts.next()?;
    (parts.next()? == "case").then(|| parts.next()).flatten()
}
