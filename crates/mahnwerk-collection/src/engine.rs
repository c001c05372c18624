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

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::case::DunningCase;
use mahnwerk_dunning::law::BaseRateTable;
use mahnwerk_dunning::law::interest::{
    DatedAmount, InterestCalculation, InterestRequest, compute_interest,
};
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

/// How a tenant hands cases to this partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverMode {
    /// Right after the dunning case escalates.
    Auto,
    /// Only after an operator approves.
    Approval,
}

/// A collection partner of one tenant (stream `{tenant}/partner/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    /// Token of the public subject `<ns>.collection.{tenant}.{subject_token}.handover`.
    pub subject_token: String,
    /// Smallest principal open the partner takes (minor units of the case's currency).
    pub min_amount_minor: i64,
    /// Debtor kinds the partner takes (empty: all).
    pub debtor_kinds: Vec<DebtorKind>,
    /// ISO 3166-1 alpha-2 countries of debtors the partner takes (empty: all).
    pub countries: Vec<String>,
    pub mode: HandoverMode,
    /// Collection costs are not claimed when the debtor pays the principal (the creditor's
    /// choice: "nicht in Rechnung stellen, wenn der Kunde die Hauptsumme bezahlt").
    pub waive_costs_if_principal_paid: bool,
    pub active: bool,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Partner {
    /// Check the fields; the first problem names its field.
    pub fn validate(&self) -> Result<(), Refused> {
        if !is_token(&self.id) {
            return Err(invalid("partner_id", "1–64 of a-z, 0-9, - and _"));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(invalid("name", "must be 1–200 characters"));
        }
        if !is_token(&self.subject_token) {
            return Err(invalid("subject_token", "1–64 of a-z, 0-9, - and _"));
        }
        if self.min_amount_minor < 0 {
            return Err(invalid("min_amount_minor", "must not be negative"));
        }
        for (i, c) in self.countries.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    &format!("countries[{i}]"),
                    "must be an ISO 3166-1 alpha-2 code in upper case",
                ));
            }
        }
        Ok(())
    }

    /// Whether this partner takes a case of `kind` in `country` with `principal_open`.
    pub fn takes(&self, kind: DebtorKind, country: &str, principal_open: i64) -> bool {
        self.active
            && principal_open >= self.min_amount_minor
            && (self.debtor_kinds.is_empty() || self.debtor_kinds.contains(&kind))
            && (self.countries.is_empty() || self.countries.iter().any(|c| c == country))
    }
}

/// The first active partner (by id) that takes the case.
pub fn select_partner<'a>(
    partners: &'a [Partner],
    kind: DebtorKind,
    country: &str,
    principal_open: i64,
) -> Option<&'a Partner> {
    let mut sorted: Vec<&Partner> = partners.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
        .into_iter()
        .find(|p| p.takes(kind, country, principal_open))
}

/// The claim handed over, every amount with its derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub currency: mahnwerk_domain::Currency,
    /// Gross invoice amount.
    pub principal: Money,
    /// Credit notes.
    pub credited: Money,
    /// Payments not reversed.
    pub paid: Money,
    /// Principal still open after § 367 crediting.
    pub principal_open: Money,
    /// Dunning fees charged (after the lump-sum offset).
    pub dunning_fees: Money,
    /// § 288 Abs. 5 lump sum charged (businesses only).
    pub lump_sum: Money,
    /// Fees not charged because the lump sum covers them (§ 288 Abs. 5 S. 3).
    pub lump_sum_offset: Money,
    /// Fees and lump sum still open after § 367 crediting.
    pub costs_open: Money,
    /// Default interest from the default date to the hand-over date.
    pub interest_total: Money,
    /// Interest still open after § 367 crediting.
    pub interest_open: Money,
    /// The interest derivation (periods, rates, base rates), when the debtor is in default.
    pub interest: Option<InterestCalculation>,
    pub interest_to: NaiveDate,
    /// principal open + costs open + interest open.
    pub total_open: Money,
}

