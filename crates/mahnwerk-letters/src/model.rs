//! The letter model: everything a letter shows, as data. Serde (JSON) is the exchange format of
//! the CLI and the letters service; every field is documented because tenants' integrations
//! write it.
//!
//! The model carries facts (who, what, how much, until when). The wording comes from the
//! templates ([`crate::templates`]), the layout from the typesetting template
//! ([`crate::pdf`]). Amounts are [`Money`] in minor units; the claim total is computed here and
//! checked against the optional `total` the caller states.

use crate::error::{Error, Result};
use chrono::NaiveDate;
use mahnwerk_domain::{Bic, Currency, Iban, Money, Personal, PostalAddress};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which letter this is; selects the default template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterKind {
    /// Friendly payment reminder (Zahlungserinnerung), usually the step that causes default.
    Reminder,
    /// First dunning notice (1. Mahnung).
    FirstNotice,
    /// Last dunning notice before handover to collection (Letzte Mahnung).
    LastNotice,
    /// One notice for several overdue invoices of the same debtor (Sammelmahnung).
    ConsolidatedNotice,
    /// Cover letter to the creditor with a copy of the letter sent to the debtor.
    CreditorCopy,
    /// Confirmation of an agreed payment plan (Ratenzahlungsvereinbarung).
    PaymentPlanConfirmation,
}

impl LetterKind {
    /// Every kind, in the order of a dunning run.
    pub const ALL: [LetterKind; 6] = [
        LetterKind::Reminder,
        LetterKind::FirstNotice,
        LetterKind::LastNotice,
        LetterKind::ConsolidatedNotice,
        LetterKind::CreditorCopy,
        LetterKind::PaymentPlanConfirmation,
    ];

    /// The snake_case name used in template file names (`first_notice.de.j2`) and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterKind::Reminder => "reminder",
            LetterKind::FirstNotice => "first_notice",
            LetterKind::LastNotice => "last_notice",
            LetterKind::ConsolidatedNotice => "consolidated_notice",
            LetterKind::CreditorCopy => "creditor_copy",
            LetterKind::PaymentPlanConfirmation => "payment_plan_confirmation",
        }
    }

    /// Parse the snake_case name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The tone of the wording; every default template has all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Friendly,
    Neutral,
    Firm,
}

impl Tone {
    pub const ALL: [Tone; 3] = [Tone::Friendly, Tone::Neutral, Tone::Firm];

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Friendly => "friendly",
            Tone::Neutral => "neutral",
            Tone::Firm => "firm",
        }
    }
}

/// Language of the letter. German and English have default templates and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    De,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::De, Language::En];

    /// ISO 639-1 code, as in template file names (`reminder.en.j2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == code)
    }
}

/// DIN 5008 layout: where the letterhead ends and the address field starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Form A: letterhead 27 mm, address field 27–72 mm from the top, fold marks at 87/192 mm.
    FormA,
    /// Form B (the common one): letterhead 45 mm, address field 45–90 mm, fold marks at 105/210 mm.
    #[default]
    FormB,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::FormA => "form_a",
            Form::FormB => "form_b",
        }
    }

    /// Top of the address field in millimetres from the top edge of the page.
    pub fn address_field_top_mm(self) -> u32 {
        match self {
            Form::FormA => 27,
            Form::FormB => 45,
        }
    }
}

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

/// Longest free text accepted in a single-line field (name, title, line of an address).
const MAX_LINE: usize = 200;
/// Characters of an address line that fit the 75 mm text width of the window at 10 pt without
/// wrapping (conservative: Libertinus Serif averages ~4.7 pt per character; ~50 wrap).
const ADDRESS_LINE_CHARS: usize = 42;
/// Most claim lines per letter; the table breaks across pages well before that.
const MAX_CLAIMS: usize = 500;

