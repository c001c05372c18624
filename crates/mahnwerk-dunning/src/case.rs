//! The dunning case: one invoice under one policy, from due date to settlement or hand-over.
//!
//! `decide(state, command, today)` holds every rule and returns the events to append;
//! `evolve(state, &event)` applies facts and holds none. [`next_action_at`] tells the scheduler
//! when to wake the case (its index on next-action time).
//!
//! # Rules
//! - **Steps** come strictly in order, at most one per [`DunningCommand::Advance`], never twice,
//!   never skipped: step `k` is due `gap(k)` days after its anchor, the later of the day step
//!   `k - 1` was reached (the due date for `k = 0`) and the last *re-anchor day*.
//! - **Re-anchoring**: a payment, a reversal, a credit note, a due-date extension and the end of
//!   the last pause set the re-anchor day, so the debtor gets the full gap before the next letter;
//!   the step level never changes with the balance (the Kill Bill #2297 bug).
//! - **Pauses**: a dispute (until resolved; an upheld dispute stays paused until a credit note,
//!   cancellation or write-off), a promise to pay (until its date; a missed or kept promise
//!   resumes), a payment plan (only a missed instalment resumes), manual holds on the case or the
//!   debtor (until released or their end date). No step while any pause is active.
//! - **Money**: balance = principal after credit notes + fees + lump sum + interest charged −
//!   payments. Fees are waived on a letter sent while the debtor is not yet in default (that
//!   letter creates default, § 286 Abs. 1); the lump sum (business, € 40) is charged once with the
//!   first letter in default and offset against the fees (§ 288 Abs. 5 S. 3: a fee is charged
//!   only beyond what the lump sum covers); interest is charged with each letter whose step
//!   charges it, as the difference between the interest computed up to the letter date and the
//!   interest charged so far. Interest accrued after the last letter is not claimed by the case.
//! - **End states**: settled (balance paid; a reversal reopens it), cancelled, credited (principal
//!   credited to zero), written off.

use crate::error::{DunningError, Result};
use crate::law::BaseRateTable;
use crate::law::calendar::{Deadline, deadline, move_to_working_day};
use crate::law::default::{DefaultFacts, DefaultStart, default_start};
use crate::law::interest::{
    DatedAmount, InterestCalculation, InterestRequest, compute_interest, lump_sum,
};
use crate::policy::{AfterLast, Channel, Policy, Tone};
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::case::DisputeOutcome;
use mahnwerk_domain::{Currency, DebtorKind, Invoice, Money};
use serde::{Deserialize, Serialize};

/// The facts of the invoice a case is opened for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFacts {
    pub invoice_number: String,
    /// Groups a debtor's cases (customer number or debtor id); not personal data by itself.
    pub debtor_key: String,
    pub debtor: DebtorKind,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    /// Gross amount of the invoice.
    pub principal: Money,
    /// The invoice pointed out default after 30 days (§ 286 Abs. 3).
    #[serde(default)]
    pub default_notice: bool,
    /// This invoice's payment date was agreed by the calendar (§ 286 Abs. 2 Nr. 1): a fact of
    /// the invoice; the policy's `calendar_due_date` is only the tenant-wide fallback.
    #[serde(default)]
    pub calendar_due_date: bool,
}

impl CaseFacts {
    pub fn from_invoice(invoice: &Invoice, debtor_key: impl Into<String>) -> Self {
        CaseFacts {
            invoice_number: invoice.number.as_str().to_owned(),
            debtor_key: debtor_key.into(),
            debtor: invoice.debtor.kind,
            issue_date: invoice.issue_date,
            due_date: invoice.due_date,
            principal: invoice.amount_due(),
            default_notice: invoice.default_notice,
            calendar_due_date: false,
        }
    }
}

/// One instalment of a payment plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instalment {
    pub date: NaiveDate,
    pub amount: Money,
}

/// Whose hold it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldScope {
    Case,
    Debtor,
}

