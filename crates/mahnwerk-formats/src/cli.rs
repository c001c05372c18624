//! `mahnwerk inspect …`: operators look into bank statements and e-invoices.
//!
//! # JSON contract (`--json`, stable, for scripts and `jq`)
//! Amounts are signed integers in minor units (debits negative), dates ISO 8601 `YYYY-MM-DD`,
//! absent values `null`. New fields may be added; existing ones keep name and meaning.
//!
//! `inspect statement FILE… --json`:
//! ```text
//! {"statements":[{"file","format","version","statement_id","sequence","account_iban","account",
//!   "currency","opening_balance","opening_balance_date",
//!   "entries":[{"amount","currency","booking_date","value_date","remittance","creditor_reference",
//!     "end_to_end_id","mandate_id","creditor_id","counterparty_name","counterparty_iban",
//!     "counterparty_bic","bank_reference","reversal","return_reason","bank_transaction_code",
//!     "gvc","batch_index","line"}],
//!   "closing_balance","closing_balance_date","entry_count","credits_total","debits_total",
//!   "balanced","balance_check"}]}
//! ```
//! `balanced` is `true`/`false`, or `null` when the check could not be made (`balance_check`
//! says why). Entries are written as they are read, so a 1 GB statement needs flat memory.
//!
//! `inspect invoice FILE… --json`: `{"invoices":[{"file", …}]}` where each invoice has the field
//! names of the gRPC `Invoice` message in snake_case (`invoice_number`, `issue_date`, `due_date`,
//! `currency`, `net_amount`, `tax_amount`, `gross_amount`, `debtor{name,kind,address{street,
//! postal_code,city,country},email,customer_number,vat_id}`, `payment_reference`,
//! `creditor_account{iban,iban_valid,bic,holder}`) plus the e-invoice fields of
//! [`crate::einvoice::EInvoice`].
//!
//! Errors: [`CliError`]'s `Display` is `FILE: line N, ELEMENT: reason`; the binary prints it and
//! exits 1.

use crate::camt::CamtReader;
use crate::csv::{CsvMapping, CsvReader};
use crate::einvoice::read_einvoice;
use crate::error::Error;
use crate::mt940::{Mt940Options, Mt940Reader};
use crate::statement::{
    Balance, Entry, ParseOptions, StatementEnd, StatementHeader, StatementItem,
};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

/// Look into bank statements and e-invoices.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum InspectCommand {
    /// Print each statement of camt.052/053/054 (XML or ZIP) and MT940/MT942 files: account,
    /// currency, opening and closing balance, entry count, credit and debit sums, balance check
    /// and every entry.
    Statement {
        /// Statement files (format detected from the content).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the stable JSON contract instead of text (see the crate README).
        #[arg(long)]
        json: bool,
        /// Accept impossible dates (30 February) as unknown with a warning instead of failing.
        #[arg(long)]
        lenient_dates: bool,
        /// Encoding of MT940 lines that are not UTF-8 (default windows-1252; e.g. windows-1250).
        #[arg(long, value_name = "LABEL")]
        encoding: Option<String>,
        /// Read the files as CSV with this column mapping (JSON, see `mahnwerk_formats::csv`).
        #[arg(long, value_name = "FILE")]
        csv_mapping: Option<PathBuf>,
    },
    /// Print the invoice read from an e-invoice: UBL, CII, XRechnung, ZUGFeRD/Factur-X (XML or
    /// PDF with embedded XML).
    Invoice {
        /// E-invoice files (XML or PDF).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the stable JSON contract instead of text (see the crate README).
        #[arg(long)]
        json: bool,
    },
}

/// A failed inspection: which file and why. `Display` is the full message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {error}")]
pub struct CliError {
    pub file: String,
    #[source]
    pub error: Error,
}

fn fail(file: &str, error: impl Into<Error>) -> CliError {
    CliError {
        file: file.to_owned(),
        error: error.into(),
    }
}

