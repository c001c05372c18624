//! The parts of a letter: letterhead, recipient, references, claim lines, payment details,
//! notices, payment plan, interest method, endorsement.

use super::Language;
use chrono::NaiveDate;
use mahnwerk_domain::{Bic, Iban, Money, Personal, PostalAddress};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How statutory default interest was computed (§ 288 BGB): the rate of each interest line is
/// the base rate (§ 247) plus `margin_points`; periods are divided by the day count; each
/// period's interest is rounded half-up to the cent and the total is the sum of the periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterestMethod {
    /// 5 with a consumer, 9 otherwise.
    #[serde(with = "rust_decimal::serde::str")]
    pub margin_points: Decimal,
    pub day_count: DayCount,
}

/// Interest days per year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayCount {
    /// Actual days / 365.
    Act365,
    /// Actual days / days of the calendar year.
    ActAct,
}

/// How a letter by post is sent, printed in the Vermerkzone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endorsement {
    /// Einschreiben.
    Registered,
    /// Einschreiben mit Rückschein.
    RegisteredWithReturnReceipt,
}

impl Endorsement {
    pub fn text(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Endorsement::Registered, Language::De) => "Einschreiben",
            (Endorsement::RegisteredWithReturnReceipt, Language::De) => {
                "Einschreiben mit Rückschein"
            }
            (Endorsement::Registered, Language::En) => "Registered mail",
            (Endorsement::RegisteredWithReturnReceipt, Language::En) => {
                "Registered mail with return receipt"
            }
        }
    }
}

/// The creditor's letterhead and company details (white label: one per tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Letterhead {
    /// Company name as printed in the letterhead, e.g. `Muster Handels GmbH`.
    pub name: String,
    /// Return address line above the recipient (Rücksendeangabe), e.g.
    /// `Muster Handels GmbH · Hauptstr. 1 · 10115 Berlin`.
    pub sender_line: String,
    /// Postal address lines of the creditor, printed in the footer.
    #[serde(default)]
    pub address: Vec<String>,
    /// Logo printed top right.
    #[serde(default)]
    pub logo: Option<Logo>,
    /// Contact lines in the information block (phone, email, web), label and value.
    #[serde(default)]
    pub contact: Vec<LabelValue>,
    /// Footer lines: register court and number, managing directors, VAT id, …
    #[serde(default)]
    pub footer: Vec<String>,
    /// The creditor's bank, printed in the footer.
    #[serde(default)]
    pub bank: Option<BankDetails>,
    /// ISO 3166-1 alpha-2 country of the creditor (default `DE`); a recipient elsewhere gets the
    /// country name as the last address line.
    #[serde(default = "default_country")]
    pub country: String,
}

fn default_country() -> String {
    "DE".to_owned()
}

/// A label and a value, e.g. `Telefon` / `030 123456`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelValue {
    pub label: String,
    pub value: String,
}

/// The logo image, embedded in the model as base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logo {
    /// `png` or `svg`.
    pub format: LogoFormat,
    /// The image file, base64 (standard alphabet, padded).
    pub data_base64: String,
    /// Printed height in millimetres (default 15).
    #[serde(default)]
    pub height_mm: Option<u32>,
}

/// Image formats accepted for logos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoFormat {
    Png,
    Svg,
}

/// A bank account as printed in the footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankDetails {
    pub bank_name: String,
    pub iban: Iban,
    #[serde(default)]
    pub bic: Option<Bic>,
}

/// The recipient as printed in the window field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// Name of the person or company.
    pub name: Personal<String>,
    /// Further lines before the street, e.g. `z. Hd. Frau Erika Müller` or a department.
    #[serde(default)]
    pub extra_lines: Personal<Vec<String>>,
    /// Street, postal code, city, country.
    pub address: Personal<PostalAddress>,
}

/// References in the information block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// The debtor's customer number at the creditor.
    #[serde(default)]
    pub customer_number: Option<String>,
    /// The debtor's sign (Ihr Zeichen).
    #[serde(default)]
    pub your_sign: Option<String>,
    /// The creditor's sign (Unser Zeichen).
    #[serde(default)]
    pub our_sign: Option<String>,
    /// Mahnwerk's case reference.
    #[serde(default)]
    pub case_reference: Option<String>,
    /// The clerk named in the information block.
    #[serde(default)]
    pub contact_name: Option<String>,
}

/// One line of the claim table. Amounts are positive; a payment is subtracted from the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClaimLine {
    /// An open invoice (or its open remainder).
    Invoice {
        number: String,
        /// Invoice date.
        date: NaiveDate,
        /// When it was due.
        #[serde(default)]
        due_date: Option<NaiveDate>,
        /// Open amount.
        amount: Money,
    },
    /// A dunning fee (actual costs only, § 280 BGB).
    Fee {
        /// Wording override; default "Mahngebühr" / "Dunning fee".
        #[serde(default)]
        label: Option<String>,
        amount: Money,
    },
    /// Statutory default interest for one period (§ 288 BGB): first and last day inclusive.
    Interest {
        /// The invoice the interest is on.
        #[serde(default)]
        invoice: Option<String>,
        from: NaiveDate,
        to: NaiveDate,
        /// Interest days, `to - from + 1`.
        days: u32,
        /// Rate in percent per year, e.g. `10.27`.
        #[serde(with = "rust_decimal::serde::str")]
        rate_percent: Decimal,
        /// The principal the interest runs on.
        principal: Money,
        /// The interest of the period, rounded half-up to the cent.
        amount: Money,
    },
    /// The € 40 lump sum for businesses (§ 288 Abs. 5 BGB), per invoice.
    LumpSum {
        #[serde(default)]
        invoice: Option<String>,
        amount: Money,
    },
    /// A payment already received, subtracted from the total.
    Payment { date: NaiveDate, amount: Money },
}

impl ClaimLine {
    /// The signed contribution to the total.
    pub fn signed_amount(&self) -> Money {
        match self {
            ClaimLine::Invoice { amount, .. }
            | ClaimLine::Fee { amount, .. }
            | ClaimLine::Interest { amount, .. }
            | ClaimLine::LumpSum { amount, .. } => *amount,
            ClaimLine::Payment { amount, .. } => Money::new(-amount.minor, amount.currency),
        }
    }
}

/// Where and how to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentDetails {
    /// Account holder; the letterhead name when absent.
    #[serde(default)]
    pub recipient: Option<String>,
    pub iban: Iban,
    #[serde(default)]
    pub bic: Option<Bic>,
    /// ISO 11649 RF creditor reference for this case (printed and in the QR code).
    pub reference: String,
    /// Amount to pay; the claim total when absent (a payment plan asks for the first instalment).
    #[serde(default)]
    pub amount: Option<Money>,
}

/// The standard notices a letter can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notices {
    /// The § 286 Abs. 3 BGB notice for consumers: default after 30 days.
    #[serde(default)]
    pub consumer_default_notice: bool,
    /// "Please disregard this letter if you have already paid."
    #[serde(default)]
    pub disregard_if_paid: bool,
    /// Offer to talk or to agree a payment plan.
    #[serde(default)]
    pub offer_payment_plan: bool,
}

/// An agreed payment plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentPlan {
    /// Date the plan was agreed.
    pub agreed_on: NaiveDate,
    pub instalments: Vec<Instalment>,
}

/// One instalment of a payment plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instalment {
    pub due: NaiveDate,
    pub amount: Money,
}

/// The letter a creditor copy refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyOf {
    /// The debtor the original went to.
    pub debtor_name: Personal<String>,
    /// Title of the original letter.
    pub letter_title: String,
    /// When the original was sent.
    pub sent_on: NaiveDate,
}
