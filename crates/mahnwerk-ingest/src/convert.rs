//! Protobuf ⇄ domain at the service edge. Every rejected field is named with its path in the
//! request (`invoice.debtor.address.city`).

use chrono::NaiveDate;
use mahnwerk_domain::lifecycle::{CaseState, CaseStatus};
use mahnwerk_domain::{
    BankAccount, CashDiscountTerm, Currency, Debtor, DebtorKind, FieldError, FieldErrors, Invoice,
    PostalAddress, TenantId,
};
use mahnwerk_proto::v1 as pb;

/// Longest free text accepted in any string field, in characters.
const MAX_FIELD: usize = 1000;

pub fn parse_date(errs: &mut FieldErrors, field: &str, value: &str) -> Option<NaiveDate> {
    if value.is_empty() {
        errs.push(field, "required (ISO 8601 date, e.g. 2026-03-01)");
        return None;
    }
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errs.push(
                field,
                format!("{value:?} is not a valid ISO 8601 date (YYYY-MM-DD)"),
            );
            None
        }
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_owned())
}

fn check_len(errs: &mut FieldErrors, field: &str, value: &str) {
    if value.chars().count() > MAX_FIELD {
        errs.push(field, format!("must be at most {MAX_FIELD} characters"));
    }
}

/// SEPA's character set for references (EPC217-08): letters, digits, space and `/-?:().,'+`.
fn sepa_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " /-?:().,'+".contains(c))
}

fn direct_debit_from_proto(
    errs: &mut FieldErrors,
    d: &pb::DirectDebit,
    prefix: &str,
) -> mahnwerk_domain::DirectDebit {
    let mandate = d.mandate_id.trim();
    if mandate.chars().count() > 35 || !sepa_text(mandate) {
        errs.push(
            format!("{prefix}.mandate_id"),
            "at most 35 characters of the SEPA set (letters, digits, space, / - ? : ( ) . , ' +)",
        );
    }
    let creditor = d.creditor_id.trim();
    let b = creditor.as_bytes();
    let shaped = b.len() >= 8
        && b.len() <= 35
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b.iter().all(u8::is_ascii_alphanumeric);
    if !creditor.is_empty() && !shaped {
        errs.push(
            format!("{prefix}.creditor_id"),
            "a SEPA creditor identifier: country, two check digits, business code and national id, 8 to 35 letters and digits (e.g. DE98ZZZ09999999999)",
        );
    }
    mahnwerk_domain::DirectDebit {
        mandate_id: opt(mandate),
        creditor_id: opt(creditor),
    }
}

