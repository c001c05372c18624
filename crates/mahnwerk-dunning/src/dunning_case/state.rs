//! The state of one dunning case folded from its events, and what it owes.

use super::{CaseFacts, DunningEvent, Pause, PauseKind, evolve};
use crate::law::BaseRateTable;
use crate::law::calendar::FederalState;
use crate::law::default::{DefaultFacts, DefaultStart, default_start};
use crate::law::interest::{
    Credited, DatedAmount, InterestRequest, compute_interest, credit_payments,
};
use crate::policy::{Approval, Policy};
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::{Currency, Money};
use serde::{Deserialize, Serialize};

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Active,
    Escalated,
    Settled,
    Cancelled,
    Credited,
    WrittenOff,
}

impl Phase {
    /// No step, escalation or pause change ever again (settled may still reopen).
    pub fn is_end(self) -> bool {
        matches!(
            self,
            Phase::Settled | Phase::Cancelled | Phase::Credited | Phase::WrittenOff
        )
    }
}

/// A status for humans and the case file, derived for a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum CaseStatus {
    Issued,
    Due,
    Overdue,
    Dunning { step: u32 },
    Paused,
    Escalated,
    Settled,
    Cancelled,
    Credited,
    WrittenOff,
}

/// Where a case of a policy in approval mode stands with the creditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum ApprovalState {
    /// Not offered yet (or the policy runs automatically).
    #[default]
    None,
    /// Offered, waiting for the creditor.
    Offered {
        on: NaiveDate,
    },
    Approved {
        on: NaiveDate,
    },
    Declined {
        on: NaiveDate,
    },
}

/// A payment as the case knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_id: String,
    pub amount: Money,
    pub date: NaiveDate,
    pub reversed: bool,
    /// It re-anchors the schedule while it is not reversed.
    #[serde(default = "yes")]
    pub reanchors: bool,
}

fn yes() -> bool {
    true
}

/// State of one dunning case, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningCase {
    pub facts: CaseFacts,
    pub policy: Policy,
    pub due_date: NaiveDate,
    pub phase: Phase,
    pub steps: Vec<(u32, NaiveDate)>,
    pub escalated_on: Option<NaiveDate>,
    pub payments: Vec<PaymentRecord>,
    pub credits: Vec<(String, Money)>,
    /// Costs with the day they arose (fees and the lump sum), for § 367 crediting.
    pub costs: Vec<DatedAmount>,
    pub fees: i64,
    pub lump_sum: i64,
    /// Fees offset against the lump sum so far (§ 288 Abs. 5 S. 3).
    #[serde(default)]
    pub lump_sum_offset: i64,
    pub interest: i64,
    /// Last interest day of the latest letter that computed interest (its date).
    #[serde(default)]
    pub interest_until: Option<NaiveDate>,
    pub pauses: Vec<Pause>,
    /// The last re-anchor day from credits, due-date extensions and the end of pauses;
    /// payments re-anchor through [`DunningCase::anchor_day`] while they are not reversed.
    pub reanchor: Option<NaiveDate>,
    /// The creditor's decision in approval mode.
    #[serde(default)]
    pub approval: ApprovalState,
    /// The deadline the last letter printed when it was a consolidated one (the latest of its
    /// lines', which may be later than this case's own): the next step and the hand-over wait
    /// for it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printed_deadline: Option<NaiveDate>,
    /// Steps passed over without a letter ([`DunningEvent::StepSkipped`]): they hold their
    /// place in `steps` (the next step follows them) but printed nothing and put no one in
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<u32>,
    /// How often each step was sent again ([`DunningCommand::RepeatStep`]), by step number.
    ///
    /// [`DunningCommand::RepeatStep`]: super::DunningCommand::RepeatStep
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub repeats: std::collections::BTreeMap<u32, u32>,
}

impl DunningCase {
    /// The letters actually sent (steps reached, without those skipped), oldest first.
    pub fn letters(&self) -> impl Iterator<Item = &(u32, NaiveDate)> {
        self.steps.iter().filter(|(n, _)| !self.skipped.contains(n))
    }

    /// The last step was passed over without a letter.
    pub fn last_step_skipped(&self) -> bool {
        self.steps
            .last()
            .is_some_and(|(n, _)| self.skipped.contains(n))
    }

    pub fn currency(&self) -> Currency {
        self.facts.principal.currency
    }

