//! B5: a camt.053 of `n` entries against `n` open invoices, imported through the real path:
//! `PaymentService.ImportStatement` (client-streamed chunks) against the in-process matching
//! service on 127.0.0.1, which checks the balances, then matches and applies every entry.
//!
//! Side by side in the same run:
//! - a bare streaming scan of the same file that only counts `<Ntry>` elements (quick-xml, no
//!   allocation per event): the floor of any XML parse; the camt parser alone is measured
//!   against it (target >= 0.3x);
//! - B1's append rate on the same backend for the events the import writes (target: the whole
//!   import >= 0.5x of what B1 appends for the same number of events).
//!
//! Peak RSS per phase: `/proc/self/clear_refs` (5) resets this process's `VmHWM` to its current
//! RSS before the phase; `VmHWM` is read after it. The figure therefore includes what the
//! process held at the reset (reported beside it) plus the in-process client and server.
//!
//! Setup outside the clock: the invoices' `invoice.issued` events are appended in group
//! commits, then the matching projection is built by calling its consumer handler on every
//! recorded event (what the NATS consumer does, without the relay round trip). During the import
//! neither relay nor consumer runs; they follow the log asynchronously (B3 measures the relay).

use crate::infra::{Env, cpu_seconds};
use crate::report::Row;
use crate::workload::proto_invoice;
use anyhow::{Context, Result, bail};
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::{Envelope, Handler};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, InvoiceNumber, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_formats::rf::RfReference;
use mahnwerk_formats::statement::{ParseOptions, StatementItem};
use mahnwerk_matching::engine::Settings;
use mahnwerk_matching::{Matching, projection::Projection};
use mahnwerk_proto::v1 as pb;
use pb::payment_service_client::PaymentServiceClient;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

/// The creditor's account the statements are for.
pub const ACCOUNT: &str = "DE89370400440532013000";
/// The payers' account (one for all: the debtor rule is not what B5 measures).
const PAYER_IBAN: &str = "DE02120300000000202051";

/// Starts a fresh peak-RSS measurement of this process (Linux: `clear_refs` 5 resets VmHWM).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Peak resident set since the last reset, in MiB (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// Current resident set, in MiB (`VmRSS`).
pub fn rss_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

/// A phase's peak RSS: the reset, the work, the peak.
struct Peak {
    at_reset: Option<f64>,
    ok: bool,
}

impl Peak {
    fn start() -> Self {
        let ok = reset_peak_rss();
        Self {
            at_reset: rss_mib(),
            ok,
        }
    }

    fn end(&self) -> Option<(f64, f64)> {
        self.ok
            .then(peak_rss_mib)
            .flatten()
            .map(|p| (p, self.at_reset.unwrap_or(0.0)))
    }
}

/// Open invoice `i` of a run: the bench workload's invoice with a valid RF creditor reference.
pub fn open_invoice(run: &str, i: u64) -> Result<pb::Invoice> {
    let mut p = proto_invoice(run, i);
    p.payment_reference = RfReference::create(&format!("{run}{i}"))
        .context("RF reference")?
        .as_str()
        .to_owned();
    Ok(p)
}

/// The case id of a generated invoice.
pub fn case_of(tenant: &TenantId, p: &pb::Invoice) -> Result<CaseId> {
    let number: InvoiceNumber = p.invoice_number.parse().context("invoice number")?;
    Ok(CaseId::for_invoice(tenant, &number))
}

/// Appends `invoice.issued` for invoices `from..to` of `run` (one new stream each), 1000 per
/// group commit.
pub async fn issue_invoices(
    log: &EventLog,
    tenant: &TenantId,
    run: &str,
    from: u64,
    to: u64,
) -> Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + 1000).min(to);
        let mut batches = Vec::with_capacity(1000);
        for k in i..end {
            let p = open_invoice(run, k)?;
            let invoice = mahnwerk_ingest::convert::invoice_from_proto(&p, "invoice")
                .map_err(|e| anyhow::anyhow!("generated invoice {k} invalid: {e:?}"))?;
            let case = case_of(tenant, &p)?;
            let ev = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
            batches.push(AppendBatch {
                stream: case.stream(tenant),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: ev.event_type().to_owned(),
                    payload: ev.to_payload(),
                    occurred_at: chrono::Utc::now(),
                    metadata: Metadata {
                        actor: "key:bench".into(),
                        ..Default::default()
                    },
                }],
            });
        }
        if let Some(e) = log
            .append_many(batches)
            .await?
            .into_iter()
            .find_map(Result::err)
        {
            bail!("issuing invoices: {e}");
        }
        i = end;
    }
    Ok(())
}

