//! B4: invoices over ONE gRPC client stream (`ImportInvoices`) to the in-process ingest service
//! on 127.0.0.1, with the outbox relay running, until every invoice is in the log AND published
//! to JetStream. Baseline: B1's append rate on the same backend (the floor the import stands on).

use crate::infra::{Env, cpu_seconds};
use crate::report::Row;
use crate::workload::proto_invoice;
use anyhow::{Context, Result, bail};
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::Relay;
use mahnwerk_domain::TenantId;
use mahnwerk_eventlog::EventLog;
use mahnwerk_ingest::Ingest;
use mahnwerk_proto::v1::ImportInvoicesRequest;
use mahnwerk_proto::v1::invoice_service_client::InvoiceServiceClient;
use std::time::{Duration, Instant};

/// Starts a fresh peak-RSS measurement of this process (Linux: `clear_refs` 5 resets VmHWM).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set of this process since the last reset, in MiB (`VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub async fn run(env: &Env, backend: &str, n: u64, b1_rate: Option<f64>) -> Result<Row> {
    eprintln!("B4 {backend}: importing {n} invoices over one gRPC stream");
    let rss_reset = reset_peak_rss();
    let url = env.log_url(backend, "b4").await?;
    let log = EventLog::connect(&url)
        .await
        .with_context(|| format!("connecting the {backend} log"))?;
    let pool = mahnwerk_auth::connect_any(&url).await?;
    mahnwerk_ingest::projection::ensure_schema(&pool).await?;
    let keys = KeyStore::open(pool.clone()).await?;
    let tenant: TenantId = "bench".parse().context("tenant")?;
    keys.create_tenant(&tenant, "Bench GmbH").await?;
    let key = keys
        .create_key(std::slice::from_ref(&tenant), "bench")
        .await?;
    let (invoices, cases) = mahnwerk_ingest::services(Ingest {
        log: log.clone(),
        keys,
        pool,
        // B4 imports no e-invoices: nothing is written here.
        docs: std::sync::Arc::new(mahnwerk_ingest::docstore::FsDocuments::new(
            std::env::temp_dir().join("mahnwerk-bench-documents"),
        )),
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(invoices)
            .add_service(cases)
            .serve_with_incoming_shutdown(mahnwerk_auth::listen::incoming(listener), async move {
                let _ = server_stopped.await;
            }),
    );

    let bus = env.namespace(&format!("b4{backend}")).await?;
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay =
        tokio::spawn(
            Relay::new(bus.clone()).run(log.clone(), env.js.clone(), async move {
                let _ = relay_stopped.await;
            }),
        );

    let mut client = InvoiceServiceClient::connect(format!("http://{addr}"))
        .await?
        .max_decoding_message_size(1 << 30);
    let run = format!("{}{}", env.run, &backend[..1]);
    let requests = futures::stream::iter((0..n).map(move |i| ImportInvoicesRequest {
        tenant: String::new(),
        invoice: Some(proto_invoice(&run, i)),
    }));
    let mut request = tonic::Request::new(requests);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", key.token)
            .parse()
            .context("token header")?,
    );

    let (c0, s0, t0) = (cpu_seconds(), log.commit_stats(), Instant::now());
    let response = client.import_invoices(request).await?.into_inner();
    let t_logged = t0.elapsed();
    let s1 = log.commit_stats();
    if response.accepted != n {
        bail!(
            "B4 {backend}: {} of {n} accepted, {} rejected",
            response.accepted,
            response.rejected
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let count = env.stream_messages(&bus.stream).await?;
        if count >= n {
            break;
        }
        if Instant::now() > deadline || relay.is_finished() {
            bail!("B4 {backend}: only {count} of {n} invoices published");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t_all = t0.elapsed();
    let cpu = cpu_seconds() - c0;
    let _ = stop_relay.send(());
    relay.await.context("relay task")??;
    let _ = stop_server.send(());
    server.await.context("server task")??;
    let head = log.head_position().await?;
    if u64::try_from(head).unwrap_or(0) != n {
        bail!("B4 {backend}: log head {head}, expected {n}");
    }

    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let nf = n as f64;
    let rate = nf / t_all.as_secs_f64();
    let mut row = Row::new(
        &format!("B4/{backend}"),
        format!(
            "import {n} invoices over one gRPC client stream into the {backend} log, relay running, until all are logged and published"
        ),
        rate,
        "invoices/s",
    )
    .against(&format!("B1/{backend} events/s"), b1_rate, 0.5, ">= 0.5x B1");
    row.notes.push(format!(
        "response (all in the log) after {:.1} s = {:.0} invoices/s; all published after {:.1} s; \
         process CPU (client + server + relay) {:.1} µs/invoice",
        t_logged.as_secs_f64(),
        nf / t_logged.as_secs_f64(),
        t_all.as_secs_f64(),
        cpu / nf * 1e6
    ));
    let commits = s1.commits - s0.commits;
    row.notes.push(format!(
        "log writer: {commits} group commits ({:.0} events each), busy {:.0}% of the time to the response",
        (s1.events - s0.events) as f64 / commits.max(1) as f64,
        (s1.busy - s0.busy).as_secs_f64() / t_logged.as_secs_f64() * 100.0
    ));
    if let (true, Some(peak)) = (rss_reset, peak_rss_mib()) {
        row.notes.push(format!(
            "peak RSS of the process during the row (client + ingest server + relay, VmHWM): {peak:.0} MiB"
        ));
    }
    Ok(row)
}
