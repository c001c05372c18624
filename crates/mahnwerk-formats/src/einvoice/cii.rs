//! UN/CEFACT `CrossIndustryInvoice` (EN 16931, ZUGFeRD 2.x / Factur-X, XRechnung CII).

use super::{
    CashDiscount, EAccount, EDebtor, EInvoice, Profile, Syntax, account, amount_at, date_102,
    evidence, node_pos, owned, profile_of, required, sum_at, terms, texts,
};
use crate::error::{Error, Result};
use crate::xml::Node;
use mahnwerk_domain::subdivision::region_from_text;
use mahnwerk_domain::{Currency, PostalAddress};

pub(super) fn read(root: &Node) -> Result<EInvoice> {
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
    let tax_registration = buyer.and_then(|n| {
        n.all("SpecifiedTaxRegistration/ID")
            .into_iter()
            .find(|id| id.attr("schemeID") == Some("FC"))
            .map(|id| id.text.trim())
    });
    let legal = b("SpecifiedLegalOrganization/ID");
    let buyer_reference = tx.text_at("ApplicableHeaderTradeAgreement/BuyerReference");
    let debtor = EDebtor {
        name: b("Name").unwrap_or_default().to_owned(),
        business_evidence: evidence(vat_id, tax_registration, legal, buyer_reference),
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
            // BT-54: free text; kept when it names a subdivision unambiguously (`Bayern`).
            region: b("PostalTradeAddress/CountrySubDivisionName").and_then(|s| {
                region_from_text(b("PostalTradeAddress/CountryID").unwrap_or_default(), s)
            }),
        },
        email: owned(
            b("URIUniversalCommunication/URIID")
                .or_else(|| b("DefinedTradeContact/EmailURIUniversalCommunication/URIID")),
        ),
        customer_number: owned(b("ID").or_else(|| b("GlobalID"))),
        vat_id: owned(vat_id),
        tax_registration_id: owned(tax_registration),
        legal_registration_id: owned(legal),
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
    let read = terms::read(terms.as_deref(), issue_date, currency);
    let mut cash_discounts = read.discounts.clone();
    for d in st.all("SpecifiedTradePaymentTerms/ApplicableTradePaymentDiscountTerms") {
        let days = d
            .text_at("BasisPeriodMeasure")
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        if let (Some(days), Some(percent)) = (days, d.text_at("CalculationPercent")) {
            cash_discounts.push(CashDiscount {
                days,
                percent: terms::normalise_percent(percent).unwrap_or_else(|| percent.to_owned()),
                base_amount: amount_at(d, "BasisAmount", currency)?,
            });
        }
    }
    terms::sort_discounts(&mut cash_discounts);
    let s = "SpecifiedTradeSettlementHeaderMonetarySummation";
    let payable = amount_at(st, &format!("{s}/DuePayableAmount"), currency)?.ok_or_else(|| {
        Error::syntax(
            node_pos(
                st,
                "SpecifiedTradeSettlementHeaderMonetarySummation/DuePayableAmount",
            ),
            "missing required element (BT-115)",
        )
    })?;
    let must = |path: &str, bt: &str| -> Result<i64> {
        amount_at(st, &format!("{s}/{path}"), currency)?.ok_or_else(|| {
            Error::syntax(
                node_pos(st, &format!("{s}/{path}")),
                format!("missing required element ({bt})"),
            )
        })
    };
    let gross = must("GrandTotalAmount", "BT-112")?;
    let net = must("TaxBasisTotalAmount", "BT-109")?;
    let tax = amount_at(st, &format!("{s}/TaxTotalAmount"), currency)?.unwrap_or(gross - net);
    let (due_date, due_date_source) = terms::due(explicit_due, &read);
    let notes = texts(root, "ExchangedDocument/IncludedNote/Content").join("\n");
    let default_notice = read.default_notice || terms::has_default_notice(&notes);
    let line_net_sum = sum_at(
        tx,
        "IncludedSupplyChainTradeLineItem/SpecifiedLineTradeSettlement/SpecifiedTradeSettlementLineMonetarySummation/LineTotalAmount",
        currency,
    )?;
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
        buyer_reference: owned(buyer_reference),
        line_net_sum,
        default_notice,
    })
}