impl LetterModel {
    /// Parse the model's JSON; an error names the field (`payment.iban: invalid IBAN: …`).
    pub fn from_json(json: &str) -> Result<LetterModel> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            Error::invalid(
                if field == "." {
                    "model".to_owned()
                } else {
                    field
                },
                format!(
                    "{} (line {}, column {})",
                    strip_position(&inner.to_string()),
                    inner.line(),
                    inner.column()
                ),
            )
        })
    }

    /// The sum of the claim table in the letter's currency. Errors when the table is empty, mixes
    /// currencies or overflows.
    pub fn computed_total(&self) -> Result<Money> {
        let first = self
            .claims
            .first()
            .ok_or_else(|| Error::invalid("claims", "the claim table is empty"))?;
        let currency: Currency = first.signed_amount().currency;
        let mut total = Money::zero(currency);
        for (i, line) in self.claims.iter().enumerate() {
            total = total
                .checked_add(line.signed_amount())
                .map_err(|e| Error::invalid(format!("claims[{i}].amount"), e.to_string()))?;
        }
        Ok(total)
    }

    /// Check the model before rendering; every error names the field.
    pub fn validate(&self) -> Result<Money> {
        line_field("letterhead.name", &self.letterhead.name, true)?;
        line_field("letterhead.sender_line", &self.letterhead.sender_line, true)?;
        line_field("recipient.name", self.recipient.name.expose(), true)?;
        for (i, l) in self.recipient.extra_lines.expose().iter().enumerate() {
            line_field(&format!("recipient.extra_lines[{i}]"), l, true)?;
        }
        let addr = self.recipient.address.expose();
        for (i, l) in addr.street.iter().enumerate() {
            line_field(&format!("recipient.address.street[{i}]"), l, true)?;
        }
        line_field("recipient.address.city", &addr.city, true)?;
        line_field("recipient.address.postal_code", &addr.postal_code, false)?;
        // DIN 5008 Anschriftzone: at most 6 lines (name, extras, streets, city, country).
        let lines = self.recipient_lines().len();
        if lines > 6 {
            return Err(Error::invalid(
                "recipient",
                format!("the address has {lines} lines, the window field holds 6"),
            ));
        }
        // As printed: a line longer than the window is wide wraps and takes two (or more)
        // printed lines; six printed lines fill the 27.3 mm address zone at 10 pt.
        let printed: usize = self
            .recipient_fields()
            .iter()
            .map(|(_, l)| l.chars().count().div_ceil(ADDRESS_LINE_CHARS).max(1))
            .sum();
        if printed > 6 {
            let (field, line) = self
                .recipient_fields()
                .into_iter()
                .max_by_key(|(_, l)| l.chars().count())
                .unwrap_or_default();
            return Err(Error::invalid(
                field,
                format!(
                    "{} characters wrap in the window (at most {ADDRESS_LINE_CHARS} per printed line); the address would need {printed} printed lines, the window field holds 6",
                    line.chars().count()
                ),
            ));
        }
        for (field, value) in [("title", &self.title), ("salutation", &self.salutation)] {
            if let Some(v) = value {
                line_field(field, v, true)?;
            }
        }
        if self.claims.len() > MAX_CLAIMS {
            return Err(Error::invalid(
                "claims",
                format!("at most {MAX_CLAIMS} lines, got {}", self.claims.len()),
            ));
        }
        for (i, line) in self.claims.iter().enumerate() {
            let field = format!("claims[{i}]");
            if line.signed_amount().minor == 0
                || matches!(line, ClaimLine::Payment { amount, .. } if amount.is_negative())
            {
                return Err(Error::invalid(field, "amounts are positive and not zero"));
            }
            match line {
                ClaimLine::Invoice { amount, .. }
                | ClaimLine::Fee { amount, .. }
                | ClaimLine::LumpSum { amount, .. }
                    if amount.is_negative() =>
                {
                    return Err(Error::invalid(field, "amounts are positive and not zero"));
                }
                ClaimLine::Interest {
                    from,
                    to,
                    days,
                    amount,
                    rate_percent,
                    principal,
                    ..
                } => {
                    if principal.minor <= 0 {
                        return Err(Error::invalid(
                            format!("claims[{i}].principal"),
                            "the principal interest runs on is positive",
                        ));
                    }
                    if to < from {
                        return Err(Error::invalid(
                            field,
                            "interest period ends before it starts",
                        ));
                    }
                    let expected = (*to - *from).num_days() + 1;
                    if i64::from(*days) != expected {
                        return Err(Error::invalid(
                            format!("claims[{i}].days"),
                            format!("{from}..={to} has {expected} interest days, got {days}"),
                        ));
                    }
                    if amount.is_negative() || rate_percent.is_sign_negative() {
                        return Err(Error::invalid(field, "interest is never negative"));
                    }
                }
                _ => {}
            }
        }
        let total = self.computed_total()?;
        if let Some(stated) = self.total
            && stated != total
        {
            return Err(Error::invalid(
                "total",
                format!("the claim lines add up to {total}, the model states {stated}"),
            ));
        }
        if total.minor <= 0 {
            return Err(Error::invalid(
                "claims",
                format!("nothing is owed: total {total}"),
            ));
        }
        if let Some(p) = &self.payment {
            mahnwerk_formats::rf::RfReference::parse(&p.reference)
                .map_err(|e| Error::invalid("payment.reference", e.to_string()))?;
            if let Some(name) = &p.recipient {
                line_field("payment.recipient", name, true)?;
            }
        }
        if self.kind == LetterKind::PaymentPlanConfirmation {
            let plan = self.payment_plan.as_ref().ok_or_else(|| {
                Error::invalid("payment_plan", "required for a payment plan confirmation")
            })?;
            if plan.instalments.is_empty() {
                return Err(Error::invalid("payment_plan.instalments", "no instalments"));
            }
        }
        if let Some(plan) = &self.payment_plan {
            for (i, inst) in plan.instalments.iter().enumerate() {
                if inst.amount.minor <= 0 {
                    return Err(Error::invalid(
                        format!("payment_plan.instalments[{i}].amount"),
                        "amounts are positive and not zero",
                    ));
                }
            }
        }
        if self.kind == LetterKind::CreditorCopy && self.copy_of.is_none() {
            return Err(Error::invalid("copy_of", "required for a creditor copy"));
        }
        Ok(total)
    }

    /// The address lines with the field each comes from (for errors).
    fn recipient_fields(&self) -> Vec<(String, String)> {
        let lines = self.recipient_lines();
        let extras = self.recipient.extra_lines.expose().len();
        let streets = self.recipient.address.expose().street.len();
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let field = match i {
                    0 => "recipient.name".to_owned(),
                    i if i <= extras => format!("recipient.extra_lines[{}]", i - 1),
                    i if i <= extras + streets => {
                        format!("recipient.address.street[{}]", i - 1 - extras)
                    }
                    i if i == extras + streets + 1 => "recipient.address.city".to_owned(),
                    _ => "recipient.address.country".to_owned(),
                };
                (field, l)
            })
            .collect()
    }

    /// The lines of the address field: name, extra lines, street lines, `postal code city`, and
    /// the country (upper case) when it differs from the creditor's.
    pub fn recipient_lines(&self) -> Vec<String> {
        let addr = self.recipient.address.expose();
        let mut out = vec![self.recipient.name.expose().clone()];
        out.extend(self.recipient.extra_lines.expose().iter().cloned());
        out.extend(addr.street.iter().cloned());
        let city = format!("{} {}", addr.postal_code, addr.city);
        out.push(city.trim().to_owned());
        if !addr.country.is_empty() && !addr.country.eq_ignore_ascii_case(&self.letterhead.country)
        {
            out.push(crate::format::country_name(&addr.country, self.language).to_uppercase());
        }
        out
    }
}

