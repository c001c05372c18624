//! The event handler on the consumer library. On `dunning.escalated.v1` it records the case as
//! pending in its transaction; [`crate::Collection::work`] then decides the hand-over on the case
//! stream (read, decide, append with the expected version: a redelivery or a second replica
//! finds the hand-over there and decides nothing). On `case.handed_over.v1` and `collection.recalled.v1`
//! (whoever appended them: this handler or an operator's RPC) it publishes the event's envelope
//! on the partner's public subject with `Nats-Msg-Id` = event id, and acks only after JetStream
//! acked the publish, so every hand-over reaches the partner's subject once in effect.

use crate::service::Subjects;
use crate::store;
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use sqlx::{Any, Transaction};
use std::sync::Arc;

/// The subject filter (below the bus prefix) of the handler.
pub const FILTER: &str = "*.case.>";

pub struct CaseHandler {
    /// Wakes [`crate::Collection::work`].
    pub wake: Arc<tokio::sync::Notify>,
    pub js: async_nats::jetstream::Context,
    pub subjects: Subjects,
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
        let body = serde_json::to_vec(event).map_err(|e| permanent(&e.to_string()))?;
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
            _ => Ok(()),
        }
    }
}