/// Read an invoice from a request; `prefix` is the field path of the message (`invoice`).
pub fn invoice_from_proto(p: &pb::Invoice, prefix: &str) -> Result<Invoice, FieldErrors> {
    let mut errs = FieldErrors::default();
    let f = |name: &str| format!("{prefix}.{name}");
    let number = errs.check(&f("invoice_number"), p.invoice_number.parse());
    let issue_date = parse_date(&mut errs, &f("issue_date"), &p.issue_date);
    let due_date = parse_date(&mut errs, &f("due_date"), &p.due_date);
    let currency: Option<Currency> = errs.check(&f("currency"), p.currency.parse());
    {
        let (name, value) = ("payment_reference", &p.payment_reference);
        check_len(&mut errs, &f(name), value);
    }
    let debtor = match &p.debtor {
        None => {
            errs.push(f("debtor"), "required");
            None
        }
        Some(d) => debtor_from_proto(&mut errs, d, &f("debtor")),
    };
    let account = match &p.creditor_account {
        None => {
            errs.push(f("creditor_account"), "required");
            None
        }
        Some(a) => {
            let iban = errs.check(&f("creditor_account.iban"), a.iban.parse());
            let bic = match opt(&a.bic) {
                Some(b) => errs.check(&f("creditor_account.bic"), b.parse()).map(Some),
                None => Some(None),
            };
            check_len(&mut errs, &f("creditor_account.holder"), &a.holder);
            match (iban, bic) {
                (Some(iban), Some(bic)) => Some(BankAccount {
                    iban,
                    bic,
                    holder: opt(&a.holder),
                }),
                _ => None,
            }
        }
    };
    let mut cash_discounts = Vec::new();
    for (i, c) in p.cash_discounts.iter().enumerate() {
        let field = f(&format!("cash_discounts[{i}]"));
        check_len(&mut errs, &format!("{field}.percent"), &c.percent);
        if let Some(until) = parse_date(&mut errs, &format!("{field}.until"), &c.until) {
            cash_discounts.push(CashDiscountTerm {
                until,
                percent: c.percent.trim().to_owned(),
                discount: c.discount_amount,
            });
        }
    }
    let direct_debit = p
        .direct_debit
        .as_ref()
        .map(|d| direct_debit_from_proto(&mut errs, d, &f("direct_debit")));
    let (
        Some(number),
        Some(issue_date),
        Some(due_date),
        Some(currency),
        Some(debtor),
        Some(account),
    ) = (number, issue_date, due_date, currency, debtor, account)
    else {
        return Err(errs);
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let invoice = Invoice {
        number,
        issue_date,
        due_date,
        currency,
        net: p.net_amount,
        tax: p.tax_amount,
        gross: p.gross_amount,
        debtor,
        payment_reference: opt(&p.payment_reference),
        creditor_account: account,
        default_notice: p.default_notice,
        prepaid: p.prepaid_amount,
        rounding: p.rounding_amount,
        cash_discounts,
        source: None,
        direct_debit,
        due_date_by_calendar: p.due_date_by_calendar,
    };
    let amount_name = |field: &str| -> String {
        match field {
            "net" => "net_amount".into(),
            "tax" => "tax_amount".into(),
            "gross" => "gross_amount".into(),
            "prepaid" => "prepaid_amount".into(),
            "rounding" => "rounding_amount".into(),
            other => match other.split_once(".discount") {
                Some((head, "")) => format!("{head}.discount_amount"),
                _ => other.to_owned(),
            },
        }
    };
    let rule_errs = invoice.check();
    if rule_errs.is_empty() {
        Ok(invoice)
    } else {
        Err(FieldErrors(
            rule_errs
                .0
                .into_iter()
                .map(|e| FieldError::new(format!("{prefix}.{}", amount_name(&e.field)), e.reason))
                .collect(),
        ))
    }
}

fn debtor_from_proto(errs: &mut FieldErrors, d: &pb::Debtor, prefix: &str) -> Option<Debtor> {
    let kind = match pb::DebtorKind::try_from(d.kind) {
        Ok(pb::DebtorKind::Consumer) => Some(DebtorKind::Consumer),
        Ok(pb::DebtorKind::Business) => Some(DebtorKind::Business),
        _ => {
            errs.push(
                format!("{prefix}.kind"),
                "required: DEBTOR_KIND_CONSUMER or DEBTOR_KIND_BUSINESS",
            );
            None
        }
    };
    let Some(address) = &d.address else {
        errs.push(format!("{prefix}.address"), "required");
        return None;
    };
    for (name, value) in [
        ("email", &d.email),
        ("customer_number", &d.customer_number),
        ("vat_id", &d.vat_id),
    ] {
        check_len(errs, &format!("{prefix}.{name}"), value);
    }
    Some(Debtor {
        name: d.name.trim().to_owned().into(),
        kind: kind?,
        address: PostalAddress {
            street: address.street.iter().map(|s| s.trim().to_owned()).collect(),
            postal_code: address.postal_code.trim().to_owned(),
            city: address.city.trim().to_owned(),
            country: address.country.trim().to_owned(),
            region: opt(&address.region),
        }
        .into(),
        email: opt(&d.email).map(Into::into),
        language: opt(&d.language).unwrap_or_else(|| "de".into()),
        customer_number: opt(&d.customer_number),
        vat_id: opt(&d.vat_id),
    })
}

pub fn status_to_proto(s: CaseStatus) -> pb::InvoiceStatus {
    match s {
        CaseStatus::Open => pb::InvoiceStatus::Open,
        CaseStatus::Disputed => pb::InvoiceStatus::Disputed,
        CaseStatus::Cancelled => pb::InvoiceStatus::Cancelled,
        CaseStatus::Credited => pb::InvoiceStatus::Credited,
    }
}

pub fn status_from_proto(v: i32) -> Option<CaseStatus> {
    match pb::InvoiceStatus::try_from(v).ok()? {
        pb::InvoiceStatus::Open => Some(CaseStatus::Open),
        pb::InvoiceStatus::Disputed => Some(CaseStatus::Disputed),
        pb::InvoiceStatus::Cancelled => Some(CaseStatus::Cancelled),
        pb::InvoiceStatus::Credited => Some(CaseStatus::Credited),
        pb::InvoiceStatus::Unspecified => None,
    }
}

pub fn invoice_to_proto(tenant: &TenantId, state: &CaseState) -> pb::Invoice {
    let i = &state.invoice;
    let addr = i.debtor.address.expose();
    pb::Invoice {
        invoice_number: i.number.to_string(),
        issue_date: i.issue_date.to_string(),
        due_date: i.due_date.to_string(),
        currency: i.currency.to_string(),
        net_amount: i.net,
        tax_amount: i.tax,
        gross_amount: i.gross,
        debtor: Some(pb::Debtor {
            name: i.debtor.name.expose().clone(),
            kind: match i.debtor.kind {
                DebtorKind::Consumer => pb::DebtorKind::Consumer,
                DebtorKind::Business => pb::DebtorKind::Business,
            } as i32,
            address: Some(pb::PostalAddress {
                street: addr.street.clone(),
                postal_code: addr.postal_code.clone(),
                city: addr.city.clone(),
                country: addr.country.clone(),
                region: addr.region.clone().unwrap_or_default(),
            }),
            email: i
                .debtor
                .email
                .as_ref()
                .map(|e| e.expose().clone())
                .unwrap_or_default(),
            language: i.debtor.language.clone(),
            customer_number: i.debtor.customer_number.clone().unwrap_or_default(),
            vat_id: i.debtor.vat_id.clone().unwrap_or_default(),
        }),
        payment_reference: i.payment_reference.clone().unwrap_or_default(),
        creditor_account: Some(pb::BankAccount {
            iban: i.creditor_account.iban.to_string(),
            bic: i
                .creditor_account
                .bic
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            holder: i.creditor_account.holder.clone().unwrap_or_default(),
        }),
        default_notice: i.default_notice,
        cash_discounts: i
            .cash_discounts
            .iter()
            .map(|c| pb::CashDiscountTerm {
                until: c.until.to_string(),
                percent: c.percent.clone(),
                discount_amount: c.discount,
            })
            .collect(),
        prepaid_amount: i.prepaid,
        rounding_amount: i.rounding,
        direct_debit: i.direct_debit.as_ref().map(|d| pb::DirectDebit {
            mandate_id: d.mandate_id.clone().unwrap_or_default(),
            creditor_id: d.creditor_id.clone().unwrap_or_default(),
        }),
        due_date_by_calendar: i.due_date_by_calendar,
        document_sha256: i
            .source
            .as_ref()
            .map(|s| s.sha256.clone())
            .unwrap_or_default(),
        postal_address_incomplete: !i.has_postal_address(),
        tenant: tenant.to_string(),
        case_id: mahnwerk_domain::CaseId::for_invoice(tenant, &i.number).to_string(),
        status: status_to_proto(state.status) as i32,
        open_amount: state.open.minor,
        current_due_date: state.due_date.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto() -> pb::Invoice {
        pb::Invoice {
            invoice_number: "RE-1".into(),
            issue_date: "2026-03-01".into(),
            due_date: "2026-03-31".into(),
            currency: "EUR".into(),
            net_amount: 10000,
            tax_amount: 1900,
            gross_amount: 11900,
            debtor: Some(pb::Debtor {
                name: "Erika Mustermann".into(),
                kind: pb::DebtorKind::Consumer as i32,
                address: Some(pb::PostalAddress {
                    street: vec!["Heidestraße 17".into()],
                    postal_code: "51147".into(),
                    city: "Köln".into(),
                    country: "DE".into(),
                    region: String::new(),
                }),
                ..Default::default()
            }),
            creditor_account: Some(pb::BankAccount {
                iban: "DE89370400440532013000".into(),
                ..Default::default()
            }),
            cash_discounts: vec![pb::CashDiscountTerm {
                until: "2026-03-11".into(),
                percent: "2.00".into(),
                discount_amount: 238,
            }],
            prepaid_amount: 1900,
            ..Default::default()
        }
    }

    #[test]
    fn cash_discounts_and_prepaid_come_in_and_bad_ones_are_named() {
        let i = invoice_from_proto(&proto(), "invoice").unwrap();
        assert_eq!(i.amount_due().minor, 10000);
        assert_eq!(i.cash_discounts[0].discount, 238);
        let mut p = proto();
        p.cash_discounts[0].until = "2026-04-30".into();
        p.cash_discounts[0].discount_amount = 0;
        let fields: Vec<String> = invoice_from_proto(&p, "invoice")
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "invoice.cash_discounts[0].until",
                "invoice.cash_discounts[0].discount_amount"
            ]
        );
    }

    #[test]
    fn a_direct_debit_and_a_calendar_due_date_come_in_checked_and_go_out_again() {
        let mut p = proto();
        p.direct_debit = Some(pb::DirectDebit {
            mandate_id: " MANDAT-0042 ".into(),
            creditor_id: "DE98ZZZ09999999999".into(),
        });
        p.due_date_by_calendar = true;
        let i = invoice_from_proto(&p, "invoice").unwrap();
        assert_eq!(
            i.direct_debit,
            Some(mahnwerk_domain::DirectDebit {
                mandate_id: Some("MANDAT-0042".into()),
                creditor_id: Some("DE98ZZZ09999999999".into()),
            })
        );
        assert!(i.due_date_by_calendar);
        let state = mahnwerk_domain::lifecycle::evolve(
            None,
            &mahnwerk_domain::lifecycle::CaseEvent::InvoiceIssued(
                mahnwerk_domain::lifecycle::InvoiceIssued { invoice: i },
            ),
        )
        .unwrap();
        let out = invoice_to_proto(&"acme".parse().unwrap(), &state);
        assert_eq!(
            out.direct_debit.as_ref().map(|d| d.mandate_id.as_str()),
            Some("MANDAT-0042")
        );
        assert!(out.due_date_by_calendar);
        // A mandate outside the SEPA set and a malformed creditor id are named.
        p.direct_debit = Some(pb::DirectDebit {
            mandate_id: "MANDAT\n42".into(),
            creditor_id: "ZZZ".into(),
        });
        let fields: Vec<String> = invoice_from_proto(&p, "invoice")
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "invoice.direct_debit.mandate_id",
                "invoice.direct_debit.creditor_id"
            ]
        );
    }

    #[test]
    fn the_region_comes_in_checked_and_goes_out_again() {
        let mut p = proto();
        if let Some(a) = p.debtor.as_mut().and_then(|d| d.address.as_mut()) {
            a.region = " DE-BY ".into();
        }
        let i = invoice_from_proto(&p, "invoice").unwrap();
        assert_eq!(i.debtor.address.expose().region.as_deref(), Some("DE-BY"));
        assert!(
            invoice_from_proto(&proto(), "invoice")
                .unwrap()
                .debtor
                .address
                .expose()
                .region
                .is_none()
        );
        for bad in ["DE-XX", "BY", "AT-9", "de-by"] {
            let mut p = proto();
            if let Some(a) = p.debtor.as_mut().and_then(|d| d.address.as_mut()) {
                a.region = bad.into();
            }
            let errs = invoice_from_proto(&p, "invoice").unwrap_err().0;
            let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["invoice.debtor.address.region"], "{bad}");
        }
    }
}