/// Run one inspect command, writing to `out`.
pub fn run(cmd: InspectCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        InspectCommand::Statement {
            files,
            json,
            lenient_dates,
            encoding,
            csv_mapping,
        } => {
            let csv = match csv_mapping {
                Some(path) => {
                    let name = path.display().to_string();
                    let bytes = std::fs::read(&path).map_err(|e| fail(&name, e))?;
                    Some(CsvMapping::from_json(&bytes).map_err(|e| fail(&name, e))?)
                }
                None => None,
            };
            let fallback = match encoding {
                Some(label) => {
                    encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                        fail(
                            "--encoding",
                            Error::invalid("encoding", format!("unknown encoding {label:?}")),
                        )
                    })?
                }
                None => encoding_rs::WINDOWS_1252,
            };
            let options = ParseOptions { lenient_dates };
            let mt = Mt940Options {
                parse: options,
                fallback_encoding: fallback,
            };
            let mut w = Writer {
                out,
                json,
                first_statement: true,
                first_entry: true,
            };
            w.raw(if json { "{\"statements\":[" } else { "" }, "")?;
            for f in &files {
                let name = f.display().to_string();
                let file = std::fs::File::open(f).map_err(|e| fail(&name, e))?;
                let mut input = std::io::BufReader::with_capacity(256 * 1024, file);
                let head = std::io::BufRead::fill_buf(&mut input).map_err(|e| fail(&name, e))?;
                if !crate::zip::is_zip(head) {
                    // Streamed: a 1 GB statement is never in memory at once.
                    statements(&mut w, &name, input, options, mt, csv.as_ref()).map_err(
                        |e| match e {
                            Failure::Parse(err) => fail(&name, err),
                            Failure::Write(io) => fail("output", io),
                        },
                    )?;
                    continue;
                }
                // A ZIP archive is read whole (its directory is at the end).
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut input, &mut bytes).map_err(|e| fail(&name, e))?;
                {
                    crate::zip::for_each_member(&bytes, |m| {
                        let label = format!("{name}:{}", m.name);
                        statements(&mut w, &label, &m.data[..], options, mt, csv.as_ref()).map_err(
                            |e| match e {
                                Failure::Parse(err) => err,
                                Failure::Write(io) => Error::Io(io),
                            },
                        )
                    })
                    .map_err(|e| fail(&name, e))?;
                }
            }
            w.raw(if json { "]}\n" } else { "" }, "")?;
            Ok(())
        }
        InspectCommand::Invoice { files, json } => {
            let mut all = Vec::new();
            for f in &files {
                let name = f.display().to_string();
                let bytes = std::fs::read(f).map_err(|e| fail(&name, e))?;
                let inv = read_einvoice(&bytes).map_err(|e| fail(&name, e))?;
                if json {
                    let mut v = serde_json::to_value(&inv)
                        .map_err(|e| fail(&name, std::io::Error::other(e)))?;
                    if let Value::Object(map) = &mut v {
                        map.insert("file".into(), json!(name));
                    }
                    all.push(v);
                } else {
                    print_invoice(out, &name, &inv).map_err(|e| fail("output", e))?;
                }
            }
            if json {
                let doc = json!({ "invoices": all });
                writeln!(out, "{doc}").map_err(|e| fail("output", e))?;
            }
            Ok(())
        }
    }
}

enum Failure {
    Parse(Error),
    Write(std::io::Error),
}

struct Writer<'a> {
    out: &'a mut dyn Write,
    json: bool,
    first_statement: bool,
    first_entry: bool,
}

impl Writer<'_> {
    fn raw(&mut self, a: &str, b: &str) -> Result<(), CliError> {
        write!(self.out, "{a}{b}").map_err(|e| fail("output", e))
    }
}

fn statements<R: std::io::BufRead>(
    w: &mut Writer<'_>,
    file: &str,
    mut input: R,
    options: ParseOptions,
    mt: Mt940Options,
    csv: Option<&CsvMapping>,
) -> Result<(), Failure> {
    let bytes = input.fill_buf().map_err(|e| Failure::Parse(Error::Io(e)))?;
    let head = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &bytes[i..]);
    let is_xml = head.starts_with(b"<")
        || head.starts_with(b"\xEF\xBB\xBF<")
        || head.starts_with(b"\xFF\xFE")
        || head.starts_with(b"\xFE\xFF");
    let items: Box<dyn Iterator<Item = crate::Result<StatementItem>>> = if let Some(m) = csv {
        Box::new(CsvReader::new(input, m.clone(), options).map_err(Failure::Parse)?)
    } else if is_xml {
        Box::new(CamtReader::new(input, options).map_err(Failure::Parse)?)
    } else {
        Box::new(Mt940Reader::new(input, mt))
    };
    let mut seen = false;
    for item in items {
        match item.map_err(Failure::Parse)? {
            StatementItem::Header(h) => {
                seen = true;
                header(w, file, &h).map_err(Failure::Write)?;
            }
            StatementItem::Entry(e) => entry(w, &e).map_err(Failure::Write)?,
            StatementItem::End(end) => finish(w, &end).map_err(Failure::Write)?,
        }
    }
    if !seen {
        return Err(Failure::Parse(Error::Unsupported(
            "no statement found".into(),
        )));
    }
    Ok(())
}

