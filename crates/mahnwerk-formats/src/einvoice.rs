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
//! - due date: BT-9, else a `dd.mm.yyyy` date in the payment terms (BT-20), else "N Tage/days"
//!   counted from the issue date; the source is in `due_date_source`;
//! - `#SKONTO#TAGE=n#PROZENT=p#[BASISBETRAG=b#]` lines (German XRechnung convention) and CII
//!   `ApplicableTradePaymentDiscountTerms` become [`CashDiscount`]s;
//! - direct debit (payment means 59): BT-91 is the **debtor's** IBAN (`debtor_account_iban`),
//!   never a creditor account;
//! - MINIMUM and BASIC-WL profiles are read but flagged `is_invoice = false` (not invoices under
//!   German VAT law).

use crate::error::{Error, Position, Result};
use crate::xml::{Node, parse_document};
use chrono::{Days, NaiveDate};
use mahnwerk_domain::{
    BankAccount, Currency, Debtor, DebtorKind, FieldErrors, Iban, Invoice, Money, PostalAddress,
};
use serde::Serialize;

/// The XML syntax of an e-invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Syntax {
    Ubl,
    Cii,
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

/// A cash discount (Skonto) term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashDiscount {
    pub days: u32,
    /// Percentage as written, e.g. `2.00`.
    pub percent: String,
    /// Base amount in minor units when given.
    pub base_amount: Option<i64>,
}

/// The debtor (buyer, BG-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EDebtor {
    pub name: String,
    /// `business` when a VAT id (BT-48) is given, else `consumer`.
    pub kind: DebtorKind,
    pub address: PostalAddress,
    pub email: Option<String>,
    /// Buyer identifier (BT-46), used as customer number.
    pub customer_number: Option<String>,
    pub vat_id: Option<String>,
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
        "Invoice" | "CreditNote" => ubl(&root),
        "CrossIndustryInvoice" => cii(&root),
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

