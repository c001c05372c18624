//! The demo's cast and script (pure): the creditor's letterhead, five debtors with their
//! invoices (one of them sent as an XRechnung file, [`super::xrechnung`]), what each does on
//! which day, and the camt.053 statements their payments arrive in.

use chrono::NaiveDate;
use mahnwerk_letters::events::{CopyTo, LetterSettings};
use mahnwerk_letters::model::{BankDetails, LabelValue, Letterhead};
use mahnwerk_proto::v1 as pb;

/// The demo creditor's tenant id.
pub const TENANT: &str = "demo";
/// The demo creditor's name.
pub const CREDITOR: &str = "Demo GmbH";
/// The creditor's account: invoices name it, statements are of it.
pub const CREDITOR_IBAN: &str = "DE89370400440532013000";
/// Where the creditor's copy of every letter goes when email is available.
pub const COPY_ADDRESS: &str = "kopie@demo-gmbh.example";
/// The collection partner of the demo.
pub const PARTNER_ID: &str = "inkasso-demo";

/// The letterhead and sender settings of the demo creditor. `copy_by_email`: the creditor's
/// copy of every letter goes to [`COPY_ADDRESS`] (needs SMTP), else into the creditor inbox.
pub fn letter_settings(copy_by_email: bool) -> LetterSettings {
    LetterSettings {
        letterhead: Letterhead {
            name: CREDITOR.into(),
            sender_line: "Demo GmbH · Musterweg 1 · 50667 Köln".into(),
            address: vec!["Musterweg 1".into(), "50667 Köln".into()],
            logo: None,
            contact: vec![
                LabelValue {
                    label: "Telefon".into(),
                    value: "0221 000000".into(),
                },
                LabelValue {
                    label: "E-Mail".into(),
                    value: "buchhaltung@demo-gmbh.example".into(),
                },
            ],
            footer: vec![
                "Amtsgericht Köln HRB 000000 (Demo)".into(),
                "Geschäftsführung: Demo".into(),
            ],
            bank: Some(BankDetails {
                bank_name: "Commerzbank".into(),
                iban: CREDITOR_IBAN.parse().expect("a valid IBAN"),
                bic: "COBADEFFXXX".parse().ok(),
            }),
            country: "DE".into(),
        },
        signature: Some("Ihre Buchhaltung der Demo GmbH".into()),
        email_from: "buchhaltung@demo-gmbh.example".into(),
        reply_to: None,
        copy_to: if copy_by_email {
            CopyTo::Email {
                address: COPY_ADDRESS.into(),
            }
        } else {
            CopyTo::Inbox
        },
        email_fallback_to_post: true,
        registered_steps: vec![],
        return_receipt_steps: vec![],
        drafts_only: false,
    }
}

/// One debtor of the demo and the invoice it owes.
#[derive(Debug, Clone)]
pub struct Debtor {
    pub invoice_number: &'static str,
    pub name: &'static str,
    pub business: bool,
    pub email: Option<&'static str>,
    pub street: &'static str,
    pub postal_code: &'static str,
    pub city: &'static str,
    /// The debtor's own account (payers' statements name it).
    pub iban: &'static str,
    pub net: i64,
    pub tax: i64,
    /// RF creditor reference on the invoice, if any.
    pub reference: Option<&'static str>,
    /// The business's VAT id (BT-48), if any.
    pub vat_id: Option<&'static str>,
    /// The invoice comes as an XRechnung file (`ImportEInvoice`) instead of `CreateInvoice`.
    pub xrechnung: bool,
    /// What this debtor does, in words.
    pub story: &'static str,
}

impl Debtor {
    pub fn gross(&self) -> i64 {
        self.net + self.tax
    }
}

/// What happens on a day of the demo besides the scheduler's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A payment of `minor` cents by the debtor of `invoice`, booked on the creditor's account
    /// and imported as part of that day's camt.053 statement.
    Pay {
        invoice: &'static str,
        minor: i64,
        remittance: &'static str,
    },
    /// The debtor disputes the invoice.
    Dispute {
        invoice: &'static str,
        reason: &'static str,
    },
}

