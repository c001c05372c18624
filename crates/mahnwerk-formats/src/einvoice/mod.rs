//! E-invoices: EN 16931 in UBL 2.1 (Invoice, CreditNote) and UN/CEFACT CII, XRechnung 2.x/3.x,
//! ZUGFeRD 2.x / Factur-X — also the XML embedded in a PDF/A-3 — into [`EInvoice`].
//!
//! [`EInvoice`] uses the field names of the gRPC `Invoice` message (`invoice_number`,
//! `net_amount`, `debtor`, `creditor_account`…) plus the e-invoice fields (BT numbers in the
//! docs). [`EInvoice::to_domain`] turns it into a [`mahnwerk_domain::Invoice`] with field errors.
//!
//! Rules:
//! - net = BT-109 (total without VAT), tax = BT-110 (in the invoice currency), gross = BT-112;
//!   BT-113 prepaid and BT-115 payable (may be negative: a credit balance) are kept apart;
//! - due date: BT-9, else the net term of the payment terms (BT-20, see [`terms`]); the source is
//!   in `due_date_source`;
//! - `#SKONTO#TAGE=n#PROZENT=p#[BASISBETRAG=b#]` lines (German XRechnung convention), discount
//!   clauses in the terms text ("2 % Skonto innerhalb 10 Tagen") and CII
//!   `ApplicableTradePaymentDiscountTerms` become [`CashDiscount`]s;
//! - direct debit (payment means 59): BT-91 is the **debtor's** IBAN (`debtor_account_iban`),
//!   never a creditor account;
//! - MINIMUM and BASIC-WL profiles are read but flagged `is_invoice = false` (not invoices under
//!   German VAT law).
//!
//! # Layout
//! - [`ubl`] and [`cii`]: the two syntaxes into [`EInvoice`];
//! - [`terms`]: payment terms text (net term, Skonto, § 286 Abs. 3 notice);
//! - [`claim`]: [`EInvoice::to_domain`], the claim an e-invoice makes (totals check, type code,
//!   business classification, due date, language).

mod cii;
pub mod claim;
pub mod terms;
mod ubl;

pub use claim::{Claim, ImportPolicy};

use crate::error::{Error, Position, Result};
use crate::xml::{Node, parse_document};
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Iban, Money, PostalAddress};
use serde::Serialize;

/// The XML syntax of an e-invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Syntax {
    Ubl,
    Cii,
}

impl Syntax {
    pub fn as_str(self) -> &'static str {
        match self {
            Syntax::Ubl => "ubl",
            Syntax::Cii => "cii",
        }
    }
}

/// The profile named by BT-24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    Minimum,
    BasicWl,
    Basic,
    En16931,
    Extended,
    XRechnung,
    Other,
}

/// Where the due date came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DueDateSource {
    /// BT-9 (`cbc:DueDate`, `DueDateDateTime`, `PaymentDueDate`).
    DueDate,
    /// A date written in the payment terms text.
    PaymentTermsDate,
    /// "N Tage" / "N days" in the payment terms, counted from the issue date.
    PaymentTermsDays,
}

impl DueDateSource {
    /// The rule name recorded in `invoice.issued` (`source.due_date_rule`).
    pub fn as_str(self) -> &'static str {
        match self {
            DueDateSource::DueDate => "due_date",
            DueDateSource::PaymentTermsDate => "payment_terms_date",
            DueDateSource::PaymentTermsDays => "payment_terms_days",
        }
    }
}

/// What in the document shows the buyer is a business, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessEvidence {
    /// BT-48 VAT identifier.
    VatId,
    /// A tax registration other than VAT (UBL `PartyTaxScheme` of another scheme, CII `FC`).
    TaxRegistration,
    /// BT-47 legal registration identifier.
    LegalRegistration,
    /// BT-10 is a Leitweg-ID (routing id of a German public buyer).
    RoutingId,
}