fn ubl(root: &Node) -> Result<EInvoice> {
    let spec = root.text_at("CustomizationID");
    let currency_code = required(root, "DocumentCurrencyCode")?;
    let currency = currency_code
        .parse::<Currency>()
        .map_err(|e| Error::syntax(node_pos(root, "DocumentCurrencyCode"), e.reason))?;
    let issue_date = date_iso(root, "IssueDate")?
        .ok_or_else(|| Error::syntax(node_pos(root, "IssueDate"), "missing required element"))?;
    let m = "LegalMonetaryTotal";
    let buyer = root.get("AccountingCustomerParty/Party");
    let b = |p: &str| buyer.and_then(|n| n.text_at(p));
    let vat_id = buyer.and_then(|n| {
        n.all("PartyTaxScheme")
            .into_iter()
            .find(|t| t.text_at("TaxScheme/ID").is_none_or(|id| id == "VAT"))
            .and_then(|t| t.text_at("CompanyID"))
    });
    let mut street: Vec<String> = [
        "PostalAddress/StreetName",
        "PostalAddress/AdditionalStreetName",
    ]
    .iter()
    .filter_map(|p| b(p))
    .map(str::to_owned)
    .collect();
    street.extend(
        buyer
            .into_iter()
            .flat_map(|n| n.all("PostalAddress/AddressLine/Line"))
            .map(|n| n.text.trim().to_owned()),
    );
    let debtor = EDebtor {
        name: b("PartyLegalEntity/RegistrationName")
            .or_else(|| b("PartyName/Name"))
            .unwrap_or_default()
            .to_owned(),
        kind: if vat_id.is_some() {
            DebtorKind::Business
        } else {
            DebtorKind::Consumer
        },
        address: PostalAddress {
            street,
            postal_code: b("PostalAddress/PostalZone").unwrap_or_default().to_owned(),
            city: b("PostalAddress/CityName").unwrap_or_default().to_owned(),
            country: b("PostalAddress/Country/IdentificationCode")
                .unwrap_or_default()
                .to_owned(),
        },
        email: owned(b("Contact/ElectronicMail").or_else(|| {
            buyer
                .and_then(|n| n.child("EndpointID"))
                .filter(|e| e.attr("schemeID") == Some("EM"))
                .map(|e| e.text.trim())
        })),
        customer_number: owned(b("PartyIdentification/ID")),
        vat_id: owned(vat_id),
    };
    let means = root.all("PaymentMeans");
    let creditor_accounts: Vec<EAccount> = means
        .iter()
        .filter_map(|pm| {
            pm.text_at("PayeeFinancialAccount/ID").map(|iban| {
                account(
                    iban,
                    pm.text_at("PayeeFinancialAccount/FinancialInstitutionBranch/ID"),
                    pm.text_at("PayeeFinancialAccount/Name"),
                )
            })
        })
        .collect();
    let creditor_id = [
        "AccountingSupplierParty/Party/PartyIdentification/ID",
        "PayeeParty/PartyIdentification/ID",
    ]
    .iter()
    .flat_map(|p| root.all(p))
    .find(|n| n.attr("schemeID") == Some("SEPA"))
    .map(|n| n.text.trim().to_owned());
    let terms: Vec<&str> = root
        .all("PaymentTerms/Note")
        .into_iter()
        .map(|n| n.text.as_str())
        .collect();
    let terms = clean_lines(&terms);
    let explicit_due = match date_iso(root, "DueDate")? {
        Some(d) => Some(d),
        None => date_iso(root, "PaymentMeans/PaymentDueDate")?,
    };
    let type_code = root
        .text_any(&["InvoiceTypeCode", "CreditNoteTypeCode"])
        .unwrap_or(if root.name == "CreditNote" {
            "381"
        } else {
            "380"
        })
        .to_owned();
    let payable = amount_at(root, &format!("{m}/PayableAmount"), currency)?.ok_or_else(|| {
        Error::syntax(
            node_pos(root, "LegalMonetaryTotal/PayableAmount"),
            "missing required element",
        )
    })?;
    let gross = amount_at(root, &format!("{m}/TaxInclusiveAmount"), currency)?.unwrap_or(payable);
    let net = amount_at(root, &format!("{m}/TaxExclusiveAmount"), currency)?.unwrap_or(0);
    let tax = amount_at(root, "TaxTotal/TaxAmount", currency)?.unwrap_or(gross - net);
    let mut cash_discounts = Vec::new();
    if let Some(t) = &terms {
        cash_discounts = skonto(t, currency);
    }
    let (due_date, due_date_source) = due(explicit_due, terms.as_deref(), issue_date);
    let profile = profile_of(spec);
    Ok(EInvoice {
        syntax: Syntax::Ubl,
        specification: owned(spec),
        profile,
        is_invoice: !matches!(profile, Profile::Minimum | Profile::BasicWl),
        invoice_number: required(root, "ID")?.to_owned(),
        type_code,
        issue_date,
        due_date,
        due_date_source,
        currency,
        net_amount: net,
        tax_amount: tax,
        gross_amount: gross,
        line_total_amount: amount_at(root, &format!("{m}/LineExtensionAmount"), currency)?,
        allowance_total_amount: amount_at(root, &format!("{m}/AllowanceTotalAmount"), currency)?,
        charge_total_amount: amount_at(root, &format!("{m}/ChargeTotalAmount"), currency)?,
        prepaid_amount: amount_at(root, &format!("{m}/PrepaidAmount"), currency)?.unwrap_or(0),
        rounding_amount: amount_at(root, &format!("{m}/PayableRoundingAmount"), currency)?,
        payable_amount: payable,
        seller_name: owned(root.text_any(&[
            "AccountingSupplierParty/Party/PartyLegalEntity/RegistrationName",
            "AccountingSupplierParty/Party/PartyName/Name",
        ])),
        debtor,
        payment_reference: owned(root.text_at("PaymentMeans/PaymentID")),
        creditor_account: creditor_accounts.iter().find(|a| a.iban_valid).cloned(),
        creditor_accounts,
        payment_means_code: owned(root.text_at("PaymentMeans/PaymentMeansCode")),
        mandate_id: owned(root.text_at("PaymentMeans/PaymentMandate/ID")),
        creditor_id,
        debtor_account_iban: owned(
            root.text_at("PaymentMeans/PaymentMandate/PayerFinancialAccount/ID"),
        ),
        payment_terms: terms,
        cash_discounts,
        preceding_invoices: root
            .all("BillingReference/InvoiceDocumentReference/ID")
            .into_iter()
            .map(|n| n.text.trim().to_owned())
            .collect(),
    })
}

