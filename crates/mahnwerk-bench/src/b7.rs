//! B7 at service level (issue #13, must-show 6): `n` dunning letters rendered, stored and
//! spooled through the letters service as `mahnwerk serve` runs it, against the pure render
//! rate of the same letters in the same run.
//!
//! The service path: `n` cases (`invoice.issued.v1` + `dunning.step_reached.v1`, post channel)
//! are on the event log before the clock starts. Then the relay and
//! `mahnwerk_letters_service::run` (its consumer on NATS JetStream and its dispatch worker,
//! default concurrency) start in-process; the clock stops when every debtor letter is `sent`
//! (its PDF and job JSON in the post spool) and every row, the creditor's copy (into the
//! console inbox) included, is reported on its case stream. In between, per letter: the
//! handler projects the invoice and records the ledger intent, the worker renders (blocking
//! threads), stores the PDF content-addressed (filesystem), reads the case stream, appends
//! `letter.rendered.v1`, spools, appends `letter.dispatched.v1`, records the copy and appends
//! `letter.copy_sent.v1`. The log opens with a master key, as deployed: events, stored
//! documents and spool files are sealed per debtor.
//!
//! The baseline: the same letter models (the service's own mapping) rendered by
//! `mahnwerk-letters` alone on every core (`available_parallelism` threads), nothing stored;
//! a single-thread rate is noted beside it.
//!
//! Memory: `VmRSS` of the process (service, relay, NATS client; the log's writer) sampled with
//! every progress poll (every 250 ms) over the run, reported at 10 %, 50 % and 100 % of the
//! letters; flat when the end is within 10 % of the value after the first 10 %.

use crate::b5::rss_mib;
use crate::infra::{CpuSplit, Env};
use crate::report::Row;
use crate::workload::proto_invoice;
use anyhow::{Context, Result, bail};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, Invoice, InvoiceNumber, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_eventlog::privacy::MasterKey;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Limits, Metadata, NewEvent, event_id_now,
};
use mahnwerk_letters::LetterModel;
use mahnwerk_letters::events::{CopyTo, LetterSettings};
use mahnwerk_letters_service::{Config, DocumentConfig, Parts};
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The letters of a run: `n` at scale 1.
pub const FULL: u64 = 10_000;

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "key:bench".into(),
            ..Default::default()
        },
    }
}

/// The creditor's letter settings: the sample letterhead, copies into the console inbox.
fn settings() -> LetterSettings {
    LetterSettings {
        letterhead: mahnwerk_letters::model::sample().letterhead,
        signature: Some("Erika Muster, Buchhaltung".into()),
        email_from: "Beispiel Versorgung GmbH <buchhaltung@beispiel-versorgung.example>".into(),
        reply_to: None,
        copy_to: CopyTo::Inbox,
        email_fallback_to_post: true,
        registered_steps: vec![],
        return_receipt_steps: vec![],
        drafts_only: false,
    }
}

/// The first dunning notice of invoice `inv` as the dunning service writes it: fee and (for a
/// business) the EUR 40 lump sum, by post.
fn step(inv: &Invoice) -> Result<StepReached> {
    let business = inv.debtor.kind == mahnwerk_domain::DebtorKind::Business;
    let lump = if business { 4000 } else { 0 };
    let m = |minor: i64| serde_json::json!({"minor": minor, "currency": "EUR"});
    Ok(serde_json::from_value(serde_json::json!({
        "number": 2, "title": "1. Mahnung", "tone": "neutral", "template_id": "dunning-1",
        "channels": ["post"], "date": "2026-12-01",
        "fee": m(500), "fee_waived": null, "lump_sum": m(lump), "interest_charged": m(0),
        "interest": null, "default": null, "creates_default": false,
        "deadline": {"deadline": "2026-12-15", "unmoved": "2026-12-15", "reasons": []},
        "principal_open": m(inv.gross), "balance": m(inv.gross + 500 + lump)
    }))?)
}

