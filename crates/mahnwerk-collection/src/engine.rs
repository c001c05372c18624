//! The pure collection engine: which partner takes a case, the claim handed over, and the
//! state machine of the hand-over and the partner's reports. No IO, no clock: `today` is given.
//!
//! # Rules
//! - **Partner selection**: the first active partner (by id) whose minimum amount the principal
//!   open reaches, whose debtor kinds include the debtor's (empty: all) and whose countries
//!   include the debtor's (empty: all). None matching: the case stays with the creditor.
//! - **Hand-over**: on `dunning.escalated.v1`, a case with a matching partner is handed over at
//!   once when the partner is `auto`, otherwise it waits for an operator (approve, hold, write
//!   off). A case is handed over at most once at a time; after a rejection or a recall it may be
//!   approved again (to the same or another partner).
//! - **Claim**: principal open after payments and credits (§ 367 BGB: payments go to costs,
//!   then interest, then principal), the dunning fees and the € 40 lump sum as the dunning case
//!   charged them (the lump sum already offset against the fees, § 288 Abs. 5 S. 3 BGB), and the
//!   default interest recomputed to the hand-over date with its periods and rates.
//! - **Reports** come in order: `accepted` or `rejected` first (rejected: back to the creditor,
//!   nothing more from this partner); then any number of `payment_collected`,
//!   `instalment_agreement`, `court_procedure_started`; `uncollectible` or `closed` end it. A
//!   payment whose principal part brings the principal open to zero closes the case (`paid`).
//!   Collection costs are waived when the tenant chose so and the principal is paid.

mod claim;
mod partner;

pub use claim::{Claim, claim};
pub use partner::{HandoverMode, Partner, select_partner};

use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// A rule of the engine was violated (the caller's fault): `field` names what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Precondition(String),
}

fn invalid(field: &str, reason: &str) -> Refused {
    Refused::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn precondition(msg: impl Into<String>) -> Refused {
    Refused::Precondition(msg.into())
}

/// A partner's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Accepted,
    Rejected {
        reason: String,
    },
    PaymentCollected {
        /// The part that pays the principal.
        principal: Money,
        /// The part that pays the partner's collection costs.
        costs: Money,
        collected_on: NaiveDate,
    },
    InstalmentAgreement {
        instalments: u32,
        first_due: NaiveDate,
        note: String,
    },
    CourtProcedureStarted {
        /// Court dunning procedure (gerichtliches Mahnverfahren) reference.
        reference: String,
        court: String,
    },
    Uncollectible {
        reason: String,
    },
    Closed {
        note: String,
    },
}

impl Report {
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Accepted => "accepted",
            Report::Rejected { .. } => "rejected",
            Report::PaymentCollected { .. } => "payment_collected",
            Report::InstalmentAgreement { .. } => "instalment_agreement",
            Report::CourtProcedureStarted { .. } => "court_procedure_started",
            Report::Uncollectible { .. } => "uncollectible",
            Report::Closed { .. } => "closed",
        }
    }
}

/// Where a case stands in collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Not escalated yet (or no partner takes it): with the creditor.
    WithCreditor,
    /// Escalated, a partner matches, an operator must approve.
    AwaitingApproval { partner_id: String },
    /// An operator put the hand-over on hold.
    Held { partner_id: String },
    /// Handed over, the partner has not answered yet.
    HandedOver { partner_id: String },
    /// The partner works the case.
    Accepted { partner_id: String },
    /// The partner rejected it: back with the creditor.
    Rejected { partner_id: String },
    /// The creditor recalled it.
    Recalled { partner_id: String },
    /// The end (paid, uncollectible, closed, written off).
    Closed { outcome: String },
}

/// The collection state of one case, folded from its `case.*`/`collection.*` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionState {
    pub phase: Phase,
    /// Principal open as handed over, less principal collected since.
    pub principal_open: Option<Money>,
    pub costs_collected: i64,
    pub handovers: u32,
    /// The creditor waived the collection costs of this case once the principal is paid.
    #[serde(default)]
    pub costs_waived: bool,
}

impl Default for CollectionState {
    fn default() -> Self {
        Self {
            phase: Phase::WithCreditor,
            principal_open: None,
            costs_collected: 0,
            handovers: 0,
            costs_waived: false,
        }
    }
}

