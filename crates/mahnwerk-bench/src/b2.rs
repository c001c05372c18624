//! B2: the same events through a peer event store, cqrs-es 0.5 + postgres-es 0.5, run as its
//! own program from the separate workspace `bench/peer-cqrs-es` (its sqlx 0.8 must not meet our
//! sqlx 0.9 in one lock file). Figure: Mahnwerk's B1 rate on PostgreSQL; baseline: the peer's.

use crate::infra::Env;
use crate::report::Row;
use crate::workload::issued_event;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Stdio;

pub async fn run(env: &Env, manifest: &Path, n: u64, mahnwerk_pg: Option<f64>) -> Result<Row> {
    let Some(mahnwerk) = mahnwerk_pg else {
        bail!("B2 needs PostgreSQL (set DATABASE_URL) and B1's PostgreSQL rate");
    };
    if !manifest.exists() {
        bail!(
            "B2: peer manifest {} not found (run from the repository root)",
            manifest.display()
        );
    }
    let url = env.pg_database("b2").await?;
    let tenant = "bench".parse().context("tenant")?;
    let sample = issued_event(&env.run, &tenant, 0, None)?;
    let payload_file = env.tmp.path().join("peer-payload.json");
    std::fs::write(&payload_file, sample.event.payload.to_string())?;
    eprintln!(
        "B2: cargo run --release --manifest-path {} ({n} events)",
        manifest.display()
    );
    let output =
        tokio::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "--release", "--quiet", "--manifest-path"])
            .arg(manifest)
            .arg("--")
            .args([
                "--database-url",
                &url,
                "--events",
                &n.to_string(),
                "--payload-file",
            ])
            .arg(&payload_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .await
            .context("starting cargo for the peer benchmark")?;
    if !output.status.success() {
        bail!("B2 peer failed with {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("peer printed no JSON")?;
    let result: serde_json::Value = serde_json::from_str(line).context("peer JSON")?;
    let peer = result["events_per_sec"]
        .as_f64()
        .context("events_per_sec")?;
    let mut row = Row::new(
        "B2",
        format!(
            "the B1/postgres events through a peer event store ({} events, {} aggregates)",
            n, result["aggregates"]
        ),
        mahnwerk,
        "events/s",
    )
    .against(
        "cqrs-es + postgres-es events/s",
        Some(peer),
        5.0,
        ">= 5x peer",
    );
    row.notes.push(format!(
        "peer: {} with {} commands in flight, one load + one append transaction per command, {:.1} s",
        result["peer"].as_str().unwrap_or("?"),
        result["concurrency"],
        result["seconds"].as_f64().unwrap_or(0.0)
    ));
    Ok(row)
}
