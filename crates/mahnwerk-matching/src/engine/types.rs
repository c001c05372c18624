//! What goes into the engine (open items, bank entries, tenant settings) and what comes out (a
//! decision with its outcome, rule, allocations and reasons).

use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// Cash discount (Skonto) terms of an invoice: paying `amount` until `until` settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashDiscount {
    /// The discounted amount that settles the invoice.
    pub amount: Money,
    /// Last day the payment may be booked to earn the discount.
    pub until: NaiveDate,
}

/// One invoice as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenItem {
    pub case_id: String,
    pub invoice_number: String,
    pub debtor_name: String,
    /// IBANs this debtor has paid from before (normalised: upper case, no spaces).
    #[serde(default)]
    pub debtor_ibans: Vec<String>,
    /// The debtor's customer number: names the data key their personal data is sealed under
    /// in the projection (ADR 006).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    /// Principal still owed (zero once settled).
    pub open: Money,
    /// The RF (or other) reference printed on the invoice.
    #[serde(default)]
    pub payment_reference: Option<String>,
    /// RF references printed on the case's letters (`letter.rendered.v1`), when one differs
    /// from the reference [`mahnwerk_formats::rf::for_invoice`] derives, which is always known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub letter_references: Vec<String>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub cash_discount: Option<CashDiscount>,
    /// `cancelled` or `credited` when the case is closed: payments for it go to review.
    #[serde(default)]
    pub closed: Option<String>,
}

/// A bank entry (statement entry or single transaction) as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BankEntry {
    /// Stable identity of the entry (account + bank reference + booking date + amount).
    pub entry_ref: String,
    /// Signed: credits positive.
    pub amount: Option<Money>,
    pub booked_on: Option<NaiveDate>,
    /// `false` for pending entries (camt `PDNG`): recorded, applied only once booked.
    pub booked: bool,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    /// camt `UltmtDbtr`: the party the payment is made for.
    pub ultimate_debtor: Option<String>,
    pub remittance: Option<String>,
    /// Structured references (camt `Strd/CdtrRefInf/Ref`).
    pub references: Vec<String>,
    /// The entry reverses an earlier one (camt `RvslInd`, MT940 `RC`/`RD`).
    pub reversal: bool,
    pub return_reason: Option<String>,
}

/// Tenant settings of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Lowest confidence (0–100) that is applied automatically; below it: review.
    pub threshold: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self { threshold: 85 }
    }
}

/// What happens to the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Settles one invoice exactly (or within its cash discount).
    Applied,
    /// Reduces one invoice's open balance.
    Partial,
    /// Spread over several invoices.
    Split,
    /// Needs a person.
    Review,
    /// More than was open; the rest is a credit on the debtor.
    Overpaid,
    /// Not a payment of an invoice (debits, returns, pending entries).
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Partial => "partial",
            Outcome::Split => "split",
            Outcome::Review => "review",
            Outcome::Overpaid => "overpaid",
            Outcome::Ignored => "ignored",
        }
    }

    /// Whether money is applied to invoices.
    pub fn applies(self) -> bool {
        matches!(
            self,
            Outcome::Applied | Outcome::Partial | Outcome::Split | Outcome::Overpaid
        )
    }
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    RfReference,
    InvoiceNumber,
    AmountDebtor,
    /// An operator matched it (review queue).
    Manual,
    /// Nothing matched.
    NoMatch,
    /// Not a customer payment (debit, return, reversal, pending).
    NotAPayment,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RfReference => "rf_reference",
            Rule::InvoiceNumber => "invoice_number",
            Rule::AmountDebtor => "amount_debtor",
            Rule::Manual => "manual",
            Rule::NoMatch => "no_match",
            Rule::NotAPayment => "not_a_payment",
        }
    }
}

/// Part of an entry applied to one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub case_id: String,
    /// The part of the entry applied (positive).
    pub amount: Money,
    /// Open balance after it.
    pub open_after: Money,
    /// Cash discount granted (the open balance forgiven), when the discounted amount was paid.
    pub discount: Option<Money>,
}

/// The engine's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub rule: Rule,
    /// 0–100.
    pub confidence: u8,
    pub allocations: Vec<Allocation>,
    /// Paid beyond the open balances (on the last allocation's case).
    pub overpayment: Option<Money>,
    /// Why, in words an operator reads; no personal data.
    pub reasons: Vec<String>,
    /// Cases the evidence pointed at when the entry went to review.
    pub candidates: Vec<String>,
}

impl Decision {
    pub(super) fn new(
        outcome: Outcome,
        rule: Rule,
        confidence: u8,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            outcome,
            rule,
            confidence,
            allocations: Vec::new(),
            overpayment: None,
            reasons: vec![reason.into()],
            candidates: Vec::new(),
        }
    }

    pub(super) fn review(rule: Rule, reason: impl Into<String>, candidates: Vec<String>) -> Self {
        let mut d = Self::new(Outcome::Review, rule, 0, reason);
        d.candidates = candidates;
        d
    }

    pub fn reason(&self) -> String {
        self.reasons.join("; ")
    }
}
