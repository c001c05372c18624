//! From the case stream to the dunning core, without IO.
//!
//! A case stream holds the facts other services write (`invoice.*`, `dispute.resolved`,
//! `due_date.extended`, `payment.*`) and the `dunning.*` events this service writes. The dunning
//! state is the fold of the `dunning.*` events alone. A fact is **pending** while no `dunning.*`
//! event follows it in the stream: every batch this service appends is decided on the whole
//! stream it read and first translates every pending fact (with the expected version it read),
//! so a `dunning.*` event at version `w` proves that every fact below `w` was taken into
//! account. No bookkeeping besides the stream itself is needed, and two writers that read the
//! same version cannot both append.
//!
//! [`plan`] translates the pending facts into core commands, decides them, then the caller's
//! intervention, then (for the scheduler) [`DunningCommand::Advance`] for today.

use chrono::NaiveDate;
use mahnwerk_domain::lifecycle::CaseEvent;
use mahnwerk_domain::payment::{PaymentApplied, PaymentEvent};
use mahnwerk_domain::{DebtorKind, Invoice};
use mahnwerk_dunning::DunningError;
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand, DunningEvent, decide, evolve,
};
use mahnwerk_dunning::policy::Policy;

/// One stored event of a case stream, as the fold needs it.
#[derive(Debug, Clone, Copy)]
pub struct StreamEvent<'a> {
    pub version: u64,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
}

/// A fact written by another service, as the dunning core understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// The invoice: opens the case under the policy resolved for it.
    Issued(Box<Invoice>),
    Command(DunningCommand),
}

/// Types of facts this service reacts to (the handler ignores every other event type).
pub fn is_fact_type(event_type: &str) -> bool {
    matches!(
        event_type,
        "invoice.issued.v1"
            | "invoice.cancelled.v1"
            | "invoice.credited.v1"
            | "invoice.disputed.v1"
            | "dispute.resolved.v1"
            | "due_date.extended.v1"
            | "payment.applied.v1"
            | "payment.reversed.v1"
            | "case.debtor_erased.v1"
    )
}

/// Recorded on each case of a debtor whose personal data was erased (ADR 006): their letters
/// cannot be addressed any more, so dunning stops (`dunning.cancelled.v1` with this reason);
/// amounts and dates stay in the log.
pub const DEBTOR_ERASED: &str = "case.debtor_erased.v1";

