//! Graceful shutdown of the real binary: SIGTERM during a 10,000-event load (an import of 5,000
//! invoices, each two events; `SIGTERM_TEST_INVOICES` for another size) while the consumers
//! handle it. The process
//! stops taking work, finishes or leaves unacked what is in flight and exits 0 within the
//! grace period; after a restart (and the billing platform retrying its import, which is
//! idempotent) every event was published once and handled once by each consumer: the
//! JetStream stream holds exactly the log, each consumer's inbox holds each event once, and
//! the projections hold each invoice once.
//!
//! No wait here has a fixed deadline that a slow machine could miss: each waits while the thing
//! it waits for makes progress, and fails only when nothing moved for [`STALL`] (a lost event
//! stops the count short of the log forever; an event handled twice overshoots it and never
//! comes back).

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use std::time::{Duration, Instant};

/// Invoices imported (each becomes two events: `invoice.issued`, `dunning.case_opened`):
/// 5,000 for the 10,000-event load; `SIGTERM_TEST_INVOICES` overrides it.
fn invoices() -> usize {
    std::env::var("SIGTERM_TEST_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// Events of the load: two per invoice.
fn events() -> usize {
    2 * invoices()
}

/// How long a wait may see no progress at all before it fails.
const STALL: Duration = Duration::from_secs(120);

/// Waits while `probe` changes, until `done` holds for what it returned; panics with `what` and
/// the last value when nothing changed for [`STALL`].
async fn wait_progress<T, F, Fut>(what: &str, mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut last = probe().await;
    let mut moved = Instant::now();
    loop {
        if done(&last) {
            return last;
        }
        assert!(
            moved.elapsed() < STALL,
            "{what}: no progress for {STALL:?}, stuck at {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = probe().await;
        if now != last {
            moved = Instant::now();
        }
        last = now;
    }
}
/// The consumers this test runs (letters and collection have nothing to do for invoices not
/// yet due, and each consumer's 10,000 deliveries cost a debug build on two shared cores).
const CONSUMERS: [&str; 2] = ["matching", "dunning"];

fn spawn(
    dir: &std::path::Path,
    url: &str,
    grpc: &str,
    namespace: &str,
    run: u32,
) -> tokio::process::Child {
    let log = std::fs::File::create(dir.join(format!("serve-{run}.log"))).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .arg("serve")
        .env("MAHNWERK_DATABASE_URL", url)
        .env("NATS_URL", nats_url())
        .env("MAHNWERK_LISTEN", grpc)
        .env("MAHNWERK_METRICS_LISTEN", "off")
        .env("MAHNWERK_NAMESPACE", namespace)
        .env("MAHNWERK_SIMULATED_CLOCK", "2026-03-01")
        .env("MAHNWERK_DOCUMENTS_DIR", dir.join("documents"))
        .env("MAHNWERK_POST_SPOOL", dir.join("spool"))
        .env("MAHNWERK_SERVICES", "ingest,relay,matching,dunning")
        .env_remove("MAHNWERK_SMTP_HOST")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn connect(grpc: &str) -> tonic::transport::Channel {
    let deadline = tokio::time::Instant::now() + STALL;
    loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
        {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Streams every invoice; `Err` when the server went away meanwhile.
async fn import(channel: tonic::transport::Channel, key: String) -> Result<u64, tonic::Status> {
    let mut client = pb::invoice_service_client::InvoiceServiceClient::new(channel);
    let items = (0..invoices()).map(|i| pb::ImportInvoicesRequest {
        tenant: String::new(),
        invoice: Some(invoice(&format!("RE-TERM-{i:05}"))),
    });
    let res = client
        .import_invoices(authed(&key, tokio_stream::iter(items)))
        .await?
        .into_inner();
    Ok(res.accepted)
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    use sqlx::Row as _;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .map(|r| r.get::<i64, _>(0))
        .unwrap_or(0)
}

async fn inbox(pool: &sqlx::AnyPool, consumer: &str) -> i64 {
    count(
        pool,
        &format!("SELECT COUNT(*) FROM bus_inbox WHERE consumer = '{consumer}'"),
    )
    .await
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_import_load_then_restart_handles_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let key = tenant_key(&url, "acme").await;
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let (grpc, namespace) = (free_addr(), unique("term"));

    let mut child = spawn(dir.path(), &url, &grpc, &namespace, 1);
    let channel = connect(&grpc).await;
    let load = tokio::spawn(import(channel, key.clone()));
    // SIGTERM once the consumers are busy with the load.
    wait_progress(
        "the load reaching the consumers",
        || async {
            (
                count(&pool, "SELECT COUNT(*) FROM events").await,
                inbox(&pool, "dunning").await,
            )
        },
        |(_, handled)| *handled >= 200,
    )
    .await;
    let pid = child.id().unwrap().to_string();
    let sent = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exited within the grace period")
        .unwrap();
    let stopped_after = sent.elapsed();
    let log1 = std::fs::read_to_string(dir.path().join("serve-1.log")).unwrap();
    assert!(status.success(), "{status:?}\n{log1}");
    let first = load.await.unwrap();
    let mut at_stop = Vec::new();
    for c in CONSUMERS {
        at_stop.push((c, inbox(&pool, c).await));
    }
    let events_at_stop = count(&pool, "SELECT COUNT(*) FROM events").await;
    eprintln!(
        "SIGTERM: exited after {stopped_after:?}; import {first:?}; {events_at_stop} events \
         on the log; handled per consumer: {at_stop:?}"
    );
    assert!(
        at_stop.iter().any(|(_, n)| (*n as usize) < events()),
        "the load was over before SIGTERM: {at_stop:?}"
    );

    // Restart; the billing platform retries its import (idempotent).
    let mut child = spawn(dir.path(), &url, &grpc, &namespace, 2);
    let channel = connect(&grpc).await;
    let accepted = import(channel, key).await.unwrap();
    assert_eq!(accepted as usize, invoices());
    // Caught up: every consumer has handled every event of the log and the stream holds it.
    let (total, published, handled) = wait_progress(
        "the restart catching up",
        || async {
            let total = count(&pool, "SELECT COUNT(*) FROM events").await;
            let mut handled = Vec::new();
            for c in CONSUMERS {
                handled.push(inbox(&pool, c).await);
            }
            (total, stream_messages(&namespace).await, handled)
        },
        |(total, published, handled)| {
            *total as usize >= events()
                && *published == *total as u64
                && handled.iter().all(|n| n == total)
        },
    )
    .await;
    eprintln!(
        "after the restart: {total} events on the log, {published} published, handled per \
         consumer {handled:?}; {:?} since SIGTERM",
        sent.elapsed()
    );
    // The load (by default the brief's 10,000 events), each handled by every consumer.
    assert!(total as usize >= events(), "{total} events");
    // Nothing appended twice: one invoice.issued per invoice, the log verifies.
    let issued = count(
        &pool,
        "SELECT COUNT(*) FROM events WHERE event_type = 'invoice.issued.v1'",
    )
    .await;
    assert_eq!(issued as usize, invoices());
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    assert!(log.verify().await.unwrap().is_ok());
    // Published once: the stream holds exactly the log (Nats-Msg-Id dedup plus the relay's
    // chained publishes); handled once: each consumer's inbox has each event once, and the
    // projections each invoice once.
    assert_eq!(stream_messages(&namespace).await, total as u64);
    for c in CONSUMERS {
        assert_eq!(inbox(&pool, c).await, total, "{c}");
    }
    for (table, what) in [
        ("ingest_invoices", "invoices projection"),
        ("matching_items", "open items"),
        ("dunning_cases", "dunning cases"),
    ] {
        let n = count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(n as usize, invoices(), "{what}");
    }
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exited")
        .unwrap();
    let log2 = std::fs::read_to_string(dir.path().join("serve-2.log")).unwrap();
    assert!(status.success(), "{status:?}\n{log2}");
}
