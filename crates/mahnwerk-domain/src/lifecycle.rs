//! The invoice lifecycle (the invoice case aggregate): what billing platforms may do to an invoice
//! after it is issued. The dunning state of a case is `mahnwerk_dunning::dunning_case`.
//!
//! `decide(state, command)` holds every rule and returns the events to append (possibly none: a
//! retried command that already took effect is a no-op, which makes every RPC safe to retry).
//! `evolve(state, event)` only applies facts. Events are past tense and versioned; their type
//! names (`invoice.issued.v1`) and JSON payloads are the public contract (docs/events.md).

use crate::debtor::{Debtor, PostalAddress};
use crate::error::FieldError;
use crate::invoice::Invoice;
use crate::money::Money;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Events of a case stream written by the ingest service.
// The issued event carries the whole invoice; events are short-lived values, boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CaseEvent {
    InvoiceIssued(InvoiceIssued),
    InvoiceCancelled(InvoiceCancelled),
    InvoiceCredited(InvoiceCredited),
    InvoiceDisputed(InvoiceDisputed),
    DisputeResolved(DisputeResolved),
    DueDateExtended(DueDateExtended),
    DebtorAddressUpdated(DebtorAddressUpdated),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceIssued {
    pub invoice: Invoice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceCancelled {
    pub reason: String,
    /// The caller's idempotency key (`request_id` of the RPC), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceCredited {
    /// The credit note's number (BT-1 of the credit note); the idempotency key of a credit.
    pub credit_note_number: String,
    pub amount: Money,
    pub reason: String,
    /// Open amount after this credit.
    pub open_after: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDisputed {
    pub reason: String,
    /// The caller's idempotency key (`request_id` of the RPC), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeResolved {
    /// `upheld` (the debtor was right; usually followed by a credit or cancel) or `rejected`
    /// (the claim stands; dunning resumes).
    pub outcome: DisputeOutcome,
    pub note: String,
    /// The caller's idempotency key (`request_id` of the RPC), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    Upheld,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueDateExtended {
    pub previous_due_date: NaiveDate,
    pub new_due_date: NaiveDate,
    pub reason: String,
    /// The caller's idempotency key (`request_id` of the RPC), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `invoice.debtor_address_updated.v1`: the creditor gave the debtor's postal address (e.g. for
/// an imported e-invoice that named only the buyer's country). Carries the whole debtor with
/// the new address, so its personal data is sealed (and erased) like the issued event's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtorAddressUpdated {
    pub debtor: Debtor,
    /// The caller's idempotency key (`request_id` of the RPC), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl CaseEvent {
    /// The versioned event type, e.g. `invoice.issued.v1`.
    pub fn event_type(&self) -> &'static str {
        match self {
            CaseEvent::InvoiceIssued(_) => "invoice.issued.v1",
            CaseEvent::InvoiceCancelled(_) => "invoice.cancelled.v1",
            CaseEvent::InvoiceCredited(_) => "invoice.credited.v1",
            CaseEvent::InvoiceDisputed(_) => "invoice.disputed.v1",
            CaseEvent::DisputeResolved(_) => "dispute.resolved.v1",
            CaseEvent::DueDateExtended(_) => "due_date.extended.v1",
            CaseEvent::DebtorAddressUpdated(_) => "invoice.debtor_address_updated.v1",
        }
    }

    pub fn to_payload(&self) -> serde_json::Value {
        // Serialising plain data structs cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read an event back from its type and payload. Returns `Ok(None)` for types this aggregate
    /// does not own (other services write to the case stream too); older versions are upcast here.
    pub fn from_parts(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> std::result::Result<Option<CaseEvent>, serde_json::Error> {
        use serde_json::from_value as v;
        let p = payload.clone();
        Ok(Some(match event_type {
            "invoice.issued.v1" => CaseEvent::InvoiceIssued(v(p)?),
            "invoice.cancelled.v1" => CaseEvent::InvoiceCancelled(v(p)?),
            "invoice.credited.v1" => CaseEvent::InvoiceCredited(v(p)?),
            "invoice.disputed.v1" => CaseEvent::InvoiceDisputed(v(p)?),
            "dispute.resolved.v1" => CaseEvent::DisputeResolved(v(p)?),
            "due_date.extended.v1" => CaseEvent::DueDateExtended(v(p)?),
            "invoice.debtor_address_updated.v1" => CaseEvent::DebtorAddressUpdated(v(p)?),
            _ => return Ok(None),
        }))
    }
}

/// What a billing platform asks for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseCommand {
    Issue(Invoice),
    Cancel {
        reason: String,
    },
    Credit {
        credit_note_number: String,
        amount: Money,
        reason: String,
    },
    Dispute {
        reason: String,
    },
    ResolveDispute {
        outcome: DisputeOutcome,
        note: String,
    },
    ExtendDueDate {
        new_due_date: NaiveDate,
        reason: String,
    },
    /// Set the debtor's postal address (it must be complete).
    UpdateDebtorAddress {
        address: PostalAddress,
    },
}

/// The lifecycle status of an invoice case as the ingest API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Disputed,
    Cancelled,
    /// Fully credited: nothing left to pay.
    Credited,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Disputed => "disputed",
            CaseStatus::Cancelled => "cancelled",
            CaseStatus::Credited => "credited",
        }
    }

    pub fn is_closed(self) -> bool {
        matches!(self, CaseStatus::Cancelled | CaseStatus::Credited)
    }
}

