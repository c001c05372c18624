//! The claim an e-invoice makes: [`EInvoice::to_domain`].
//!
//! - the totals add up (BR-CO-10/13/15/16: lines → BT-106 → BT-109 → BT-112 → BT-115) exactly
//!   in minor units: the standard's one allowance for rounding is BT-114, which is part of the
//!   sum; else the term at fault is named;
//! - MINIMUM and BASIC-WL are refused (not invoices under German VAT law);
//! - BT-3: 380 is an invoice, 384 a corrected invoice that replaces the one in BT-25, 381 a
//!   credit note crediting the invoice in BT-25; any other code is refused with the code named;
//! - the claim is BT-115 (after prepaid BT-113 and rounding BT-114); zero or a credit balance
//!   (negative BT-115) is no claim;
//! - the buyer is a business on the first [`BusinessEvidence`](super::BusinessEvidence) found,
//!   else the tenant's setting decides; the due date is BT-9, else the net term of BT-20, else
//!   the tenant's default term; the language is the buyer country's, else the currency's; the
//!   creditor account is the first valid payee IBAN, else the tenant's default account; each
//!   rule that decided is recorded in [`SourceDocument`];
//! - a buyer address of only the country (BT-55, the one address term EN 16931 requires; a
//!   Kleinbetragsrechnung under § 33 UStDV needs no recipient address) is a claim all the
//!   same, recorded as `postal_address_incomplete` (no letter by post until it is added).

use super::EInvoice;
use super::terms::discount_amount;
use chrono::Days;
use mahnwerk_domain::{
    BankAccount, CashDiscountTerm, Debtor, DebtorKind, FieldErrors, Iban, Invoice, InvoiceNumber,
    Money, SourceDocument,
};

/// The tenant's settings for what a document does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPolicy {
    /// The kind of a buyer the document shows no business evidence for.
    pub unknown_buyer: DebtorKind,
    /// Days after the issue date when neither BT-9 nor the payment terms give a due date.
    pub default_term_days: u32,
    /// The tenant's account for documents that name no valid payee IBAN (a direct debit, a
    /// masked IBAN); without it such a document is refused.
    pub default_account: Option<BankAccount>,
}

impl Default for ImportPolicy {
    /// Unknown buyers are consumers (the protective reading), 14 days.
    fn default() -> Self {
        Self {
            unknown_buyer: DebtorKind::Consumer,
            default_term_days: 14,
            default_account: None,
        }
    }
}

/// The original file, as the caller stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalFile {
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
}

/// What importing an e-invoice does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// 380, or 384 replacing the invoice `replaces`: a case for `invoice`.
    Invoice {
        invoice: Invoice,
        replaces: Option<InvoiceNumber>,
    },
    /// 381: credit `amount` on `invoice` under the credit note's number.
    Credit {
        credit_note_number: String,
        invoice: InvoiceNumber,
        amount: Money,
    },
    /// Nothing payable (BT-115 zero, or negative: a credit balance to the debtor).
    NoClaim { reason: String },
}

impl EInvoice {
    /// Collected by direct debit: payment means 59 (SEPA direct debit) or 49 (direct debit) in
    /// BT-81 (UNTDID 4461), or a mandate reference (BT-89) under any code.
    fn direct_debit(&self) -> Option<mahnwerk_domain::DirectDebit> {
        let code = self.payment_means_code.as_deref().map(str::trim);
        let debit = matches!(code, Some("59" | "49")) || self.mandate_id.is_some();
        debit.then(|| mahnwerk_domain::DirectDebit {
            mandate_id: self.mandate_id.clone(),
            creditor_id: self.creditor_id.clone(),
        })
    }
}

/// Allowed difference of two totals the standard requires equal: none (rounding is BT-114).
const ROUNDING: i64 = 0;

/// BCP 47 language of a country's letters (ISO 3166-1 alpha-2).
fn country_language(country: &str) -> Option<&'static str> {
    Some(match country {
        "DE" | "AT" | "CH" | "LI" => "de",
        "FR" | "MC" | "LU" => "fr",
        "BE" | "NL" => "nl",
        "IT" | "SM" | "VA" => "it",
        "ES" => "es",
        "PT" => "pt",
        "PL" => "pl",
        "CZ" => "cs",
        "SK" => "sk",
        "DK" => "da",
        "SE" => "sv",
        "NO" => "nb",
        "FI" => "fi",
        "HU" => "hu",
        "GB" | "IE" | "US" | "CA" | "AU" | "NZ" | "MT" => "en",
        _ => return None,
    })
}

