//! What the dunning service asks of a case, and the invoice facts a case is opened with.

use crate::law::calendar::FederalState;
use crate::policy::Policy;
use chrono::NaiveDate;
use mahnwerk_domain::lifecycle::DisputeOutcome;
use mahnwerk_domain::{DebtorKind, Invoice, Money};
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
    /// The debtor's federal state: the place of performance of a money debt (§ 269 Abs. 1,
    /// § 270 Abs. 4 BGB), whose public holidays move the due date, the 30-day trigger and the
    /// printed payment deadlines (§ 193 BGB). `None` (unknown, or a debtor abroad): the
    /// policy's state, the tenant's. Sixteen values, not personal data by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FederalState>,
    /// The creditor collects the invoice by SEPA direct debit: the case opens paused
    /// ([`Pause::DirectDebit`](super::Pause::DirectDebit)) and is dunned only once a payment on
    /// it is reversed (the debit came back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct_debit: bool,
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
            calendar_due_date: invoice.due_date_by_calendar,
            state: debtor_state(invoice),
            direct_debit: invoice.direct_debit.is_some(),
        }
    }

    /// The same facts with the debtor's federal state (see [`CaseFacts::state`]).
    pub fn with_state(mut self, state: Option<FederalState>) -> Self {
        self.state = state;
        self
    }
}

/// The debtor's federal state from its address's ISO 3166-2 region (`DE-BY` → BY); `None` for
/// an address abroad or without a region (the policy's state, the tenant's, then applies).
pub fn debtor_state(invoice: &Invoice) -> Option<FederalState> {
    let address = invoice.debtor.address.expose();
    if address.country != "DE" {
        return None;
    }
    address.region.as_deref()?.parse().ok()
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
    /// A settlement ("Vergleich"): the creditor accepts `amount`, less than the open balance,
    /// paid by `pay_by` in full discharge; dunning pauses meanwhile. Paid, the case is settled
    /// and the rest waived; not paid in time, the whole claim is dunned again.
    AgreeSettlement {
        amount: Money,
        pay_by: NaiveDate,
    },
    /// Pass over the case's next step without a letter (an operator's request): the step after
    /// it takes its place, due on the day the skipped one was (or at once when that has passed;
    /// still never before the deadline the last letter printed).
    SkipStep {
        reason: String,
    },
    /// Send the case's last letter again (an operator's request, e.g. it came back
    /// undeliverable): the same step with today's date, a new deadline, interest brought up to
    /// today and no second fee; the next step then follows its gap after the repetition.
    RepeatStep {
        reason: String,
    },
    /// Move the case to another policy (or another version of its own): from now on its
    /// steps, fees and hand-over follow `policy`; steps already reached stay.
    MovePolicy {
        policy: Policy,
    },
    /// The creditor lets dunning run (approval mode; also before the offer).
    Approve,
    /// The creditor sends its letters itself: steps become drafts, nothing is sent or handed
    /// over in its name.
    Decline,
    /// Time passed: the scheduler woke the case.
    Advance,
}