impl BusinessEvidence {
    /// The rule name recorded in `invoice.issued` (`source.debtor_kind_rule`).
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessEvidence::VatId => "vat_id",
            BusinessEvidence::TaxRegistration => "tax_registration",
            BusinessEvidence::LegalRegistration => "legal_registration",
            BusinessEvidence::RoutingId => "routing_id",
        }
    }
}

/// A cash discount (Skonto) term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashDiscount {
    /// Days from the issue date the discount may be taken.
    pub days: u32,
    /// Percentage as a decimal with at least two places, e.g. `2.00` (from "2 %", "2,0%").
    pub percent: String,
    /// Base amount in minor units when given.
    pub base_amount: Option<i64>,
}

/// The debtor (buyer, BG-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EDebtor {
    pub name: String,
    /// Why the buyer is a business, when the document shows it (see [`BusinessEvidence`]).
    pub business_evidence: Option<BusinessEvidence>,
    pub address: PostalAddress,
    pub email: Option<String>,
    /// Buyer identifier (BT-46), used as customer number.
    pub customer_number: Option<String>,
    pub vat_id: Option<String>,
    /// A tax registration other than VAT (BT-32-like for the buyer; CII scheme `FC`).
    pub tax_registration_id: Option<String>,
    /// BT-47.
    pub legal_registration_id: Option<String>,
}

/// A payee account (BT-84/85/86).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EAccount {
    /// As written in the invoice.
    pub iban: String,
    /// Whether `iban` passes the IBAN checks.
    pub iban_valid: bool,
    pub bic: Option<String>,
    pub holder: Option<String>,
}

/// An e-invoice as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EInvoice {
    pub syntax: Syntax,
    /// BT-24 specification identifier as written.
    pub specification: Option<String>,
    pub profile: Profile,
    /// `false` for MINIMUM and BASIC-WL: not an invoice under German VAT law.
    pub is_invoice: bool,
    /// BT-1.
    pub invoice_number: String,
    /// BT-3: 380 invoice, 381 credit note, 384 corrected invoice…
    pub type_code: String,
    pub issue_date: NaiveDate,
    pub due_date: Option<NaiveDate>,
    pub due_date_source: Option<DueDateSource>,
    pub currency: Currency,
    /// BT-109, BT-110, BT-112 in minor units.
    pub net_amount: i64,
    pub tax_amount: i64,
    pub gross_amount: i64,
    /// BT-106, BT-107, BT-108.
    pub line_total_amount: Option<i64>,
    pub allowance_total_amount: Option<i64>,
    pub charge_total_amount: Option<i64>,
    /// BT-113 (0 when absent).
    pub prepaid_amount: i64,
    /// BT-114.
    pub rounding_amount: Option<i64>,
    /// BT-115, may be negative.
    pub payable_amount: i64,
    pub seller_name: Option<String>,
    pub debtor: EDebtor,
    /// BT-83.
    pub payment_reference: Option<String>,
    /// First valid payee account (what a letter prints).
    pub creditor_account: Option<EAccount>,
    /// All payee accounts (BT-84), valid or not.
    pub creditor_accounts: Vec<EAccount>,
    /// BT-81 of the first payment means.
    pub payment_means_code: Option<String>,
    /// BT-89 mandate reference (direct debit).
    pub mandate_id: Option<String>,
    /// BT-90 SEPA creditor identifier.
    pub creditor_id: Option<String>,
    /// BT-91: the debtor's account that is debited.
    pub debtor_account_iban: Option<String>,
    /// BT-20.
    pub payment_terms: Option<String>,
    pub cash_discounts: Vec<CashDiscount>,
    /// BT-25.
    pub preceding_invoices: Vec<String>,
    /// BT-10 buyer reference (a Leitweg-ID for German public buyers).
    pub buyer_reference: Option<String>,
    /// Sum of the line net amounts (BT-131), `None` when the document has no lines.
    pub line_net_sum: Option<i64>,
    /// The terms or notes carry the § 286 Abs. 3 BGB notice (default 30 days after due date and
    /// receipt).
    pub default_notice: bool,
}