/// The command a fact stands for; `Ok(None)` for events that do not concern dunning
/// (`invoice.settled` and `overpayment.recorded` follow from the payments themselves: the core
/// settles a case when its balance, fees included, is paid).
pub fn fact_of(
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<Option<Fact>, serde_json::Error> {
    if event_type == DEBTOR_ERASED {
        return Ok(Some(Fact::Command(DunningCommand::Cancel {
            reason: "debtor erased (GDPR Art. 17)".into(),
        })));
    }
    if let Some(case) = CaseEvent::from_parts(event_type, payload)? {
        return Ok(Some(match case {
            CaseEvent::InvoiceIssued(e) => Fact::Issued(Box::new(e.invoice)),
            CaseEvent::InvoiceCancelled(e) => {
                Fact::Command(DunningCommand::Cancel { reason: e.reason })
            }
            CaseEvent::InvoiceCredited(e) => Fact::Command(DunningCommand::RecordCredit {
                credit_note: e.credit_note_number,
                amount: e.amount,
            }),
            CaseEvent::InvoiceDisputed(e) => {
                Fact::Command(DunningCommand::Dispute { reason: e.reason })
            }
            CaseEvent::DisputeResolved(e) => {
                Fact::Command(DunningCommand::ResolveDispute { outcome: e.outcome })
            }
            CaseEvent::DueDateExtended(e) => Fact::Command(DunningCommand::ExtendDueDate {
                new_due_date: e.new_due_date,
            }),
            // Where letters go is the letters service's concern, not the schedule's.
            CaseEvent::DebtorAddressUpdated(_) => return Ok(None),
        }));
    }
    Ok(match PaymentEvent::from_parts(event_type, payload)? {
        Some(PaymentEvent::Applied(p)) => Some(Fact::Command(DunningCommand::RecordPayment {
            payment_id: p.payment_id,
            amount: p.amount,
            date: p.booked_on,
        })),
        Some(PaymentEvent::Reversed(p)) => Some(Fact::Command(DunningCommand::ReversePayment {
            payment_id: p.payment_id,
        })),
        Some(PaymentEvent::Settled(_) | PaymentEvent::Overpaid(_)) | None => None,
    })
}

/// [`fact_of`], and for a payment that earned a cash discount (Skonto, `discount` of
/// `payment.applied.v1`) the discount first, as a credit (`cash-discount:{payment id}`): the
/// claim is reduced by it and the payment settles the rest, so no dunning follows.
pub fn facts_of(
    event_type: &str,
    payload: &serde_json::Value,
) -> Result<Vec<Fact>, serde_json::Error> {
    let Some(fact) = fact_of(event_type, payload)? else {
        return Ok(Vec::new());
    };
    if let Some(PaymentEvent::Applied(PaymentApplied {
        payment_id,
        discount: Some(discount),
        ..
    })) = PaymentEvent::from_parts(event_type, payload)?
        && discount.minor > 0
    {
        return Ok(vec![
            Fact::Command(DunningCommand::RecordCredit {
                credit_note: format!("cash-discount:{payment_id}"),
                amount: discount,
            }),
            fact,
        ]);
    }
    Ok(vec![fact])
}

/// A case stream read and folded.
#[derive(Debug, Clone, Default)]
pub struct Folded {
    pub state: Option<DunningCase>,
    /// Version of the last event in the stream (0 for an empty stream).
    pub version: u64,
    /// Facts after the last `dunning.*` event, in stream order, with their event ids.
    pub pending: Vec<(String, Fact)>,
}

/// Why a stream could not be folded: a stored `dunning.*` event this code cannot read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable {event_type} at version {version}: {error}")]
pub struct FoldError {
    pub version: u64,
    pub event_type: String,
    pub error: String,
}

impl Folded {
    /// Fold the events of one case stream, in version order.
    pub fn of<'a>(events: impl IntoIterator<Item = StreamEvent<'a>>) -> Result<Self, FoldError> {
        let mut out = Folded::default();
        // Facts are translated only once no `dunning.*` event follows them: most of a stream's
        // facts (the invoice itself) are never parsed again once the case is open.
        let mut facts: Vec<StreamEvent<'a>> = Vec::new();
        for e in events {
            out.version = e.version;
            let unreadable = |err: &dyn std::fmt::Display| FoldError {
                version: e.version,
                event_type: e.event_type.to_owned(),
                error: err.to_string(),
            };
            if e.event_type.starts_with("dunning.") {
                let Some(event) = DunningEvent::from_parts(e.event_type, e.payload)
                    .map_err(|x| unreadable(&x))?
                else {
                    return Err(unreadable(&"unknown dunning event type"));
                };
                out.state = evolve(out.state.take(), &event);
                facts.clear();
                continue;
            }
            facts.push(e);
        }
        for e in facts {
            // A fact that does not parse is skipped: it cannot be translated now or later, and
            // must not stop the case (its writer's contract is checked in its own tests).
            match facts_of(e.event_type, e.payload) {
                Ok(facts) => out
                    .pending
                    .extend(facts.into_iter().map(|f| (e.event_id.to_owned(), f))),
                Err(err) => {
                    tracing::warn!(event_type = e.event_type, version = e.version, error = %err, "unreadable fact skipped");
                }
            }
        }
        Ok(out)
    }

    /// The debtor kind of an invoice that still has to be opened (a policy must be resolved).
    /// The debtor kind and key of the invoice a case is still to be opened for.
    pub fn needs_policy(&self) -> Option<(DebtorKind, String)> {
        if self.state.is_some() {
            return None;
        }
        self.pending.iter().find_map(|(_, f)| match f {
            Fact::Issued(inv) => Some((inv.debtor.kind, debtor_key(inv))),
            Fact::Command(_) => None,
        })
    }
}

/// Where an event of a plan comes from (its metadata: causation and actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Translation of the fact with this event id.
    Fact(String),
    /// The caller's intervention.
    Intervention,
    /// Time passed (the scheduler).
    Schedule,
}

/// What to append, and the state after it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub events: Vec<(DunningEvent, Origin)>,
    pub state: Option<DunningCase>,
}

