//! Payment facts the matching service writes on a case stream (`{tenant}/case/{id}`), read by
//! every service that must know what was paid (dunning, letters, collection).
//!
//! The type names and JSON payloads are the public contract (docs/events.md). Amounts are
//! positive integer minor units; `open_after` is the case's open balance (principal still owed)
//! after this fact, so a reader that only sees the latest event knows the balance.

use crate::money::Money;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// `payment.applied.v1`: (part of) a bank entry was applied to this case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentApplied {
    /// Unique per application; the idempotency key (`{entry id}:{case id}` for statement entries).
    pub payment_id: String,
    /// The stable identity of the bank entry it came from (account + bank reference + booking
    /// date + amount), shared by every allocation of one split entry.
    pub entry_id: String,
    /// The part of the entry applied to this case (positive).
    pub amount: Money,
    /// Booking date of the bank entry: the date the debtor's payment counts from.
    pub booked_on: NaiveDate,
    /// The matching rule that decided it (`rf_reference`, `invoice_number`, `amount_debtor`,
    /// `manual`, …).
    pub rule: String,
    /// Open balance after this payment.
    pub open_after: Money,
    /// The cash discount (Skonto) this payment earned: the discounted amount was paid within
    /// the discount period, so the rest of the claim is forgiven (`open_after` is zero).
    /// Absent in the event when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Money>,
}

/// `payment.reversed.v1`: a payment applied before was returned or reversed by the bank (returned
/// direct debit, recalled credit) or undone by an operator; the case is open again by `amount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReversed {
    /// The `payment_id` of the `payment.applied.v1` it undoes.
    pub payment_id: String,
    pub amount: Money,
    pub reversed_on: NaiveDate,
    /// Bank return reason (e.g. ISO 20022 `AC04`, `MD06`) or the operator's note.
    pub reason: String,
    /// The bank's return fee charged to the creditor, a cost of the case (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_fee: Option<Money>,
    /// Open balance after the reversal.
    pub open_after: Money,
}

/// `invoice.settled.v1`: the case's open balance reached zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSettled {
    pub settled_on: NaiveDate,
    /// The payment that settled it (`payment_id`), or the reason (`credit`, `settlement`).
    pub by: String,
}

/// `overpayment.recorded.v1`: more was paid than was open; the rest is a credit on the debtor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverpaymentRecorded {
    pub payment_id: String,
    /// The amount paid beyond the open balance (positive).
    pub amount: Money,
    pub booked_on: NaiveDate,
}

/// The payment facts of a case stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PaymentEvent {
    Applied(PaymentApplied),
    Reversed(PaymentReversed),
    Settled(InvoiceSettled),
    Overpaid(OverpaymentRecorded),
}

impl PaymentEvent {
    /// The versioned event type, e.g. `payment.applied.v1`.
    pub fn event_type(&self) -> &'static str {
        match self {
            PaymentEvent::Applied(_) => "payment.applied.v1",
            PaymentEvent::Reversed(_) => "payment.reversed.v1",
            PaymentEvent::Settled(_) => "invoice.settled.v1",
            PaymentEvent::Overpaid(_) => "overpayment.recorded.v1",
        }
    }

    pub fn to_payload(&self) -> serde_json::Value {
        // Serialising plain data structs cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read a payment fact back; `Ok(None)` for types that are not payment facts.
    pub fn from_parts(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> std::result::Result<Option<PaymentEvent>, serde_json::Error> {
        use serde_json::from_value as v;
        let p = payload.clone();
        Ok(Some(match event_type {
            "payment.applied.v1" => PaymentEvent::Applied(v(p)?),
            "payment.reversed.v1" => PaymentEvent::Reversed(v(p)?),
            "invoice.settled.v1" => PaymentEvent::Settled(v(p)?),
            "overpayment.recorded.v1" => PaymentEvent::Overpaid(v(p)?),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_events_round_trip_through_type_and_payload() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let events = [
            PaymentEvent::Applied(PaymentApplied {
                payment_id: "e1:c1".into(),
                entry_id: "e1".into(),
                amount: Money::eur(5000),
                booked_on: d,
                rule: "rf_reference".into(),
                open_after: Money::eur(6900),
                discount: None,
            }),
            PaymentEvent::Reversed(PaymentReversed {
                payment_id: "e1:c1".into(),
                amount: Money::eur(5000),
                reversed_on: d,
                reason: "MD06".into(),
                return_fee: Some(Money::eur(300)),
                open_after: Money::eur(11900),
            }),
            PaymentEvent::Settled(InvoiceSettled {
                settled_on: d,
                by: "e2:c1".into(),
            }),
            PaymentEvent::Overpaid(OverpaymentRecorded {
                payment_id: "e3:c1".into(),
                amount: Money::eur(1),
                booked_on: d,
            }),
        ];
        for e in events {
            let back = PaymentEvent::from_parts(e.event_type(), &e.to_payload())
                .unwrap()
                .unwrap();
            assert_eq!(back, e);
        }
        assert!(
            PaymentEvent::from_parts("invoice.issued.v1", &serde_json::json!({}))
                .unwrap()
                .is_none()
        );
    }
}