/// Issue date, due date and the first day of the simulated clock.
pub fn dates() -> (NaiveDate, NaiveDate, NaiveDate) {
    let d = |s: &str| s.parse::<NaiveDate>().expect("a date");
    (d("2026-09-17"), d("2026-10-01"), d("2026-10-01"))
}

/// Days the demo runs after the start.
pub const DAYS: u32 = 40;

pub fn debtors() -> Vec<Debtor> {
    vec![
        Debtor {
            invoice_number: "RE-DEMO-1001",
            name: "Erika Mustermann",
            business: false,
            email: Some("erika.mustermann@example.org"),
            street: "Heidestraße 17",
            postal_code: "51147",
            city: "Köln",
            iban: "DE02120300000000202051",
            net: 10000,
            tax: 1900,
            reference: None,
            vat_id: None,
            xrechnung: false,
            story: "consumer, email: pays in full after the reminder (camt.053, invoice number in the text)",
        },
        Debtor {
            invoice_number: "RE-DEMO-1002",
            name: "Max Mustermann",
            business: false,
            email: None,
            street: "Lindenallee 3",
            postal_code: "10115",
            city: "Berlin",
            iban: "DE02500105170137075030",
            net: 25000,
            tax: 4750,
            reference: None,
            vat_id: None,
            xrechnung: false,
            story: "consumer, post: pays a part after the reminder and is dunned for the rest",
        },
        Debtor {
            invoice_number: "RE-DEMO-1003",
            name: "Bäckerei Größl OHG",
            business: true,
            email: Some("buero@baeckerei-groessl.example"),
            street: "Mühlenweg 12",
            postal_code: "80331",
            city: "München",
            iban: "DE12500105170648489890",
            net: 50000,
            tax: 9500,
            reference: None,
            vat_id: Some("DE123456789"),
            xrechnung: true,
            story: "business, email, its invoice an XRechnung file: disputes it after the reminder",
        },
        Debtor {
            invoice_number: "RE-DEMO-1004",
            name: "Weiß & Söhne KG",
            business: true,
            email: None,
            street: "Hafenstraße 8",
            postal_code: "20457",
            city: "Hamburg",
            iban: "DE75512108001245126199",
            net: 100000,
            tax: 19000,
            reference: None,
            vat_id: None,
            xrechnung: false,
            story: "business, post: never pays; handed over to collection, the partner reports a payment",
        },
        Debtor {
            invoice_number: "RE-DEMO-1005",
            name: "Schmidt Software GmbH",
            business: true,
            email: Some("rechnung@schmidt-software.example"),
            street: "Königsallee 60",
            postal_code: "40212",
            city: "Düsseldorf",
            iban: "DE02100500000054540402",
            net: 30000,
            tax: 5700,
            reference: Some("RF18539007547034"),
            vat_id: None,
            xrechnung: false,
            story: "business, email: pays on the due date with the RF reference; never dunned",
        },
    ]
}

/// The day (0 = start) each action happens.
pub fn script() -> Vec<(u32, Action)> {
    vec![
        (
            0,
            Action::Pay {
                invoice: "RE-DEMO-1005",
                minor: 35700,
                remittance: "RF18539007547034",
            },
        ),
        (
            7,
            Action::Dispute {
                invoice: "RE-DEMO-1003",
                reason: "Ware beschädigt geliefert",
            },
        ),
        (
            8,
            Action::Pay {
                invoice: "RE-DEMO-1001",
                minor: 11900,
                remittance: "Rechnung RE-DEMO-1001 vielen Dank",
            },
        ),
        (
            9,
            Action::Pay {
                invoice: "RE-DEMO-1002",
                minor: 10000,
                remittance: "Teilzahlung RE-DEMO-1002",
            },
        ),
    ]
}