struct Case {
    case: CaseId,
    invoice: Invoice,
    step: StepReached,
}

fn cases(run: &str, tenant: &TenantId, n: u64) -> Result<Vec<Case>> {
    (0..n)
        .map(|i| {
            let p = proto_invoice(run, i);
            let invoice = mahnwerk_ingest::convert::invoice_from_proto(&p, "invoice")
                .map_err(|e| anyhow::anyhow!("generated invoice {i} invalid: {e:?}"))?;
            let number: InvoiceNumber = p.invoice_number.parse().context("invoice number")?;
            let step = step(&invoice)?;
            Ok(Case {
                case: CaseId::for_invoice(tenant, &number),
                invoice,
                step,
            })
        })
        .collect()
}

/// Renders every model on `threads` threads; returns the time taken.
fn render_all(models: &Arc<Vec<LetterModel>>, threads: usize, limit: usize) -> Result<Duration> {
    let renderer = Arc::new(mahnwerk_letters::LetterRenderer::new(
        mahnwerk_letters::TemplateSet::defaults(),
    ));
    // Fonts and templates load on the first letter: outside the clock, as in the service
    // (its renderer lives as long as the process).
    renderer
        .render(models.first().context("no letters")?)
        .map_err(|e| anyhow::anyhow!("render: {e}"))?;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (models, renderer, next) = (models.clone(), renderer.clone(), next.clone());
            std::thread::spawn(move || -> Result<usize> {
                let mut bytes = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(m) = models.get(i).filter(|_| i < limit) else {
                        return Ok(bytes);
                    };
                    let letter = renderer
                        .render(m)
                        .map_err(|e| anyhow::anyhow!("render {i}: {e}"))?;
                    bytes += letter.pdf.len();
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("render thread panicked"))??;
    }
    Ok(t0.elapsed())
}

fn per_sec(n: u64, d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let n = n as f64;
    n / d.as_secs_f64().max(1e-9)
}

/// Ledger progress: (debtor letters sent and reported, rows final and reported, rows that
/// ended otherwise).
async fn progress(pool: &sqlx::AnyPool) -> Result<(u64, u64, u64, u64)> {
    use sqlx::Row as _;
    let row = sqlx::query(
        "SELECT \
           CAST(COALESCE(SUM(CASE WHEN recipient = 'debtor' AND state = 'sent' AND reported = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN state = 'sent' AND reported = 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN state IN ('failed', 'unknown', 'held', 'suppressed') THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COUNT(*) AS BIGINT) \
         FROM letters_ledger",
    )
    .fetch_one(pool)
    .await?;
    let get = |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(i)?)?) };
    Ok((get(0)?, get(1)?, get(2)?, get(3)?))
}

fn files(dir: &std::path::Path, ext: &str) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if ext.is_empty() || p.extension().is_some_and(|x| x == ext) {
                n += 1;
            }
        }
    }
    n
}

/// The RSS sample taken when `done` first reached `frac` of `n`.
fn rss_at(samples: &[(u64, f64)], n: u64, frac: f64) -> Option<f64> {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::as_conversions
    )]
    let want = ((n as f64) * frac).ceil() as u64;
    samples.iter().find(|(d, _)| *d >= want).map(|(_, r)| *r)
}

