//! Reporting a ledger row's final state: the `letter.*` event it puts on the case stream.

use super::{Dispatcher, Inputs};
use crate::error::{Error, Result};
use crate::store::{self, LedgerRow, state};
use crate::tenant;
use mahnwerk_domain::{EventId, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_letters::events::{
    LetterCopySent, LetterDispatched, LetterFailed, LetterHeld, LetterRendered, LetterSuppressed,
};

impl Dispatcher {
    /// Append the event of a final state, then mark the row reported. `inputs`: the row's
    /// inputs when this pass read them (its step event and tenant settings are not read again).
    pub(super) async fn report(&self, row: &LedgerRow, inputs: Option<&Inputs>) -> Result<()> {
        let tenant: TenantId = row
            .tenant
            .parse()
            .map_err(|_| Error::invalid("tenant", "not a tenant id"))?;
        // Where the event goes: the row's case, or every member of a consolidated letter.
        let targets: Vec<(StreamId, EventId)> = match store::consolidation_of_seq(&row.seq) {
            Some(id) => self
                .consolidated_targets(row, id)
                .await?
                .into_iter()
                .map(|(stream, step_event, _)| (stream, step_event))
                .collect(),
            None if inputs.is_some_and(|i| i.consolidated.is_none()) => {
                let step_event = inputs.map(|i| i.step_event).ok_or(Error::Conflict)?;
                vec![(StreamId::new(&tenant, "case", &row.case_id), step_event)]
            }
            None => {
                let inputs_step =
                    match store::step(&self.pool, &row.tenant, &row.case_id, row.step, &row.seq)
                        .await?
                    {
                        Some((id, _)) => EventId(
                            uuid::Uuid::parse_str(&id)
                                .map_err(|e| Error::invalid("event_id", e.to_string()))?,
                        ),
                        None => return Err(Error::NotFound(format!("step {}", row.step))),
                    };
                vec![(StreamId::new(&tenant, "case", &row.case_id), inputs_step)]
            }
        };
        let document = row.document.clone().unwrap_or_default();
        let reason = row.reason.clone().unwrap_or_default();
        let to_json = |v: serde_json::Result<serde_json::Value>| {
            v.map_err(|e| Error::invalid("event", e.to_string()))
        };
        let (event_type, payload) = match row.state.as_str() {
            state::SENT if row.recipient == "debtor" => (
                "letter.dispatched.v1",
                to_json(serde_json::to_value(LetterDispatched {
                    letter_id: row.letter_id.clone(),
                    step: row.step,
                    channel: row.channel.clone(),
                    provider_id: row.provider_id.clone().unwrap_or_default(),
                    document_sha256: document,
                    registered: row.channel == "post"
                        && match inputs {
                            Some(i) => i.config.settings.clone(),
                            None => tenant::load(&self.log, &tenant).await?.settings,
                        }
                        .is_some_and(|s| s.is_registered(row.step)),
                }))?,
            ),
            state::SENT => (
                "letter.copy_sent.v1",
                to_json(serde_json::to_value(LetterCopySent {
                    letter_id: row.letter_id.clone(),
                    step: row.step,
                    channel: row.channel.clone(),
                    provider_id: row.provider_id.clone().unwrap_or_default(),
                    document_sha256: document,
                }))?,
            ),
            state::FAILED | state::UNKNOWN => {
                let fallback = store::rows_of_case(&self.pool, &row.tenant, &row.case_id)
                    .await?
                    .into_iter()
                    .any(|r| r.letter_id == row.letter_id && r.channel == "post" && r.id != row.id)
                    .then(|| "post".to_owned());
                (
                    "letter.failed.v1",
                    to_json(serde_json::to_value(LetterFailed {
                        letter_id: row.letter_id.clone(),
                        step: row.step,
                        channel: row.channel.clone(),
                        recipient: row.recipient.clone(),
                        permanent: row.state == state::FAILED,
                        review_required: row.state == state::UNKNOWN,
                        reason,
                        fallback,
                    }))?,
                )
            }
            state::HELD => (
                "letter.held.v1",
                to_json(serde_json::to_value(LetterHeld {
                    letter_id: row.letter_id.clone(),
                    step: row.step,
                    channel: row.channel.clone(),
                    reason,
                }))?,
            ),
            state::SUPPRESSED => (
                "letter.suppressed.v1",
                to_json(serde_json::to_value(LetterSuppressed {
                    letter_id: row.letter_id.clone(),
                    step: row.step,
                    reason,
                }))?,
            ),
            state::DRAFT => {
                let step =
                    store::step(&self.pool, &row.tenant, &row.case_id, row.step, &row.seq).await?;
                let template_id = step
                    .and_then(|(_, j)| serde_json::from_str::<StepReached>(&j).ok())
                    .map(|s| s.template_id)
                    .unwrap_or_default();
                (
                    "letter.rendered.v1",
                    to_json(serde_json::to_value(LetterRendered {
                        letter_id: row.letter_id.clone(),
                        step: row.step,
                        kind: mahnwerk_letters::events::kind_for_template(&template_id, row.step),
                        document_sha256: document,
                        letterhead_version: 0,
                        templates: Vec::new(),
                        draft: true,
                        payment_reference: None,
                    }))?,
                )
            }
            _ => return Ok(()),
        };
        for (stream, inputs_step) in targets {
            let event = self.event(inputs_step, row, event_type, payload.clone());
            self.append_case(&stream, event).await?;
        }
        store::mark_reported(&self.pool, &row.id).await?;
        Ok(())
    }
}