/// The claim of a dunning case on `handover_date`.
pub fn claim(case: &DunningCase, handover_date: NaiveDate) -> Result<Claim, Refused> {
    let cur = case.currency();
    let m = |minor: i64| Money::new(minor, cur);
    let paid = case.paid();
    let costs = case.fees + case.lump_sum;
    let default = case.default();
    let calc = match default {
        Some(def) if def.interest_from <= handover_date => Some(
            compute_interest(
                &InterestRequest {
                    principal: m(case.principal_owed()),
                    from: def.interest_from,
                    to: handover_date,
                    debtor: case.facts.debtor,
                    payments: case
                        .payments
                        .iter()
                        .filter(|p| !p.reversed)
                        .map(|p| DatedAmount::new(p.date, p.amount))
                        .collect(),
                    costs: case.costs.clone(),
                    day_count: case.policy.day_count,
                },
                BaseRateTable::german(),
            )
            .map_err(|e| precondition(format!("interest: {e}")))?,
        ),
        _ => None,
    };
    let (principal_open, costs_open, interest_total, interest_open) = match &calc {
        Some(c) => (
            c.principal_open,
            c.costs_open,
            c.interest_total,
            c.interest_open,
        ),
        None => {
            // Not in default: no interest; payments go to costs first, then principal.
            let to_costs = paid.min(costs);
            let to_principal = (paid - to_costs).max(0);
            (
                (case.principal_owed() - to_principal).max(0),
                costs - to_costs,
                0,
                0,
            )
        }
    };
    Ok(Claim {
        currency: cur,
        principal: case.facts.principal,
        credited: m(case.facts.principal.minor - case.principal_owed()),
        paid: m(paid),
        principal_open: m(principal_open),
        dunning_fees: m(case.fees),
        lump_sum: m(case.lump_sum),
        lump_sum_offset: m(case.lump_sum_offset),
        costs_open: m(costs_open),
        interest_total: m(interest_total),
        interest_open: m(interest_open),
        interest: calc,
        interest_to: handover_date,
        total_open: m(principal_open + costs_open + interest_open),
    })
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
mod tests {
    use super::*;
    use mahnwerk_domain::Currency;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn partner(id: &str, mode: HandoverMode) -> Partner {
        Partner {
            id: id.into(),
            name: format!("Inkasso {id}"),
            subject_token: id.into(),
            min_amount_minor: 5000,
            debtor_kinds: vec![],
            countries: vec!["DE".into()],
            mode,
            waive_costs_if_principal_paid: false,
            active: true,
        }
    }

    /// given events, when command, then events (or refusal).
    fn given_when(
        given: &[Event],
        command: Command,
    ) -> (CollectionState, Result<Vec<Event>, Refused>) {
        let state = fold(given);
        let out = decide(&state, &command, d("2026-05-01"));
        (state, out)
    }

    fn handed(p: &str) -> Event {
        Event::HandedOver {
            partner_id: p.into(),
            handed_over_on: d("2026-04-01"),
            principal_open: Money::eur(11900),
        }
    }

    fn report(p: &str, r: Report) -> Command {
        Command::Report {
            partner_id: p.into(),
            report: r,
            waive_costs_if_principal_paid: false,
        }
    }

    fn accepted(p: &str) -> Event {
        Event::Reported {
            partner_id: p.into(),
            report: Report::Accepted,
            costs_waived: false,
        }
    }

    #[test]
    fn selection_respects_amount_kind_and_country() {
        let mut b2b = partner("b-only", HandoverMode::Auto);
        b2b.debtor_kinds = vec![DebtorKind::Business];
        let mut at = partner("a-at", HandoverMode::Auto);
        at.countries = vec!["AT".into()];
        let mut big = partner("c-big", HandoverMode::Auto);
        big.min_amount_minor = 100_000;
        let mut off = partner("0-off", HandoverMode::Auto);
        off.active = false;
        let all = vec![big.clone(), b2b.clone(), at.clone(), off];
        assert_eq!(
            select_partner(&all, DebtorKind::Business, "DE", 20000).map(|p| p.id.as_str()),
            Some("b-only")
        );
        assert_eq!(
            select_partner(&all, DebtorKind::Consumer, "DE", 200_000).map(|p| p.id.as_str()),
            Some("c-big")
        );
        assert_eq!(
            select_partner(&all, DebtorKind::Consumer, "DE", 20000),
            None
        );
        assert_eq!(
            select_partner(&all, DebtorKind::Consumer, "AT", 5000).map(|p| p.id.as_str()),
            Some("a-at")
        );
        assert_eq!(select_partner(&all, DebtorKind::Consumer, "AT", 4999), None);
    }

    #[test]
    fn partner_validation_names_the_field() {
        let mut p = partner("ok", HandoverMode::Auto);
        assert_eq!(p.validate(), Ok(()));
        p.countries = vec!["de".into()];
        assert!(
            matches!(p.validate(), Err(Refused::Invalid { field, .. }) if field == "countries[0]")
        );
        p.subject_token = "a.b".into();
        assert!(
            matches!(p.validate(), Err(Refused::Invalid { field, .. }) if field == "subject_token")
        );
    }

    #[test]
    fn escalation_hands_over_in_auto_mode_and_waits_in_approval_mode() {
        let (_, out) = given_when(
            &[],
            Command::Escalated {
                partner: Some(partner("p1", HandoverMode::Auto)),
                principal_open: Money::eur(11900),
            },
        );
        assert_eq!(
            out.unwrap(),
            vec![Event::HandedOver {
                partner_id: "p1".into(),
                handed_over_on: d("2026-05-01"),
                principal_open: Money::eur(11900),
            }]
        );
        let (_, out) = given_when(
            &[],
            Command::Escalated {
                partner: Some(partner("p1", HandoverMode::Approval)),
                principal_open: Money::eur(11900),
            },
        );
        assert_eq!(
            out.unwrap()[0].event_type(),
            "collection.approval_requested.v1"
        );
        // No partner: nothing; a redelivered escalation after the hand-over: nothing.
        let (_, out) = given_when(
            &[],
            Command::Escalated {
                partner: None,
                principal_open: Money::eur(11900),
            },
        );
        assert_eq!(out.unwrap(), vec![]);
        let (_, out) = given_when(
            &[handed("p1")],
            Command::Escalated {
                partner: Some(partner("p1", HandoverMode::Auto)),
                principal_open: Money::eur(11900),
            },
        );
        assert_eq!(out.unwrap(), vec![]);
    }

    #[test]
    fn approval_hold_and_write_off() {
        let waiting = Event::ApprovalRequested {
            partner_id: "p1".into(),
            principal_open: Money::eur(11900),
        };
        let (_, out) = given_when(
            std::slice::from_ref(&waiting),
            Command::Hold {
                reason: "talk first".into(),
            },
        );
        assert_eq!(out.unwrap()[0].event_type(), "collection.held.v1");
        let (_, out) = given_when(
            std::slice::from_ref(&waiting),
            Command::Approve {
                partner: partner("p1", HandoverMode::Approval),
                principal_open: Money::eur(11900),
            },
        );
        assert_eq!(out.unwrap()[0].event_type(), "case.handed_over.v1");
        let (_, out) = given_when(
            &[waiting],
            Command::WriteOff {
                reason: "insolvent".into(),
            },
        );
        assert!(
            matches!(&out.unwrap()[0], Event::Closed { outcome, .. } if outcome == "written_off")
        );
        // With a partner: write-off needs a recall first.
        let (_, out) = given_when(&[handed("p1")], Command::WriteOff { reason: "x".into() });
        assert!(matches!(out, Err(Refused::Precondition(_))));
    }

    #[test]
    fn reports_come_in_order() {
        // A payment before acceptance is refused.
        let (_, out) = given_when(
            &[handed("p1")],
            report(
                "p1",
                Report::PaymentCollected {
                    principal: Money::eur(100),
                    costs: Money::eur(0),
                    collected_on: d("2026-04-20"),
                },
            ),
        );
        assert!(matches!(out, Err(Refused::Precondition(_))));
        // Another partner's report is refused.
        let (_, out) = given_when(&[handed("p1")], report("p2", Report::Accepted));
        assert!(matches!(out, Err(Refused::Precondition(_))));
        // Accepted twice is refused.
        let (_, out) = given_when(
            &[handed("p1"), accepted("p1")],
            report("p1", Report::Accepted),
        );
        assert!(matches!(out, Err(Refused::Precondition(_))));
        // Rejected sends it back: no further report from that partner.
        let rejected = Event::Reported {
            partner_id: "p1".into(),
            report: Report::Rejected {
                reason: "too old".into(),
            },
            costs_waived: false,
        };
        let (state, out) = given_when(
            &[handed("p1"), rejected],
            report(
                "p1",
                Report::Closed {
                    note: String::new(),
                },
            ),
        );
        assert_eq!(
            state.phase,
            Phase::Rejected {
                partner_id: "p1".into()
            }
        );
        assert!(out.is_err());
    }

    #[test]
    fn paying_the_principal_closes_the_case() {
        let given = [handed("p1"), accepted("p1")];
        let (_, out) = given_when(
            &given,
            report(
                "p1",
                Report::PaymentCollected {
                    principal: Money::eur(5000),
                    costs: Money::eur(1000),
                    collected_on: d("2026-04-20"),
                },
            ),
        );
        let events = out.unwrap();
        assert_eq!(events.len(), 1);
        let mut all = given.to_vec();
        all.extend(events);
        let state = fold(&all);
        assert_eq!(state.principal_open, Some(Money::eur(6900)));
        assert_eq!(state.costs_collected, 1000);
        // More than open: refused.
        let out = decide(
            &state,
            &report(
                "p1",
                Report::PaymentCollected {
                    principal: Money::eur(7000),
                    costs: Money::eur(0),
                    collected_on: d("2026-04-21"),
                },
            ),
            d("2026-04-21"),
        );
        assert!(matches!(out, Err(Refused::Invalid { .. })));
        let out = decide(
            &state,
            &Command::Report {
                partner_id: "p1".into(),
                report: Report::PaymentCollected {
                    principal: Money::eur(6900),
                    costs: Money::eur(0),
                    collected_on: d("2026-04-21"),
                },
                waive_costs_if_principal_paid: true,
            },
            d("2026-04-21"),
        )
        .unwrap();
        assert_eq!(
            events_types(&out),
            vec!["collection.status_reported.v1", "case.closed.v1"]
        );
        assert!(matches!(
            &out[0],
            Event::Reported {
                costs_waived: true,
                ..
            }
        ));
        let closed = fold(all.iter().chain(&out));
        assert!(closed.is_closed());
        assert!(decide(&closed, &report("p1", Report::Accepted), d("2026-04-22")).is_err());
    }

    fn events_types(e: &[Event]) -> Vec<&'static str> {
        e.iter().map(Event::event_type).collect()
    }

    #[test]
    fn court_instalments_uncollectible_and_recall() {
        let given = [handed("p1"), accepted("p1")];
        let (_, out) = given_when(
            &given,
            report(
                "p1",
                Report::CourtProcedureStarted {
                    reference: "26-1234567-0-3".into(),
                    court: "AG Hagen".into(),
                },
            ),
        );
        assert_eq!(out.unwrap().len(), 1);
        let (_, out) = given_when(
            &given,
            report(
                "p1",
                Report::InstalmentAgreement {
                    instalments: 0,
                    first_due: d("2026-06-01"),
                    note: String::new(),
                },
            ),
        );
        assert!(out.is_err());
        let (_, out) = given_when(
            &given,
            report(
                "p1",
                Report::Uncollectible {
                    reason: "insolvency".into(),
                },
            ),
        );
        assert_eq!(
            events_types(&out.unwrap()),
            vec!["collection.status_reported.v1", "case.closed.v1"]
        );
        let (_, out) = given_when(
            &given,
            Command::Recall {
                reason: "settled directly".into(),
            },
        );
        let out = out.unwrap();
        assert_eq!(events_types(&out), vec!["collection.recalled.v1"]);
        let recalled = fold(given.iter().chain(&out));
        assert!(
            decide(
                &recalled,
                &report(
                    "p1",
                    Report::Closed {
                        note: String::new()
                    }
                ),
                d("2026-05-02")
            )
            .is_err()
        );
        // Recalled: may be approved again.
        assert!(
            decide(
                &recalled,
                &Command::Approve {
                    partner: partner("p2", HandoverMode::Approval),
                    principal_open: Money::eur(11900)
                },
                d("2026-05-02")
            )
            .is_ok()
        );
    }

    #[test]
    fn currency_is_checked() {
        let given = [handed("p1"), accepted("p1")];
        let (_, out) = given_when(
            &given,
            report(
                "p1",
                Report::PaymentCollected {
                    principal: Money::new(100, "USD".parse::<Currency>().unwrap()),
                    costs: Money::eur(0),
                    collected_on: d("2026-04-20"),
                },
            ),
        );
        assert!(matches!(out, Err(Refused::Invalid { .. })));
    }

    /// A business case run by the dunning core to its escalation, with a partial payment.
    fn escalated_business_case() -> DunningCase {
        use mahnwerk_dunning::case::{
            CaseFacts, DunningCommand, DunningEvent, decide as dd, evolve as de,
        };
        use mahnwerk_dunning::law::calendar::FederalState;
        use mahnwerk_dunning::policy::Policy;
        let facts = CaseFacts {
            invoice_number: "RE-1".into(),
            debtor_key: "K1".into(),
            debtor: DebtorKind::Business,
            issue_date: d("2026-01-02"),
            due_date: d("2026-01-16"),
            principal: Money::eur(119_000),
            default_notice: false,
            calendar_due_date: false,
        };
        let mut state = None;
        let apply = |state: &mut Option<DunningCase>, cmd: DunningCommand, day: NaiveDate| {
            let events: Vec<DunningEvent> = dd(state.as_ref(), &cmd, day).unwrap();
            for e in &events {
                *state = de(state.take(), e);
            }
        };
        apply(
            &mut state,
            DunningCommand::Open {
                facts,
                policy: Policy::default_business(FederalState::NW),
            },
            d("2026-01-02"),
        );
        let mut day = d("2026-01-03");
        let mut paid = false;
        while state.as_ref().unwrap().escalated_on.is_none() {
            apply(&mut state, DunningCommand::Advance, day);
            if !paid && state.as_ref().unwrap().steps.len() >= 2 {
                apply(
                    &mut state,
                    DunningCommand::RecordPayment {
                        payment_id: "p1".into(),
                        amount: Money::eur(20_000),
                        date: day,
                    },
                    day,
                );
                paid = true;
            }
            day = day.succ_opt().unwrap();
            assert!(day < d("2026-12-31"), "never escalated");
        }
        state.unwrap()
    }

    #[test]
    fn claim_breaks_down_principal_costs_and_interest_to_the_handover_date() {
        let case = escalated_business_case();
        let on = case.escalated_on.unwrap() + chrono::Duration::days(3);
        let c = claim(&case, on).unwrap();
        // The business lump sum is charged once and the fees are offset against it.
        assert_eq!(c.lump_sum, Money::eur(4000));
        assert_eq!(
            c.dunning_fees.minor + c.lump_sum_offset.minor > 0,
            case.fees + case.lump_sum_offset > 0
        );
        assert_eq!(c.paid, Money::eur(20_000));
        let calc = c.interest.as_ref().expect("in default: interest");
        assert!(!calc.periods.is_empty());
        assert_eq!(calc.periods.last().unwrap().to, on);
        assert!(
            calc.periods.iter().all(|p| p.margin
                == mahnwerk_dunning::law::interest::statutory_margin(DebtorKind::Business))
        );
        assert!(
            c.interest_total.minor > case.interest,
            "interest runs on to the hand-over date"
        );
        // § 367: the payment went to costs and interest first, the rest to the principal.
        assert!(c.principal_open.minor > 119_000 - 20_000);
        assert_eq!(
            c.total_open.minor,
            c.principal_open.minor + c.costs_open.minor + c.interest_open.minor
        );
        // Earlier hand-over date, less interest.
        let earlier = claim(&case, case.escalated_on.unwrap()).unwrap();
        assert!(earlier.interest_total.minor < c.interest_total.minor);
    }

    #[test]
    fn a_per_case_waiver_marks_the_closing_payment() {
        let given = [handed("p1"), accepted("p1")];
        let (_, out) = given_when(
            &given,
            Command::WaiveCosts {
                reason: "good customer".into(),
            },
        );
        let waived = out.unwrap();
        assert_eq!(events_types(&waived), vec!["collection.costs_waived.v1"]);
        let state = fold(given.iter().chain(&waived));
        assert!(state.costs_waived);
        // Twice: nothing more.
        assert_eq!(
            decide(
                &state,
                &Command::WaiveCosts { reason: "x".into() },
                d("2026-05-01")
            )
            .unwrap(),
            vec![]
        );
        let out = decide(
            &state,
            &report(
                "p1",
                Report::PaymentCollected {
                    principal: Money::eur(11900),
                    costs: Money::eur(0),
                    collected_on: d("2026-05-01"),
                },
            ),
            d("2026-05-01"),
        )
        .unwrap();
        assert!(matches!(
            &out[0],
            Event::Reported {
                costs_waived: true,
                ..
            }
        ));
        // Not with a partner: refused.
        let (_, out) = given_when(&[], Command::WaiveCosts { reason: "x".into() });
        assert!(out.is_err());
    }
}
