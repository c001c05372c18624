//! `mahnwerk match`: the offline dry run of the matching engine.
//!
//! # Contract
//! `mahnwerk match --open-items ITEMS.jsonl STATEMENT [--json] [--threshold N] [--csv-mapping M]`
//!
//! `ITEMS.jsonl`: one open item per line,
//! `{"case_id", "invoice_number", "debtor_name", "debtor_iban"?, "open": {"minor","currency"},
//! "payment_reference"?, "due_date"}`; optional `debtor_ibans` (array), `cash_discount`
//! (`{"amount": {"minor","currency"}, "until"}`) and `closed` (`"cancelled"`/`"credited"`).
//!
//! Output with `--json`: one line per bank entry, in statement order,
//! `{"entry_ref", "amount", "decision": "applied"|"partial"|"split"|"review"|"overpaid"|"ignored",
//! "allocations": [{"case_id","minor"}], "rule", "confidence", "reason"}` plus `entry_id` (the
//! stable identity), `currency`, `overpaid_minor` and `candidates` (cases a review points at).
//! `entry_ref` is the bank's reference of the entry (`AcctSvcrRef`, MT940 bank reference), else
//! the entry id. Without `--json` a readable line per entry. Both end with a summary on stderr.
//! Entries are matched in order and each applied decision lowers the open balances the next entry
//! sees, as an import would. Nothing is written anywhere.

use crate::engine::{OpenItem, OpenItems, Outcome, Settings, decide};
use crate::entry::{account_of, bank_entry, statement_reader};
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use mahnwerk_formats::csv::CsvMapping;
use mahnwerk_formats::statement::{ParseOptions, StatementItem};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

/// Arguments of `mahnwerk match`.
#[derive(Debug, Clone, clap::Args)]
pub struct MatchArgs {
    /// Open items as JSON lines (see the README).
    #[arg(long, value_name = "ITEMS.jsonl")]
    pub open_items: PathBuf,
    /// The statement: camt.052/053/054, MT940/MT942, or CSV with `--csv-mapping`.
    pub statement: PathBuf,
    /// One JSON line per entry (the stable contract) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Lowest confidence (0-100) applied automatically.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub threshold: u8,
    /// Read the statement as CSV with this column mapping (JSON, see `mahnwerk_formats::csv`).
    #[arg(long, value_name = "FILE")]
    pub csv_mapping: Option<PathBuf>,
}

