//! Pauses: why a case waits (dispute, promise to pay, payment plan, settlement, holds) and when
//! a pause ends by itself (a promise's date passed, an instalment missed, a settlement not paid
//! in time, a hold's end date).

use super::{DunningCase, DunningEvent, HoldScope, Instalment};
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// Why a case is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pause {
    Dispute {
        reason: String,
    },
    DisputeUpheld,
    PromiseToPay {
        until: NaiveDate,
        amount: Money,
        since: NaiveDate,
    },
    PaymentPlan {
        instalments: Vec<Instalment>,
        since: NaiveDate,
    },
    Hold {
        scope: HoldScope,
        reason: String,
        until: Option<NaiveDate>,
    },
    /// The creditor collects the invoice by direct debit: nothing to dun unless the debit comes
    /// back (a reversed payment ends it).
    DirectDebit,
    /// A settlement ("Vergleich", § 779 BGB): the creditor accepts `amount` paid from `since`
    /// until `pay_by` in full discharge; once it is paid the case is settled and the rest
    /// waived. Not paid in time, the settlement lapses and the whole claim is dunned again.
    Settlement {
        amount: Money,
        pay_by: NaiveDate,
        since: NaiveDate,
    },
}

/// Pauses of the same kind replace each other; kinds overlap freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseKind {
    Dispute,
    PromiseToPay,
    PaymentPlan,
    CaseHold,
    DebtorHold,
    DirectDebit,
    Settlement,
}

impl Pause {
    pub fn kind(&self) -> PauseKind {
        match self {
            Pause::Dispute { .. } | Pause::DisputeUpheld => PauseKind::Dispute,
            Pause::PromiseToPay { .. } => PauseKind::PromiseToPay,
            Pause::PaymentPlan { .. } => PauseKind::PaymentPlan,
            Pause::Hold {
                scope: HoldScope::Case,
                ..
            } => PauseKind::CaseHold,
            Pause::Hold {
                scope: HoldScope::Debtor,
                ..
            } => PauseKind::DebtorHold,
            Pause::DirectDebit => PauseKind::DirectDebit,
            Pause::Settlement { .. } => PauseKind::Settlement,
        }
    }
}

/// Why a pause ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ResumeReason {
    DisputeRejected,
    /// A credit note after an upheld dispute left an amount open.
    CreditAfterUpheldDispute,
    PromiseMissed {
        promised: Money,
        paid: Money,
    },
    PromiseKept,
    InstalmentMissed {
        date: NaiveDate,
        due: Money,
        paid: Money,
    },
    PlanCompleted,
    HoldReleased,
    HoldExpired,
    /// The direct debit came back (returned or reversed): the case is dunned from now on.
    DirectDebitReturned {
        payment_id: String,
    },
    /// The settlement's amount was not paid by its date: the full claim is dunned again.
    SettlementMissed {
        agreed: Money,
        paid: Money,
    },
}

pub(super) fn paused(pause: Pause, today: NaiveDate) -> DunningEvent {
    DunningEvent::Paused {
        pause,
        paused_on: today,
    }
}

/// Paid since `since` (payments dated on or after it, not reversed).
pub(super) fn paid_since(state: &DunningCase, since: NaiveDate) -> i64 {
    state
        .active_payments()
        .filter(|p| p.date >= since)
        .map(|p| p.amount.minor)
        .sum()
}

pub(super) fn end_pauses(state: &DunningCase, today: NaiveDate) -> Vec<DunningEvent> {
    let mut out = Vec::new();
    for pause in &state.pauses {
        let why = match pause {
            Pause::PromiseToPay {
                until,
                amount,
                since,
            } if today > *until => {
                let paid = paid_since(state, *since);
                Some(if paid >= amount.minor {
                    ResumeReason::PromiseKept
                } else {
                    ResumeReason::PromiseMissed {
                        promised: *amount,
                        paid: state.money(paid),
                    }
                })
            }
            Pause::PaymentPlan { instalments, since } => {
                let paid = paid_since(state, *since);
                let mut due = 0;
                let mut missed = None;
                for inst in instalments.iter().filter(|i| i.date < today) {
                    due += inst.amount.minor;
                    if paid < due {
                        missed = Some(ResumeReason::InstalmentMissed {
                            date: inst.date,
                            due: state.money(due),
                            paid: state.money(paid),
                        });
                        break;
                    }
                }
                let finished = instalments.last().is_some_and(|l| l.date < today);
                missed.or_else(|| finished.then_some(ResumeReason::PlanCompleted))
            }
            Pause::Hold {
                until: Some(until), ..
            } if today > *until => Some(ResumeReason::HoldExpired),
            Pause::Settlement {
                amount,
                pay_by,
                since,
            } if today > *pay_by => {
                let paid = paid_since(state, *since);
                (paid < amount.minor).then(|| ResumeReason::SettlementMissed {
                    agreed: *amount,
                    paid: state.money(paid),
                })
            }
            _ => None,
        };
        if let Some(why) = why {
            out.push(DunningEvent::Resumed {
                pause: pause.kind(),
                why,
                resumed_on: today,
            });
        }
    }
    out
}

/// The settlement in force on the case has been paid: what was paid since it was agreed covers
/// its amount.
pub(super) fn settlement_paid(state: &DunningCase) -> bool {
    match state.pause(super::PauseKind::Settlement) {
        Some(Pause::Settlement { amount, since, .. }) => paid_since(state, *since) >= amount.minor,
        _ => false,
    }
}