/// serde_json's message without its trailing ` at line L column C`.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

fn line_field(field: &str, value: &str, required: bool) -> Result<()> {
    if required && value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_LINE {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_LINE} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A complete sample letter (Form B, German, first notice to a business with two invoices,
/// interest and lump sum, GiroCode). Used by the examples, the benchmark, the CLI docs and the
/// template check, which renders every template against it.
pub fn sample() -> LetterModel {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    // Constants known to be valid.
    let iban: Iban = "DE89370400440532013000"
        .parse()
        .expect("constant IBAN is valid");
    LetterModel {
        kind: LetterKind::FirstNotice,
        tone: Tone::Neutral,
        language: Language::De,
        form: Form::FormB,
        date: d(2026, 3, 16),
        letterhead: Letterhead {
            name: "Muster Handels GmbH".into(),
            sender_line: "Muster Handels GmbH · Hauptstraße 1 · 10115 Berlin".into(),
            address: vec!["Hauptstraße 1".into(), "10115 Berlin".into()],
            logo: None,
            contact: vec![
                LabelValue {
                    label: "Telefon".into(),
                    value: "030 1234567".into(),
                },
                LabelValue {
                    label: "E-Mail".into(),
                    value: "buchhaltung@muster-handel.de".into(),
                },
            ],
            footer: vec![
                "Amtsgericht Charlottenburg HRB 123456 B".into(),
                "Geschäftsführerin: Erika Muster".into(),
                "USt-IdNr. DE123456789".into(),
            ],
            bank: Some(BankDetails {
                bank_name: "Commerzbank Köln".into(),
                iban: iban.clone(),
                bic: "COBADEFFXXX".parse().ok(),
            }),
            country: "DE".into(),
        },
        recipient: Recipient {
            name: Personal::new("Bäckerei Größl OHG".into()),
            extra_lines: Personal::new(vec!["z. Hd. Frau Jürgens".into()]),
            address: Personal::new(PostalAddress {
                street: vec!["Mühlenweg 12".into()],
                postal_code: "80331".into(),
                city: "München".into(),
                country: "DE".into(),
            }),
        },
        references: References {
            customer_number: Some("K-10042".into()),
            your_sign: None,
            our_sign: Some("EM/fb".into()),
            case_reference: Some("2026-000815".into()),
            contact_name: Some("Erika Muster".into()),
        },
        title: None,
        salutation: None,
        claims: vec![
            ClaimLine::Invoice {
                number: "RE-2026-0101".into(),
                date: d(2026, 1, 15),
                due_date: Some(d(2026, 1, 29)),
                amount: Money::eur(119_000),
            },
            ClaimLine::Invoice {
                number: "RE-2026-0117".into(),
                date: d(2026, 1, 22),
                due_date: Some(d(2026, 2, 5)),
                amount: Money::eur(45_990),
            },
            ClaimLine::Interest {
                invoice: Some("RE-2026-0101".into()),
                from: d(2026, 1, 30),
                to: d(2026, 3, 16),
                days: 46,
                rate_percent: Decimal::new(1027, 2),
                principal: Money::eur(119_000),
                amount: Money::eur(1540),
            },
            ClaimLine::LumpSum {
                invoice: Some("RE-2026-0101".into()),
                amount: Money::eur(4000),
            },
            ClaimLine::Fee {
                label: None,
                amount: Money::eur(500),
            },
        ],
        total: Some(Money::eur(171_030)),
        deadline: Some(d(2026, 3, 30)),
        payment: Some(PaymentDetails {
            recipient: None,
            iban,
            bic: "COBADEFFXXX".parse().ok(),
            reference: "RF18539007547034".into(),
            amount: None,
        }),
        closing: None,
        signature: Some("Erika Muster, Buchhaltung".into()),
        notices: Notices {
            consumer_default_notice: false,
            disregard_if_paid: true,
            offer_payment_plan: true,
        },
        payment_plan: None,
        copy_of: None,
        interest_method: None,
        endorsement: None,
    }
}

/// The sample adapted to `kind`: a reminder for one invoice without costs, a last notice with a
/// higher fee, a consolidated notice over three invoices, a creditor copy, a payment plan.
pub fn sample_for(kind: LetterKind) -> LetterModel {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    let mut m = sample();
    m.kind = kind;
    match kind {
        LetterKind::Reminder => {
            m.claims.truncate(1);
            m.total = Some(Money::eur(119_000));
            m.notices.offer_payment_plan = false;
        }
        LetterKind::FirstNotice => {}
        LetterKind::LastNotice => {
            m.claims.push(ClaimLine::Fee {
                label: Some("Mahngebühr 2. Mahnung".into()),
                amount: Money::eur(500),
            });
            m.total = Some(Money::eur(171_530));
        }
        LetterKind::ConsolidatedNotice => {
            m.claims.insert(
                2,
                ClaimLine::Invoice {
                    number: "RE-2026-0142".into(),
                    date: d(2026, 2, 2),
                    due_date: Some(d(2026, 2, 16)),
                    amount: Money::eur(23_800),
                },
            );
            m.total = Some(Money::eur(194_830));
        }
        LetterKind::CreditorCopy => {
            m.copy_of = Some(CopyOf {
                debtor_name: Personal::new("Bäckerei Größl OHG".into()),
                letter_title: "1. Mahnung".into(),
                sent_on: d(2026, 3, 16),
            });
            m.payment = None;
        }
        LetterKind::PaymentPlanConfirmation => {
            m.payment_plan = Some(PaymentPlan {
                agreed_on: d(2026, 3, 10),
                instalments: vec![
                    Instalment {
                        due: d(2026, 4, 1),
                        amount: Money::eur(85_515),
                    },
                    Instalment {
                        due: d(2026, 5, 1),
                        amount: Money::eur(85_515),
                    },
                ],
            });
            if let Some(p) = &mut m.payment {
                p.amount = Some(Money::eur(85_515));
            }
            m.deadline = Some(d(2026, 4, 1));
            m.notices.offer_payment_plan = false;
        }
    }
    m
}

/// The sample with every optional part filled in, for the template check: every variable a
/// template may use has a value.
pub fn full_sample() -> LetterModel {
    let mut m = sample();
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    m.kind = LetterKind::PaymentPlanConfirmation;
    m.salutation = Some("Sehr geehrte Frau Jürgens,".into());
    m.title = Some("Betreff".into());
    m.closing = Some("Mit freundlichen Grüßen".into());
    m.notices = Notices {
        consumer_default_notice: true,
        disregard_if_paid: true,
        offer_payment_plan: true,
    };
    m.claims.push(ClaimLine::Payment {
        date: d(2026, 3, 1),
        amount: Money::eur(10_000),
    });
    m.total = None;
    m.payment_plan = Some(PaymentPlan {
        agreed_on: d(2026, 3, 10),
        instalments: vec![
            Instalment {
                due: d(2026, 4, 1),
                amount: Money::eur(80_515),
            },
            Instalment {
                due: d(2026, 5, 1),
                amount: Money::eur(80_515),
            },
        ],
    });
    m.copy_of = Some(CopyOf {
        debtor_name: Personal::new("Bäckerei Größl OHG".into()),
        letter_title: "1. Mahnung".into(),
        sent_on: d(2026, 3, 16),
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

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