/// What the dunning service asks of a case. `today` is passed to `decide` separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DunningCommand {
    Open {
        facts: CaseFacts,
        policy: Policy,
    },
    RecordPayment {
        payment_id: String,
        amount: Money,
        date: NaiveDate,
    },
    ReversePayment {
        payment_id: String,
    },
    RecordCredit {
        credit_note: String,
        amount: Money,
    },
    ExtendDueDate {
        new_due_date: NaiveDate,
    },
    Dispute {
        reason: String,
    },
    ResolveDispute {
        outcome: DisputeOutcome,
    },
    PromiseToPay {
        until: NaiveDate,
        amount: Money,
    },
    AgreePaymentPlan {
        instalments: Vec<Instalment>,
    },
    Hold {
        scope: HoldScope,
        reason: String,
        until: Option<NaiveDate>,
    },
    Release {
        scope: HoldScope,
    },
    Cancel {
        reason: String,
    },
    WriteOff {
        reason: String,
    },
    /// Time passed: the scheduler woke the case.
    Advance,
}

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
}

/// A letter step was reached, with everything the letter prints and how it was derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReached {
    /// 1-based step number.
    pub number: u32,
    pub title: String,
    pub tone: Tone,
    pub template_id: String,
    pub channels: Vec<Channel>,
    pub date: NaiveDate,
    /// Fee charged with this letter (zero when waived).
    pub fee: Money,
    /// Why the policy's fee was not charged.
    pub fee_waived: Option<String>,
    /// § 288 Abs. 5 lump sum charged with this letter (zero when none).
    pub lump_sum: Money,
    /// The part of the policy's fee not charged because the lump sum already covers it
    /// (§ 288 Abs. 5 S. 3 BGB: the lump sum is offset against later dunning costs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_offset: Option<Money>,
    /// Interest added with this letter.
    pub interest_charged: Money,
    /// Full interest derivation up to the letter date, when interest is charged.
    pub interest: Option<InterestCalculation>,
    /// Default start as known on the letter date (may be this letter).
    pub default: Option<DefaultStart>,
    /// This letter itself puts the debtor in default.
    pub creates_default: bool,
    /// Payment deadline printed on the letter (§ 193 applied).
    pub deadline: Deadline,
    pub principal_open: Money,
    /// Balance after this letter.
    pub balance: Money,
}

/// Events of the dunning case stream. Past tense, versioned (see [`DunningEvent::event_type`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DunningEvent {
    Opened {
        facts: CaseFacts,
        policy: Policy,
        opened_on: NaiveDate,
    },
    PaymentRecorded {
        payment_id: String,
        amount: Money,
        date: NaiveDate,
    },
    PaymentReversed {
        payment_id: String,
        amount: Money,
        reversed_on: NaiveDate,
    },
    CreditRecorded {
        credit_note: String,
        amount: Money,
        credited_on: NaiveDate,
    },
    DueDateExtended {
        previous_due_date: NaiveDate,
        new_due_date: NaiveDate,
    },
    StepReached(Box<StepReached>),
    Paused {
        pause: Pause,
        paused_on: NaiveDate,
    },
    Resumed {
        pause: PauseKind,
        why: ResumeReason,
        resumed_on: NaiveDate,
    },
    Escalated {
        escalated_on: NaiveDate,
        steps_reached: u32,
        principal_open: Money,
        balance: Money,
    },
    Settled {
        settled_on: NaiveDate,
        overpaid: Money,
        waived: Money,
    },
    Reopened {
        reopened_on: NaiveDate,
        balance: Money,
    },
    Cancelled {
        cancelled_on: NaiveDate,
        reason: String,
    },
    Credited {
        credited_on: NaiveDate,
        waived: Money,
    },
    WrittenOff {
        written_off_on: NaiveDate,
        reason: String,
        amount: Money,
    },
}