/// Builds the matching projection from the log: the consumer's handler on every event after
/// `after`, 1000 events per transaction. Returns the last position.
async fn project(log: &EventLog, pool: &sqlx::AnyPool, mut after: i64) -> Result<i64> {
    loop {
        let events = log.read_all(after, 1000).await?;
        let Some(last) = events.last() else {
            return Ok(after);
        };
        after = last.position;
        let mut tx = pool.begin().await?;
        for e in &events {
            Projection
                .handle(&Envelope::from(e), &mut tx)
                .await
                .map_err(|e| anyhow::anyhow!("projection: {e:?}"))?;
        }
        tx.commit().await?;
    }
}

/// Gross amount of a generated invoice.
fn gross(p: &pb::Invoice) -> i64 {
    p.gross_amount
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn amount(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// How entry `i` pays invoice `i`: (amount in minor units, remittance text). Every tenth is a
/// partial payment of half the amount; the texts rotate through an RF reference in print
/// format, invoice numbers with prefixes, and a number split by a line break as banks wrap it.
pub fn payment(run: &str, i: u64) -> Result<(i64, String)> {
    let p = open_invoice(run, i)?;
    let full = gross(&p);
    let minor = if i % 10 == 7 { (full / 2).max(1) } else { full };
    let rf = RfReference::parse(&p.payment_reference).context("RF")?;
    let n = &p.invoice_number;
    let text = match i % 4 {
        0 => format!("Zahlung {}", rf.to_print_format()),
        1 => format!("Rechnung {n}"),
        2 => format!("Rg.-Nr. {n} vom 02.11.2026 Kd.-Nr. K-{:07}", i % 250_000),
        _ => format!("Invoice {n} thank you"),
    };
    Ok((minor, text))
}

/// Writes a camt.053.001.08 with one statement of `n` booked credits, entry `i` paying
/// invoice `i`; opening balance 0, closing balance the sum. Returns the file's size in bytes.
pub fn write_camt(path: &Path, run: &str, n: u64) -> Result<u64> {
    // Closing balance first (the header carries it): one pass over the amounts.
    let mut total = 0_i64;
    for i in 0..n {
        total += payment(run, i)?.0;
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {path:?}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let bal = |code: &str, minor: i64| {
        format!(
            "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>\n",
            amount(minor)
        )
    };
    write!(
        w,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>B5-{run}</MsgId><CreDtTm>2026-11-20T18:00:00</CreDtTm></GrpHdr>\n<Stmt><Id>B5-{run}-1</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>2026-11-20T18:00:00</CreDtTm><Acct><Id><IBAN>{ACCOUNT}</IBAN></Id><Ccy>EUR</Ccy></Acct>\n{}{}",
        bal("OPBD", 0),
        bal("CLBD", total)
    )?;
    for i in 0..n {
        let p = open_invoice(run, i)?;
        let (minor, text) = payment(run, i)?;
        let name = xml_escape(p.debtor.as_ref().map_or("", |d| d.name.as_str()));
        writeln!(
            w,
            "<Ntry><Amt Ccy=\"EUR\">{a}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-20</Dt></BookgDt><ValDt><Dt>2026-11-20</Dt></ValDt><AcctSvcrRef>B5{run}{i:010}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs><EndToEndId>E2E{run}{i}</EndToEndId></Refs><Amt Ccy=\"EUR\">{a}</Amt><RltdPties><Dbtr><Pty><Nm>{name}</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{PAYER_IBAN}</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>{t}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            a = amount(minor),
            t = xml_escape(&text),
        )?;
    }
    writeln!(w, "</Stmt></BkToCstmrStmt></Document>")?;
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// The baseline: a bare streaming scan that only counts `<Ntry>` start tags.
fn scan(path: &Path) -> Result<u64> {
    use quick_xml::events::Event;
    let file = std::fs::File::open(path)?;
    let mut r = quick_xml::Reader::from_reader(BufReader::with_capacity(256 * 1024, file));
    let mut buf = Vec::with_capacity(4096);
    let mut count = 0_u64;
    loop {
        match r.read_event_into(&mut buf)? {
            Event::Start(e) if AsRef::<str>::as_ref(&e.local_name()) == "Ntry" => count += 1,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(count)
}

/// The camt parser alone (what the import runs twice: balance check, then entries): counts
/// the entries it yields.
fn parse(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path)?;
    let reader = mahnwerk_matching::entry::statement_reader(
        BufReader::with_capacity(256 * 1024, file),
        None,
        ParseOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut count = 0_u64;
    for item in reader {
        if let StatementItem::Entry(_) = item? {
            count += 1;
        }
    }
    Ok(count)
}

async fn timed_blocking(
    path: &Path,
    f: fn(&Path) -> Result<u64>,
) -> Result<(u64, Duration, Option<(f64, f64)>)> {
    let p = path.to_owned();
    let peak = Peak::start();
    let t0 = Instant::now();
    let count = tokio::task::spawn_blocking(move || f(&p)).await??;
    let took = t0.elapsed();
    Ok((count, took, peak.end()))
}

fn per_sec(n: u64, d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let n = n as f64;
    n / d.as_secs_f64().max(1e-9)
}

/// The chunks `ImportStatement` is sent: 1 MiB reads of the file, as a client streams it.
fn chunks(file: tokio::fs::File) -> impl futures::Stream<Item = pb::ImportStatementRequest> {
    futures::stream::unfold(Some(file), |file| async move {
        let mut f = file?;
        let mut buf = vec![0_u8; 1 << 20];
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) => {
                    eprintln!("B5: reading the statement: {e}");
                    return None;
                }
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some((
            pb::ImportStatementRequest {
                tenant: String::new(),
                csv_mapping: String::new(),
                chunk: buf,
            },
            Some(f),
        ))
    })
}

fn rss_note(phase: &str, peak: Option<(f64, f64)>) -> String {
    match peak {
        Some((p, at)) => format!("{phase} {p:.0} MiB (RSS at the reset {at:.0} MiB)"),
        None => format!("{phase} not measured (clear_refs unavailable)"),
    }
}

pub async fn run(
    env: &Env,
    backend: &'static str,
    n: u64,
    b1_rate: Option<f64>,
) -> Result<Vec<Row>> {
    let run = format!("{}{}", env.run, &backend[..1]);
    let dir: PathBuf = env.tmp.path().join(format!("b5-{backend}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("statement.camt053.xml");
    eprintln!("B5 {backend}: writing a camt.053 of {n} entries");
    let bytes = {
        let (p, r) = (path.clone(), run.clone());
        tokio::task::spawn_blocking(move || write_camt(&p, &r, n)).await??
    };

    // Open items: on the log and in the matching projection.
    let url = env.log_url(backend, "b5").await?;
    let log = EventLog::connect(&url)
        .await
        .with_context(|| format!("connecting the {backend} log"))?;
    let pool = mahnwerk_auth::connect_any(&url).await?;
    mahnwerk_matching::ensure_schema(&pool).await?;
    let keys = KeyStore::open(pool.clone()).await?;
    let tenant: TenantId = "bench".parse().context("tenant")?;
    keys.create_tenant(&tenant, "Bench GmbH").await?;
    let key = keys
        .create_key(std::slice::from_ref(&tenant), "bench")
        .await?;
    eprintln!("B5 {backend}: issuing {n} open invoices and projecting them");
    let t_setup = Instant::now();
    issue_invoices(&log, &tenant, &run, 0, n).await?;
    let projected = project(&log, &pool, 0).await?;
    eprintln!(
        "B5 {backend}: setup took {:.1} s",
        t_setup.elapsed().as_secs_f64()
    );

    eprintln!(
        "B5 {backend}: scan and parse baselines ({} MB)",
        bytes / 1_000_000
    );
    let (scanned, t_scan, rss_scan) = timed_blocking(&path, scan).await?;
    let (parsed, t_parse, rss_parse) = timed_blocking(&path, parse).await?;
    if scanned != n || parsed != n {
        bail!("B5 {backend}: scan counted {scanned}, parse {parsed}, expected {n}");
    }

    let matching = Matching::new(log.clone(), keys, pool.clone(), Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(mahnwerk_matching::service(matching))
            .serve_with_incoming_shutdown(mahnwerk_auth::listen::incoming(listener), async move {
                let _ = server_stopped.await;
            }),
    );
    let mut client = PaymentServiceClient::connect(format!("http://{addr}")).await?;
    let mut request = tonic::Request::new(chunks(tokio::fs::File::open(&path).await?));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", key.token)
            .parse()
            .context("token header")?,
    );
    eprintln!("B5 {backend}: importing over ImportStatement");
    let head0 = log.head_position().await?;
    if head0 != projected {
        bail!("B5 {backend}: log head {head0} moved during the setup ({projected})");
    }
    let peak = Peak::start();
    let (c0, s0, t0) = (cpu_seconds(), log.commit_stats(), Instant::now());
    let summary = client
        .import_statement(request)
        .await
        .context("ImportStatement")?
        .into_inner();
    let t_import = t0.elapsed();
    let cpu = cpu_seconds() - c0;
    let s1 = log.commit_stats();
    let rss_import = peak.end();
    let _ = stop_server.send(());
    server.await.context("server task")??;
    let head1 = log.head_position().await?;
    let events = u64::try_from(head1 - head0).unwrap_or(0);
    let applied = summary.applied + summary.partial + summary.split + summary.overpaid;
    if summary.entries != n || applied == 0 {
        bail!("B5 {backend}: import summary {summary:?}, expected {n} entries");
    }

    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let (nf, ef) = (n as f64, events as f64);
    let per_entry = ef / nf;
    let scan_rate = per_sec(n, t_scan);
    let parse_rate = per_sec(n, t_parse);
    let import_rate = per_sec(n, t_import);
    let mut rows = Vec::new();
    let mut parse_row = Row::new(
        &format!("B5/{backend}/parse"),
        format!(
            "camt.053 parser over {n} entries ({} MB), entries yielded",
            bytes / 1_000_000
        ),
        parse_rate,
        "entries/s",
    )
    .against(
        "bare streaming scan counting <Ntry> entries/s",
        Some(scan_rate),
        0.3,
        ">= 0.3x scan",
    );
    parse_row.notes.push(format!(
        "scan {:.1} s, parse {:.1} s; peak RSS (VmHWM after a clear_refs reset): {}; {}",
        t_scan.as_secs_f64(),
        t_parse.as_secs_f64(),
        rss_note("scan", rss_scan),
        rss_note("parse", rss_parse)
    ));
    rows.push(parse_row);

    let b1_entries = b1_rate.map(|r| r / per_entry.max(1e-9));
    let mut import_row = Row::new(
        &format!("B5/{backend}/import"),
        format!(
            "import the camt.053 over ImportStatement against {n} open invoices: balance check, match, record and apply every entry"
        ),
        import_rate,
        "entries/s",
    )
    .against(
        &format!("B1/{backend} appending the same {per_entry:.2} events per entry, entries/s"),
        b1_entries,
        0.5,
        ">= 0.5x B1",
    );
    import_row.notes.push(format!(
        "{:.1} s to the response; {events} events written ({:.0} events/s vs B1 {:.0} events/s); outcome: {} applied, {} partial, {} split, {} overpaid, {} review, {} ignored, {} duplicates",
        t_import.as_secs_f64(),
        ef / t_import.as_secs_f64(),
        b1_rate.unwrap_or(0.0),
        summary.applied,
        summary.partial,
        summary.split,
        summary.overpaid,
        summary.review,
        summary.ignored,
        summary.duplicates
    ));
    let commits = s1.commits - s0.commits;
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let per_commit = (s1.events - s0.events) as f64 / commits.max(1) as f64;
    import_row.notes.push(format!(
        "process CPU (client + server) {:.0} µs/entry; log writer: {commits} commits ({per_commit:.1} events each)",
        cpu / nf * 1e6,
    ));
    rows.push(import_row);

    if let Some((peak_mib, at_reset)) = rss_import {
        let mut r = Row::new(
            &format!("B5/{backend}/rss"),
            format!(
                "peak RSS of the process during the import (client + matching server, {n} open items in the projection, loaded per chunk by lookup key)"
            ),
            peak_mib,
            "MiB",
        );
        r.baseline = "limit MiB".into();
        r.baseline_figure = Some(200.0);
        r.ratio = Some(peak_mib / 200.0);
        r.target = "< 200 MiB".into();
        r.target_met = Some(peak_mib < 200.0);
        r.notes.push(format!(
            "VmHWM after a clear_refs reset just before the call; RSS at the reset {at_reset:.0} MiB (setup leftovers, allocator caches)"
        ));
        rows.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_formats::statement::BalanceCheck;

    #[test]
    fn the_generated_statement_balances_and_scan_and_parse_count_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.xml");
        write_camt(&path, "t0", 250).unwrap();
        assert_eq!(scan(&path).unwrap(), 250);
        assert_eq!(parse(&path).unwrap(), 250);
        let file = std::fs::File::open(&path).unwrap();
        let items: Vec<StatementItem> = mahnwerk_matching::entry::statement_reader(
            BufReader::new(file),
            None,
            ParseOptions::default(),
        )
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
        let Some(StatementItem::End(end)) = items.last() else {
            panic!("no statement end");
        };
        assert_eq!(end.balance_check, BalanceCheck::Balanced);
        // Every tenth entry pays half its invoice.
        let (full, _) = payment("t0", 6).unwrap();
        let (half, _) = payment("t0", 7).unwrap();
        assert_eq!(full, open_invoice("t0", 6).unwrap().gross_amount);
        assert_eq!(half, open_invoice("t0", 7).unwrap().gross_amount / 2);
    }
}
