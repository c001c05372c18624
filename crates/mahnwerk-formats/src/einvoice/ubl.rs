//! UBL 2.1 `Invoice` and `CreditNote` (EN 16931, XRechnung UBL).

use super::{
    EAccount, EDebtor, EInvoice, Profile, Syntax, account, amount_at, date_iso, evidence, node_pos,
    owned, profile_of, required, sum_at, terms, texts,
};
use crate::error::{Error, Result};
use crate::xml::Node;
use mahnwerk_domain::subdivision::region_from_text;
use mahnwerk_domain::{Currency, PostalAddress};

pub(super) fn read(root: &Node) -> Result<EInvoice> {
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
    let tax_registration = buyer.and_then(|n| {
        n.all("PartyTaxScheme")
            .into_iter()
            .find(|t| t.text_at("TaxScheme/ID").is_some_and(|id| id != "VAT"))
            .and_then(|t| t.text_at("CompanyID"))
    });
    let legal = b("PartyLegalEntity/CompanyID");
    let buyer_reference = root.text_at("BuyerReference");
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
        business_evidence: evidence(vat_id, tax_registration, legal, buyer_reference),
        address: PostalAddress {
            street,
            postal_code: b("PostalAddress/PostalZone").unwrap_or_default().to_owned(),
            city: b("PostalAddress/CityName").unwrap_or_default().to_owned(),
            country: b("PostalAddress/Country/IdentificationCode")
                .unwrap_or_default()
                .to_owned(),
            // BT-54: free text; kept when it names a subdivision unambiguously (`Bayern`).
            region: b("PostalAddress/CountrySubentity").and_then(|s| {
                region_from_text(
                    b("PostalAddress/Country/IdentificationCode").unwrap_or_default(),
                    s,
                )
            }),
        },
        email: owned(b("Contact/ElectronicMail").or_else(|| {
            buyer
                .and_then(|n| n.child("EndpointID"))
                .filter(|e| e.attr("schemeID") == Some("EM"))
                .map(|e| e.text.trim())
        })),
        customer_number: owned(b("PartyIdentification/ID")),
        vat_id: owned(vat_id),
        tax_registration_id: owned(tax_registration),
        legal_registration_id: owned(legal),
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
    let terms = terms::clean_lines(&terms);
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
            "missing required element (BT-115)",
        )
    })?;
    let must = |path: &str, bt: &str| -> Result<i64> {
        amount_at(root, &format!("{m}/{path}"), currency)?.ok_or_else(|| {
            Error::syntax(
                node_pos(root, &format!("{m}/{path}")),
                format!("missing required element ({bt})"),
            )
        })
    };
    let gross = must("TaxInclusiveAmount", "BT-112")?;
    let net = must("TaxExclusiveAmount", "BT-109")?;
    let tax = amount_at(root, "TaxTotal/TaxAmount", currency)?.unwrap_or(gross - net);
    let read = terms::read(terms.as_deref(), issue_date, currency);
    let (due_date, due_date_source) = terms::due(explicit_due, &read);
    let notes = texts(root, "Note").join("\n");
    let default_notice = read.default_notice || terms::has_default_notice(&notes);
    let line_net_sum = match sum_at(root, "InvoiceLine/LineExtensionAmount", currency)? {
        Some(s) => Some(s),
        None => sum_at(root, "CreditNoteLine/LineExtensionAmount", currency)?,
    };
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
        cash_discounts: read.discounts,
        preceding_invoices: root
            .all("BillingReference/InvoiceDocumentReference/ID")
            .into_iter()
            .map(|n| n.text.trim().to_owned())
            .collect(),
        buyer_reference: owned(buyer_reference),
        line_net_sum,
        default_notice,
    })
}