/// The invoice of a debtor as the billing platform sends it.
pub fn invoice(d: &Debtor) -> pb::Invoice {
    let (issue, due, _) = dates();
    pb::Invoice {
        invoice_number: d.invoice_number.into(),
        issue_date: issue.to_string(),
        due_date: due.to_string(),
        currency: "EUR".into(),
        net_amount: d.net,
        tax_amount: d.tax,
        gross_amount: d.gross(),
        debtor: Some(pb::Debtor {
            name: d.name.into(),
            kind: if d.business {
                pb::DebtorKind::Business
            } else {
                pb::DebtorKind::Consumer
            } as i32,
            address: Some(pb::PostalAddress {
                street: vec![d.street.into()],
                postal_code: d.postal_code.into(),
                city: d.city.into(),
                country: "DE".into(),
                region: String::new(),
            }),
            email: d.email.unwrap_or_default().into(),
            language: "de".into(),
            customer_number: String::new(),
            vat_id: d.vat_id.unwrap_or_default().into(),
        }),
        payment_reference: d.reference.unwrap_or_default().into(),
        creditor_account: Some(pb::BankAccount {
            iban: CREDITOR_IBAN.into(),
            bic: "COBADEFFXXX".into(),
            holder: CREDITOR.into(),
        }),
        ..Default::default()
    }
}

/// One credit entry of a statement.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub bank_ref: String,
    pub minor: i64,
    pub payer: &'a str,
    pub payer_iban: &'a str,
    pub remittance: &'a str,
}

fn amount(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The creditor bank's camt.053 end-of-day statement of `day`: opening balance `opening`, the
/// entries, closing balance opening + entries.
pub fn camt053(day: NaiveDate, opening: i64, entries: &[Entry<'_>]) -> String {
    let closing = opening + entries.iter().map(|e| e.minor).sum::<i64>();
    let bal = |code: &str, minor: i64| {
        format!(
            "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>",
            amount(minor)
        )
    };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>DEMO-{day}</MsgId><CreDtTm>{day}T18:00:00</CreDtTm></GrpHdr><Stmt><Id>DEMO-STMT-{day}</Id><Acct><Id><IBAN>{CREDITOR_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>{}{}",
        bal("OPBD", opening),
        bal("CLBD", closing),
    );
    for e in entries {
        x.push_str(&format!(
            "<Ntry><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{}</AcctSvcrRef><BkTxCd/><NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>{}</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{}</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>{}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            amount(e.minor),
            xml_escape(&e.bank_ref),
            xml_escape(e.payer),
            e.payer_iban,
            xml_escape(e.remittance),
        ));
    }
    x.push_str("</Stmt></BkToCstmrStmt></Document>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_parse_and_balance() {
        let (_, due, _) = dates();
        let d = debtors();
        let entries = [Entry {
            bank_ref: "B-1".into(),
            minor: 11900,
            payer: d[2].name,
            payer_iban: d[0].iban,
            remittance: "Rechnung RE-DEMO-1001 & Dank",
        }];
        let xml = camt053(due, 35700, &entries);
        let reader = mahnwerk_formats::camt::CamtReader::new(
            xml.as_bytes(),
            mahnwerk_formats::statement::ParseOptions::default(),
        )
        .unwrap();
        let statements = mahnwerk_formats::statement::collect_statements(reader).unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].entries.len(), 1);
    }

    #[test]
    fn every_scripted_invoice_is_in_the_cast_and_the_letterhead_validates() {
        let numbers: Vec<_> = debtors().iter().map(|d| d.invoice_number).collect();
        for (_, a) in script() {
            let n = match a {
                Action::Pay { invoice, .. } | Action::Dispute { invoice, .. } => invoice,
            };
            assert!(numbers.contains(&n), "{n}");
        }
        for d in debtors() {
            let iban: Result<mahnwerk_domain::Iban, _> = d.iban.parse();
            assert!(iban.is_ok(), "{}", d.iban);
        }
        let mut sample = mahnwerk_letters::model::sample();
        sample.letterhead = letter_settings(true).letterhead;
        sample.validate().unwrap();
    }
}