impl DunningEvent {
    /// The versioned event type, e.g. `dunning.step_reached.v1`.
    pub fn event_type(&self) -> &'static str {
        match self {
            DunningEvent::Opened { .. } => "dunning.case_opened.v1",
            DunningEvent::PaymentRecorded { .. } => "dunning.payment_recorded.v1",
            DunningEvent::PaymentReversed { .. } => "dunning.payment_reversed.v1",
            DunningEvent::CreditRecorded { .. } => "dunning.credit_recorded.v1",
            DunningEvent::DueDateExtended { .. } => "dunning.due_date_extended.v1",
            DunningEvent::StepReached(_) => "dunning.step_reached.v1",
            DunningEvent::Paused { .. } => "dunning.paused.v1",
            DunningEvent::Resumed { .. } => "dunning.resumed.v1",
            DunningEvent::Escalated { .. } => "dunning.escalated.v1",
            DunningEvent::Settled { .. } => "dunning.settled.v1",
            DunningEvent::Reopened { .. } => "dunning.reopened.v1",
            DunningEvent::Cancelled { .. } => "dunning.cancelled.v1",
            DunningEvent::Credited { .. } => "dunning.credited.v1",
            DunningEvent::WrittenOff { .. } => "dunning.written_off.v1",
        }
    }

    pub fn event_version(&self) -> u32 {
        1
    }

    /// The JSON payload (the public contract of the event type).
    pub fn to_payload(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read an event back from its type and payload; `Ok(None)` for types this aggregate does
    /// not own. Older versions are upcast here.
    pub fn from_parts(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> std::result::Result<Option<Self>, serde_json::Error> {
        // Untagged variants have disjoint required fields; parse, then check the type matches.
        if !event_type.starts_with("dunning.") {
            return Ok(None);
        }
        let event: DunningEvent = serde_json::from_value(payload.clone())?;
        if event.event_type() != event_type {
            return Ok(None);
        }
        Ok(Some(event))
    }
}

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

/// A payment as the case knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_id: String,
    pub amount: Money,
    pub date: NaiveDate,
    pub reversed: bool,
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
    pub pauses: Vec<Pause>,
    pub reanchor: Option<NaiveDate>,
}