/// `concurrency`: the dispatch worker's rows in flight (`None`: the service's default).
pub async fn run(
    env: &Env,
    backend: &'static str,
    n: u64,
    concurrency: Option<usize>,
) -> Result<Vec<Row>> {
    let run = format!("{}l{}", env.run, &backend[..1]);
    let dir = env.tmp.path().join(format!("b7-{backend}"));
    std::fs::create_dir_all(&dir)?;
    let url = env.log_url(backend, "b7").await?;
    let key: [u8; 32] = rand::rng().random();
    let master = MasterKey::from_hex(&key.iter().map(|b| format!("{b:02x}")).collect::<String>())?;
    let log = EventLog::connect_with_key(&url, Limits::default(), Some(master))
        .await
        .with_context(|| format!("connecting the {backend} log"))?;
    let pool = mahnwerk_auth::connect_any(&url).await?;
    let keys = mahnwerk_auth::KeyStore::open(pool.clone()).await?;
    let tenant: TenantId = "bench".parse().context("tenant")?;
    keys.create_tenant(&tenant, "Beispiel Versorgung GmbH")
        .await?;
    let settings = settings();
    log.append(AppendBatch {
        stream: mahnwerk_letters_service::tenant::stream(&tenant),
        expected: ExpectedVersion::Any,
        events: vec![event(
            mahnwerk_letters_service::tenant::LETTERHEAD_UPDATED,
            serde_json::to_value(&settings)?,
        )],
    })
    .await?;

    eprintln!("B7 {backend}: building {n} letters and rendering them alone");
    let cases = cases(&run, &tenant, n)?;
    let models: Vec<LetterModel> = cases
        .iter()
        .map(|c| {
            mahnwerk_letters_service::mapping::letter_model(
                &c.step, &c.invoice, c.case, &settings, None,
            )
            .map_err(|e| anyhow::anyhow!("letter model: {e}"))
        })
        .collect::<Result<_>>()?;
    let models = Arc::new(models);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let nn = usize::try_from(n)?;
    let t_pure = {
        let m = models.clone();
        tokio::task::spawn_blocking(move || render_all(&m, threads, nn)).await??
    };
    let single = (nn / 10).max(20).min(nn);
    let t_single = {
        let m = models.clone();
        tokio::task::spawn_blocking(move || render_all(&m, 1, single)).await??
    };
    let pure_rate = per_sec(n, t_pure);
    let single_rate = per_sec(u64::try_from(single)?, t_single);
    drop(models);

    eprintln!("B7 {backend}: {n} cases onto the log");
    for chunk in cases.chunks(500) {
        let batches = chunk
            .iter()
            .map(|c| {
                let issued = CaseEvent::InvoiceIssued(InvoiceIssued {
                    invoice: c.invoice.clone(),
                });
                let step = mahnwerk_dunning::dunning_case::DunningEvent::StepReached(Box::new(
                    c.step.clone(),
                ));
                AppendBatch {
                    stream: c.case.stream(&tenant),
                    expected: ExpectedVersion::NoStream,
                    events: vec![
                        event(issued.event_type(), issued.to_payload()),
                        event(step.event_type(), step.to_payload()),
                    ],
                }
            })
            .collect();
        if let Some(e) = log
            .append_many(batches)
            .await?
            .into_iter()
            .find_map(Result::err)
        {
            bail!("B7: appending the cases: {e}");
        }
    }
    drop(cases);

    let bus = env.namespace("b7").await?;
    let mut config = Config::new(bus.clone());
    config.documents = DocumentConfig::Fs(dir.join("documents"));
    config.spool_dir = dir.join("spool");
    if let Some(c) = concurrency {
        config.concurrency = c;
    }
    let in_flight = config.concurrency;
    let parts = Parts::open(config, &pool).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    eprintln!("B7 {backend}: the letters service dispatches {n} letters by post");
    let rss_start = rss_mib();
    let cpu0 = CpuSplit::now();
    let t0 = Instant::now();
    let relay = {
        let (log, js, rx) = (log.clone(), env.js.clone(), stop_rx.clone());
        tokio::spawn(async move {
            mahnwerk_bus::Relay::new(bus)
                .run(log, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        })
    };
    let service = {
        let (log, pool, js, rx) = (log.clone(), pool.clone(), env.js.clone(), stop_rx);
        tokio::spawn(async move {
            mahnwerk_letters_service::run(parts, log, pool, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        })
    };
    let mut samples: Vec<(u64, f64)> = Vec::new();
    let (mut last_done, mut last_change) = (0, Instant::now());
    // When the consumer had recorded every intent (the debtor rows exist).
    let mut t_intents = None;
    let t_service = loop {
        let (debtor, all_sent, other, rows) = progress(&pool).await.unwrap_or_default();
        if let Some(rss) = rss_mib() {
            samples.push((debtor, rss));
        }
        if t_intents.is_none() && rows >= n {
            t_intents = Some(t0.elapsed());
        }
        if other > 0 {
            bail!("B7 {backend}: {other} letters ended other than sent (see the ledger)");
        }
        if debtor >= n && all_sent >= 2 * n && rows >= 2 * n {
            break t0.elapsed();
        }
        if all_sent != last_done {
            (last_done, last_change) = (all_sent, Instant::now());
        }
        if last_change.elapsed() > Duration::from_secs(120) {
            bail!(
                "B7 {backend}: no progress for 120 s at {all_sent} of {} rows",
                2 * n
            );
        }
        if relay.is_finished() || service.is_finished() {
            bail!("B7 {backend}: the relay or the service stopped early");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let cpu1 = CpuSplit::now();
    let _ = stop_tx.send(true);
    service.await.context("service task")??;
    relay.await.context("relay task")??;
    let spooled = files(&dir.join("spool"), "json");
    let pdfs = files(&dir.join("spool"), "pdf");
    let documents = files(&dir.join("documents"), "");
    let inbox = mahnwerk_letters_service::store::inbox_count(&pool, tenant.as_str()).await?;
    if spooled != n || pdfs != n || u64::try_from(inbox)? != n {
        bail!(
            "B7 {backend}: {spooled} jobs and {pdfs} PDFs spooled, {inbox} copies in the inbox; expected {n}"
        );
    }
    let rate = per_sec(n, t_service);
    let mut row = Row::new(
        &format!("B7/{backend}/service"),
        format!(
            "{n} dunning letters through the letters service (relay, NATS consumer, ledger, render, sealed document store, case check, post spool, creditor copy, 3 letter events each)"
        ),
        rate,
        "letters/s",
    )
    .against(
        &format!("the same letters rendered by mahnwerk-letters alone on {threads} threads, letters/s"),
        Some(pure_rate),
        0.5,
        ">= 0.5x pure render",
    );
    row.notes.push(format!(
        "{:.1} s for {n} letters (dispatch concurrency {in_flight}; every intent recorded by the consumer after {:.1} s); pure render {:.1} s on {threads} threads, {single_rate:.0} letters/s on 1 thread; {documents} documents stored, {spooled} jobs spooled, {inbox} copies in the inbox; {} (all local processes of each name)",
        t_service.as_secs_f64(),
        t_intents.unwrap_or_default().as_secs_f64(),
        t_pure.as_secs_f64(),
        cpu1.per_item_since(&cpu0, n)
    ));
    let mut rows = vec![row];
    let (r10, r50, r100) = (
        rss_at(&samples, n, 0.1),
        rss_at(&samples, n, 0.5),
        rss_at(&samples, n, 1.0),
    );
    let max = samples.iter().map(|(_, r)| *r).fold(0.0_f64, f64::max);
    if let (Some(r10), Some(r100)) = (r10, r100) {
        let mut r = Row::new(
            &format!("B7/{backend}/rss"),
            format!("RSS of the process after all {n} letters (service, relay, NATS client, log)"),
            r100,
            "MiB",
        );
        r.baseline = "RSS after the first 10% MiB".into();
        r.baseline_figure = Some(r10);
        r.ratio = Some(r100 / r10.max(1e-9));
        r.target = "flat: <= 1.1x".into();
        r.target_ratio = 1.1;
        r.target_met = Some(r100 <= r10 * 1.1);
        r.notes.push(format!(
            "VmRSS sampled every 250 ms ({} samples): {:.0} MiB before the start, {r10:.0} MiB at 10%, {:.0} MiB at 50%, {r100:.0} MiB at 100%, max {max:.0} MiB",
            samples.len(),
            rss_start.unwrap_or(0.0),
            r50.unwrap_or(0.0),
        ));
        rows.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}