impl CollectionState {
    /// The partner currently holding the case (handed over or accepted).
    pub fn partner(&self) -> Option<&str> {
        match &self.phase {
            Phase::HandedOver { partner_id } | Phase::Accepted { partner_id } => Some(partner_id),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }
}

/// Events the engine decides (payloads in docs/events.md; the hand-over's case file is added
/// by the service around [`Event::HandedOver`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `collection.approval_requested.v1`
    ApprovalRequested {
        partner_id: String,
        principal_open: Money,
    },
    /// `collection.held.v1`
    Held { partner_id: String, reason: String },
    /// `case.handed_over.v1` (the case file is added around it)
    HandedOver {
        partner_id: String,
        handed_over_on: NaiveDate,
        principal_open: Money,
    },
    /// `collection.status_reported.v1`
    Reported {
        partner_id: String,
        report: Report,
        /// The creditor waives the collection costs not yet paid (principal paid, tenant's
        /// choice): the partner must not claim them from the debtor.
        #[serde(default)]
        costs_waived: bool,
    },
    /// `collection.recalled.v1`
    Recalled { partner_id: String, reason: String },
    /// `collection.costs_waived.v1`: the creditor waives the collection costs of this case
    /// when the principal is paid (the partner must not claim them then).
    CostsWaived { partner_id: String, reason: String },
    /// `case.closed.v1`
    Closed {
        outcome: String,
        closed_on: NaiveDate,
        partner_id: Option<String>,
    },
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::ApprovalRequested { .. } => "collection.approval_requested.v1",
            Event::Held { .. } => "collection.held.v1",
            Event::HandedOver { .. } => "case.handed_over.v1",
            Event::Reported { .. } => "collection.status_reported.v1",
            Event::Recalled { .. } => "collection.recalled.v1",
            Event::CostsWaived { .. } => "collection.costs_waived.v1",
            Event::Closed { .. } => "case.closed.v1",
        }
    }
}

/// What happens to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The dunning case escalated; `partner` is the selected one (None: nobody takes it).
    Escalated {
        partner: Option<Partner>,
        principal_open: Money,
    },
    Approve {
        partner: Partner,
        principal_open: Money,
    },
    Hold {
        reason: String,
    },
    WriteOff {
        reason: String,
    },
    Recall {
        reason: String,
    },
    /// Waive the collection costs of this case once the principal is paid.
    WaiveCosts {
        reason: String,
    },
    /// A report of `partner_id` (the authenticated partner).
    Report {
        partner_id: String,
        report: Report,
        waive_costs_if_principal_paid: bool,
    },
}

/// Every rule of the collection case.
pub fn decide(
    state: &CollectionState,
    command: &Command,
    today: NaiveDate,
) -> Result<Vec<Event>, Refused> {
    if state.is_closed() {
        return match command {
            // Redelivered escalations change nothing.
            Command::Escalated { .. } => Ok(vec![]),
            _ => Err(precondition("the case is closed")),
        };
    }
    match command {
        Command::Escalated {
            partner,
            principal_open,
        } => {
            if !matches!(state.phase, Phase::WithCreditor) || state.handovers > 0 {
                return Ok(vec![]);
            }
            match partner {
                None => Ok(vec![]),
                Some(p) if p.mode == HandoverMode::Auto => Ok(vec![Event::HandedOver {
                    partner_id: p.id.clone(),
                    handed_over_on: today,
                    principal_open: *principal_open,
                }]),
                Some(p) => Ok(vec![Event::ApprovalRequested {
                    partner_id: p.id.clone(),
                    principal_open: *principal_open,
                }]),
            }
        }
        Command::Approve {
            partner,
            principal_open,
        } => match &state.phase {
            Phase::AwaitingApproval { .. }
            | Phase::Held { .. }
            | Phase::Rejected { .. }
            | Phase::Recalled { .. }
            | Phase::WithCreditor => {
                if !partner.active {
                    return Err(invalid("partner_id", "the partner is not active"));
                }
                if principal_open.minor <= 0 {
                    return Err(precondition("nothing is open on the case"));
                }
                Ok(vec![Event::HandedOver {
                    partner_id: partner.id.clone(),
                    handed_over_on: today,
                    principal_open: *principal_open,
                }])
            }
            _ => Err(precondition("the case is already with a partner")),
        },
        Command::Hold { reason } => match &state.phase {
            Phase::AwaitingApproval { partner_id } => Ok(vec![Event::Held {
                partner_id: partner_id.clone(),
                reason: reason.clone(),
            }]),
            Phase::Held { .. } => Ok(vec![]),
            _ => Err(precondition("no hand-over is waiting for approval")),
        },
        Command::WriteOff { .. } => match &state.phase {
            Phase::HandedOver { .. } | Phase::Accepted { .. } => {
                Err(precondition("the case is with a partner: recall it first"))
            }
            _ => Ok(vec![Event::Closed {
                outcome: "written_off".into(),
                closed_on: today,
                partner_id: None,
            }]),
        },
        Command::Recall { reason } => match state.partner() {
            Some(p) => Ok(vec![Event::Recalled {
                partner_id: p.to_owned(),
                reason: reason.clone(),
            }]),
            None => Err(precondition("the case is not with a partner")),
        },
        Command::WaiveCosts { reason } => match state.partner() {
            Some(_) if state.costs_waived => Ok(vec![]),
            Some(p) => Ok(vec![Event::CostsWaived {
                partner_id: p.to_owned(),
                reason: reason.clone(),
            }]),
            None => Err(precondition("the case is not with a partner")),
        },
        Command::Report {
            partner_id,
            report,
            waive_costs_if_principal_paid,
        } => report_decide(
            state,
            partner_id,
            report,
            *waive_costs_if_principal_paid || state.costs_waived,
            today,
        ),
    }
}

