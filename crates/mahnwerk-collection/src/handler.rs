//! The event handler on the consumer library. On `dunning.escalated.v1` it records the case as
//! pending in its transaction; [`crate::Collection::work`] then decides the hand-over on the case
//! stream (read, decide, append with the expected version: a redelivery or a second replica
//! finds the hand-over there and decides nothing). On `case.handed_over.v1`,
//! `collection.recalled.v1`, `collection.status_reported.v1`, `collection.costs_waived.v1` and a
//! `case.closed.v1` of a case with a partner (whoever appended them: this handler, an operator's
//! or a partner's RPC) it publishes the event's envelope on the partner's public subject with
//! `Nats-Msg-Id` = event id, and acks only after JetStream acked the publish, so every such event
//! reaches the partner's subject once in effect. The published payload is the one stored and
//! hashed in the log (read back by stream and version), not the opened one the consumer library
//! hands the handler: with a master key its `debtor`/`payer` objects stay sealed under the
//! debtor's data key, so the partner's JetStream copy is unreadable once the debtor is erased
//! (ADR 006) and still verifies against the event's hash. Partners read the case file in clear
//! through `CollectionService.GetHandedOverCase`.

use crate::service::Subjects;
use crate::store;
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use mahnwerk_eventlog::EventLog;
use sqlx::{Any, Transaction};
use std::sync::Arc;

/// The subject filter (below the bus prefix) of the handler.
pub const FILTER: &str = "*.case.>";

pub struct CaseHandler {
    /// Wakes [`crate::Collection::work`].
    pub wake: Arc<tokio::sync::Notify>,
    pub js: async_nats::jetstream::Context,
    pub subjects: Subjects,
    /// Where the stored (sealed) form of a published event is read.
    pub log: EventLog,
}

fn permanent(what: &str) -> HandlerError {
    HandlerError::Permanent(what.to_owned())
}

impl CaseHandler {
    async fn publish(&self, event: &Envelope, what: &str) -> Result<(), HandlerError> {
        let token = event
            .payload
            .pointer("/partner/subject_token")
            .or_else(|| event.payload.get("subject_token"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| permanent("collection event without a partner subject token"))?;
        let subject = self.subjects.subject(&event.tenant, token, what);
        let stored = self.stored(event).await?;
        let body = serde_json::to_vec(&stored).map_err(|e| permanent(&e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.as_str());
        headers.insert("Mahnwerk-Event-Type", event.event_type.as_str());
        headers.insert("Mahnwerk-Stream", event.stream.as_str());
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(|e| HandlerError::Transient(format!("publish: {e}")))?;
        ack.await
            .map_err(|e| HandlerError::Transient(format!("publish ack: {e}")))?;
        Ok(())
    }
}

impl CaseHandler {
    /// `event` with its payload as the log stores and hashes it (personal data sealed).
    async fn stored(&self, event: &Envelope) -> Result<Envelope, HandlerError> {
        let stream = event
            .stream
            .parse()
            .map_err(|e| permanent(&format!("stream {}: {e}", event.stream)))?;
        let found = self
            .log
            .read_stream_stored(&stream, event.version, 1)
            .await
            .map_err(|e| HandlerError::Transient(format!("reading the stored event: {e}")))?;
        let stored = found
            .into_iter()
            .next()
            .filter(|e| e.event_id.to_string() == event.event_id)
            .ok_or_else(|| permanent("the published event is not in the log"))?;
        Ok(Envelope {
            payload: stored.payload,
            ..event.clone()
        })
    }
}

impl Handler for CaseHandler {
    async fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "dunning.escalated.v1" => {
                let Some(case) = mahnwerk_bus::envelope::case_of(event) else {
                    return Ok(());
                };
                let on = event
                    .payload
                    .get("escalated_on")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| permanent("dunning.escalated.v1 without escalated_on"))?;
                // Recorded in the consumer's transaction; the worker decides and appends outside
                // it (an append inside would wait on the transaction's own lock on SQLite).
                store::add_pending(tx, &event.tenant, case, on, &event.event_id)
                    .await
                    .map_err(|e| HandlerError::Transient(format!("database: {e}")))?;
                self.wake.notify_one();
                Ok(())
            }
            "case.handed_over.v1" => self.publish(event, "handover").await,
            "collection.recalled.v1" => self.publish(event, "recall").await,
            // What the partner reported, the creditor's waiver and the end of a case that
            // closed while with a partner (events written before they carried the subject
            // token are not published).
            "collection.status_reported.v1" | "collection.costs_waived.v1" | "case.closed.v1"
                if event
                    .payload
                    .get("subject_token")
                    .is_some_and(|t| t.is_string()) =>
            {
                let what = match event.event_type.as_str() {
                    "collection.status_reported.v1" => "report",
                    "collection.costs_waived.v1" => "costs_waived",
                    _ => "closed",
                };
                self.publish(event, what).await
            }
            _ => Ok(()),
        }
    }
}
