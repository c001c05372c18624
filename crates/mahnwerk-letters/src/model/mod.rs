//! The letter model: everything a letter shows, as data. Serde (JSON) is the exchange format of
//! the CLI and the letters service; every field is documented because tenants' integrations
//! write it.
//!
//! The model carries facts (who, what, how much, until when). The wording comes from the
//! templates ([`crate::templates`]), the layout from the typesetting template
//! ([`crate::pdf`]). Amounts are [`Money`] in minor units; the claim total is computed here and
//! checked against the optional `total` the caller states.
//!
//! # Layout
//! - [`kinds`]: letter kind, tone, language, form.
//! - [`parts`]: letterhead, recipient, claim lines, payment details and the other parts.
//! - [`check`]: parsing and validation, errors naming the field.
//! - [`samples`]: sample letters.

mod check;
mod kinds;
mod parts;
mod samples;

pub use kinds::{Form, Language, LetterKind, Tone};
pub use parts::*;
pub use samples::{full_sample, sample, sample_for};

use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// A complete letter: the input of [`crate::LetterRenderer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LetterModel {
    /// Which letter; selects the template `{kind}.{language}.j2`.
    pub kind: LetterKind,
    /// Wording: friendly, neutral or firm.
    pub tone: Tone,
    /// Language of texts, labels, dates and amounts.
    pub language: Language,
    /// DIN 5008 Form A or B (default B).
    #[serde(default)]
    pub form: Form,
    /// The letter date (also the PDF's creation date, so output is reproducible).
    pub date: NaiveDate,
    /// The creditor's letterhead: the letter looks like the creditor wrote it.
    pub letterhead: Letterhead,
    /// Who receives the letter (printed in the window of the envelope).
    pub recipient: Recipient,
    /// The references shown in the information block.
    #[serde(default)]
    pub references: References,
    /// Subject line; the template's `title` block when absent.
    #[serde(default)]
    pub title: Option<String>,
    /// Salutation such as `Sehr geehrte Frau Müller,`; the template's generic one when absent.
    #[serde(default)]
    pub salutation: Option<String>,
    /// The claim table: invoices, fees, interest, lump sums, payments received.
    pub claims: Vec<ClaimLine>,
    /// The total the caller computed; when given it must equal the sum of `claims`.
    #[serde(default)]
    pub total: Option<Money>,
    /// Pay by this date.
    #[serde(default)]
    pub deadline: Option<NaiveDate>,
    /// Where to pay; also fills the GiroCode. Without it the letter has no QR code.
    #[serde(default)]
    pub payment: Option<PaymentDetails>,
    /// Closing such as `Mit freundlichen Grüßen`; the template's when absent.
    #[serde(default)]
    pub closing: Option<String>,
    /// Name (and role) printed under the closing, e.g. `Erika Muster, Buchhaltung`.
    #[serde(default)]
    pub signature: Option<String>,
    /// Which standard notices the letter carries.
    #[serde(default)]
    pub notices: Notices,
    /// The agreed instalments, for `payment_plan_confirmation`.
    #[serde(default)]
    pub payment_plan: Option<PaymentPlan>,
    /// What was sent to the debtor, for `creditor_copy`.
    #[serde(default)]
    pub copy_of: Option<CopyOf>,
    /// How the interest lines were computed; printed with the letter when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest_method: Option<InterestMethod>,
    /// Postal endorsement printed in the DIN 5008 Vermerkzone above the return address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<Endorsement>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_domain::{Money, Personal};

    #[test]
    fn sample_is_valid_and_totals_add_up() {
        let total = sample().validate().expect("sample valid");
        assert_eq!(total, Money::eur(171_030));
        full_sample().validate().expect("full sample valid");
        for kind in LetterKind::ALL {
            sample_for(kind).validate().expect("per-kind sample valid");
        }
    }

    #[test]
    fn stated_total_must_match_lines() {
        let mut m = sample();
        m.total = Some(Money::eur(1));
        let err = m.validate().expect_err("mismatch");
        assert!(err.to_string().starts_with("total:"), "{err}");
    }

    #[test]
    fn interest_days_are_checked() {
        let mut m = sample();
        if let ClaimLine::Interest { days, .. } = &mut m.claims[2] {
            *days = 45;
        }
        let err = m.validate().expect_err("days");
        assert!(err.to_string().contains("claims[2].days"), "{err}");
    }

    #[test]
    fn mixed_currencies_are_rejected() {
        let mut m = sample();
        m.total = None;
        m.claims.push(ClaimLine::Fee {
            label: None,
            amount: Money::new(100, "USD".parse().expect("usd")),
        });
        assert!(m.validate().is_err());
    }

    #[test]
    fn json_round_trip_and_unknown_fields_rejected() {
        let m = sample();
        let json = serde_json::to_string(&m).expect("json");
        let back: LetterModel = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, m);
        let mut v: serde_json::Value = serde_json::from_str(&json).expect("value");
        v["colour"] = serde_json::Value::from("red");
        assert!(serde_json::from_value::<LetterModel>(v).is_err());
    }

    #[test]
    fn foreign_recipient_gets_country_line() {
        let mut m = sample();
        let mut addr = m.recipient.address.expose().clone();
        addr.country = "AT".into();
        m.recipient.address = Personal::new(addr);
        assert_eq!(
            m.recipient_lines().last().map(String::as_str),
            Some("ÖSTERREICH")
        );
    }
}