/// State of one case, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    pub invoice: Invoice,
    pub status: CaseStatus,
    pub due_date: NaiveDate,
    pub open: Money,
    /// Credits applied so far: (credit note number, amount).
    pub credits: Vec<(String, Money)>,
    /// Why it was cancelled (a second cancel with another reason is refused).
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// The open dispute's reason (a second dispute with another reason is refused).
    #[serde(default)]
    pub dispute_reason: Option<String>,
    /// How the last dispute ended (a retried resolve with the same outcome and note is a no-op).
    #[serde(default)]
    pub last_resolution: Option<(DisputeOutcome, String)>,
    /// Every event recorded under a caller's `request_id`, by that id.
    #[serde(default)]
    pub requests: Vec<(String, CaseEvent)>,
    /// The invoice as issued, once its debtor's address was updated (`invoice` holds the new
    /// address): a retried import of the issued invoice is still the same invoice. (Its
    /// `debtor` member is sealed wherever the state is stored, like `invoice.debtor`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<Invoice>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// The command is malformed: `INVALID_ARGUMENT` naming the field.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The case does not exist: `NOT_FOUND`.
    #[error("case not found")]
    NotFound,
    /// The same key was used for a different request: `ALREADY_EXISTS`.
    #[error("{0}")]
    AlreadyExists(String),
    /// The case is in a state where the command does not apply: `FAILED_PRECONDITION`.
    #[error("{0}")]
    Precondition(String),
}

pub type Result<T> = std::result::Result<T, CaseError>;

fn require_text(field: &str, value: &str) -> Result<()> {
    if value.chars().count() > 1000 {
        return Err(FieldError::new(field, "must be at most 1000 characters").into());
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters (CR, LF, NUL, ...)",
        )
        .into());
    }
    Ok(())
}