fn money_text(minor: i64, b: Option<&Balance>) -> String {
    match b {
        Some(b) => format!(
            "{} {}",
            mahnwerk_domain::Money::new(minor, b.amount.currency).to_decimal_string(),
            b.amount.currency
        ),
        None => "-".into(),
    }
}

fn header(w: &mut Writer<'_>, file: &str, h: &StatementHeader) -> std::io::Result<()> {
    w.first_entry = true;
    if w.json {
        let v = json!({
            "file": file,
            "format": h.format,
            "version": h.version,
            "statement_id": h.statement_id,
            "sequence": h.sequence,
            "account_iban": h.account_iban,
            "account": h.account,
            "currency": h.currency.map(|c| c.to_string()),
            "opening_balance": h.opening_balance.as_ref().map(|b| b.amount.minor),
            "opening_balance_date": h.opening_balance.as_ref().and_then(|b| b.date),
        });
        let s = v.to_string();
        let open = &s[..s.len() - 1];
        if !w.first_statement {
            write!(w.out, ",")?;
        }
        w.first_statement = false;
        write!(w.out, "{open},\"entries\":[")
    } else {
        writeln!(
            w.out,
            "{file}: statement {} ({}) sequence {}",
            h.statement_id.as_deref().unwrap_or("-"),
            h.version,
            h.sequence.as_deref().unwrap_or("-")
        )?;
        writeln!(
            w.out,
            "  account {}  currency {}",
            h.account_iban
                .as_deref()
                .or(h.account.as_deref())
                .unwrap_or("-"),
            h.currency
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
        let ob = h.opening_balance.as_ref();
        writeln!(
            w.out,
            "  opening balance {} {}",
            money_text(ob.map_or(0, |b| b.amount.minor), ob),
            ob.and_then(|b| b.date)
                .map(|d| d.to_string())
                .unwrap_or_default()
        )
    }
}

fn entry(w: &mut Writer<'_>, e: &Entry) -> std::io::Result<()> {
    if w.json {
        let v = json!({
            "amount": e.amount.minor,
            "currency": e.amount.currency.to_string(),
            "booking_date": e.booking_date,
            "value_date": e.value_date,
            "remittance": e.remittance,
            "creditor_reference": e.creditor_reference,
            "end_to_end_id": e.end_to_end_id,
            "mandate_id": e.mandate_id,
            "creditor_id": e.creditor_id,
            "counterparty_name": e.counterparty.name,
            "counterparty_iban": e.counterparty.iban,
            "counterparty_bic": e.counterparty.bic,
            "bank_reference": e.bank_reference,
            "reversal": e.reversal,
            "return_reason": e.return_reason,
            "bank_transaction_code": e.bank_transaction_code.as_ref().or(e.proprietary_code.as_ref()),
            "gvc": e.gvc,
            "batch_index": e.batch.as_ref().and_then(|b| b.index),
            "line": e.line,
        });
        if !w.first_entry {
            write!(w.out, ",")?;
        }
        w.first_entry = false;
        write!(w.out, "{v}")
    } else {
        writeln!(
            w.out,
            "  {} {} {:>16} {}{}{} | {} | {}",
            e.booking_date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "----------".into()),
            e.value_date
                .map(|d| d.to_string())
                .unwrap_or_else(|| "----------".into()),
            format!("{} {}", e.amount.to_decimal_string(), e.amount.currency),
            if e.reversal { "REVERSAL " } else { "" },
            e.return_reason
                .as_deref()
                .map(|r| format!("RETURN {r} "))
                .unwrap_or_default(),
            e.counterparty.name.as_deref().unwrap_or("-"),
            e.creditor_reference
                .as_deref()
                .or(e.end_to_end_id.as_deref())
                .unwrap_or("-"),
            e.remittance.as_deref().unwrap_or("-"),
        )
    }
}

