//! Events of a bank entry's stream, `{tenant}/statement/{entry id}`: the entry as received with
//! the engine's decision, the review queue and the review actions. The payment facts themselves
//! (`payment.applied.v1`, …) go to the case streams (`mahnwerk_domain::payment`).
//!
//! One stream per entry, keyed by its stable identity, is what makes every input idempotent: the
//! entry is recorded with `ExpectedVersion::NoStream`, so a re-import, a retried call or the
//! camt.053 after the camt.052 of the same day finds the stream and applies nothing again.
//!
//! `payer` holds personal data of the debtor (name, IBAN, remittance text); it is never logged.

use crate::engine::{Decision, Outcome, Rule};
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// Serde for the amount of a bank entry: old statements carry withdrawn euro legacy currencies
/// (`DEM`), which `Money`'s own serde refuses; what was written must read back.
mod entry_money {
    use mahnwerk_domain::{Currency, Money};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    struct Raw {
        minor: i64,
        currency: String,
    }

    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let raw = Raw::deserialize(d)?;
        let currency = Currency::parse_historic(&raw.currency)
            .map_err(|e| serde::de::Error::custom(e.reason))?;
        Ok(Money::new(raw.minor, currency))
    }
}

/// Stream kind of entry streams.
pub const ENTRY_KIND: &str = "statement";

/// Stream kind of the checks of unbalanced statements a tenant accepted:
/// `{tenant}/statement_check/{id}`, one per statement (see [`StatementUnbalanced::stream_id`]).
pub const CHECK_KIND: &str = "statement_check";
/// The event a tenant's accepted unbalanced statement leaves.
pub const STATEMENT_UNBALANCED: &str = "matching.statement_unbalanced.v1";

/// `matching.statement_unbalanced.v1`: a statement whose opening balance plus its booked entries
/// is not its closing balance, imported because the tenant accepts such statements
/// (`MatchingSettings.accept_unbalanced`). Amounts in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementUnbalanced {
    pub statement_id: String,
    /// The creditor's account the statement is of (not the debtor's).
    pub account: String,
    pub currency: String,
    pub opening_minor: i64,
    pub credits_minor: i64,
    pub debits_minor: i64,
    pub closing_minor: i64,
    /// closing − (opening + credits + debits).
    pub difference_minor: i64,
}

impl StatementUnbalanced {
    /// One stream per statement and its numbers, so importing it again records nothing new.
    pub fn stream_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.account,
            self.statement_id,
            self.currency,
            self.opening_minor,
            self.credits_minor,
            self.debits_minor,
            self.closing_minor
        );
        hex::encode(&Sha256::digest(key.as_bytes())[..16])
    }

    /// What the import's warnings say about it.
    pub fn warning(&self) -> String {
        format!(
            "statement {}: opening balance {} + credits {} + debits {} = {}, but the closing balance is {} (difference {}, minor units); imported because the tenant accepts unbalanced statements ({STATEMENT_UNBALANCED} recorded)",
            self.statement_id,
            self.opening_minor,
            self.credits_minor,
            self.debits_minor,
            self.opening_minor + self.credits_minor + self.debits_minor,
            self.closing_minor,
            self.difference_minor
        )
    }
}

/// Who paid and what they wrote (personal data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub iban: Option<String>,
    #[serde(default)]
    pub ultimate_debtor: Option<String>,
    #[serde(default)]
    pub remittance: Option<String>,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub end_to_end_id: Option<String>,
}

/// One allocation as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAllocation {
    pub case_id: String,
    pub amount: Money,
    pub open_after: Money,
    /// Cash discount granted (open balance forgiven with this payment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Money>,
}

/// The engine's decision as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDecision {
    pub outcome: Outcome,
    pub rule: Rule,
    pub confidence: u8,
    pub reason: String,
    pub allocations: Vec<RecordedAllocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overpayment: Option<Money>,
    #[serde(default)]
    pub candidates: Vec<String>,
}

impl From<&Decision> for RecordedDecision {
    fn from(d: &Decision) -> Self {
        Self {
            outcome: d.outcome,
            rule: d.rule,
            confidence: d.confidence,
            reason: d.reason(),
            allocations: d
                .allocations
                .iter()
                .map(|a| RecordedAllocation {
                    case_id: a.case_id.clone(),
                    amount: a.amount,
                    open_after: a.open_after,
                    discount: a.discount,
                })
                .collect(),
            overpayment: d.overpayment,
            candidates: d.candidates.clone(),
        }
    }
}