/// BCP 47 language of a currency's country (EUR says nothing).
fn currency_language(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "CHF" => "de",
        "GBP" | "USD" | "CAD" | "AUD" | "NZD" => "en",
        "NOK" => "nb",
        "SEK" => "sv",
        "DKK" => "da",
        "PLN" => "pl",
        "CZK" => "cs",
        "HUF" => "hu",
        _ => return None,
    })
}

impl EInvoice {
    /// The totals rules, each naming the term at fault.
    pub fn check_totals(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let money = |m: i64| Money::new(m, self.currency).to_string();
        let mut rule = |field: &str, got: i64, want: i64, how: &str| {
            if (got - want).abs() > ROUNDING {
                errs.push(
                    field,
                    format!("is {} but {how} gives {}", money(got), money(want)),
                );
            }
        };
        if let (Some(lines), Some(total)) = (self.line_net_sum, self.line_total_amount) {
            rule(
                "line_total_amount (BT-106)",
                total,
                lines,
                "the sum of the line net amounts (BT-131)",
            );
        }
        if let Some(total) = self.line_total_amount {
            let want = total - self.allowance_total_amount.unwrap_or(0)
                + self.charge_total_amount.unwrap_or(0);
            rule(
                "net_amount (BT-109)",
                self.net_amount,
                want,
                "BT-106 - BT-107 + BT-108",
            );
        }
        rule(
            "gross_amount (BT-112)",
            self.gross_amount,
            self.net_amount + self.tax_amount,
            "BT-109 + BT-110",
        );
        rule(
            "payable_amount (BT-115)",
            self.payable_amount,
            self.gross_amount - self.prepaid_amount + self.rounding_amount.unwrap_or(0),
            "BT-112 - BT-113 + BT-114",
        );
        errs
    }