/// Read an e-invoice from XML or from a PDF with an embedded XML.
pub fn read_einvoice(bytes: &[u8]) -> Result<EInvoice> {
    if bytes.starts_with(b"%PDF") {
        let xml = crate::pdf::embedded_invoice_xml(bytes)?;
        return parse_xml(&xml);
    }
    parse_xml(bytes)
}

/// Read an e-invoice XML (UBL or CII).
pub fn parse_xml(bytes: &[u8]) -> Result<EInvoice> {
    let root = parse_document(bytes)?;
    match root.name.as_str() {
        "Invoice" | "CreditNote" => ubl::read(&root),
        "CrossIndustryInvoice" => cii::read(&root),
        other => Err(Error::Unsupported(format!(
            "root element <{other}> is neither a UBL Invoice/CreditNote nor a CII CrossIndustryInvoice"
        ))),
    }
}

fn required<'a>(root: &'a Node, path: &str) -> Result<&'a str> {
    root.text_at(path).ok_or_else(|| {
        Error::syntax(
            Position::at(root.line, format!("{}/{path}", root.name)),
            "missing required element",
        )
    })
}

fn node_pos(n: &Node, path: &str) -> Position {
    Position::at(n.line, path)
}

fn amount_at(root: &Node, path: &str, currency: Currency) -> Result<Option<i64>> {
    // Several TaxTotal amounts: take the one in the invoice currency.
    let nodes = root.all(path);
    let node = nodes
        .iter()
        .find(|n| n.attr("currencyID").is_none_or(|c| c == currency.as_str()))
        .or(nodes.first());
    let Some(n) = node else { return Ok(None) };
    let t = n.text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    Money::parse_decimal(t, currency, false)
        .map(|m| Some(m.minor))
        .map_err(|e| Error::syntax(node_pos(n, path), e.to_string()))
}

fn date_iso(n: &Node, path: &str) -> Result<Option<NaiveDate>> {
    let Some(node) = n.get(path) else {
        return Ok(None);
    };
    let t = node.text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            Error::syntax(
                node_pos(node, path),
                format!("not a valid date (YYYY-MM-DD): {t:?}"),
            )
        })
}

fn date_102(n: &Node, path: &str) -> Result<Option<NaiveDate>> {
    let Some(node) = n.get(path) else {
        return Ok(None);
    };
    let t = node.text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y%m%d")
        .map(Some)
        .map_err(|_| {
            Error::syntax(
                node_pos(node, path),
                format!("not a valid date (format 102, YYYYMMDD): {t:?}"),
            )
        })
}

fn profile_of(spec: Option<&str>) -> Profile {
    let s = spec.unwrap_or_default().to_ascii_lowercase();
    if s.contains("minimum") {
        Profile::Minimum
    } else if s.contains("basicwl") || s.contains("basic-wl") {
        Profile::BasicWl
    } else if s.contains("xrechnung") {
        Profile::XRechnung
    } else if s.contains("extended") {
        Profile::Extended
    } else if s.contains(":basic") {
        Profile::Basic
    } else if s.contains("en16931") {
        Profile::En16931
    } else {
        Profile::Other
    }
}