/// Every rule of the case lives here.
pub fn decide(state: Option<&CaseState>, command: &CaseCommand) -> Result<Vec<CaseEvent>> {
    let Some(state) = state else {
        return match command {
            CaseCommand::Issue(invoice) => {
                let errs = invoice.check();
                if let Some(first) = errs.0.into_iter().next() {
                    return Err(CaseError::Invalid(first));
                }
                Ok(vec![CaseEvent::InvoiceIssued(InvoiceIssued {
                    invoice: invoice.clone(),
                })])
            }
            _ => Err(CaseError::NotFound),
        };
    };
    match command {
        CaseCommand::Issue(invoice) => {
            if invoice == state.issued.as_ref().unwrap_or(&state.invoice) {
                Ok(vec![])
            } else {
                Err(CaseError::AlreadyExists(format!(
                    "invoice {} already exists with different content",
                    invoice.number
                )))
            }
        }
        CaseCommand::Cancel { reason } => {
            require_text("reason", reason)?;
            match state.status {
                CaseStatus::Cancelled if state.cancel_reason.as_deref() == Some(reason) => {
                    Ok(vec![])
                }
                CaseStatus::Cancelled => Err(CaseError::AlreadyExists(
                    "invoice was already cancelled with another reason".into(),
                )),
                CaseStatus::Credited => {
                    Err(CaseError::Precondition("invoice is fully credited".into()))
                }
                CaseStatus::Open | CaseStatus::Disputed => {
                    Ok(vec![CaseEvent::InvoiceCancelled(InvoiceCancelled {
                        reason: reason.clone(),
                        request_id: None,
                    })])
                }
            }
        }
        CaseCommand::Credit {
            credit_note_number,
            amount,
            reason,
        } => {
            require_text("reason", reason)?;
            if credit_note_number.trim().is_empty()
                || credit_note_number.chars().count() > 64
                || credit_note_number.chars().any(char::is_control)
            {
                return Err(FieldError::new(
                    "credit_note_number",
                    "must be 1 to 64 characters without control characters",
                )
                .into());
            }
            if let Some((_, earlier)) = state.credits.iter().find(|(n, _)| n == credit_note_number)
            {
                return if earlier == amount {
                    Ok(vec![])
                } else {
                    Err(CaseError::AlreadyExists(format!(
                        "credit note {credit_note_number} was already applied with another amount"
                    )))
                };
            }
            if amount.currency != state.open.currency {
                return Err(FieldError::new(
                    "amount.currency",
                    format!("must be the invoice currency {}", state.open.currency),
                )
                .into());
            }
            if amount.minor <= 0 {
                return Err(FieldError::new("amount", "must be greater than zero").into());
            }
            if state.status.is_closed() {
                return Err(CaseError::Precondition(format!(
                    "invoice is {}",
                    state.status.as_str()
                )));
            }
            if amount.minor > state.open.minor {
                return Err(FieldError::new(
                    "amount",
                    format!("must not exceed the open amount {}", state.open),
                )
                .into());
            }
            let open_after = Money::new(state.open.minor - amount.minor, amount.currency);
            Ok(vec![CaseEvent::InvoiceCredited(InvoiceCredited {
                credit_note_number: credit_note_number.clone(),
                amount: *amount,
                reason: reason.clone(),
                open_after,
            })])
        }
        CaseCommand::Dispute { reason } => {
            require_text("reason", reason)?;
            match state.status {
                CaseStatus::Disputed if state.dispute_reason.as_deref() == Some(reason) => {
                    Ok(vec![])
                }
                CaseStatus::Disputed => Err(CaseError::AlreadyExists(
                    "invoice is already disputed with another reason".into(),
                )),
                CaseStatus::Open => Ok(vec![CaseEvent::InvoiceDisputed(InvoiceDisputed {
                    reason: reason.clone(),
                    request_id: None,
                })]),
                s => Err(CaseError::Precondition(format!(
                    "invoice is {}",
                    s.as_str()
                ))),
            }
        }
        CaseCommand::ResolveDispute { outcome, note } => {
            require_text("note", note)?;
            match state.status {
                CaseStatus::Disputed => Ok(vec![CaseEvent::DisputeResolved(DisputeResolved {
                    outcome: *outcome,
                    note: note.clone(),
                    request_id: None,
                })]),
                // A retry of the resolve that took effect (nothing happened since).
                CaseStatus::Open
                    if state.last_resolution.as_ref() == Some(&(*outcome, note.clone())) =>
                {
                    Ok(vec![])
                }
                s => Err(CaseError::Precondition(format!(
                    "invoice is {}, not disputed",
                    s.as_str()
                ))),
            }
        }
        CaseCommand::ExtendDueDate {
            new_due_date,
            reason,
        } => {
            require_text("reason", reason)?;
            if state.status.is_closed() {
                return Err(CaseError::Precondition(format!(
                    "invoice is {}",
                    state.status.as_str()
                )));
            }
            if *new_due_date == state.due_date {
                return Ok(vec![]);
            }
            if *new_due_date < state.due_date {
                return Err(FieldError::new(
                    "new_due_date",
                    format!("must be after the current due date {}", state.due_date),
                )
                .into());
            }
            Ok(vec![CaseEvent::DueDateExtended(DueDateExtended {
                previous_due_date: state.due_date,
                new_due_date: *new_due_date,
                reason: reason.clone(),
                request_id: None,
            })])
        }
        CaseCommand::UpdateDebtorAddress { address } => {
            let mut debtor = state.invoice.debtor.clone();
            debtor.address = address.clone().into();
            let errs = debtor.check();
            if let Some(first) = errs.0.into_iter().find(|e| e.field.starts_with("address")) {
                return Err(CaseError::Invalid(first));
            }
            if state.invoice.debtor.address.expose() == address {
                return Ok(vec![]);
            }
            if state.status.is_closed() {
                return Err(CaseError::Precondition(format!(
                    "invoice is {}",
                    state.status.as_str()
                )));
            }
            Ok(vec![CaseEvent::DebtorAddressUpdated(
                DebtorAddressUpdated {
                    debtor,
                    request_id: None,
                },
            )])
        }
    }
}

