//! `mahnwerk demo`: the seeds' process end to end on a simulated clock. It starts every service
//! in this process on a fresh SQLite file (the same `server::run` as `mahnwerk serve`) and drives
//! them only over gRPC, as a billing platform, a bank export and a collection partner would:
//! the creditor's letterhead, five invoices (four by `CreateInvoice`, one as an XRechnung file
//! by `ImportEInvoice`), a camt.053 statement per payment day, a dispute,
//! the clock moved one day at a time, the partner's reports. After each day it waits until the
//! services have done that day's work (every step's letter sent, every copy, every hand-over)
//! and prints what the case files gained, so the timeline is read back from the log.
//!
//! Also the demo tenant of `serve --demo` ([`prepare_tenant`]): `make run`'s creditor gets the
//! same letterhead, so its first overdue invoice leads to a real letter.
//!
//! # Layout
//! - [`cast`]: the creditor, the debtors, the script and the statements (pure).
//! - [`timeline`]: one readable line per case event (pure).
//! - [`xrechnung`]: the one invoice sent as an XRechnung (UBL) file (pure).

pub mod cast;
pub mod timeline;
pub mod xrechnung;

use anyhow::Context as _;
use cast::Action;
use mahnwerk_auth::KeyStore;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::collection_service_client::CollectionServiceClient;
use pb::dunning_service_client::DunningServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;
use pb::letter_service_client::LetterServiceClient;
use pb::payment_service_client::PaymentServiceClient;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Directory of the demo's state: database, documents (letter PDFs), post spool. It must not
    /// hold a database yet (`make demo` starts from an empty `var/demo`).
    #[arg(long, default_value = "var/demo")]
    pub dir: PathBuf,
    /// Where the SMTP server keeps the emails, if it is the local mail sink (for the closing
    /// "where to look" lines only).
    #[arg(long)]
    pub mailbox: Option<PathBuf>,
    /// Days the simulated clock advances, one at a time.
    #[arg(long, default_value_t = cast::DAYS)]
    pub days: u32,
}

fn authed<T>(key: &str, body: T) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse()?);
    Ok(req)
}

/// Create the demo tenant (if missing) and a fresh API key for it, and give it the demo
/// letterhead through the running LetterService at `addr` (idempotent by content). The built-in
/// default policies (`default-consumer`, `default-business`) apply to every tenant that has not
/// put its own. Returns the key.
pub async fn prepare_tenant(
    keys: &KeyStore,
    addr: SocketAddr,
    letters: bool,
    copy_by_email: bool,
    label: &str,
) -> anyhow::Result<String> {
    let tenant: mahnwerk_domain::TenantId = cast::TENANT.parse()?;
    if !keys.tenant_exists(&tenant).await? {
        keys.create_tenant(&tenant, cast::CREDITOR).await?;
    }
    let key = keys.create_key(&[tenant], label).await?.token;
    if letters {
        let settings = serde_json::to_string(&cast::letter_settings(copy_by_email))?;
        LetterServiceClient::new(channel(addr).await?)
            .put_letterhead(authed(
                &key,
                pb::PutLetterheadRequest {
                    tenant: String::new(),
                    settings_json: settings,
                },
            )?)
            .await
            .context("setting the demo letterhead")?;
    }
    Ok(key)
}

/// A plain-HTTP/2 channel to this process's gRPC server (loopback if it listens on all).
pub async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))
}

/// The gRPC clients of the demo, all with the tenant's key.
struct Clients {
    key: String,
    invoices: InvoiceServiceClient<Channel>,
    cases: CaseServiceClient<Channel>,
    dunning: DunningServiceClient<Channel>,
    letters: LetterServiceClient<Channel>,
    payments: PaymentServiceClient<Channel>,
    collection: CollectionServiceClient<Channel>,
}

impl Clients {
    fn req<T>(&self, body: T) -> anyhow::Result<tonic::Request<T>> {
        authed(&self.key, body)
    }

    async fn case_file(&mut self, case_id: &str) -> anyhow::Result<Vec<pb::CaseEvent>> {
        let req = self.req(pb::GetCaseFileRequest {
            case_id: case_id.into(),
            ..Default::default()
        })?;
        Ok(self.cases.get_case_file(req).await?.into_inner().events)
    }