/// Why the dry run failed; `Display` is the message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {reason}")]
    Item {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: {source}")]
    Statement {
        file: String,
        source: mahnwerk_formats::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemLine {
    case_id: String,
    invoice_number: String,
    debtor_name: String,
    #[serde(default)]
    debtor_iban: Option<String>,
    #[serde(default)]
    debtor_ibans: Vec<String>,
    open: Money,
    #[serde(default)]
    payment_reference: Option<String>,
    due_date: NaiveDate,
    #[serde(default)]
    cash_discount: Option<crate::engine::CashDiscount>,
    #[serde(default)]
    closed: Option<String>,
}

/// Read open items from JSON lines.
pub fn read_open_items(file: &str, input: impl BufRead) -> Result<OpenItems, MatchError> {
    let mut items = OpenItems::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|source| MatchError::Io {
            file: file.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let it: ItemLine = serde_json::from_str(&line).map_err(|e| MatchError::Item {
            file: file.to_owned(),
            line: n + 1,
            reason: e.to_string(),
        })?;
        let mut ibans = it.debtor_ibans;
        ibans.extend(it.debtor_iban);
        items.upsert(OpenItem {
            case_id: it.case_id,
            invoice_number: it.invoice_number,
            debtor_name: it.debtor_name,
            debtor_ibans: ibans,
            customer_number: None,
            open: it.open,
            payment_reference: it.payment_reference,
            letter_references: Vec::new(),
            due_date: it.due_date,
            cash_discount: it.cash_discount,
            closed: it.closed,
        });
    }
    Ok(items)
}

/// Counts per decision, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub by_outcome: BTreeMap<&'static str, u64>,
}

impl Summary {
    pub fn count(&self, o: Outcome) -> u64 {
        self.by_outcome.get(o.as_str()).copied().unwrap_or(0)
    }
}

/// Run the dry run, writing entry lines to `out` and returning the summary.
pub fn run(args: &MatchArgs, out: &mut dyn Write) -> Result<Summary, MatchError> {
    let items_file = args.open_items.display().to_string();
    let f = std::fs::File::open(&args.open_items).map_err(|source| MatchError::Io {
        file: items_file.clone(),
        source,
    })?;
    let mut items = read_open_items(&items_file, BufReader::new(f))?;
    let file = args.statement.display().to_string();
    let io = |source| MatchError::Io {
        file: file.clone(),
        source,
    };
    let stmt_err = |source| MatchError::Statement {
        file: file.clone(),
        source,
    };
    let csv = match &args.csv_mapping {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|source| MatchError::Io {
                file: p.display().to_string(),
                source,
            })?;
            Some(
                CsvMapping::from_json(&bytes).map_err(|source| MatchError::Statement {
                    file: p.display().to_string(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let input = BufReader::with_capacity(
        256 * 1024,
        std::fs::File::open(&args.statement).map_err(io)?,
    );
    let reader =
        statement_reader(input, csv.as_ref(), ParseOptions::default()).map_err(stmt_err)?;
    let settings = Settings {
        threshold: args.threshold,
    };
    let mut summary = Summary::default();
    let mut account = String::new();
    let mut ids = crate::entry::EntryIds::default();
    let out_err = |source| MatchError::Io {
        file: "output".into(),
        source,
    };
    for item in reader {
        let e = match item.map_err(stmt_err)? {
            StatementItem::Header(h) => {
                account = account_of(&h);
                continue;
            }
            StatementItem::End(_) => continue,
            StatementItem::Entry(e) => e,
        };
        let id = ids.next(&account, &e);
        let be = bank_entry(id.clone(), &e);
        let d = decide(&items, &be, &settings);
        items.apply(&be, &d);
        summary.entries += 1;
        *summary.by_outcome.entry(d.outcome.as_str()).or_default() += 1;
        let entry_ref = e.bank_reference.clone().unwrap_or_else(|| id.clone());
        if args.json {
            let line = json!({
                "entry_ref": entry_ref,
                "entry_id": id,
                "amount": e.amount.minor,
                "currency": e.amount.currency.as_str(),
                "decision": d.outcome.as_str(),
                "allocations": d.allocations.iter().map(|a| json!({"case_id": a.case_id, "minor": a.amount.minor})).collect::<Vec<_>>(),
                "overpaid_minor": d.overpayment.map(|m| m.minor),
                "rule": d.rule.as_str(),
                "confidence": d.confidence,
                "reason": d.reason(),
                "candidates": d.candidates,
            });
            writeln!(out, "{line}").map_err(out_err)?;
        } else {
            let alloc = d
                .allocations
                .iter()
                .map(|a| format!("{} {}", a.case_id, a.amount.to_decimal_string()))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                out,
                "{entry_ref}  {} {}  {}  {} ({})  {}  {}",
                e.amount.to_decimal_string(),
                e.amount.currency,
                d.outcome.as_str(),
                d.rule.as_str(),
                d.confidence,
                alloc,
                d.reason()
            )
            .map_err(out_err)?;
        }
    }
    Ok(summary)
}

/// The summary line printed after the entries.
pub fn summary_text(s: &Summary) -> String {
    let parts: Vec<String> = s
        .by_outcome
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!("{} entries: {}", s.entries, parts.join(", "))
}

/// `mahnwerk match`: run, then print the summary on stderr.
pub fn main(args: &MatchArgs, out: &mut dyn Write) -> Result<(), MatchError> {
    let summary = run(args, out)?;
    eprintln!("{}", summary_text(&summary));
    Ok(())
}

/// `mahnwerk import …`: send bank data to a running mahnwerk.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImportCommand {
    /// Import statement files (camt.052/053/054 as XML, MT940/MT942, CSV with `--csv-mapping`)
    /// over `PaymentService.ImportStatement`, with a progress bar and a summary. Each file is
    /// checked whole (balances) before anything of it is applied; importing a file again applies
    /// nothing twice.
    Statement {
        /// Statement files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Read the files as CSV with this column mapping (JSON, see `mahnwerk_formats::csv`).
        #[arg(long, value_name = "FILE")]
        csv_mapping: Option<PathBuf>,
        /// No progress bar (also when stderr is not a terminal).
        #[arg(long)]
        quiet: bool,
    },
}

/// Bytes per streamed chunk.
const CHUNK: usize = 256 * 1024;

/// Run an import command against `server` with `api_key`; prints a summary per file and the
/// totals to `out`. Returns the totals.
pub async fn import(
    server: &str,
    api_key: &str,
    tenant: &str,
    cmd: ImportCommand,
    out: &mut (dyn Write + Send),
) -> Result<mahnwerk_proto::v1::ImportStatementResponse, String> {
    use mahnwerk_proto::v1 as pb;
    let ImportCommand::Statement {
        files,
        csv_mapping,
        quiet,
    } = cmd;
    let mapping = match &csv_mapping {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => String::new(),
    };
    let mut client = pb::payment_service_client::PaymentServiceClient::connect(server.to_owned())
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the files: {e}"))?
        .iter()
        .sum();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut sum = pb::ImportStatementResponse::default();
    let w = |out: &mut (dyn Write + Send), s: String| {
        writeln!(out, "{s}").map_err(|e| format!("output: {e}"))
    };
    for f in &files {
        let name = f.display().to_string();
        bar.set_message(name.clone());
        let mut file = std::fs::File::open(f).map_err(|e| format!("{name}: {e}"))?;
        let (tenant, mapping, progress) = (tenant.to_owned(), mapping.clone(), bar.clone());
        let mut first = true;
        let chunks = std::iter::from_fn(move || {
            let mut buf = vec![0u8; CHUNK];
            let n = std::io::Read::read(&mut file, &mut buf).unwrap_or(0);
            if n == 0 && !first {
                return None;
            }
            buf.truncate(n);
            progress.inc(n as u64);
            let msg = pb::ImportStatementRequest {
                tenant: if first { tenant.clone() } else { String::new() },
                csv_mapping: if first {
                    mapping.clone()
                } else {
                    String::new()
                },
                chunk: buf,
            };
            first = false;
            Some(msg)
        });
        let mut req = tonic::Request::new(futures::stream::iter(chunks));
        let auth = format!("Bearer {api_key}")
            .parse()
            .map_err(|_| "the API key is not a valid header value".to_owned())?;
        req.metadata_mut().insert("authorization", auth);
        let r = match client.import_statement(req).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                bar.abandon();
                return Err(format!("{name}: {}", status.message()));
            }
        };
        bar.suspend(|| {
            w(
                out,
                format!(
                    "{name}: {} statements, {} entries: {} matched, {} partial, {} review, {} ignored, {} duplicates skipped",
                    r.statements,
                    r.entries,
                    r.applied + r.split + r.overpaid,
                    r.partial,
                    r.review,
                    r.ignored,
                    r.duplicates
                ),
            )
        })?;
        for warning in &r.warnings {
            bar.suspend(|| w(out, format!("{name}: warning: {warning}")))?;
        }
        sum.statements += r.statements;
        sum.entries += r.entries;
        sum.applied += r.applied;
        sum.partial += r.partial;
        sum.split += r.split;
        sum.overpaid += r.overpaid;
        sum.review += r.review;
        sum.ignored += r.ignored;
        sum.duplicates += r.duplicates;
    }
    bar.finish_and_clear();
    if files.len() > 1 {
        w(
            out,
            format!(
                "total: {} entries: {} matched, {} partial, {} review, {} ignored, {} duplicates skipped",
                sum.entries,
                sum.applied + sum.split + sum.overpaid,
                sum.partial,
                sum.review,
                sum.ignored,
                sum.duplicates
            ),
        )?;
    }
    Ok(sum)
}