/// Most characters of a `request_id`.
pub const MAX_REQUEST_ID: usize = 128;

/// [`decide`] for a command sent under the caller's idempotency key. The same key with the same
/// request gives no new events (the caller gets the current state, as the first time); the same
/// key with a different request is `AlreadyExists`, also after the case moved on (a delayed retry
/// of a dispute after its resolution opens no second dispute). Without a key only the natural
/// keys of [`decide`] protect a retry.
pub fn decide_request(
    state: Option<&CaseState>,
    command: &CaseCommand,
    request_id: Option<&str>,
) -> Result<Vec<CaseEvent>> {
    let Some(request_id) = request_id.filter(|r| !r.is_empty()) else {
        return decide(state, command);
    };
    if request_id.chars().count() > MAX_REQUEST_ID || request_id.chars().any(char::is_control) {
        return Err(FieldError::new(
            "request_id",
            format!("must be at most {MAX_REQUEST_ID} characters without control characters"),
        )
        .into());
    }
    if let Some((_, earlier)) = state
        .into_iter()
        .flat_map(|s| s.requests.iter())
        .find(|(r, _)| r == request_id)
    {
        return if produced_by(earlier, command) {
            Ok(vec![])
        } else {
            Err(CaseError::AlreadyExists(format!(
                "request_id {request_id:?} was already used for a different request"
            )))
        };
    }
    let mut events = decide(state, command)?;
    for e in &mut events {
        match e {
            CaseEvent::InvoiceCancelled(e) => e.request_id = Some(request_id.to_owned()),
            CaseEvent::InvoiceDisputed(e) => e.request_id = Some(request_id.to_owned()),
            CaseEvent::DisputeResolved(e) => e.request_id = Some(request_id.to_owned()),
            CaseEvent::DueDateExtended(e) => e.request_id = Some(request_id.to_owned()),
            CaseEvent::DebtorAddressUpdated(e) => e.request_id = Some(request_id.to_owned()),
            CaseEvent::InvoiceIssued(_) | CaseEvent::InvoiceCredited(_) => {}
        }
    }
    Ok(events)
}