    async fn letters(&mut self, case_id: &str) -> anyhow::Result<Vec<pb::LetterInfo>> {
        let req = self.req(pb::ListLettersRequest {
            tenant: String::new(),
            case_id: case_id.into(),
        })?;
        Ok(self.letters.list_letters(req).await?.into_inner().letters)
    }
}

/// One case of the demo while it runs.
struct Case {
    debtor: cast::Debtor,
    case_id: String,
    /// Case-stream version printed so far.
    printed: u64,
}

/// Run the demo, printing the timeline to `out`.
pub async fn run(args: DemoArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let db = args.dir.join("mahnwerk.db");
    anyhow::ensure!(
        !db.exists(),
        "{} already holds a demo ({}): remove the directory first (make demo starts from an empty one)",
        args.dir.display(),
        db.display()
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let (_, _, start) = cast::dates();
    let url = format!("sqlite:{}?mode=rwc", db.display());
    let documents = args.dir.join("documents");
    let spool = args.dir.join("post-spool");
    // A namespace of its own: a NATS that served an earlier demo keeps that demo's streams.
    let namespace = format!("demo{}", chrono::Utc::now().timestamp_millis());
    let serve = serve_args(&[
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--namespace",
        &namespace,
        "--metrics-listen",
        "off",
        "--simulated-clock",
        &start.to_string(),
        "--documents-dir",
        &documents.display().to_string(),
        "--post-spool",
        &spool.display().to_string(),
    ])?;
    let smtp = serve
        .letters
        .smtp_host
        .clone()
        .map(|h| format!("{h}:{}", serve.letters.smtp_port));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, addr) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(crate::server::run(
        serve,
        async {
            let _ = stopped.await;
        },
        Some(ready),
    ));
    let addr = match addr.await {
        Ok(a) => a,
        Err(_) => {
            server.await??;
            anyhow::bail!("the services stopped before they listened");
        }
    };
    let result = drive(&args, &url, addr, smtp.as_deref(), out).await;
    let _ = stop.send(());
    server.await??;
    result
}

/// `mahnwerk serve`'s arguments: its defaults and `MAHNWERK_…` variables, then `flags`.
fn serve_args(flags: &[&str]) -> anyhow::Result<crate::config::ServeArgs> {
    use clap::{Args, FromArgMatches};
    let cmd = crate::config::ServeArgs::augment_args(clap::Command::new("serve"));
    let m = cmd.try_get_matches_from(std::iter::once("serve").chain(flags.iter().copied()))?;
    Ok(crate::config::ServeArgs::from_arg_matches(&m)?)
}

