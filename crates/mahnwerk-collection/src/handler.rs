//! The event handler on the consumer library. On `dunning.escalated.v1` it decides the hand-over
//! on the case stream (read, decide, append with the expected version: a redelivery finds the
//! hand-over there and decides nothing). On `case.handed_over.v1` and `collection.recalled.v1`
//! (whoever appended them: this handler or an operator's RPC) it publishes the event's envelope
//! on the partner's public subject with `Nats-Msg-Id` = event id, and acks only after JetStream
//! acked the publish, so every hand-over reaches the partner's subject once in effect.

use crate::error::Error;
use crate::service::{ACTOR, Collection, Subjects};
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_eventlog::Metadata;
use sqlx::{Any, Transaction};

/// The subject filter (below the bus prefix) of the handler.
pub const FILTER: &str = "*.case.>";

pub struct CaseHandler {
    pub collection: Collection,
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
        _tx: &'a mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "dunning.escalated.v1" => {
                let Some(case) = mahnwerk_bus::envelope::case_of(event) else {
                    return Ok(());
                };
                let tenant: TenantId = event
                    .tenant
                    .parse()
                    .map_err(|e| HandlerError::Permanent(format!("tenant: {e}")))?;
                let case: CaseId = case
                    .parse()
                    .map_err(|e| HandlerError::Permanent(format!("case id: {e}")))?;
                let on = event
                    .payload
                    .get("escalated_on")
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| permanent("dunning.escalated.v1 without escalated_on"))?;
                let meta = Metadata {
                    correlation_id: event.metadata.correlation_id.clone(),
                    causation_id: Some(event.event_id.clone()),
                    actor: ACTOR.into(),
                    traceparent: event.metadata.traceparent.clone(),
                };
                match self.collection.on_escalated(&tenant, case, on, &meta).await {
                    Ok(_) => Ok(()),
                    // A rule refusing the hand-over (e.g. closed meanwhile) is no retry case.
                    Err(Error::Refused(r)) => {
                        tracing::warn!(case = %case, reason = %r, "hand-over not decided");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            "case.handed_over.v1" => self.publish(event, "handover").await,
            "collection.recalled.v1" => self.publish(event, "recall").await,
            _ => Ok(()),
        }
    }
}