fn report_decide(
    state: &CollectionState,
    partner_id: &str,
    report: &Report,
    waive: bool,
    today: NaiveDate,
) -> Result<Vec<Event>, Refused> {
    if state.partner() != Some(partner_id) {
        return Err(precondition("the case is not handed over to this partner"));
    }
    let accepted = matches!(state.phase, Phase::Accepted { .. });
    let reported = |costs_waived| Event::Reported {
        partner_id: partner_id.to_owned(),
        report: report.clone(),
        costs_waived,
    };
    let closed = |outcome: &str| Event::Closed {
        outcome: outcome.to_owned(),
        closed_on: today,
        partner_id: Some(partner_id.to_owned()),
    };
    match report {
        Report::Accepted | Report::Rejected { .. } if accepted => {
            Err(precondition("the partner has already accepted the case"))
        }
        Report::Accepted => Ok(vec![reported(false)]),
        Report::Rejected { reason } => {
            if reason.trim().is_empty() {
                return Err(invalid("rejected.reason", "required"));
            }
            Ok(vec![reported(false)])
        }
        _ if !accepted => Err(precondition(format!(
            "a {} report needs the case accepted first",
            report.kind()
        ))),
        Report::PaymentCollected {
            principal, costs, ..
        } => {
            let open = state
                .principal_open
                .ok_or_else(|| precondition("no principal on record"))?;
            if principal.currency != open.currency || costs.currency != open.currency {
                return Err(invalid(
                    "payment_collected",
                    "currency differs from the case's",
                ));
            }
            if principal.minor < 0 || costs.minor < 0 || principal.minor + costs.minor == 0 {
                return Err(invalid(
                    "payment_collected.principal",
                    "amounts must not be negative and not both zero",
                ));
            }
            if principal.minor > open.minor {
                return Err(invalid(
                    "payment_collected.principal",
                    "exceeds the principal open",
                ));
            }
            let paid_off = principal.minor == open.minor;
            // The creditor waives the collection costs still unpaid once the principal is paid.
            let costs_waived = paid_off && waive;
            let mut events = vec![reported(costs_waived)];
            if paid_off {
                events.push(closed("paid"));
            }
            Ok(events)
        }
        Report::InstalmentAgreement { instalments, .. } => {
            if *instalments == 0 {
                return Err(invalid(
                    "instalment_agreement.instalments",
                    "must be at least 1",
                ));
            }
            Ok(vec![reported(false)])
        }
        Report::CourtProcedureStarted { reference, .. } => {
            if reference.trim().is_empty() {
                return Err(invalid("court_procedure_started.reference", "required"));
            }
            Ok(vec![reported(false)])
        }
        Report::Uncollectible { .. } => Ok(vec![reported(false), closed("uncollectible")]),
        Report::Closed { .. } => Ok(vec![reported(false), closed("closed")]),
    }
}

/// Apply one event; holds no rules.
pub fn evolve(mut state: CollectionState, event: &Event) -> CollectionState {
    match event {
        Event::ApprovalRequested {
            partner_id,
            principal_open,
        } => {
            state.phase = Phase::AwaitingApproval {
                partner_id: partner_id.clone(),
            };
            state.principal_open = Some(*principal_open);
        }
        Event::Held { partner_id, .. } => {
            state.phase = Phase::Held {
                partner_id: partner_id.clone(),
            };
        }
        Event::HandedOver {
            partner_id,
            principal_open,
            ..
        } => {
            state.phase = Phase::HandedOver {
                partner_id: partner_id.clone(),
            };
            state.principal_open = Some(*principal_open);
            state.handovers += 1;
        }
        Event::Reported {
            partner_id, report, ..
        } => match report {
            Report::Accepted => {
                state.phase = Phase::Accepted {
                    partner_id: partner_id.clone(),
                }
            }
            Report::Rejected { .. } => {
                state.phase = Phase::Rejected {
                    partner_id: partner_id.clone(),
                }
            }
            Report::PaymentCollected {
                principal, costs, ..
            } => {
                if let Some(open) = state.principal_open.as_mut() {
                    open.minor -= principal.minor;
                }
                state.costs_collected += costs.minor;
            }
            _ => {}
        },
        Event::Recalled { partner_id, .. } => {
            state.phase = Phase::Recalled {
                partner_id: partner_id.clone(),
            };
            state.costs_waived = false;
        }
        Event::CostsWaived { .. } => state.costs_waived = true,
        Event::Closed { outcome, .. } => {
            state.phase = Phase::Closed {
                outcome: outcome.clone(),
            };
        }
    }
    state
}

/// Fold a list of events.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> CollectionState {
    events.into_iter().fold(CollectionState::default(), evolve)
}

#[cfg(test)]
mod tests;