fn finish(w: &mut Writer<'_>, end: &StatementEnd) -> std::io::Result<()> {
    let cb = end.closing_balance.as_ref();
    if w.json {
        let v = json!({
            "closing_balance": cb.map(|b| b.amount.minor),
            "closing_balance_date": cb.and_then(|b| b.date),
            "entry_count": end.entry_count,
            "credits_total": end.credits_total,
            "debits_total": end.debits_total,
            "balanced": end.balance_check.balanced(),
            "balance_check": end.balance_check,
        });
        let s = v.to_string();
        write!(w.out, "],{}", &s[1..])
    } else {
        writeln!(
            w.out,
            "  closing balance {} {}",
            money_text(cb.map_or(0, |b| b.amount.minor), cb),
            cb.and_then(|b| b.date)
                .map(|d| d.to_string())
                .unwrap_or_default()
        )?;
        writeln!(
            w.out,
            "  entries {}  credits {}  debits {} (minor units)",
            end.entry_count, end.credits_total, end.debits_total
        )?;
        let check = match &end.balance_check {
            crate::statement::BalanceCheck::Balanced => "balanced".to_owned(),
            crate::statement::BalanceCheck::Unbalanced { difference } => {
                format!("NOT BALANCED: closing differs by {difference} minor units")
            }
            crate::statement::BalanceCheck::NotChecked { reason } => {
                format!("not checked: {reason}")
            }
        };
        writeln!(w.out, "  balance check: {check}")?;
        for f in &end.findings {
            writeln!(w.out, "  finding: {f}")?;
        }
        Ok(())
    }
}