/// Whether `event` is what `command` decided (the same request sent again).
fn produced_by(event: &CaseEvent, command: &CaseCommand) -> bool {
    match (event, command) {
        (CaseEvent::InvoiceCancelled(e), CaseCommand::Cancel { reason }) => e.reason == *reason,
        (CaseEvent::InvoiceDisputed(e), CaseCommand::Dispute { reason }) => e.reason == *reason,
        (CaseEvent::DisputeResolved(e), CaseCommand::ResolveDispute { outcome, note }) => {
            e.outcome == *outcome && e.note == *note
        }
        (
            CaseEvent::DueDateExtended(e),
            CaseCommand::ExtendDueDate {
                new_due_date,
                reason,
            },
        ) => e.new_due_date == *new_due_date && e.reason == *reason,
        (CaseEvent::DebtorAddressUpdated(e), CaseCommand::UpdateDebtorAddress { address }) => {
            e.debtor.address.expose() == address
        }
        _ => false,
    }
}

/// Apply one event. Holds no rules: every event is a fact already decided.
pub fn evolve(state: Option<CaseState>, event: &CaseEvent) -> Option<CaseState> {
    match (state, event) {
        (_, CaseEvent::InvoiceIssued(e)) => Some(CaseState {
            status: CaseStatus::Open,
            due_date: e.invoice.due_date,
            open: e.invoice.amount_due(),
            credits: vec![],
            invoice: e.invoice.clone(),
            cancel_reason: None,
            dispute_reason: None,
            last_resolution: None,
            requests: vec![],
            issued: None,
        }),
        (None, _) => None,
        (Some(mut s), event) => {
            let request_id = match event {
                CaseEvent::InvoiceCancelled(e) => e.request_id.as_ref(),
                CaseEvent::InvoiceDisputed(e) => e.request_id.as_ref(),
                CaseEvent::DisputeResolved(e) => e.request_id.as_ref(),
                CaseEvent::DueDateExtended(e) => e.request_id.as_ref(),
                CaseEvent::DebtorAddressUpdated(e) => e.request_id.as_ref(),
                CaseEvent::InvoiceIssued(_) | CaseEvent::InvoiceCredited(_) => None,
            };
            if let Some(r) = request_id {
                s.requests.push((r.clone(), event.clone()));
            }
            match event {
                CaseEvent::InvoiceIssued(_) => {}
                CaseEvent::InvoiceCancelled(e) => {
                    s.status = CaseStatus::Cancelled;
                    s.cancel_reason = Some(e.reason.clone());
                }
                CaseEvent::InvoiceCredited(e) => {
                    s.open = e.open_after;
                    s.credits.push((e.credit_note_number.clone(), e.amount));
                    if s.open.minor <= 0 {
                        s.status = CaseStatus::Credited;
                    }
                }
                CaseEvent::InvoiceDisputed(e) => {
                    s.status = CaseStatus::Disputed;
                    s.dispute_reason = Some(e.reason.clone());
                }
                CaseEvent::DisputeResolved(e) => {
                    s.status = CaseStatus::Open;
                    s.dispute_reason = None;
                    s.last_resolution = Some((e.outcome, e.note.clone()));
                }
                CaseEvent::DueDateExtended(e) => s.due_date = e.new_due_date,
                CaseEvent::DebtorAddressUpdated(e) => {
                    if s.issued.is_none() {
                        s.issued = Some(s.invoice.clone());
                    }
                    s.invoice.debtor = e.debtor.clone();
                }
            }
            Some(s)
        }
    }
}

impl CaseState {
    /// Fold a whole stream.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a CaseEvent>) -> Option<CaseState> {
        events.into_iter().fold(None, evolve)
    }

    /// Open and past its due date on `as_of`.
    pub fn is_overdue(&self, as_of: NaiveDate) -> bool {
        self.status == CaseStatus::Open && self.open.minor > 0 && self.due_date < as_of
    }
}

#[cfg(test)]
mod tests;