async fn drive(
    args: &DemoArgs,
    url: &str,
    addr: SocketAddr,
    smtp: Option<&str>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let (log, keys, pool) = crate::server::open_stores(url).await?;
    let key = prepare_tenant(&keys, addr, true, smtp.is_some(), "mahnwerk demo").await?;
    let ch = channel(addr).await?;
    let mut c = Clients {
        key,
        invoices: InvoiceServiceClient::new(ch.clone()),
        cases: CaseServiceClient::new(ch.clone()),
        dunning: DunningServiceClient::new(ch.clone()),
        letters: LetterServiceClient::new(ch.clone()),
        payments: PaymentServiceClient::new(ch.clone()),
        collection: CollectionServiceClient::new(ch.clone()),
    };
    let (issue, due, start) = cast::dates();
    writeln!(
        out,
        "Mahnwerk demo: {} (tenant {}), every service on a simulated clock from {start}, gRPC {addr}",
        cast::CREDITOR,
        cast::TENANT
    )?;
    writeln!(
        out,
        "  letterhead set; creditor's copies {}",
        match smtp {
            Some(_) => format!("by email to {}", cast::COPY_ADDRESS),
            None => "in the creditor inbox (no SMTP configured: emails fall back to post)".into(),
        }
    )?;
    let policies = c
        .dunning
        .list_policies(c.req(pb::ListPoliciesRequest::default())?)
        .await?
        .into_inner()
        .policies;
    for p in &policies {
        writeln!(
            out,
            "  policy {} v{} \"{}\"{}",
            p.policy_id,
            p.current_version,
            p.name,
            if p.builtin { " (built-in default)" } else { "" }
        )?;
    }

    // The collection partner: business debtors, handed over automatically.
    c.collection
        .put_partner(c.req(pb::PutPartnerRequest {
            tenant: String::new(),
            partner: Some(pb::Partner {
                partner_id: cast::PARTNER_ID.into(),
                name: "Inkasso Demo GmbH".into(),
                subject_token: "demo".into(),
                min_amount_minor: 1000,
                debtor_kinds: vec![pb::DebtorKind::Business as i32],
                countries: vec!["DE".into()],
                mode: pb::HandoverMode::Auto as i32,
                waive_costs_if_principal_paid: false,
                active: true,
            }),
        })?)
        .await
        .context("putting the collection partner")?;
    let partner_key = c
        .collection
        .create_partner_key(c.req(pb::CreatePartnerKeyRequest {
            tenant: String::new(),
            partner_id: cast::PARTNER_ID.into(),
            label: "demo".into(),
            request_id: "demo-partner-key".into(),
        })?)
        .await?
        .into_inner()
        .token;
    writeln!(
        out,
        "  collection partner {} (business debtors, hand-over without approval)",
        cast::PARTNER_ID
    )?;

    // The invoices, over gRPC as a billing platform sends them; one as its XRechnung file.
    writeln!(
        out,
        "\nInvoices issued {issue}, due {due} (CreateInvoice over gRPC, or ImportEInvoice of an XRechnung file):"
    )?;
    let mut cases = Vec::new();
    for d in cast::debtors() {
        let (case_id, how) = if d.xrechnung {
            let xml = xrechnung::ubl(&d);
            let file = args.dir.join(xrechnung::file_name(&d));
            std::fs::write(&file, &xml).with_context(|| format!("writing {}", file.display()))?;
            let r = c
                .invoices
                .import_e_invoice(c.req(pb::ImportEInvoiceRequest {
                    tenant: String::new(),
                    content: xml.into_bytes(),
                    file_name: xrechnung::file_name(&d),
                    ..Default::default()
                })?)
                .await
                .with_context(|| format!("importing {}", file.display()))?
                .into_inner()
                .result
                .context("ImportEInvoice answered without a result")?;
            anyhow::ensure!(
                r.outcome == "created",
                "the XRechnung of {} was not imported: {} {}",
                d.invoice_number,
                r.outcome,
                r.reason
            );
            (
                r.case_id,
                Some(format!(
                    "sent as an XRechnung (UBL) file, ImportEInvoice: {}",
                    file.display()
                )),
            )
        } else {
            let created = c
                .invoices
                .create_invoice(c.req(pb::CreateInvoiceRequest {
                    tenant: String::new(),
                    invoice: Some(cast::invoice(&d)),
                })?)
                .await
                .with_context(|| format!("creating {}", d.invoice_number))?
                .into_inner()
                .invoice
                .context("CreateInvoice answered without the invoice")?;
            (created.case_id, None)
        };
        writeln!(
            out,
            "  {}  {:>11}  {:<24} {}",
            d.invoice_number,
            timeline::money(d.gross(), "EUR"),
            d.name,
            d.story
        )?;
        if let Some(how) = how {
            writeln!(out, "  {:>12}  {how}", "")?;
        }
        cases.push(Case {
            debtor: d,
            case_id,
            printed: 0,
        });
    }
    // Dunning has opened every case and matching knows every open item before time moves.
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    loop {
        let mut seen = 0;
        for case in &cases {
            let req = c.req(pb::ExplainCaseRequest {
                case_id: case.case_id.clone(),
                ..Default::default()
            })?;
            if c.dunning.explain_case(req).await.is_ok() {
                seen += 1;
            }
        }
        let items = mahnwerk_matching::projection::load_items(&pool, cast::TENANT).await?;
        if seen == cases.len() && cases.iter().all(|k| items.get(&k.case_id).is_some()) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for dunning and matching to see the invoices"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let script = cast::script();
    let mut balance = 0;
    let mut handed_over_on: Option<u32> = None;
    writeln!(out, "\nTimeline:")?;
    for day in 0..=args.days {
        let today = start + chrono::Duration::days(i64::from(day));
        let mut lines = Vec::new();
        let mut entries = Vec::new();
        for (_, action) in script.iter().filter(|(d, _)| *d == day) {
            match action {
                Action::Pay {
                    invoice,
                    minor,
                    remittance,
                } => {
                    let d = debtor(&cases, invoice)?;
                    entries.push(cast::Entry {
                        bank_ref: format!("DEMO-{today}-{}", entries.len() + 1),
                        minor: *minor,
                        payer: d.name,
                        payer_iban: d.iban,
                        remittance,
                    });
                }
                Action::Dispute { invoice, reason } => {
                    c.invoices
                        .dispute_invoice(c.req(pb::DisputeInvoiceRequest {
                            tenant: String::new(),
                            invoice_number: (*invoice).into(),
                            reason: (*reason).into(),
                            request_id: format!("demo-dispute-{invoice}"),
                        })?)
                        .await
                        .with_context(|| format!("disputing {invoice}"))?;
                    lines.push(format!(
                        "  {invoice}  the debtor disputes the invoice (DisputeInvoice)"
                    ));
                }
            }
        }
        if !entries.is_empty() {
            let xml = cast::camt053(today, balance, &entries);
            balance += entries.iter().map(|e| e.minor).sum::<i64>();
            let file = args.dir.join(format!("camt053-{today}.xml"));
            std::fs::write(&file, &xml)?;
            let r = import(&mut c, xml.into_bytes()).await?;
            lines.push(format!(
                "  bank      camt.053 of {today} imported ({} entries: {} applied, {} partial, {} to review), {}",
                r.entries,
                r.applied,
                r.partial,
                r.review,
                file.display()
            ));
        }
        // The partner works the case handed over to it: accepts, then collects.
        if let Some(on) = handed_over_on {
            let handed = cases
                .iter()
                .find(|k| k.debtor.business && k.debtor.invoice_number == "RE-DEMO-1004")
                .context("the case to collect")?;
            let report = if day == on + 1 {
                Some(pb::report_request::Report::Accepted(pb::ReportAccepted {}))
            } else if day == on + 3 {
                let file = c
                    .collection
                    .get_handed_over_case(authed(
                        &partner_key,
                        pb::GetHandedOverCaseRequest {
                            tenant: String::new(),
                            case_id: handed.case_id.clone(),
                        },
                    )?)
                    .await?
                    .into_inner();
                let file: serde_json::Value = serde_json::from_str(&file.case_file_json)?;
                let principal = file["claim"]["principal_open"]["minor"]
                    .as_i64()
                    .context("the case file's principal_open")?;
                Some(pb::report_request::Report::PaymentCollected(
                    pb::ReportPaymentCollected {
                        principal: Some(pb::Money {
                            minor: principal,
                            currency: "EUR".into(),
                        }),
                        costs: Some(pb::Money {
                            minor: 5950,
                            currency: "EUR".into(),
                        }),
                        collected_on: today.to_string(),
                    },
                ))
            } else {
                None
            };
            if let Some(report) = report {
                c.collection
                    .report(authed(
                        &partner_key,
                        pb::ReportRequest {
                            request_id: format!("demo-report-{day}"),
                            case_id: handed.case_id.clone(),
                            report: Some(report),
                        },
                    )?)
                    .await
                    .context("the partner's report")?;
            }
        }
        settle(&mut c, &cases).await?;
        for case in &mut cases {
            let events = c.case_file(&case.case_id).await?;
            let printed = case.printed;
            for e in events.iter().filter(|e| e.version > printed) {
                if e.r#type == "case.handed_over.v1" && handed_over_on.is_none() {
                    handed_over_on = Some(day);
                }
                if let Some(text) = timeline::describe(&e.r#type, &e.payload_json) {
                    lines.push(format!("  {}  {text}", case.debtor.invoice_number));
                }
                case.printed = e.version;
            }
        }
        if !lines.is_empty() {
            writeln!(out, "{} {today} (day {day})", today.format("%a"))?;
            for l in lines {
                writeln!(out, "{l}")?;
            }
        }
        if day < args.days {
            c.dunning
                .advance_clock(c.req(pb::AdvanceClockRequest { days: 1 })?)
                .await
                .context("advancing the simulated clock")?;
        }
    }

    writeln!(out, "\nWhere each case stands:")?;
    for case in &cases {
        let x = c
            .dunning
            .explain_case(c.req(pb::ExplainCaseRequest {
                case_id: case.case_id.clone(),
                ..Default::default()
            })?)
            .await?
            .into_inner();
        let letters = c.letters(&case.case_id).await?;
        let sent = |recipient: &str| {
            letters
                .iter()
                .filter(|l| l.recipient == recipient && l.state == "sent")
                .count()
        };
        writeln!(
            out,
            "  {}  {:<10} steps {:<2} letters {} (copies to the creditor {})",
            case.debtor.invoice_number,
            x.status,
            x.steps.len(),
            sent("debtor"),
            sent("creditor"),
        )?;
    }
    let report = log.verify().await?;
    anyhow::ensure!(report.is_ok(), "the event log does not verify: {report:?}");
    writeln!(out, "\nEvery hash chain of the log verifies.")?;
    writeln!(out, "Open the results:")?;
    writeln!(
        out,
        "  letters by post (PDF + print job):  {}/*.pdf",
        args.dir.join("post-spool").display()
    )?;
    match (&args.mailbox, smtp) {
        (Some(m), _) => writeln!(
            out,
            "  emails (with the PDF attached):     {}/*.eml",
            m.display()
        )?,
        (None, Some(s)) => writeln!(out, "  emails went to the SMTP server at {s}")?,
        (None, None) => {}
    }
    writeln!(
        out,
        "  every document, content-addressed: {}",
        args.dir.join("documents").display()
    )?;
    writeln!(
        out,
        "  a case file: mahnwerk case show --database-url '{url}' --tenant demo RE-DEMO-1004"
    )?;
    Ok(())
}