fn print_invoice(
    out: &mut dyn Write,
    file: &str,
    i: &crate::einvoice::EInvoice,
) -> std::io::Result<()> {
    let m = |minor: i64| {
        format!(
            "{} {}",
            mahnwerk_domain::Money::new(minor, i.currency).to_decimal_string(),
            i.currency
        )
    };
    writeln!(
        out,
        "{file}: invoice {} type {} ({:?}, {:?}{})",
        i.invoice_number,
        i.type_code,
        i.syntax,
        i.profile,
        if i.is_invoice {
            ""
        } else {
            ", NOT an invoice under German VAT law"
        }
    )?;
    writeln!(
        out,
        "  issued {}  due {}",
        i.issue_date,
        i.due_date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(
        out,
        "  net {}  tax {}  gross {}  prepaid {}  payable {}",
        m(i.net_amount),
        m(i.tax_amount),
        m(i.gross_amount),
        m(i.prepaid_amount),
        m(i.payable_amount)
    )?;
    writeln!(
        out,
        "  debtor {} ({}) {} {} {}",
        i.debtor.name,
        i.debtor
            .business_evidence
            .map_or("no business evidence", |e| e.as_str()),
        i.debtor.address.postal_code,
        i.debtor.address.city,
        i.debtor.address.country
    )?;
    for a in &i.creditor_accounts {
        writeln!(
            out,
            "  pay to {}{} {}",
            a.iban,
            if a.iban_valid { "" } else { " (invalid IBAN)" },
            a.bic.as_deref().unwrap_or("")
        )?;
    }
    if let Some(r) = &i.payment_reference {
        writeln!(out, "  payment reference {r}")?;
    }
    if let Some(mid) = &i.mandate_id {
        writeln!(
            out,
            "  direct debit mandate {mid} creditor id {} debtor account {}",
            i.creditor_id.as_deref().unwrap_or("-"),
            i.debtor_account_iban.as_deref().unwrap_or("-")
        )?;
    }
    for d in &i.cash_discounts {
        writeln!(
            out,
            "  cash discount {} % within {} days",
            d.percent, d.days
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(p: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(p)
    }

    #[test]
    fn statement_json_contract() {
        let mut out = Vec::new();
        let cmd = InspectCommand::Statement {
            files: vec![
                fixture("camt053/oca_test-camt053.xml"),
                fixture("mt940/wolph_self-provided_gv_codes.sta"),
            ],
            json: true,
            lenient_dates: false,
            encoding: None,
            csv_mapping: None,
        };
        run(cmd, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let s = &v["statements"][0];
        assert_eq!(s["account_iban"], "NL77ABNA0574908765");
        assert_eq!(s["currency"], "EUR");
        assert_eq!(s["opening_balance"], 1556827);
        assert_eq!(s["closing_balance"], 1512112);
        assert_eq!(s["entry_count"], 4);
        assert_eq!(s["credits_total"], 140531);
        assert_eq!(s["debits_total"], -75425 - 56405 - 10000);
        // The OCA sample's balances do not add up (15568.27 - 754.25 - 664.05 + 1405.31 =
        // 15555.28, not 15121.12): the check must say so.
        assert_eq!(s["balanced"], false);
        assert_eq!(s["balance_check"]["difference"], 1512112 - 1555528);
        let e = &s["entries"][1];
        assert_eq!(e["amount"], -56405);
        assert_eq!(e["reversal"], true);
        assert_eq!(e["return_reason"], "AC06");
        assert_eq!(e["booking_date"], "2014-01-05");
        for key in [
            "remittance",
            "creditor_reference",
            "end_to_end_id",
            "counterparty_name",
            "counterparty_iban",
            "value_date",
        ] {
            assert!(e.get(key).is_some(), "missing {key}");
        }
        let mt = &v["statements"][1];
        assert_eq!(mt["closing_balance"], Value::Null);
        assert_eq!(mt["balanced"], Value::Null);
        assert_eq!(mt["entries"][0]["amount"], -23315);
    }

    #[test]
    fn statement_from_csv_with_mapping() {
        let mut out = Vec::new();
        let cmd = InspectCommand::Statement {
            files: vec![fixture("csv/sparkasse_csv-camt-v2.csv")],
            json: true,
            lenient_dates: false,
            encoding: None,
            csv_mapping: Some(fixture("csv/sparkasse_csv-camt-v2.mapping.json")),
        };
        run(cmd, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let s = &v["statements"][0];
        assert_eq!(s["format"], "csv");
        assert_eq!(s["account_iban"], "DE89370400440532013000");
        assert_eq!(s["entry_count"], 3);
        assert_eq!(s["credits_total"], 123456);
        assert_eq!(s["debits_total"], -8990 - 5000);
        assert_eq!(s["balanced"], Value::Null);
        let e = &s["entries"][2];
        assert_eq!(e["counterparty_name"], "Änne Weiß");
        assert_eq!(e["remittance"], "Rücklastschrift MD06\nMandat M-1");
        assert_eq!(e["line"], 4);
        assert_eq!(s["entries"][1]["mandate_id"], "MANDAT-0042");
        // Without the mapping the file is not a statement format we detect.
        let cmd = InspectCommand::Statement {
            files: vec![fixture("csv/sparkasse_csv-camt-v2.csv")],
            json: true,
            lenient_dates: false,
            encoding: None,
            csv_mapping: None,
        };
        assert!(run(cmd, &mut Vec::new()).is_err());
        let cmd = InspectCommand::Statement {
            files: vec![fixture("csv/sparkasse_csv-camt-v2.csv")],
            json: false,
            lenient_dates: false,
            encoding: None,
            csv_mapping: Some(fixture("csv/sparkasse_csv-camt-v2.csv")),
        };
        let err = run(cmd, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("sparkasse_csv-camt-v2.csv: line 1, mapping column"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let dir = std::env::temp_dir().join(format!("mahnwerk-formats-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.sta");
        std::fs::write(
            &bad,
            ":20:X\n:25:1/2\n:60F:C170914EUR1,00\n:61:1702300914D1,00NMSCNONREF\n",
        )
        .unwrap();
        let cmd = InspectCommand::Statement {
            files: vec![bad.clone()],
            json: false,
            lenient_dates: false,
            encoding: None,
            csv_mapping: None,
        };
        let err = run(cmd, &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: line 4, :61:: impossible date \"170230\"",
                bad.display()
            )
        );
        let cmd = InspectCommand::Invoice {
            files: vec![dir.join("missing.xml")],
            json: true,
        };
        assert!(
            run(cmd, &mut Vec::new())
                .unwrap_err()
                .to_string()
                .contains("missing.xml")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invoice_json_uses_grpc_field_names() {
        let mut out = Vec::new();
        let cmd = InspectCommand::Invoice {
            files: vec![fixture("einvoice/mustang_factur-x.xml")],
            json: true,
        };
        run(cmd, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let i = &v["invoices"][0];
        assert_eq!(i["invoice_number"], "RE-20201121/508");
        assert_eq!(i["gross_amount"], 57104);
        assert_eq!(i["creditor_account"]["iban"], "DE88200800000970375700");
        assert_eq!(i["due_date"], "2020-12-12");
        let mut text = Vec::new();
        run(
            InspectCommand::Invoice {
                files: vec![fixture("einvoice/mustang_factur-x.xml")],
                json: false,
            },
            &mut text,
        )
        .unwrap();
        assert!(
            String::from_utf8(text)
                .unwrap()
                .contains("invoice RE-20201121/508")
        );
    }
}
