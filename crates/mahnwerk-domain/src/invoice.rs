//! The invoice model shared by the ingest API, the e-invoice parsers and the dunning core.

use crate::bank::{Bic, Iban};
use crate::debtor::{Debtor, check_text};
use crate::error::FieldErrors;
use crate::ids::InvoiceNumber;
use crate::money::{Currency, Money};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The creditor's account the debtor pays to (BT-84/BT-86).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    pub iban: Iban,
    pub bic: Option<Bic>,
    /// Account holder as printed on the letter (defaults to the tenant's name).
    pub holder: Option<String>,
}

/// One invoice as issued by the tenant. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub number: InvoiceNumber,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub currency: Currency,
    pub net: i64,
    pub tax: i64,
    pub gross: i64,
    pub debtor: Debtor,
    /// The payment reference the debtor should quote (e.g. an ISO 11649 RF reference).
    pub payment_reference: Option<String>,
    pub creditor_account: BankAccount,
    /// Whether the invoice pointed out that default starts 30 days after due date and receipt
    /// (§ 286 Abs. 3 BGB); needed for consumers.
    #[serde(default)]
    pub default_notice: bool,
    /// Already paid before the invoice was issued (BT-113), in minor units; the claim is
    /// [`Invoice::amount_due`]. Absent in the event when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prepaid: i64,
    /// Rounding added to the amount due (BT-114), in minor units, less than one currency unit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rounding: i64,
    /// Cash-discount (Skonto) terms, earliest first. Absent in the event when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cash_discounts: Vec<CashDiscountTerm>,
    /// The original document this invoice was read from (an imported e-invoice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDocument>,
    /// The creditor collects this invoice by SEPA direct debit (payment means 59, BT-81, with a
    /// mandate, BT-89): nobody dunns it unless the debit comes back. Absent in the event when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_debit: Option<DirectDebit>,
    /// The due date was agreed by the calendar (§ 286 Abs. 2 Nr. 1 BGB: "zahlbar bis 15.03."):
    /// the debtor is in default from the day after it without a reminder. Absent when not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub due_date_by_calendar: bool,
}

/// A SEPA direct debit the creditor collects the invoice with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectDebit {
    /// The mandate reference (BT-89), when the invoice names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate_id: Option<String>,
    /// The creditor's SEPA creditor identifier (BT-90), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_id: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A cash-discount term: paying the amount due minus `discount` until `until` (inclusive)
/// settles the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashDiscountTerm {
    /// Last day a payment earns the discount.
    pub until: NaiveDate,
    /// The percentage as a decimal string (`"2.00"`), for letters and audits.
    pub percent: String,
    /// The discount in minor units of the invoice currency.
    pub discount: i64,
}

/// Where an imported invoice came from: the original file in the document store and the rules
/// that decided what the file did not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDocument {
    /// Hex SHA-256 of the original file: its key in the document store.
    pub sha256: String,
    /// `application/xml` or `application/pdf`.
    pub media_type: String,
    /// Size of the original file in bytes.
    pub size: u64,
    /// `ubl` or `cii`.
    pub syntax: String,
    /// BT-24 as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specification: Option<String>,
    /// BT-3: `380` or `384`.
    pub type_code: String,
    /// For a 384 corrected invoice: the invoice it replaces (BT-25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Which rule classified the debtor: `vat_id`, `tax_registration`, `legal_registration`,
    /// `routing_id` (business) or `tenant_default`.
    pub debtor_kind_rule: String,
    /// Where the due date came from: `due_date` (BT-9), `payment_terms_date`,
    /// `payment_terms_days` (BT-20) or `tenant_default`.
    pub due_date_rule: String,
    /// Where the debtor's language came from: `buyer_country`, `currency` or `default`.
    pub language_rule: String,
    /// Where the creditor account came from: `document` (BT-84) or `tenant_default`.
    pub creditor_account_rule: String,
    /// The document gives the buyer's country (BT-55, the only address term EN 16931 makes
    /// mandatory) but no complete postal address (a Kleinbetragsrechnung, § 33 UStDV, needs
    /// none). The invoice is a claim all the same; no letter goes by post until the creditor
    /// adds the address (`invoice.debtor_address_updated.v1`). Absent in the event when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub postal_address_incomplete: bool,
}

