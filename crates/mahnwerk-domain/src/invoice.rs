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
}

/// Largest amount accepted on an invoice: 999,999,999,999.99 in a two-digit currency.
pub const MAX_AMOUNT_MINOR: i64 = 99_999_999_999_999;

impl Invoice {
    pub fn gross_money(&self) -> Money {
        Money::new(self.gross, self.currency)
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
        for e in self.debtor.check().0 {
            errs.0.push(e.under("debtor"));
        }
        errs
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