/// The key that groups a debtor's cases: the customer number, else the invoice number.
pub fn debtor_key(invoice: &Invoice) -> String {
    invoice
        .debtor
        .customer_number
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| invoice.number.as_str().to_owned())
}

/// Decide what to append to a folded case on `today`: pending facts first (a fact the core
/// refuses, e.g. a dispute on a settled case, changes nothing and is skipped), then
/// `intervention` (its refusal is the caller's error), then, when `advance`, the steps due today.
/// `policy` opens a case whose invoice is pending (see [`Folded::needs_policy`]).
pub fn plan(
    folded: &Folded,
    policy: Option<&Policy>,
    intervention: Option<&DunningCommand>,
    advance: bool,
    today: NaiveDate,
) -> Result<Plan, DunningError> {
    let mut state = folded.state.clone();
    let mut events = Vec::new();
    let mut push = |state: &mut Option<DunningCase>, new: Vec<DunningEvent>, origin: &Origin| {
        for e in new {
            *state = evolve(state.take(), &e);
            events.push((e, origin.clone()));
        }
    };
    for (event_id, fact) in &folded.pending {
        let command = match fact {
            Fact::Issued(invoice) => {
                if state.is_some() {
                    continue;
                }
                let Some(policy) = policy else { continue };
                DunningCommand::Open {
                    facts: CaseFacts::from_invoice(invoice, debtor_key(invoice)),
                    policy: policy.clone(),
                }
            }
            Fact::Command(c) => c.clone(),
        };
        match decide(state.as_ref(), &command, today) {
            Ok(new) => push(&mut state, new, &Origin::Fact(event_id.clone())),
            Err(err) => tracing::debug!(error = %err, "fact changes nothing for dunning"),
        }
    }
    if let Some(command) = intervention {
        let new = decide(state.as_ref(), command, today)?;
        push(&mut state, new, &Origin::Intervention);
    }
    if advance {
        // At most one step per Advance; a few rounds let a pause that ended today be followed
        // by the step it held back, on the same day.
        for _ in 0..4 {
            let Some(s) = state.as_ref() else { break };
            let new = decide(Some(s), &DunningCommand::Advance, today)?;
            if new.is_empty() {
                break;
            }
            push(&mut state, new, &Origin::Schedule);
        }
    }
    Ok(Plan { events, state })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_domain::Money;
    use mahnwerk_domain::lifecycle::{DisputeOutcome, DisputeResolved, InvoiceDisputed};
    use mahnwerk_domain::payment::PaymentApplied;
    use mahnwerk_dunning::law::calendar::FederalState;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn invoice() -> Invoice {
        serde_json::from_value(serde_json::json!({
            "number": "R-1", "issue_date": "2026-03-01", "due_date": "2026-03-31",
            "currency": "EUR", "net": 10000, "tax": 1900, "gross": 11900,
            "debtor": {"name": "X", "kind": "business", "address": {"street": ["S 1"], "postal_code": "50667", "city": "Köln", "country": "DE"},
                       "language": "de", "customer_number": "K-1"},
            "creditor_account": {"iban": "DE89370400440532013000"}
        }))
        .unwrap()
    }

    struct Stream(Vec<(String, String, serde_json::Value)>);

    impl Stream {
        fn push(&mut self, t: &str, p: serde_json::Value) {
            let id = format!("e{}", self.0.len() + 1);
            self.0.push((id, t.to_owned(), p));
        }
        fn push_plan(&mut self, plan: &Plan) {
            for (e, _) in &plan.events {
                self.push(e.event_type(), e.to_payload());
            }
        }
        fn fold(&self) -> Folded {
            Folded::of(
                self.0
                    .iter()
                    .enumerate()
                    .map(|(i, (id, t, p))| StreamEvent {
                        version: i as u64 + 1,
                        event_id: id,
                        event_type: t,
                        payload: p,
                    }),
            )
            .unwrap()
        }
    }

    #[test]
    fn a_fact_is_pending_until_a_dunning_event_follows_it() {
        let mut s = Stream(Vec::new());
        s.push(
            "invoice.issued.v1",
            serde_json::json!({ "invoice": invoice() }),
        );
        let folded = s.fold();
        assert_eq!(
            folded.needs_policy().map(|(k, _)| k),
            Some(DebtorKind::Business)
        );
        let policy = Policy::default_business(FederalState::NW);
        let opened = plan(&folded, Some(&policy), None, false, d("2026-03-01")).unwrap();
        assert_eq!(opened.events.len(), 1);
        assert_eq!(opened.events[0].1, Origin::Fact("e1".into()));
        s.push_plan(&opened);
        let folded = s.fold();
        assert!(folded.pending.is_empty() && folded.state.is_some());
        // A dispute, twice, then its rejection: the second dispute is a no-op and the case
        // resumes exactly once.
        s.push(
            "invoice.disputed.v1",
            serde_json::to_value(InvoiceDisputed {
                reason: "r".into(),
                request_id: None,
            })
            .unwrap(),
        );
        let p = plan(&s.fold(), None, None, false, d("2026-04-02")).unwrap();
        s.push_plan(&p);
        s.push(
            "invoice.disputed.v1",
            serde_json::to_value(InvoiceDisputed {
                reason: "r".into(),
                request_id: None,
            })
            .unwrap(),
        );
        s.push(
            "dispute.resolved.v1",
            serde_json::to_value(DisputeResolved {
                outcome: DisputeOutcome::Rejected,
                note: String::new(),
                request_id: None,
            })
            .unwrap(),
        );
        let p = plan(&s.fold(), None, None, false, d("2026-04-10")).unwrap();
        let types: Vec<_> = p.events.iter().map(|(e, _)| e.event_type()).collect();
        assert_eq!(types, ["dunning.resumed.v1"]);
        s.push_plan(&p);
        assert!(!s.fold().state.unwrap().is_paused());
    }

    #[test]
    fn a_payment_of_the_balance_settles_and_no_step_follows() {
        let mut s = Stream(Vec::new());
        s.push(
            "invoice.issued.v1",
            serde_json::json!({ "invoice": invoice() }),
        );
        let policy = Policy::default_business(FederalState::NW);
        let p = plan(&s.fold(), Some(&policy), None, false, d("2026-03-01")).unwrap();
        s.push_plan(&p);
        s.push(
            "payment.applied.v1",
            serde_json::to_value(PaymentApplied {
                payment_id: "p1".into(),
                entry_id: "x".into(),
                amount: Money::eur(11900),
                booked_on: d("2026-04-02"),
                rule: "manual".into(),
                open_after: Money::eur(0),
                discount: None,
            })
            .unwrap(),
        );
        let p = plan(&s.fold(), None, None, true, d("2026-05-20")).unwrap();
        let types: Vec<_> = p.events.iter().map(|(e, _)| e.event_type()).collect();
        assert_eq!(types, ["dunning.payment_recorded.v1", "dunning.settled.v1"]);
    }

    /// Regression (issue 15): a payment of the discounted amount within the Skonto period left
    /// the discount open for dunning (matching had settled the invoice, dunning dunned the 2 %).
    #[test]
    fn a_payment_that_earned_the_cash_discount_settles_the_case() {
        let mut s = Stream(Vec::new());
        s.push(
            "invoice.issued.v1",
            serde_json::json!({ "invoice": invoice() }),
        );
        let policy = Policy::default_business(FederalState::NW);
        let p = plan(&s.fold(), Some(&policy), None, false, d("2026-03-01")).unwrap();
        s.push_plan(&p);
        s.push(
            "payment.applied.v1",
            serde_json::to_value(PaymentApplied {
                payment_id: "p1".into(),
                entry_id: "x".into(),
                amount: Money::eur(11662),
                booked_on: d("2026-03-09"),
                rule: "invoice_number".into(),
                open_after: Money::eur(0),
                discount: Some(Money::eur(238)),
            })
            .unwrap(),
        );
        let p = plan(&s.fold(), None, None, true, d("2026-03-10")).unwrap();
        let types: Vec<_> = p.events.iter().map(|(e, _)| e.event_type()).collect();
        assert_eq!(
            types,
            [
                "dunning.credit_recorded.v1",
                "dunning.payment_recorded.v1",
                "dunning.settled.v1"
            ]
        );
        let state = p.state.unwrap();
        assert_eq!(state.balance(), Money::eur(0));
    }
}