/// Largest amount accepted on an invoice: 999,999,999,999.99 in a two-digit currency.
pub const MAX_AMOUNT_MINOR: i64 = 99_999_999_999_999;

impl Invoice {
    pub fn gross_money(&self) -> Money {
        Money::new(self.gross, self.currency)
    }

    /// The claim: gross minus prepaid plus rounding (BT-115 of an e-invoice).
    pub fn amount_due(&self) -> Money {
        Money::new(self.gross - self.prepaid + self.rounding, self.currency)
    }

    /// Cross-field rules; errors name the field as the gRPC message does.
    pub fn check(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        for (field, value) in [("net", self.net), ("tax", self.tax), ("gross", self.gross)] {
            if value < 0 {
                errs.push(field, "must not be negative");
            } else if value > MAX_AMOUNT_MINOR {
                errs.push(
                    field,
                    format!("must be at most {MAX_AMOUNT_MINOR} minor units"),
                );
            }
        }
        if errs.is_empty() {
            if self.gross == 0 {
                errs.push("gross", "must be greater than zero");
            } else if self.net + self.tax != self.gross {
                errs.push("gross", "must equal net + tax");
            }
        }
        if self.due_date < self.issue_date {
            errs.push("due_date", "must not be before issue_date");
        }
        let unit = 10i64.pow(u32::from(self.currency.minor_digits()));
        if self.prepaid < 0 {
            errs.push("prepaid", "must not be negative");
        } else if self.rounding.abs() >= unit.max(1) {
            errs.push("rounding", "must be less than one currency unit");
        } else if errs.is_empty() && self.amount_due().minor <= 0 {
            errs.push(
                "prepaid",
                "leaves nothing to pay (gross - prepaid + rounding must be greater than zero)",
            );
        }
        let mut last = None;
        for (i, d) in self.cash_discounts.iter().enumerate() {
            let field = format!("cash_discounts[{i}]");
            if d.until < self.issue_date || d.until > self.due_date {
                errs.push(
                    format!("{field}.until"),
                    "must be between issue_date and due_date",
                );
            } else if last.is_some_and(|l| d.until < l) {
                errs.push(
                    format!("{field}.until"),
                    "must not be before the previous term",
                );
            }
            last = Some(d.until);
            if d.discount <= 0 || d.discount >= self.gross.max(1) {
                errs.push(
                    format!("{field}.discount"),
                    "must be greater than zero and less than gross",
                );
            }
            if d.percent.is_empty()
                || d.percent.len() > 12
                || !d.percent.chars().all(|c| c.is_ascii_digit() || c == '.')
            {
                errs.push(
                    format!("{field}.percent"),
                    "must be a decimal number such as 2.00",
                );
            }
        }
        if let Some(r) = &self.payment_reference {
            if r.chars().count() > 140 {
                errs.push("payment_reference", "must be at most 140 characters");
            } else if r.chars().any(char::is_control) {
                errs.push("payment_reference", "must not contain control characters");
            }
        }
        if let Some(h) = &self.creditor_account.holder {
            check_text(&mut errs, "creditor_account.holder", h, false);
        }
        if let Some(d) = &self.direct_debit {
            for (field, value) in [
                ("direct_debit.mandate_id", &d.mandate_id),
                ("direct_debit.creditor_id", &d.creditor_id),
            ] {
                match value {
                    Some(v) if v.chars().count() > 35 => {
                        errs.push(field, "must be at most 35 characters")
                    }
                    Some(v) if v.chars().any(char::is_control) => {
                        errs.push(field, "must not contain control characters")
                    }
                    _ => {}
                }
            }
        }
        let incomplete_allowed = self
            .source
            .as_ref()
            .is_some_and(|s| s.postal_address_incomplete);
        for e in self.debtor.check_with(!incomplete_allowed).0 {
            errs.0.push(e.under("debtor"));
        }
        errs
    }

