//! What the letters service reads from a case stream just before sending: whether the case was
//! settled, paused, disputed, cancelled (or otherwise ended) meanwhile. Pure fold.

use mahnwerk_domain::lifecycle::{CaseEvent, DisputeOutcome};
use mahnwerk_domain::payment::PaymentEvent;
use mahnwerk_dunning::dunning_case::{DunningEvent, PauseKind};
use std::collections::BTreeSet;

/// The facts of a case that stop a letter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFile {
    pub settled: bool,
    pub cancelled: bool,
    pub credited: bool,
    pub written_off: bool,
    pub disputed: bool,
    pub paused: BTreeSet<String>,
}

fn pause_name(k: PauseKind) -> &'static str {
    match k {
        PauseKind::Dispute => "dispute",
        PauseKind::PromiseToPay => "promise_to_pay",
        PauseKind::PaymentPlan => "payment_plan",
        PauseKind::CaseHold => "case_hold",
        PauseKind::DebtorHold => "debtor_hold",
        PauseKind::DirectDebit => "direct_debit",
        PauseKind::Settlement => "settlement",
    }
}

impl CaseFile {
    /// Apply one event of the case stream (types not about the case's state are ignored).
    pub fn apply(&mut self, event_type: &str, payload: &serde_json::Value) {
        if let Ok(Some(e)) = CaseEvent::from_parts(event_type, payload) {
            match e {
                CaseEvent::InvoiceCancelled(_) => self.cancelled = true,
                CaseEvent::InvoiceDisputed(_) => self.disputed = true,
                CaseEvent::DisputeResolved(r) => {
                    self.disputed = r.outcome == DisputeOutcome::Upheld;
                }
                CaseEvent::InvoiceCredited(c) if c.open_after.minor <= 0 => self.credited = true,
                _ => {}
            }
        } else if let Ok(Some(e)) = PaymentEvent::from_parts(event_type, payload) {
            match e {
                PaymentEvent::Settled(_) => self.settled = true,
                PaymentEvent::Reversed(r) if r.open_after.minor > 0 => self.settled = false,
                _ => {}
            }
        } else if let Ok(Some(e)) = DunningEvent::from_parts(event_type, payload) {
            match e {
                DunningEvent::Paused { pause, .. } => {
                    self.paused.insert(pause_name(pause.kind()).to_owned());
                }
                DunningEvent::Resumed { pause, .. } => {
                    self.paused.remove(pause_name(pause));
                }
                DunningEvent::Settled { .. } => self.settled = true,
                DunningEvent::Reopened { .. } => self.settled = false,
                DunningEvent::Cancelled { .. } => self.cancelled = true,
                DunningEvent::Credited { .. } => self.credited = true,
                DunningEvent::WrittenOff { .. } => self.written_off = true,
                _ => {}
            }
        }
    }

    /// Why no letter may go out now, if any.
    pub fn suppression(&self) -> Option<String> {
        if self.settled {
            Some("settled".into())
        } else if self.cancelled {
            Some("cancelled".into())
        } else if self.credited {
            Some("credited".into())
        } else if self.written_off {
            Some("written_off".into())
        } else if self.disputed {
            Some("disputed".into())
        } else {
            self.paused.iter().next().map(|k| format!("paused ({k})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settled_then_reversed_reopens() {
        let mut f = CaseFile::default();
        f.apply(
            "invoice.settled.v1",
            &json!({"settled_on": "2026-03-01", "by": "p1"}),
        );
        assert_eq!(f.suppression().as_deref(), Some("settled"));
        f.apply(
            "payment.reversed.v1",
            &json!({"payment_id": "p1", "amount": {"minor": 100, "currency": "EUR"}, "reversed_on": "2026-03-02", "reason": "MD06", "open_after": {"minor": 100, "currency": "EUR"}}),
        );
        assert_eq!(f.suppression(), None);
    }

    #[test]
    fn dispute_suppresses_until_rejected() {
        let mut f = CaseFile::default();
        f.apply("invoice.disputed.v1", &json!({"reason": "goods damaged"}));
        assert_eq!(f.suppression().as_deref(), Some("disputed"));
        f.apply(
            "dispute.resolved.v1",
            &json!({"outcome": "rejected", "note": ""}),
        );
        assert_eq!(f.suppression(), None);
    }

    /// A promise to pay pauses the letters (`paused (promise_to_pay)`) until it is resumed.
    #[test]
    fn a_pause_suppresses_until_resumed() {
        use mahnwerk_domain::Money;
        use mahnwerk_dunning::dunning_case::{DunningEvent, Pause, PauseKind, ResumeReason};
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
        let mut f = CaseFile::default();
        let paused = DunningEvent::Paused {
            pause: Pause::PromiseToPay {
                until: day(20),
                amount: Money::eur(119_000),
                since: day(10),
            },
            paused_on: day(10),
        };
        f.apply(paused.event_type(), &paused.to_payload());
        assert_eq!(f.suppression().as_deref(), Some("paused (promise_to_pay)"));
        let resumed = DunningEvent::Resumed {
            pause: PauseKind::PromiseToPay,
            why: ResumeReason::PromiseMissed {
                promised: Money::eur(119_000),
                paid: Money::eur(0),
            },
            resumed_on: day(21),
        };
        f.apply(resumed.event_type(), &resumed.to_payload());
        assert_eq!(f.suppression(), None);
    }
}