    pub(super) fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency())
    }

    /// Principal after credit notes.
    pub fn principal_owed(&self) -> i64 {
        self.facts.principal.minor - self.credits.iter().map(|(_, m)| m.minor).sum::<i64>()
    }

    pub fn paid(&self) -> i64 {
        self.active_payments().map(|p| p.amount.minor).sum()
    }

    pub(super) fn active_payments(&self) -> impl Iterator<Item = &PaymentRecord> {
        self.payments.iter().filter(|p| !p.reversed)
    }

    /// principal owed + fees + lump sum + interest charged − payments.
    pub fn balance(&self) -> Money {
        self.money(self.principal_owed() + self.fees + self.lump_sum + self.interest - self.paid())
    }

    /// Principal still open after § 367 crediting: see [`DunningCase::credited`].
    pub fn principal_open(&self) -> Money {
        self.money(self.credited().principal_open.max(0))
    }

    /// How the payments were credited (§ 367 Abs. 1 BGB): each payment goes to the costs that
    /// had arisen by its day (the fees and lump sums of the letters sent by then), then to the
    /// interest accrued by its day, then to the principal. An amount that arises later, such as
    /// the fee and interest of the next letter, is never paid by an earlier payment.
    ///
    /// Interest is accrued day by day as the letters computed it ([`compute_interest`] from the
    /// first interest day to the last letter that charged interest, the same calculation and
    /// the same crediting the letters print); a payment after that letter finds the interest
    /// it charged. Should the recomputation fail, the interest charged counts as arisen on the
    /// day of the last letter.
    pub fn credited(&self) -> Credited {
        let payments: Vec<DatedAmount> = self
            .active_payments()
            .map(|p| DatedAmount::new(p.date, p.amount))
            .collect();
        let principal = self.principal_owed();
        if self.interest <= 0 {
            return credit_payments(principal, &payments, &self.costs, &[]);
        }
        let until = self
            .interest_until
            .or_else(|| self.steps.last().map(|(_, d)| *d));
        if let (Some(until), Some(def)) = (until, self.default())
            && def.interest_from <= until
            && let Ok(calc) = compute_interest(
                &InterestRequest {
                    principal: self.money(principal),
                    from: def.interest_from,
                    to: until,
                    debtor: self.facts.debtor,
                    payments: payments.clone(),
                    costs: self.costs.clone(),
                    day_count: self.policy.day_count,
                },
                &BaseRateTable::in_force(),
            )
        {
            return Credited {
                allocations: calc.allocations,
                principal_open: calc.principal_open,
                costs_open: calc.costs_open,
                interest_open: calc.interest_open,
                surplus: calc.surplus,
            };
        }
        let charged: Vec<DatedAmount> = until
            .map(|d| DatedAmount::new(d, self.money(self.interest)))
            .into_iter()
            .collect();
        credit_payments(principal, &payments, &self.costs, &charged)
    }

    /// The latest re-anchor day: [`DunningCase::reanchor`] or the date of the latest payment
    /// that re-anchors and was not reversed (a returned direct debit gives no extra time).
    pub fn anchor_day(&self) -> Option<NaiveDate> {
        let paid = self
            .active_payments()
            .filter(|p| p.reanchors)
            .map(|p| p.date)
            .max();
        self.reanchor.max(paid)
    }

    /// Dunning waits for the creditor: approval mode, and the creditor has not approved or
    /// declined yet.
    pub fn awaits_approval(&self) -> bool {
        self.policy.approval == Approval::Creditor
            && matches!(
                self.approval,
                ApprovalState::None | ApprovalState::Offered { .. }
            )
    }

    /// The creditor declined: steps are drafts, no hand-over.
    pub fn declined(&self) -> bool {
        matches!(self.approval, ApprovalState::Declined { .. })
    }

    pub fn is_paused(&self) -> bool {
        !self.pauses.is_empty()
    }

    /// The pause of this kind, if the case is paused by it.
    pub fn pause(&self, kind: PauseKind) -> Option<&Pause> {
        self.pauses.iter().find(|p| p.kind() == kind)
    }

    /// The federal state whose holidays move the debtor's deadlines (§ 193 BGB): the debtor's
    /// ([`CaseFacts::state`]), else the policy's (the tenant's). Letters are dated and
    /// business-day offsets counted on the tenant's working days ([`Policy::state`]): those are
    /// the sender's.
    pub fn place_of_performance(&self) -> FederalState {
        self.facts.state.unwrap_or(self.policy.state)
    }

    pub fn default_facts(&self) -> DefaultFacts {
        DefaultFacts {
            due_date: self.due_date,
            invoice_received: self.facts.issue_date
                + Duration::days(i64::from(self.policy.delivery_days)),
            debtor: self.facts.debtor,
            default_notice: self.facts.default_notice,
            calendar_due_date: self.facts.calendar_due_date || self.policy.calendar_due_date,
            state: self.place_of_performance(),
        }
    }

    /// Default start given the letters sent so far. Only a letter sent after the due date is a
    /// Mahnung (§ 286 Abs. 1): a pre-due reminder never is, even when it arrives after the due
    /// date.
    pub fn default(&self) -> Option<DefaultStart> {
        let delivery = Duration::days(i64::from(self.policy.delivery_days));
        let first_reminder = self
            .steps
            .iter()
            .filter(|(number, date)| {
                if self.skipped.contains(number) {
                    return false;
                }
                let pre_due = usize::try_from(*number)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|k| self.policy.steps.get(k))
                    .is_some_and(|s| s.pre_due);
                !pre_due && *date > self.due_date
            })
            .map(|(_, date)| *date + delivery)
            .find(|received| *received > self.due_date);
        default_start(&self.default_facts(), first_reminder)
    }
}

impl DunningCase {
    /// The status a person sees on `today`.
    pub fn status(&self, today: NaiveDate) -> CaseStatus {
        match self.phase {
            Phase::Settled => CaseStatus::Settled,
            Phase::Cancelled => CaseStatus::Cancelled,
            Phase::Credited => CaseStatus::Credited,
            Phase::WrittenOff => CaseStatus::WrittenOff,
            Phase::Escalated => CaseStatus::Escalated,
            Phase::Active if self.is_paused() => CaseStatus::Paused,
            Phase::Active => match self.steps.last() {
                Some((n, _)) => CaseStatus::Dunning { step: *n },
                None if today < self.due_date => CaseStatus::Issued,
                None if today == self.due_date => CaseStatus::Due,
                None => CaseStatus::Overdue,
            },
        }
    }

    /// Fold a stream; `None` before `dunning.case_opened.v1`.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a DunningEvent>) -> Option<DunningCase> {
        events.into_iter().fold(None, evolve)
    }
}