/// `bank_transaction.received.v1`: a bank entry as received, with what the engine decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionReceived {
    pub entry_id: String,
    /// `api` (RecordTransactions) or `statement` (ImportStatement, CLI import).
    pub source: String,
    pub bank_reference: Option<String>,
    #[serde(with = "entry_money")]
    pub amount: Money,
    pub booked_on: Option<NaiveDate>,
    /// `false` for a pending entry (camt `PDNG`): nothing applied until it arrives booked.
    pub booked: bool,
    #[serde(default)]
    pub reversal: bool,
    #[serde(default)]
    pub return_reason: Option<String>,
    /// SHA-256 of what the caller sent (RecordTransactions): the same key with other content is
    /// `ALREADY_EXISTS`.
    #[serde(default)]
    pub fingerprint: Option<String>,
    pub payer: Payer,
    pub decision: RecordedDecision,
}

/// `payment.unmatched.v1`: the entry waits for a person (review queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedPayload {
    pub entry_id: String,
    #[serde(with = "entry_money")]
    pub amount: Money,
    pub booked_on: Option<NaiveDate>,
    pub reason: String,
    #[serde(default)]
    pub candidates: Vec<String>,
    pub payer: Payer,
}

/// A part of a manual match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualPart {
    pub case_id: String,
    pub amount: Money,
}

/// `payment.matched_manually.v1`: an operator applied the entry (the actor is in the metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedManually {
    pub entry_id: String,
    pub allocations: Vec<ManualPart>,
    #[serde(default)]
    pub note: String,
    /// The caller's idempotency key, when it sent one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// `payment.marked_not_ours.v1`: an operator took the entry off the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedNotOurs {
    pub entry_id: String,
    #[serde(default)]
    pub note: String,
    /// The caller's idempotency key, when it sent one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// `payment.match_undone.v1`: the entry's payments were reversed by an operator; it is back in
/// the review queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchUndone {
    pub entry_id: String,
    pub payment_ids: Vec<String>,
    pub reason: String,
    /// The caller's idempotency key, when it sent one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// `payment.returned.v1`: the bank returned or reversed this entry (returned direct debit,
/// recalled credit); its payments were reversed on the case streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReturned {
    pub entry_id: String,
    /// The entry of the return (a debit on the account).
    pub return_entry_id: String,
    pub payment_ids: Vec<String>,
    /// ISO return reason (`MD06`, `AC04`, …) or `reversal`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_fee: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryEvent {
    Received(Box<TransactionReceived>),
    Unmatched(UnmatchedPayload),
    MatchedManually(MatchedManually),
    MarkedNotOurs(MarkedNotOurs),
    MatchUndone(MatchUndone),
    Returned(PaymentReturned),
}

impl EntryEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            EntryEvent::Received(_) => "bank_transaction.received.v1",
            EntryEvent::Unmatched(_) => "payment.unmatched.v1",
            EntryEvent::MatchedManually(_) => "payment.matched_manually.v1",
            EntryEvent::MarkedNotOurs(_) => "payment.marked_not_ours.v1",
            EntryEvent::MatchUndone(_) => "payment.match_undone.v1",
            EntryEvent::Returned(_) => "payment.returned.v1",
        }
    }

    pub fn to_payload(&self) -> serde_json::Value {
        let v = match self {
            EntryEvent::Received(r) => serde_json::to_value(r),
            EntryEvent::Unmatched(u) => serde_json::to_value(u),
            EntryEvent::MatchedManually(m) => serde_json::to_value(m),
            EntryEvent::MarkedNotOurs(m) => serde_json::to_value(m),
            EntryEvent::MatchUndone(m) => serde_json::to_value(m),
            EntryEvent::Returned(m) => serde_json::to_value(m),
        };
        // Serialising plain data structs cannot fail.
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Read an entry event back; `Ok(None)` for other types.
    pub fn from_parts(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Result<Option<EntryEvent>, serde_json::Error> {
        use serde_json::from_value as v;
        let p = payload.clone();
        Ok(Some(match event_type {
            "bank_transaction.received.v1" => EntryEvent::Received(Box::new(v(p)?)),
            "payment.unmatched.v1" => EntryEvent::Unmatched(v(p)?),
            "payment.matched_manually.v1" => EntryEvent::MatchedManually(v(p)?),
            "payment.marked_not_ours.v1" => EntryEvent::MarkedNotOurs(v(p)?),
            "payment.match_undone.v1" => EntryEvent::MatchUndone(v(p)?),
            "payment.returned.v1" => EntryEvent::Returned(v(p)?),
            _ => return Ok(None),
        }))
    }
}