fn cii(root: &Node) -> Result<EInvoice> {
    let spec =
        root.text_at("ExchangedDocumentContext/GuidelineSpecifiedDocumentContextParameter/ID");
    let tx = root.get("SupplyChainTradeTransaction").ok_or_else(|| {
        Error::syntax(
            node_pos(root, "CrossIndustryInvoice/SupplyChainTradeTransaction"),
            "missing required element",
        )
    })?;
    let st = tx.get("ApplicableHeaderTradeSettlement").ok_or_else(|| {
        Error::syntax(
            node_pos(
                tx,
                "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement",
            ),
            "missing required element",
        )
    })?;
    let currency = required(st, "InvoiceCurrencyCode")?
        .parse::<Currency>()
        .map_err(|e| Error::syntax(node_pos(st, "InvoiceCurrencyCode"), e.reason))?;
    let issue_date =
        date_102(root, "ExchangedDocument/IssueDateTime/DateTimeString")?.ok_or_else(|| {
            Error::syntax(
                node_pos(root, "ExchangedDocument/IssueDateTime"),
                "missing required element",
            )
        })?;
    let buyer = tx.get("ApplicableHeaderTradeAgreement/BuyerTradeParty");
    let b = |p: &str| buyer.and_then(|n| n.text_at(p));
    let vat_id = buyer.and_then(|n| {
        n.all("SpecifiedTaxRegistration/ID")
            .into_iter()
            .find(|id| id.attr("schemeID") == Some("VA"))
            .map(|id| id.text.trim())
    });
    let debtor = EDebtor {
        name: b("Name").unwrap_or_default().to_owned(),
        kind: if vat_id.is_some() {
            DebtorKind::Business
        } else {
            DebtorKind::Consumer
        },
        address: PostalAddress {
            street: [
                "PostalTradeAddress/LineOne",
                "PostalTradeAddress/LineTwo",
                "PostalTradeAddress/LineThree",
            ]
            .iter()
            .filter_map(|p| b(p))
            .map(str::to_owned)
            .collect(),
            postal_code: b("PostalTradeAddress/PostcodeCode")
                .unwrap_or_default()
                .to_owned(),
            city: b("PostalTradeAddress/CityName")
                .unwrap_or_default()
                .to_owned(),
            country: b("PostalTradeAddress/CountryID")
                .unwrap_or_default()
                .to_owned(),
        },
        email: owned(
            b("URIUniversalCommunication/URIID")
                .or_else(|| b("DefinedTradeContact/EmailURIUniversalCommunication/URIID")),
        ),
        customer_number: owned(b("ID").or_else(|| b("GlobalID"))),
        vat_id: owned(vat_id),
    };
    let means = st.all("SpecifiedTradeSettlementPaymentMeans");
    let creditor_accounts: Vec<EAccount> = means
        .iter()
        .filter_map(|pm| {
            pm.text_at("PayeePartyCreditorFinancialAccount/IBANID")
                .map(|iban| {
                    account(
                        iban,
                        pm.text_at("PayeeSpecifiedCreditorFinancialInstitution/BICID"),
                        pm.text_at("PayeePartyCreditorFinancialAccount/AccountName"),
                    )
                })
        })
        .collect();
    let terms_nodes = st.all("SpecifiedTradePaymentTerms");
    let terms: Vec<&str> = terms_nodes
        .iter()
        .filter_map(|t| t.text_at("Description"))
        .collect();
    let terms = (!terms.is_empty()).then(|| terms.join("\n"));
    let mut explicit_due = None;
    for t in &terms_nodes {
        if let Some(d) = date_102(t, "DueDateDateTime/DateTimeString")? {
            explicit_due = Some(d);
            break;
        }
    }
    let mut cash_discounts = terms
        .as_deref()
        .map(|t| skonto(t, currency))
        .unwrap_or_default();
    for d in st.all("SpecifiedTradePaymentTerms/ApplicableTradePaymentDiscountTerms") {
        let days = d
            .text_at("BasisPeriodMeasure")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if let (Some(days), Some(percent)) = (days, d.text_at("CalculationPercent")) {
            cash_discounts.push(CashDiscount {
                days,
                percent: percent.to_owned(),
                base_amount: amount_at(d, "BasisAmount", currency)?,
            });
        }
    }
    let s = "SpecifiedTradeSettlementHeaderMonetarySummation";
    let payable = amount_at(st, &format!("{s}/DuePayableAmount"), currency)?.ok_or_else(|| {
        Error::syntax(
            node_pos(
                st,
                "SpecifiedTradeSettlementHeaderMonetarySummation/DuePayableAmount",
            ),
            "missing required element",
        )
    })?;
    let gross = amount_at(st, &format!("{s}/GrandTotalAmount"), currency)?.unwrap_or(payable);
    let net = amount_at(st, &format!("{s}/TaxBasisTotalAmount"), currency)?.unwrap_or(0);
    let tax = amount_at(st, &format!("{s}/TaxTotalAmount"), currency)?.unwrap_or(gross - net);
    let (due_date, due_date_source) = due(explicit_due, terms.as_deref(), issue_date);
    let profile = profile_of(spec);
    let doc = root.get("ExchangedDocument");
    Ok(EInvoice {
        syntax: Syntax::Cii,
        specification: owned(spec),
        profile,
        is_invoice: !matches!(profile, Profile::Minimum | Profile::BasicWl),
        invoice_number: required(root, "ExchangedDocument/ID")?.to_owned(),
        type_code: doc
            .and_then(|d| d.text_at("TypeCode"))
            .unwrap_or("380")
            .to_owned(),
        issue_date,
        due_date,
        due_date_source,
        currency,
        net_amount: net,
        tax_amount: tax,
        gross_amount: gross,
        line_total_amount: amount_at(st, &format!("{s}/LineTotalAmount"), currency)?,
        allowance_total_amount: amount_at(st, &format!("{s}/AllowanceTotalAmount"), currency)?,
        charge_total_amount: amount_at(st, &format!("{s}/ChargeTotalAmount"), currency)?,
        prepaid_amount: amount_at(st, &format!("{s}/TotalPrepaidAmount"), currency)?.unwrap_or(0),
        rounding_amount: amount_at(st, &format!("{s}/RoundingAmount"), currency)?,
        payable_amount: payable,
        seller_name: owned(tx.text_at("ApplicableHeaderTradeAgreement/SellerTradeParty/Name")),
        debtor,
        payment_reference: owned(st.text_at("PaymentReference")),
        creditor_account: creditor_accounts.iter().find(|a| a.iban_valid).cloned(),
        creditor_accounts,
        payment_means_code: owned(st.text_at("SpecifiedTradeSettlementPaymentMeans/TypeCode")),
        mandate_id: owned(st.text_at("SpecifiedTradePaymentTerms/DirectDebitMandateID")),
        creditor_id: owned(st.text_at("CreditorReferenceID")),
        debtor_account_iban: owned(st.text_at(
            "SpecifiedTradeSettlementPaymentMeans/PayerPartyDebtorFinancialAccount/IBANID",
        )),
        payment_terms: terms,
        cash_discounts,
        preceding_invoices: st
            .all("InvoiceReferencedDocument/IssuerAssignedID")
            .into_iter()
            .map(|n| n.text.trim().to_owned())
            .collect(),
    })
}

