//! A stock grpcio client (Python, default channel options) streams 40,000 invoices (MAHNWERK_IMPORT_ITEMS=1000000 for a million) into
//! `ImportInvoices` as fast as it can, one naming another tenant and one with a NUL character:
//! the call is OK, every other item is committed, those two are rejected with their reasons.
//! The server's resident memory before, during (sampled) and after, its peak (`VmHWM`) and the
//! time are printed (it runs in this process). SQLite by default; `MAHNWERK_IMPORT_DB=postgres`
//! puts the log on PostgreSQL (`DATABASE_URL`).

mod common;

use common::*;
use std::path::PathBuf;

/// A memory figure of this process (the in-process server) in MiB: `VmRSS` (resident now) or
/// `VmHWM` (the peak resident since the process started).
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn rss_mib() -> u64 {
    status_mib("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_client_streams_invoices_as_fast_as_it_can_with_two_bad_items() {
    let n: u64 = std::env::var("MAHNWERK_IMPORT_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let (other, nul) = (n / 3, 2 * n / 3);
    let dir = tempfile::tempdir().unwrap();
    // MAHNWERK_IMPORT_DB=postgres: the log on PostgreSQL (DATABASE_URL), so the reported
    // memory is the server's alone; SQLite's page cache (32 MiB per pooled connection) lives
    // in this process and fills as the database grows.
    let url = match std::env::var("MAHNWERK_IMPORT_DB").as_deref() {
        Ok("postgres") => databases(&dir)
            .await
            .pop()
            .filter(|u| u.starts_with("postgres"))
            .expect("MAHNWERK_IMPORT_DB=postgres needs DATABASE_URL"),
        _ => sqlite_db(&dir),
    };
    eprintln!("log on {}", url.split(':').next().unwrap_or_default());
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let before = rss_mib();
    // Sample the resident memory while the import runs (reported, not asserted).
    let (stop_sampling, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            samples.push(rss_mib());
            tokio::select! {
                _ = &mut stopped => return samples,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
        }
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/grpc_import.py");
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(python("grpcio"))
        .arg(script)
        .args([
            server.addr.to_string(),
            key,
            n.to_string(),
            other.to_string(),
            nul.to_string(),
        ])
        .output()
        .await
        .unwrap();
    let after = rss_mib();
    let _ = stop_sampling.send(());
    let samples = sampler.await.unwrap();
    let quarter = |q: usize| samples[(samples.len() - 1) * q / 4];
    eprintln!(
        "server rss: {before} MiB before; during the import {} / {} / {} MiB \
         (at 1/4, 1/2, 3/4), sampled peak {} MiB, VmHWM {} MiB; {after} MiB after {n} items \
         in {:.1} s",
        quarter(1),
        quarter(2),
        quarter(3),
        samples.iter().max().copied().unwrap_or(0),
        status_mib("VmHWM"),
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["code"], "OK", "{res}");
    assert_eq!(res["accepted"], n - 2, "{res}");
    assert_eq!(res["rejected"], 2, "{res}");
    let rejected = res["results"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{res}");
    assert_eq!(rejected[0]["index"], other);
    assert_eq!(rejected[0]["error_code"], "PERMISSION_DENIED", "{res}");
    assert_eq!(rejected[0]["fields"][0], "tenant", "{res}");
    assert_eq!(rejected[1]["index"], nul);
    assert_eq!(rejected[1]["error_code"], "INVALID_ARGUMENT", "{res}");
    assert_eq!(rejected[1]["fields"][0], "invoice.debtor.name", "{res}");
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    assert_eq!(log.head_position().await.unwrap() as u64, n - 2);
    server.stop().await;
}