fn debtor<'a>(cases: &'a [Case], invoice: &str) -> anyhow::Result<&'a cast::Debtor> {
    cases
        .iter()
        .map(|c| &c.debtor)
        .find(|d| d.invoice_number == invoice)
        .with_context(|| format!("no debtor for {invoice}"))
}

async fn import(c: &mut Clients, bytes: Vec<u8>) -> anyhow::Result<pb::ImportStatementResponse> {
    let msgs: Vec<pb::ImportStatementRequest> = bytes
        .chunks(64 * 1024)
        .map(|chunk| pb::ImportStatementRequest {
            tenant: String::new(),
            csv_mapping: String::new(),
            chunk: chunk.to_vec(),
        })
        .collect();
    let req = c.req(futures::stream::iter(msgs))?;
    Ok(c.payments
        .import_statement(req)
        .await
        .context("importing the statement")?
        .into_inner())
}

/// How long the demo waits for the services to do a day's work.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// Wait until the services have done the day's work: every dunning step's letter to the debtor
/// has an outcome (sent, suppressed or failed for good), every sent letter's copy to the
/// creditor has one, every escalated business case is handed over, no letter is in flight, and
/// nothing changed between two looks.
async fn settle(c: &mut Clients, cases: &[Case]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    let mut last = None;
    loop {
        let mut seen = Vec::new();
        let mut done = true;
        for case in cases {
            let events = c.case_file(&case.case_id).await?;
            let letters = c.letters(&case.case_id).await?;
            done &= timeline::case_settled(&events, case.debtor.business)
                && letters
                    .iter()
                    .all(|l| !matches!(l.state.as_str(), "intent" | "rendered" | "sending"));
            seen.push((
                events.len(),
                letters.iter().map(|l| l.state.clone()).collect::<Vec<_>>(),
            ));
        }
        if done && last.as_ref() == Some(&seen) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the services to finish the day ({seen:?})"
        );
        last = Some(seen);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