impl DunningCase {
    pub fn currency(&self) -> Currency {
        self.facts.principal.currency
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency())
    }

    /// Principal after credit notes.
    pub fn principal_owed(&self) -> i64 {
        self.facts.principal.minor - self.credits.iter().map(|(_, m)| m.minor).sum::<i64>()
    }

    pub fn paid(&self) -> i64 {
        self.active_payments().map(|p| p.amount.minor).sum()
    }

    fn active_payments(&self) -> impl Iterator<Item = &PaymentRecord> {
        self.payments.iter().filter(|p| !p.reversed)
    }

    /// principal owed + fees + lump sum + interest charged − payments.
    pub fn balance(&self) -> Money {
        self.money(self.principal_owed() + self.fees + self.lump_sum + self.interest - self.paid())
    }

    /// Principal still open after § 367 crediting (payments go to costs and interest first).
    pub fn principal_open(&self) -> Money {
        let costs_and_interest = self.fees + self.lump_sum + self.interest;
        let to_principal = (self.paid() - costs_and_interest).max(0);
        self.money((self.principal_owed() - to_principal).max(0))
    }

    pub fn is_paused(&self) -> bool {
        !self.pauses.is_empty()
    }

    fn pause(&self, kind: PauseKind) -> Option<&Pause> {
        self.pauses.iter().find(|p| p.kind() == kind)
    }

    pub fn default_facts(&self) -> DefaultFacts {
        DefaultFacts {
            due_date: self.due_date,
            invoice_received: self.facts.issue_date
                + Duration::days(i64::from(self.policy.delivery_days)),
            debtor: self.facts.debtor,
            default_notice: self.facts.default_notice,
            calendar_due_date: self.facts.calendar_due_date || self.policy.calendar_due_date,
            state: self.policy.state,
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

    /// The payment deadline printed on the last letter (§ 193 applied), if any.
    pub fn last_deadline(&self) -> Option<NaiveDate> {
        let (number, date) = *self.steps.last()?;
        let step = self
            .policy
            .steps
            .get(usize::try_from(number).ok()?.checked_sub(1)?)?;
        Some(
            deadline(
                self.policy.state,
                date,
                i64::from(step.payment_deadline_days),
            )
            .deadline,
        )
    }

    /// The day the next step is due, ignoring pauses and the minimum balance: the policy's gap
    /// after its anchor, but never before the previous letter's deadline has passed, and moved to
    /// a business day of the policy's state (letters are dated on business days).
    pub fn next_step_date(&self) -> Option<NaiveDate> {
        let k = self.steps.len();
        if k >= self.policy.steps.len() {
            return None;
        }
        let prev = self.steps.last().map_or(self.due_date, |(_, d)| *d);
        let anchor = self.reanchor.map_or(prev, |r| r.max(prev));
        let mut date = self.policy.step_date_from(k, anchor);
        if let Some(last) = self.last_deadline() {
            date = date.max(last + Duration::days(1));
        }
        Some(move_to_working_day(self.policy.state, date).deadline)
    }

    /// The day the case is handed over, once all steps are reached (never before the last
    /// letter's deadline has passed).
    pub fn escalation_date(&self) -> Option<NaiveDate> {
        if self.steps.len() < self.policy.steps.len() || self.escalated_on.is_some() {
            return None;
        }
        let AfterLast::Collection { after_days } = self.policy.after_last else {
            return None;
        };
        let last = self.steps.last().map_or(self.due_date, |(_, d)| *d);
        let anchor = self.reanchor.map_or(last, |r| r.max(last));
        let date = anchor + Duration::days(i64::from(after_days));
        Some(match self.last_deadline() {
            Some(deadline) => date.max(deadline + Duration::days(1)),
            None => date,
        })
    }

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

fn precondition(msg: impl Into<String>) -> DunningError {
    DunningError::Precondition(msg.into())
}

fn check_currency(state: &DunningCase, amount: Money, field: &str) -> Result<()> {
    if amount.currency != state.currency() {
        return Err(DunningError::CurrencyMismatch(
            state.currency(),
            amount.currency,
        ));
    }
    if amount.minor <= 0 {
        return Err(DunningError::invalid(field, "must be greater than zero"));
    }
    Ok(())
}

/// Every rule of the dunning case lives here. `today` is the business day the command happens.
pub fn decide(
    state: Option<&DunningCase>,
    command: &DunningCommand,
    today: NaiveDate,
) -> Result<Vec<DunningEvent>> {
    let Some(state) = state else {
        return match command {
            DunningCommand::Open { facts, policy } => {
                policy.validate()?;
                if facts.principal.currency != policy.currency {
                    return Err(DunningError::CurrencyMismatch(
                        policy.currency,
                        facts.principal.currency,
                    ));
                }
                if facts.principal.minor <= 0 {
                    return Err(DunningError::invalid(
                        "facts.principal",
                        "must be greater than zero",
                    ));
                }
                if facts.due_date < facts.issue_date {
                    return Err(DunningError::invalid(
                        "facts.due_date",
                        "must not be before issue_date",
                    ));
                }
                Ok(vec![DunningEvent::Opened {
                    facts: facts.clone(),
                    policy: policy.clone(),
                    opened_on: today,
                }])
            }
            _ => Err(precondition("case not opened")),
        };
    };
    let mut out = Vec::new();
    match command {
        DunningCommand::Open { facts, .. } => {
            return if *facts == state.facts {
                Ok(vec![])
            } else {
                Err(precondition("case already opened with other facts"))
            };
        }
        DunningCommand::RecordPayment {
            payment_id,
            amount,
            date,
        } => {
            check_currency(state, *amount, "amount")?;
            if let Some(p) = state.payments.iter().find(|p| &p.payment_id == payment_id) {
                return if p.amount == *amount && p.date == *date {
                    Ok(vec![])
                } else {
                    Err(precondition(format!(
                        "payment {payment_id} already recorded with other data"
                    )))
                };
            }
            out.push(DunningEvent::PaymentRecorded {
                payment_id: payment_id.clone(),
                amount: *amount,
                date: *date,
            });
        }
        DunningCommand::ReversePayment { payment_id } => {
            let Some(p) = state.payments.iter().find(|p| &p.payment_id == payment_id) else {
                return Err(precondition(format!(
                    "payment {payment_id} is not recorded on this case"
                )));
            };
            if p.reversed {
                return Ok(vec![]);
            }
            out.push(DunningEvent::PaymentReversed {
                payment_id: payment_id.clone(),
                amount: p.amount,
                reversed_on: today,
            });
        }
        DunningCommand::RecordCredit {
            credit_note,
            amount,
        } => {
            check_currency(state, *amount, "amount")?;
            if state.credits.iter().any(|(n, _)| n == credit_note) {
                return Ok(vec![]);
            }
            if state.phase.is_end() && state.phase != Phase::Settled {
                return Err(precondition("case is closed"));
            }
            if amount.minor > state.principal_owed() {
                return Err(DunningError::invalid(
                    "amount",
                    "credit exceeds the principal still owed",
                ));
            }
            out.push(DunningEvent::CreditRecorded {
                credit_note: credit_note.clone(),
                amount: *amount,
                credited_on: today,
            });
        }
        DunningCommand::ExtendDueDate { new_due_date } => {
            require_open(state)?;
            if *new_due_date <= state.due_date {
                return Err(DunningError::invalid(
                    "new_due_date",
                    "must be after the current due date",
                ));
            }
            out.push(DunningEvent::DueDateExtended {
                previous_due_date: state.due_date,
                new_due_date: *new_due_date,
            });
        }
        DunningCommand::Dispute { reason } => {
            require_open(state)?;
            if state.pause(PauseKind::Dispute).is_some() {
                return Ok(vec![]);
            }
            out.push(paused(
                Pause::Dispute {
                    reason: reason.clone(),
                },
                today,
            ));
        }
        DunningCommand::ResolveDispute { outcome } => {
            require_open(state)?;
            match state.pause(PauseKind::Dispute) {
                Some(Pause::Dispute { .. }) => {}
                _ => return Err(precondition("no open dispute")),
            }
            match outcome {
                DisputeOutcome::Rejected => out.push(DunningEvent::Resumed {
                    pause: PauseKind::Dispute,
                    why: ResumeReason::DisputeRejected,
                    resumed_on: today,
                }),
                DisputeOutcome::Upheld => out.push(paused(Pause::DisputeUpheld, today)),
            }
        }
        DunningCommand::PromiseToPay { until, amount } => {
            require_open(state)?;
            check_currency(state, *amount, "amount")?;
            if *until < today {
                return Err(DunningError::invalid("until", "must not be in the past"));
            }
            out.push(paused(
                Pause::PromiseToPay {
                    until: *until,
                    amount: *amount,
                    since: today,
                },
                today,
            ));
        }
        DunningCommand::AgreePaymentPlan { instalments } => {
            require_open(state)?;
            if instalments.is_empty() {
                return Err(DunningError::invalid(
                    "instalments",
                    "must have at least one instalment",
                ));
            }
            for (i, inst) in instalments.iter().enumerate() {
                check_currency(state, inst.amount, &format!("instalments[{i}].amount"))?;
                if i > 0 && inst.date <= instalments[i - 1].date {
                    return Err(DunningError::invalid(
                        format!("instalments[{i}].date"),
                        "instalment dates must increase",
                    ));
                }
            }
            out.push(paused(
                Pause::PaymentPlan {
                    instalments: instalments.clone(),
                    since: today,
                },
                today,
            ));
        }
        DunningCommand::Hold {
            scope,
            reason,
            until,
        } => {
            require_open(state)?;
            out.push(paused(
                Pause::Hold {
                    scope: *scope,
                    reason: reason.clone(),
                    until: *until,
                },
                today,
            ));
        }
        DunningCommand::Release { scope } => {
            let kind = match scope {
                HoldScope::Case => PauseKind::CaseHold,
                HoldScope::Debtor => PauseKind::DebtorHold,
            };
            if state.pause(kind).is_none() {
                return Ok(vec![]);
            }
            out.push(DunningEvent::Resumed {
                pause: kind,
                why: ResumeReason::HoldReleased,
                resumed_on: today,
            });
        }
        DunningCommand::Cancel { reason } => {
            if state.phase == Phase::Cancelled {
                return Ok(vec![]);
            }
            require_open(state)?;
            out.push(DunningEvent::Cancelled {
                cancelled_on: today,
                reason: reason.clone(),
            });
        }
        DunningCommand::WriteOff { reason } => {
            if state.phase == Phase::WrittenOff {
                return Ok(vec![]);
            }
            require_open(state)?;
            out.push(DunningEvent::WrittenOff {
                written_off_on: today,
                reason: reason.clone(),
                amount: state.balance(),
            });
        }
        DunningCommand::Advance => {
            if state.phase.is_end() {
                return Ok(vec![]);
            }
            out.extend(end_pauses(state, today));
            let after = fold_onto(state, &out);
            if after.phase == Phase::Active && !after.is_paused() {
                if let Some(step) = due_step(&after, today)? {
                    out.push(step);
                } else if after.escalation_date().is_some_and(|d| d <= today) {
                    out.push(DunningEvent::Escalated {
                        escalated_on: today,
                        steps_reached: u32::try_from(after.steps.len()).unwrap_or(u32::MAX),
                        principal_open: after.principal_open(),
                        balance: after.balance(),
                    });
                }
            }
        }
    }
    // Consequences of a balance change: settle, reopen, credit out, resume after upheld dispute.
    if matches!(
        command,
        DunningCommand::RecordPayment { .. }
            | DunningCommand::ReversePayment { .. }
            | DunningCommand::RecordCredit { .. }
    ) {
        out.extend(balance_consequences(state, &out, today));
    }
    Ok(out)
}

fn paused(pause: Pause, today: NaiveDate) -> DunningEvent {
    DunningEvent::Paused {
        pause,
        paused_on: today,
    }
}

fn require_open(state: &DunningCase) -> Result<()> {
    if state.phase.is_end() {
        return Err(precondition(
            format!("case is {:?}", state.phase).to_lowercase(),
        ));
    }
    Ok(())
}

fn fold_onto(state: &DunningCase, events: &[DunningEvent]) -> DunningCase {
    let mut s = state.clone();
    for e in events {
        s = evolve(Some(s), e).unwrap_or_else(|| state.clone());
    }
    s
}

fn balance_consequences(
    state: &DunningCase,
    so_far: &[DunningEvent],
    today: NaiveDate,
) -> Vec<DunningEvent> {
    let after = fold_onto(state, so_far);
    let mut out = Vec::new();
    let balance = after.balance().minor;
    let principal_covered = after.paid() >= after.principal_owed();
    match after.phase {
        Phase::Active | Phase::Escalated => {
            if after.principal_owed() <= 0 {
                out.push(DunningEvent::Credited {
                    credited_on: today,
                    waived: after.money(balance.max(0)),
                });
            } else if balance <= 0
                || (!after.policy.keep_costs_after_principal_paid && principal_covered)
            {
                out.push(DunningEvent::Settled {
                    settled_on: today,
                    overpaid: after.money((-balance).max(0)),
                    waived: after.money(balance.max(0)),
                });
            } else if matches!(after.pause(PauseKind::Dispute), Some(Pause::DisputeUpheld))
                && so_far
                    .iter()
                    .any(|e| matches!(e, DunningEvent::CreditRecorded { .. }))
            {
                out.push(DunningEvent::Resumed {
                    pause: PauseKind::Dispute,
                    why: ResumeReason::CreditAfterUpheldDispute,
                    resumed_on: today,
                });
            }
        }
        Phase::Settled => {
            let still_settled = balance <= 0
                || (!after.policy.keep_costs_after_principal_paid && principal_covered);
            if !still_settled {
                out.push(DunningEvent::Reopened {
                    reopened_on: today,
                    balance: after.balance(),
                });
            }
        }
        Phase::Cancelled | Phase::Credited | Phase::WrittenOff => {}
    }
    out
}

/// Paid since `since` (payments dated on or after it, not reversed).
fn paid_since(state: &DunningCase, since: NaiveDate) -> i64 {
    state
        .active_payments()
        .filter(|p| p.date >= since)
        .map(|p| p.amount.minor)
        .sum()
}

fn end_pauses(state: &DunningCase, today: NaiveDate) -> Vec<DunningEvent> {
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

/// The step due on `today`, with its money, or `None`.
fn due_step(state: &DunningCase, today: NaiveDate) -> Result<Option<DunningEvent>> {
    let Some(date) = state.next_step_date() else {
        return Ok(None);
    };
    let k = state.steps.len();
    let step = &state.policy.steps[k];
    if date > today || state.balance().minor < step.min_open.minor {
        return Ok(None);
    }
    let number = u32::try_from(k + 1).unwrap_or(u32::MAX);
    let default_before = state.default();
    let in_default = default_before.is_some_and(|d| d.in_default_on(today));
    let creates_default = !in_default && !step.pre_due;
    let (fee, fee_waived) = if step.fee.minor == 0 {
        (0, None)
    } else if in_default {
        (step.fee.minor, None)
    } else if step.pre_due {
        (
            0,
            Some("reminder before the due date: the debtor is not in default".to_owned()),
        )
    } else {
        (
            0,
            Some("this letter puts the debtor in default (§ 286 Abs. 1 BGB); its cost is not recoverable".to_owned()),
        )
    };
    let (mut fee, mut fee_waived) = (fee, fee_waived);
    let lump = if in_default && state.policy.charge_lump_sum && state.lump_sum == 0 {
        lump_sum(state.facts.debtor, state.currency()).map_or(0, |m| m.minor)
    } else {
        0
    };
    // § 288 Abs. 5 S. 3: the lump sum is offset against the dunning costs of the same claim, so
    // fees are charged only beyond what the lump sum already covers (never both in full).
    let credit = (state.lump_sum + lump - state.lump_sum_offset).max(0);
    let offset = fee.min(credit);
    if offset > 0 {
        fee -= offset;
        if fee == 0 {
            fee_waived = Some(
                "covered by the € 40 lump sum, which is offset against dunning costs (§ 288 Abs. 5 S. 3 BGB)"
                    .to_owned(),
            );
        }
    }
    let mut interest = None;
    let mut interest_charged = 0;
    if let (true, true, Some(def)) = (step.charge_interest, in_default, default_before)
        && def.interest_from <= today
    {
        let mut costs = state.costs.clone();
        if fee + lump > 0 {
            costs.push(DatedAmount::new(today, state.money(fee + lump)));
        }
        let calc = compute_interest(
            &InterestRequest {
                principal: state.money(state.principal_owed()),
                from: def.interest_from,
                to: today,
                debtor: state.facts.debtor,
                payments: state
                    .active_payments()
                    .map(|p| DatedAmount::new(p.date, p.amount))
                    .collect(),
                costs,
                day_count: state.policy.day_count,
            },
            BaseRateTable::german(),
        )?;
        interest_charged = (calc.interest_total - state.interest).max(0);
        interest = Some(calc);
    }
    let mut after = state.clone();
    after.steps.push((number, today));
    after.fees += fee;
    after.lump_sum += lump;
    after.lump_sum_offset += offset;
    after.interest += interest_charged;
    let default_after = after.default();
    Ok(Some(DunningEvent::StepReached(Box::new(StepReached {
        number,
        title: step.title.clone(),
        tone: step.tone,
        template_id: step.template_id.clone(),
        channels: step.channels.clone(),
        date: today,
        fee: state.money(fee),
        fee_waived,
        lump_sum: state.money(lump),
        fee_offset: (offset > 0).then(|| state.money(offset)),
        interest_charged: state.money(interest_charged),
        interest,
        default: default_after,
        creates_default: creates_default && default_after != default_before,
        deadline: deadline(
            state.policy.state,
            today,
            i64::from(step.payment_deadline_days),
        ),
        principal_open: after.principal_open(),
        balance: after.balance(),
    }))))
}

/// Apply a fact. No rules here: `decide` already checked them.
pub fn evolve(state: Option<DunningCase>, event: &DunningEvent) -> Option<DunningCase> {
    if let DunningEvent::Opened { facts, policy, .. } = event {
        return Some(DunningCase {
            facts: facts.clone(),
            policy: policy.clone(),
            due_date: facts.due_date,
            phase: Phase::Active,
            steps: Vec::new(),
            escalated_on: None,
            payments: Vec::new(),
            credits: Vec::new(),
            costs: Vec::new(),
            fees: 0,
            lump_sum: 0,
            lump_sum_offset: 0,
            interest: 0,
            pauses: Vec::new(),
            reanchor: None,
        });
    }
    let mut s = state?;
    let reanchor = |s: &mut DunningCase, d: NaiveDate| {
        s.reanchor = Some(s.reanchor.map_or(d, |r| r.max(d)));
    };
    match event {
        DunningEvent::Opened { .. } => {}
        DunningEvent::PaymentRecorded {
            payment_id,
            amount,
            date,
        } => {
            s.payments.push(PaymentRecord {
                payment_id: payment_id.clone(),
                amount: *amount,
                date: *date,
                reversed: false,
            });
            reanchor(&mut s, *date);
        }
        DunningEvent::PaymentReversed {
            payment_id,
            reversed_on,
            ..
        } => {
            if let Some(p) = s.payments.iter_mut().find(|p| &p.payment_id == payment_id) {
                p.reversed = true;
            }
            reanchor(&mut s, *reversed_on);
        }
        DunningEvent::CreditRecorded {
            credit_note,
            amount,
            credited_on,
        } => {
            s.credits.push((credit_note.clone(), *amount));
            reanchor(&mut s, *credited_on);
        }
        DunningEvent::DueDateExtended { new_due_date, .. } => {
            s.due_date = *new_due_date;
            reanchor(&mut s, *new_due_date);
        }
        DunningEvent::StepReached(step) => {
            s.steps.push((step.number, step.date));
            s.fees += step.fee.minor;
            s.lump_sum += step.lump_sum.minor;
            s.lump_sum_offset += step.fee_offset.map_or(0, |m| m.minor);
            s.interest += step.interest_charged.minor;
            let cost = step.fee.minor + step.lump_sum.minor;
            if cost > 0 {
                s.costs.push(DatedAmount::new(
                    step.date,
                    Money::new(cost, step.fee.currency),
                ));
            }
        }
        DunningEvent::Paused { pause, .. } => {
            let kind = pause.kind();
            s.pauses.retain(|p| p.kind() != kind);
            s.pauses.push(pause.clone());
        }
        DunningEvent::Resumed {
            pause, resumed_on, ..
        } => {
            s.pauses.retain(|p| p.kind() != *pause);
            if s.pauses.is_empty() {
                reanchor(&mut s, *resumed_on);
            }
        }
        DunningEvent::Escalated { escalated_on, .. } => {
            s.phase = Phase::Escalated;
            s.escalated_on = Some(*escalated_on);
        }
        DunningEvent::Settled { .. } => s.phase = Phase::Settled,
        DunningEvent::Reopened { .. } => {
            s.phase = if s.escalated_on.is_some() {
                Phase::Escalated
            } else {
                Phase::Active
            };
        }
        DunningEvent::Cancelled { .. } => s.phase = Phase::Cancelled,
        DunningEvent::Credited { .. } => s.phase = Phase::Credited,
        DunningEvent::WrittenOff { .. } => s.phase = Phase::WrittenOff,
    }
    Some(s)
}

/// When the scheduler should next wake this case with [`DunningCommand::Advance`]; `None` when
/// only an outside event (payment, resolution, release) can move it.
pub fn next_action_at(state: &DunningCase) -> Option<NaiveDate> {
    if state.phase.is_end() {
        return None;
    }
    let day = Duration::days(1);
    let mut candidates: Vec<NaiveDate> = Vec::new();
    for pause in &state.pauses {
        match pause {
            Pause::PromiseToPay { until, .. } => candidates.push(*until + day),
            Pause::Hold {
                until: Some(until), ..
            } => candidates.push(*until + day),
            Pause::PaymentPlan { instalments, since } => {
                let paid = paid_since(state, *since);
                let mut due = 0;
                let next = instalments
                    .iter()
                    .find(|i| {
                        due += i.amount.minor;
                        paid < due
                    })
                    .or(instalments.last());
                if let Some(i) = next {
                    candidates.push(i.date + day);
                }
            }
            _ => {}
        }
    }
    if !state.is_paused() && state.phase == Phase::Active {
        if let Some(date) = state.next_step_date() {
            let step = &state.policy.steps[state.steps.len()];
            if state.balance().minor >= step.min_open.minor {
                candidates.push(date);
            }
        } else if let Some(date) = state.escalation_date() {
            candidates.push(date);
        }
    }
    candidates.into_iter().min()
}