/// Payment terms texts with each line trimmed and empty lines dropped (indentation in the XML
/// is not part of the text).
fn clean_lines(texts: &[&str]) -> Option<String> {
    let lines: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `#SKONTO#TAGE=7#PROZENT=2.00#[BASISBETRAG=100.00#]` lines.
fn skonto(terms: &str, currency: Currency) -> Vec<CashDiscount> {
    let mut out = Vec::new();
    for line in terms.lines() {
        let Some(rest) = line.trim().strip_prefix("#SKONTO#") else {
            continue;
        };
        let mut days = None;
        let mut percent = None;
        let mut base = None;
        for kv in rest.split('#') {
            match kv.split_once('=') {
                Some(("TAGE", v)) => days = v.trim().parse::<u32>().ok(),
                Some(("PROZENT", v)) => percent = Some(v.trim().to_owned()),
                Some(("BASISBETRAG", v)) => {
                    base = Money::parse_decimal(v, currency, false)
                        .ok()
                        .map(|m| m.minor)
                }
                _ => {}
            }
        }
        if let (Some(days), Some(percent)) = (days, percent) {
            out.push(CashDiscount {
                days,
                percent,
                base_amount: base,
            });
        }
    }
    out
}

/// Due date from BT-9 or the payment terms (see module docs).
fn due(
    explicit: Option<NaiveDate>,
    terms: Option<&str>,
    issue: NaiveDate,
) -> (Option<NaiveDate>, Option<DueDateSource>) {
    if let Some(d) = explicit {
        return (Some(d), Some(DueDateSource::DueDate));
    }
    let Some(t) = terms else { return (None, None) };
    let text: String = t
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
        let w = word.trim_end_matches(['.', ')']);
        if let Ok(d) = NaiveDate::parse_from_str(w, "%d.%m.%Y") {
            return (Some(d), Some(DueDateSource::PaymentTermsDate));
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    for pair in words.windows(2) {
        let unit = pair[1].to_ascii_lowercase();
        if (unit.starts_with("tag") || unit.starts_with("day"))
            && let Ok(n) = pair[0].parse::<u64>()
            && n <= 365
        {
            return (
                issue.checked_add_days(Days::new(n)),
                Some(DueDateSource::PaymentTermsDays),
            );
        }
    }
    (None, None)
}

impl EInvoice {
    /// The domain invoice, or the fields that prevent it (no due date, no valid account…).
    pub fn to_domain(&self) -> std::result::Result<Invoice, FieldErrors> {
        let mut errs = FieldErrors::default();
        let number = errs.check("invoice_number", self.invoice_number.parse());
        if !self.is_invoice {
            errs.push(
                "profile",
                "MINIMUM and BASIC-WL are not invoices under German VAT law",
            );
        }
        if self.due_date.is_none() {
            errs.push("due_date", "neither a due date nor payment terms with one");
        }
        let account = match &self.creditor_account {
            Some(a) => errs
                .check("creditor_account.iban", a.iban.parse::<Iban>())
                .map(|iban| BankAccount {
                    iban,
                    bic: a.bic.as_deref().and_then(|b| b.parse().ok()),
                    holder: a.holder.clone().or_else(|| self.seller_name.clone()),
                }),
            None => {
                errs.push("creditor_account", "no valid payee IBAN (BT-84)");
                None
            }
        };
        let d = &self.debtor;
        let debtor = Debtor {
            name: d.name.clone().into(),
            kind: d.kind,
            address: d.address.clone().into(),
            email: d.email.clone().map(Into::into),
            language: "de".into(),
            customer_number: d.customer_number.clone(),
            vat_id: d.vat_id.clone(),
        };
        let (Some(number), Some(due_date), Some(creditor_account)) =
            (number, self.due_date, account)
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
            default_notice: false,
        };
        errs.0.extend(inv.check().0);
        errs.into_result().map(|()| inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skonto_lines_and_due_dates_from_terms() {
        let d = skonto(
            "#SKONTO#TAGE=7#PROZENT=2.00#\n#SKONTO#TAGE=14#PROZENT=1.00#BASISBETRAG=100.50#\n",
            Currency::EUR,
        );
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[1].days, d[1].percent.as_str(), d[1].base_amount),
            (14, "1.00", Some(10050))
        );
        let issue = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(
            due(None, Some("Zahlbar innerhalb 14 Tagen nach Erhalt"), issue),
            (
                NaiveDate::from_ymd_opt(2026, 3, 15),
                Some(DueDateSource::PaymentTermsDays)
            )
        );
        assert_eq!(
            due(None, Some("Bis zum 14.08.2016 ohne Abzug"), issue),
            (
                NaiveDate::from_ymd_opt(2016, 8, 14),
                Some(DueDateSource::PaymentTermsDate)
            )
        );
        assert_eq!(
            due(None, Some("#SKONTO#TAGE=7#PROZENT=2.00#"), issue),
            (None, None)
        );
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
