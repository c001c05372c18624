//! Events as the backends store them: a row before validation ([`StoredRow`]) and a payload
//! kept as its stored JSON text ([`JsonText`]).

use crate::{Error, EventId, Metadata, RecordedEvent, Result, StreamId, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An event with its payload as the stored JSON text.
pub type RawRecordedEvent = RecordedEvent<JsonText>;

/// A payload as the log stored it: JSON text, handed on without parsing. The log only stores
/// JSON (canonical text it serialised itself; PostgreSQL's `json` type checks it again), so the
/// text is not re-validated on the read path; a payload changed by hand behind the append-only
/// guard is what `verify` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl Serialize for JsonText {
    /// As the JSON value it is (not as a string).
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl JsonText {
    /// Wraps text the caller knows to be JSON (it is not checked).
    pub fn new_unchecked(text: impl Into<String>) -> Self {
        JsonText(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text into any deserialisable type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }
}

/// A row as both backends read it, before validation into a [`RecordedEvent`].
pub(crate) struct StoredRow {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: String,
    pub version: i64,
    pub tenant: String,
    pub event_type: String,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub actor: String,
    pub traceparent: Option<String>,
    pub hash: String,
    /// 1: the hash does not cover `recorded_at` (written before version 2); 2: it does.
    pub hash_version: i64,
}

impl StoredRow {
    pub(crate) fn into_recorded(self) -> Result<RecordedEvent> {
        self.into_event(|text| serde_json::from_str(&text))
    }

    pub(crate) fn into_raw(self) -> Result<RawRecordedEvent> {
        self.into_event(|text| Ok(JsonText(text)))
    }

    fn into_event<P>(
        self,
        parse: impl FnOnce(String) -> serde_json::Result<P>,
    ) -> Result<RecordedEvent<P>> {
        let stream: StreamId = self.stream.parse().map_err(|_| {
            Error::Invalid(format!("stored stream id {:?} is malformed", self.stream))
        })?;
        let tenant: TenantId = self
            .tenant
            .parse()
            .map_err(|_| Error::Invalid(format!("stored tenant {:?} is malformed", self.tenant)))?;
        let payload = parse(self.payload).map_err(|e| {
            Error::Invalid(format!(
                "stored payload at position {} is not JSON: {e}",
                self.position
            ))
        })?;
        Ok(RecordedEvent {
            position: self.position,
            event_id: EventId(self.event_id),
            stream,
            version: u64::try_from(self.version).unwrap_or(0),
            tenant,
            event_type: self.event_type,
            payload,
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            metadata: Metadata {
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                actor: self.actor,
                traceparent: self.traceparent,
            },
            hash: self.hash,
        })
    }
}