    /// The debtor's postal address can be printed in a letter window: street, postal code and
    /// city (what [`Debtor::check`] requires of every address it accepts).
    pub fn has_postal_address(&self) -> bool {
        self.debtor.address.expose().is_complete()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::debtor::{DebtorKind, PostalAddress};

    pub fn invoice(number: &str) -> Invoice {
        Invoice {
            number: number.parse().unwrap(),
            issue_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2026, 3, 15).unwrap(),
            currency: Currency::EUR,
            net: 10000,
            tax: 1900,
            gross: 11900,
            debtor: Debtor {
                name: "Erika Mustermann".to_owned().into(),
                kind: DebtorKind::Consumer,
                address: PostalAddress {
                    street: vec!["Heidestraße 17".into()],
                    postal_code: "51147".into(),
                    city: "Köln".into(),
                    country: "DE".into(),
                    region: None,
                }
                .into(),
                email: Some("erika@example.org".to_owned().into()),
                language: "de".into(),
                customer_number: Some("K-1".into()),
                vat_id: None,
            },
            payment_reference: Some("RF18539007547034".into()),
            creditor_account: BankAccount {
                iban: "DE89370400440532013000".parse().unwrap(),
                bic: Some("COBADEFFXXX".parse().unwrap()),
                holder: None,
            },
            default_notice: false,
            prepaid: 0,
            rounding: 0,
            cash_discounts: vec![],
            source: None,
            direct_debit: None,
            due_date_by_calendar: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::invoice;

    #[test]
    fn a_valid_invoice_has_no_errors() {
        assert!(invoice("1").check().is_empty());
    }

    #[test]
    fn each_rule_names_its_field() {
        let fields = |inv: &super::Invoice| -> Vec<String> {
            inv.check().0.into_iter().map(|e| e.field).collect()
        };
        let mut i = invoice("1");
        i.net = -1;
        assert_eq!(fields(&i), ["net"]);
        let mut i = invoice("1");
        i.gross = 1;
        assert_eq!(fields(&i), ["gross"]);
        let mut i = invoice("1");
        i.due_date = i.issue_date.pred_opt().unwrap();
        assert_eq!(fields(&i), ["due_date"]);
        let mut i = invoice("1");
        i.tax = super::MAX_AMOUNT_MINOR + 1;
        assert_eq!(fields(&i), ["tax"]);
        let mut i = invoice("1");
        i.debtor.address = crate::PostalAddress::default().into();
        assert_eq!(
            fields(&i),
            [
                "debtor.address.street",
                "debtor.address.postal_code",
                "debtor.address.city",
                "debtor.address.country"
            ]
        );
        let mut i = invoice("1");
        i.debtor.name = "x".repeat(201).into();
        assert_eq!(fields(&i), ["debtor.name"]);
    }

    /// Regression (issue 10): CR/LF passed in most text fields, NUL in the payment reference,
    /// and any two capitals were a country, any letters a language.
    #[test]
    fn control_characters_and_unknown_codes_are_refused_with_their_field() {
        let fields = |inv: &super::Invoice| -> Vec<String> {
            inv.check().0.into_iter().map(|e| e.field).collect()
        };
        let mut i = invoice("1");
        i.payment_reference = Some("RF18\u{0}539".into());
        assert_eq!(fields(&i), ["payment_reference"]);
        let mut i = invoice("1");
        i.debtor.name = "Erika\nMustermann".to_owned().into();
        assert_eq!(fields(&i), ["debtor.name"]);
        let mut i = invoice("1");
        i.debtor.customer_number = Some("K-1\r".into());
        assert_eq!(fields(&i), ["debtor.customer_number"]);
        let mut i = invoice("1");
        i.debtor.language = "xx".into();
        assert_eq!(fields(&i), ["debtor.language"]);
        let mut i = invoice("1");
        i.debtor.language = "de-AT".into();
        assert!(fields(&i).is_empty());
        let mut i = invoice("1");
        let mut address = i.debtor.address.expose().clone();
        address.country = "XX".into();
        i.debtor.address = address.into();
        assert_eq!(fields(&i), ["debtor.address.country"]);
    }
}