    /// What this document claims, under the tenant's `policy`; `file` is the stored original.
    /// Errors name the term at fault (`type_code (BT-3)`, `gross_amount (BT-112)`…).
    pub fn to_domain(
        &self,
        policy: &ImportPolicy,
        file: &OriginalFile,
    ) -> std::result::Result<Claim, FieldErrors> {
        let mut errs = FieldErrors::default();
        if !self.is_invoice {
            errs.push(
                "profile (BT-24)",
                "MINIMUM and BASIC-WL are not invoices under German VAT law",
            );
            return Err(errs);
        }
        errs.0.extend(self.check_totals().0);
        let number: Option<InvoiceNumber> =
            errs.check("invoice_number (BT-1)", self.invoice_number.parse());
        let preceding = self.preceding_invoices.first();
        let reference = match (self.type_code.as_str(), preceding) {
            ("380", _) => None,
            ("381" | "384", Some(p)) => errs.check(
                "preceding_invoices (BT-25)",
                p.parse::<InvoiceNumber>().map(Some),
            ),
            ("381", None) => {
                errs.push(
                    "preceding_invoices (BT-25)",
                    "a credit note (381) must name the invoice it credits",
                );
                None
            }
            ("384", None) => {
                errs.push(
                    "preceding_invoices (BT-25)",
                    "a corrected invoice (384) must name the invoice it replaces",
                );
                None
            }
            (other, _) => {
                errs.push(
                    "type_code (BT-3)",
                    format!(
                        "type code {other} is not imported (380 invoice, 381 credit note, 384 corrected invoice)"
                    ),
                );
                None
            }
        };
        let source = |debtor_kind_rule: &str,
                      due_date_rule: &str,
                      language_rule: &str,
                      account_rule: &str| SourceDocument {
            sha256: file.sha256.clone(),
            media_type: file.media_type.clone(),
            size: file.size,
            syntax: self.syntax.as_str().to_owned(),
            specification: self.specification.clone(),
            type_code: self.type_code.clone(),
            replaces: reference
                .as_ref()
                .and_then(Option::as_ref)
                .filter(|_| self.type_code == "384")
                .map(ToString::to_string),
            debtor_kind_rule: debtor_kind_rule.to_owned(),
            due_date_rule: due_date_rule.to_owned(),
            language_rule: language_rule.to_owned(),
            creditor_account_rule: account_rule.to_owned(),
            postal_address_incomplete: !self.debtor.address.is_complete(),
        };
        if self.type_code == "381" {
            if self.payable_amount <= 0 {
                errs.push(
                    "payable_amount (BT-115)",
                    "a credit note must credit an amount greater than zero",
                );
            }
            let (Some(number), Some(Some(invoice))) = (number, reference) else {
                return Err(errs);
            };
            return errs.into_result().map(|()| Claim::Credit {
                credit_note_number: number.to_string(),
                invoice,
                amount: Money::new(self.payable_amount, self.currency),
            });
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        if self.payable_amount <= 0 {
            let amount = Money::new(self.payable_amount.abs(), self.currency);
            return Ok(Claim::NoClaim {
                reason: if self.payable_amount == 0 {
                    "nothing to pay: the amount due (BT-115) is zero".into()
                } else {
                    format!(
                        "a credit balance of {amount} to the debtor: the amount due (BT-115) is negative"
                    )
                },
            });
        }
        let (due_date, due_rule) = match (self.due_date, self.due_date_source) {
            (Some(d), Some(s)) => (Some(d), s.as_str()),
            _ => (
                self.issue_date
                    .checked_add_days(Days::new(u64::from(policy.default_term_days))),
                "tenant_default",
            ),
        };
        let (kind, kind_rule) = match self.debtor.business_evidence {
            Some(e) => (DebtorKind::Business, e.as_str()),
            None => (policy.unknown_buyer, "tenant_default"),
        };
        let (language, language_rule) =
            match country_language(&self.debtor.address.country.to_ascii_uppercase()) {
                Some(l) => (l, "buyer_country"),
                None => match currency_language(self.currency.as_str()) {
                    Some(l) => (l, "currency"),
                    None => ("de", "default"),
                },
            };
        let (account, account_rule) = match (&self.creditor_account, &policy.default_account) {
            (Some(a), _) => (
                errs.check("creditor_account.iban (BT-84)", a.iban.parse::<Iban>())
                    .map(|iban| BankAccount {
                        iban,
                        bic: a.bic.as_deref().and_then(|b| b.parse().ok()),
                        holder: a.holder.clone().or_else(|| self.seller_name.clone()),
                    }),
                "document",
            ),
            (None, Some(tenant)) => (Some(tenant.clone()), "tenant_default"),
            (None, None) => {
                errs.push(
                    "creditor_account (BT-84)",
                    "no valid payee IBAN and no default account of the tenant",
                );
                (None, "")
            }
        };
        let d = &self.debtor;
        let debtor = Debtor {
            name: d.name.clone().into(),
            kind,
            address: d.address.clone().into(),
            email: d.email.clone().map(Into::into),
            language: language.to_owned(),
            customer_number: d.customer_number.clone(),
            vat_id: d.vat_id.clone(),
        };
        let mut cash_discounts = Vec::new();
        for (i, c) in self.cash_discounts.iter().enumerate() {
            let until = self
                .issue_date
                .checked_add_days(Days::new(u64::from(c.days)));
            let base = c.base_amount.unwrap_or(self.payable_amount);
            match (until, discount_amount(base, &c.percent)) {
                (Some(until), _) if due_date.is_some_and(|d| until > d) => errs.push(
                    format!("cash_discounts[{i}] (BT-20)"),
                    format!("the discount period ends {until}, after the due date"),
                ),
                // Rounds to nothing: no discount to take.
                (Some(_), Some(0)) => {}
                (Some(until), Some(discount)) => cash_discounts.push(CashDiscountTerm {
                    until,
                    percent: c.percent.clone(),
                    discount,
                }),
                _ => errs.push(
                    format!("cash_discounts[{i}] (BT-20)"),
                    "period or percentage out of range",
                ),
            }
        }
        let (Some(number), Some(due_date), Some(creditor_account)) = (number, due_date, account)
        else {
            return Err(errs);
        };
        let inv = Invoice {
            number,
            issue_date: self.issue_date,
            due_date,
            currency: self.currency,
            net: self.net_amount,
            tax: self.tax_amount,
            gross: self.gross_amount,
            debtor,
            payment_reference: self.payment_reference.clone(),
            creditor_account,
            default_notice: self.default_notice,
            prepaid: self.prepaid_amount,
            rounding: self.rounding_amount.unwrap_or(0),
            cash_discounts,
            source: Some(source(kind_rule, due_rule, language_rule, account_rule)),
            direct_debit: self.direct_debit(),
            due_date_by_calendar: false,
        };
        errs.0.extend(inv.check().0);
        errs.into_result().map(|()| Claim::Invoice {
            invoice: inv,
            replaces: reference.flatten(),
        })
    }
}