fn account(iban: &str, bic: Option<&str>, holder: Option<&str>) -> EAccount {
    EAccount {
        iban: iban.trim().to_owned(),
        iban_valid: iban.parse::<Iban>().is_ok(),
        bic: bic.map(str::to_owned),
        holder: holder.map(str::to_owned),
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// The text of every node at `path`, trimmed, non-empty.
fn texts<'a>(root: &'a Node, path: &str) -> Vec<&'a str> {
    root.all(path)
        .into_iter()
        .map(|n| n.text.trim())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Sum of the amounts at `path` (line amounts), `None` when there are none.
fn sum_at(root: &Node, path: &str, currency: Currency) -> Result<Option<i64>> {
    let nodes = root.all(path);
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut sum: i64 = 0;
    for n in nodes {
        let m = Money::parse_decimal(n.text.trim(), currency, false)
            .map_err(|e| Error::syntax(node_pos(n, path), e.to_string()))?;
        sum = sum
            .checked_add(m.minor)
            .ok_or_else(|| Error::limit(node_pos(n, path), "sum of line amounts overflows"))?;
    }
    Ok(Some(sum))
}

/// Why the buyer is a business, checked in the order of [`BusinessEvidence`].
fn evidence(
    vat_id: Option<&str>,
    tax_registration: Option<&str>,
    legal: Option<&str>,
    buyer_reference: Option<&str>,
) -> Option<BusinessEvidence> {
    if vat_id.is_some() {
        Some(BusinessEvidence::VatId)
    } else if tax_registration.is_some() {
        Some(BusinessEvidence::TaxRegistration)
    } else if legal.is_some() {
        Some(BusinessEvidence::LegalRegistration)
    } else if buyer_reference.is_some_and(is_leitweg_id) {
        Some(BusinessEvidence::RoutingId)
    } else {
        None
    }
}

/// A Leitweg-ID (KoSIT, version 2.0.2): coarse address of 2 to 12 digits, an optional fine
/// address of up to 30 letters and digits, and two check digits (ISO/IEC 7064 MOD 97-10 over the
/// id without hyphens, letters counted as 10..35, as in an IBAN).
pub fn is_leitweg_id(id: &str) -> bool {
    let parts: Vec<&str> = id.trim().split('-').collect();
    let (coarse, fine, check) = match parts.as_slice() {
        [c, k] => (*c, "", *k),
        [c, f, k] => (*c, *f, *k),
        _ => return false,
    };
    if !(2..=12).contains(&coarse.len())
        || !coarse.bytes().all(|b| b.is_ascii_digit())
        || fine.len() > 30
        || !fine.bytes().all(|b| b.is_ascii_alphanumeric())
        || check.len() != 2
        || !check.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let mut rem: u32 = 0;
    for c in coarse.chars().chain(fine.chars()).chain(check.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v < 10 {
            (rem * 10 + v) % 97
        } else {
            (rem * 100 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leitweg_ids_of_the_xrechnung_samples_check_and_others_do_not() {
        for id in [
            "04011000-12350-85",
            "99000000-18188-18",
            "90000000-03083-72",
            "12345678-12345-83",
        ] {
            assert!(is_leitweg_id(id), "{id}");
        }
        // 01.07a's "99000000-05676-98" has the layout but not the check digits of a Leitweg-ID.
        for id in [
            "AB321",
            "99000000-05676-98",
            "04011000-12350",
            "1-12350-85",
            "",
        ] {
            assert!(!is_leitweg_id(id), "{id}");
        }
    }

    #[test]
    fn profiles() {
        assert_eq!(
            profile_of(Some("urn:factur-x.eu:1p0:minimum")),
            Profile::Minimum
        );
        assert_eq!(
            profile_of(Some("urn:factur-x.eu:1p0:basicwl")),
            Profile::BasicWl
        );
        assert_eq!(
            profile_of(Some(
                "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic"
            )),
            Profile::Basic
        );
        assert_eq!(
            profile_of(Some(
                "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
            )),
            Profile::XRechnung
        );
        assert_eq!(
            profile_of(Some("urn:cen.eu:en16931:2017")),
            Profile::En16931
        );
    }

    #[test]
    fn unknown_root_is_unsupported_and_missing_fields_are_named() {
        assert!(matches!(parse_xml(b"<Foo/>"), Err(Error::Unsupported(_))));
        let err = parse_xml(b"<Invoice><ID>1</ID><IssueDate>2026-01-01</IssueDate></Invoice>")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, Invoice/DocumentCurrencyCode: missing required element"
        );
    }
}
