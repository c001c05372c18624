//! The event handler on the consumer library: keeps the invoice projection
//! (`invoice.issued.v1`, `invoice.debtor_address_updated.v1`, which also releases the letters
//! held for the missing address) and turns each `dunning.step_reached.v1` into a ledger intent, in the
//! consumer's transaction (so a redelivered step changes nothing twice). Sending happens in the
//! [`crate::dispatch`] worker, never inside the handler.

use crate::store::{self, NewRow, state};
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use mahnwerk_domain::lifecycle::{DebtorAddressUpdated, InvoiceIssued};
use mahnwerk_domain::{Invoice, StreamId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_dunning::policy::Channel;
use sqlx::{Any, Transaction};
use std::sync::Arc;
use tokio::sync::Notify;

pub const STEP_REACHED: &str = "dunning.step_reached.v1";
pub const INVOICE_ISSUED: &str = "invoice.issued.v1";
pub const DEBTOR_ADDRESS_UPDATED: &str = "invoice.debtor_address_updated.v1";

/// The subjects the consumer takes: the three events above, not every case event. Its own
/// `letter.*` events (three of every five on a case that gets a letter) never reach it.
pub const FILTERS: [&str; 3] = [
    "*.case.invoice.issued.v1",
    "*.case.invoice.debtor_address_updated.v1",
    "*.case.dunning.step_reached.v1",
];

/// The debtor's channel for a step: the first of the step's channels this service can use
/// (email needs the debtor's address; SMS and portal are not letters). Post when none is.
/// A debtor without a postal address (an e-invoice that named only the country) gets email
/// when they have an address for it; otherwise the post letter is held (see
/// [`crate::dispatch`]).
pub fn debtor_channel(channels: &[Channel], invoice: &Invoice) -> &'static str {
    if !invoice.has_postal_address() && invoice.debtor.email.is_some() {
        return "email";
    }
    for c in channels {
        match c {
            Channel::Email if invoice.debtor.email.is_some() => return "email",
            Channel::Post => return "post",
            _ => {}
        }
    }
    "post"
}

#[derive(Debug, Clone, Default)]
pub struct LettersHandler {
    /// Woken when an intent was recorded.
    pub wake: Arc<Notify>,
}

impl Handler for LettersHandler {
    async fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        let Ok(stream) = event.stream.parse::<StreamId>() else {
            return Err(HandlerError::Permanent("malformed stream id".into()));
        };
        if stream.kind() != "case"
            || ![INVOICE_ISSUED, DEBTOR_ADDRESS_UPDATED, STEP_REACHED]
                .contains(&event.event_type.as_str())
        {
            // Nothing to record (the filters let through only the events above; a redelivery
            // from a durable consumer with older filters may bring others): only the
            // consumer's inbox row commits, and on PostgreSQL without waiting for the WAL flush:
            // lost in a database crash, nothing is missing (a redelivery records nothing either).
            if tx.backend_name() == "PostgreSQL" {
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(());
        }
        let (tenant, case_id) = (event.tenant.as_str(), stream.id());
        match event.event_type.as_str() {
            INVOICE_ISSUED => {
                let issued: InvoiceIssued = serde_json::from_value(event.payload.clone())
                    .map_err(|e| HandlerError::Permanent(format!("invoice.issued.v1: {e}")))?;
                store::put_invoice(&mut **tx, tenant, case_id, &issued.invoice).await?;
            }
            DEBTOR_ADDRESS_UPDATED => {
                let u: DebtorAddressUpdated = serde_json::from_value(event.payload.clone())
                    .map_err(|e| {
                        HandlerError::Permanent(format!("{DEBTOR_ADDRESS_UPDATED}: {e}"))
                    })?;
                let Some(mut invoice) = store::invoice(&mut **tx, tenant, case_id).await? else {
                    return Err(HandlerError::Transient(
                        "debtor address updated for a case whose invoice is not known yet".into(),
                    ));
                };
                invoice.debtor = u.debtor;
                store::put_invoice(&mut **tx, tenant, case_id, &invoice).await?;
                if invoice.has_postal_address()
                    && store::release_held(&mut **tx, tenant, case_id).await? > 0
                {
                    tracing::info!(case = %case_id, "held letters released: postal address given");
                    self.wake.notify_one();
                }
            }
            STEP_REACHED => {
                let step: StepReached = serde_json::from_value(event.payload.clone())
                    .map_err(|e| HandlerError::Permanent(format!("{STEP_REACHED}: {e}")))?;
                let Some(invoice) = store::invoice(&mut **tx, tenant, case_id).await? else {
                    // Per-case order puts the invoice first; its absence is a gap upstream.
                    return Err(HandlerError::Transient(
                        "step reached for a case whose invoice is not known yet".into(),
                    ));
                };
                // A repetition of the step (an operator's RepeatStep) is a letter of its own.
                let repeat = step
                    .repeat
                    .as_ref()
                    .map_or(String::new(), |r| store::repeat_seq(r.count));
                store::put_step(
                    &mut **tx,
                    tenant,
                    case_id,
                    step.number,
                    &repeat,
                    &event.event_id,
                    &event.payload.to_string(),
                )
                .await?;
                // A consolidated step: one letter per consolidation, keyed on its first case
                // (whichever member's step arrives first records it; the rest change nothing).
                let (row_case, row_step, seq, channels) = match &step.consolidation {
                    Some(c) => {
                        let json = serde_json::to_string(c)
                            .map_err(|e| HandlerError::Permanent(format!("consolidation: {e}")))?;
                        store::put_consolidation(&mut **tx, tenant, &c.id, &json).await?;
                        let lead = c.cases.first().map_or(case_id, String::as_str);
                        (lead, c.step, store::consolidation_seq(&c.id), &c.channels)
                    }
                    None => (case_id, step.number, repeat, &step.channels),
                };
                let letter = store::letter_id(tenant, row_case, row_step, "debtor", &seq);
                store::insert_row(
                    &mut **tx,
                    &NewRow {
                        tenant,
                        case_id: row_case,
                        step: row_step,
                        channel: debtor_channel(channels, &invoice),
                        recipient: "debtor",
                        seq: &seq,
                        letter_id: &letter,
                        state: state::INTENT,
                        document: None,
                    },
                )
                .await?;
                tracing::info!(case = %case_id, step = step.number, "letter intent recorded");
                self.wake.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}
