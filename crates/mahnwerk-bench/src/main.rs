//! # mahnwerk-bench
//!
//! The benchmark rows of issue 2 (B1–B4), each measured side by side with a raw baseline in the
//! same run against the real servers, printed as a table and written to `BENCHMARKS.md` and
//! `<out>/results.json`. Timings are reported, never asserted.
//!
//! ## Layout
//! - [`workload`]: the realistic invoices and `invoice.issued.v1` events every row uses.
//! - [`b1`]: event log appends vs plain multi-row `INSERT` (and `COPY`) on PostgreSQL and SQLite.
//! - [`b2`]: runs the peer (cqrs-es + postgres-es) in its own workspace under `bench/peer-cqrs-es`.
//! - [`b3`]: the outbox relay vs raw async JetStream publishes.
//! - [`b4`]: invoices over one gRPC client stream until logged and published.
//! - [`b5`]: a camt.053 imported over `ImportStatement` vs a bare scan and B1; peak RSS.
//! - [`b6`]: one dunning scheduler pass over 1,000,000 open cases, 300,000 due, vs B1; peak RSS.
//! - [`b7`]: letters rendered, stored and spooled through the letters service vs the pure render
//!   rate of the same letters; RSS over the run.
//! - [`b8`]: `RecordTransactions` until `invoice.settled` reaches a NATS consumer, under load.
//! - [`console`]: C1, the creditor console's overview over 100,000 cases vs one raw aggregate.
//! - [`explain`]: D1, `ExplainCase` and `PreviewPolicy` latency over gRPC with 10,000 cases.
//! - [`report`]: the table, `results.json` and `BENCHMARKS.md`.
//!
//! Rates are floating point by nature, hence the crate-wide allow below.
#![allow(clippy::float_arithmetic)]

/// The allocator the `mahnwerk` binary ships with, so the rows measure what runs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod b1;
mod b2;
mod b3;
mod b4;
mod b5;
mod b6;
mod b7;
mod b8;
mod console;
mod explain;
mod infra;
mod report;
mod workload;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::PathBuf;

/// Mahnwerk's benchmark rows B1–B8, C1 and D1 against real PostgreSQL, SQLite and NATS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Fraction of the sizes (1.0 = 1,000,000 events / invoices; `make bench-quick` uses 0.01).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Rows to run, comma separated: B1,B2,B3,B4,B5,B6,B7,B8,C1,D1.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "B1,B2,B3,B4,B5,B6,B7,B8,C1,D1"
    )]
    rows: Vec<String>,
    /// PostgreSQL server (a fresh database is created per run and dropped at the end). Without
    /// it the PostgreSQL rows are skipped.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// NATS server with JetStream (a unique namespace per run, deleted at the end).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Directory of results.json.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Where to write the markdown report (default: BENCHMARKS.md at full scale,
    /// <out>/BENCHMARKS.md at reduced scale so a quick run never overwrites the real numbers).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Events per group commit (B1) and rows per INSERT statement of its baseline.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Publishes in flight, for the relay and its raw baseline alike (B3).
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Rows the letters service's dispatch worker handles at once in B7 (default: the
    /// service's own default).
    #[arg(long)]
    letters_concurrency: Option<usize>,
    /// Manifest of the peer benchmark (B2).
    #[arg(long, default_value = "bench/peer-cqrs-es/Cargo.toml")]
    peer_manifest: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.scale > 0.0 && args.scale <= 10.0) {
        bail!("--scale must be in (0, 10]");
    }
    let rows: Vec<String> = args
        .rows
        .iter()
        .map(|r| r.trim().to_ascii_uppercase())
        .collect();
    for r in &rows {
        if !["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "C1", "D1"].contains(&r.as_str()) {
            bail!("unknown row {r:?}: expected B1, B2, B3, B4, B5, B6, B7, B8, C1 or D1");
        }
    }
    let n = scaled(1_000_000, args.scale);
    let env = infra::Env::start(args.database_url.clone(), &args.nats_url)
        .await
        .context("setting up the bench environment")?;
    eprintln!(
        "mahnwerk-bench: run {}, scale {} ({n} events/invoices), postgres: {}, nats: {}",
        env.run,
        args.scale,
        if env.pg_admin.is_some() {
            "yes"
        } else {
            "no (DATABASE_URL unset)"
        },
        args.nats_url
    );
    let result = run_rows(&args, &rows, n, &env).await;
    let cleanup = env.cleanup().await;
    let (results, machine) = result?;
    cleanup?;

    report::print_table(&results);
    let json_path = args.out.join("results.json");
    report::write_json(&json_path, &results)?;
    let md = args.markdown.clone().unwrap_or_else(|| {
        if args.scale >= 1.0 {
            PathBuf::from("BENCHMARKS.md")
        } else {
            args.out.join("BENCHMARKS.md")
        }
    });
    report::write_markdown(&md, &results, &machine, args.scale, n)?;
    eprintln!("wrote {} and {}", json_path.display(), md.display());
    Ok(())
}

async fn run_rows(
    args: &Args,
    rows: &[String],
    n: u64,
    env: &infra::Env,
) -> Result<(Vec<report::Row>, report::Machine)> {
    let machine = report::Machine::collect(env).await;
    let mut out = Vec::new();
    let want = |id: &str| rows.iter().any(|r| r == id);
    let mut b1 = b1::B1Results::default();
    if want("B1") || want("B2") || want("B3") || want("B4") || want("B5") || want("B6") {
        b1 = b1::run(env, n, args.batch, want("B1")).await?;
        if want("B1") {
            out.extend(b1.rows.iter().cloned());
        }
    }
    if want("B2") {
        // The peer builds its own workspace; a failure there must not lose the other rows.
        match b2::run(env, &args.peer_manifest, n, b1.rate("postgres")).await {
            Ok(row) => out.push(row),
            Err(e) => eprintln!("B2 skipped: {e:#}"),
        }
    }
    if want("B3") {
        let (log, count) = b1.log_for_relay().context("B3 needs the log B1 filled")?;
        out.push(b3::run(env, log, count, args.window).await?);
    }
    if want("B4") {
        for backend in env.backends() {
            out.push(b4::run(env, backend, n, b1.rate(backend)).await?);
        }
    }
    if want("B5") {
        for backend in env.backends() {
            out.extend(b5::run(env, backend, n, b1.rate(backend)).await?);
        }
    }
    if want("B6") {
        for backend in env.backends() {
            out.push(b6::run(env, backend, n, b1.rate(backend)).await?);
        }
    }
    if want("B7") {
        // The letters service as deployed: on PostgreSQL when configured, else on SQLite.
        let backend = env.backends()[0];
        out.extend(
            b7::run(
                env,
                backend,
                scaled_min(b7::FULL, args.scale, 100),
                args.letters_concurrency,
            )
            .await?,
        );
    }
    if want("B8") {
        for backend in env.backends() {
            out.push(b8::run(env, backend, args.scale).await?);
        }
    }
    if want("C1") {
        for backend in env.backends() {
            let url = env.log_url(backend, "c1").await?;
            out.push(console::run(&url, backend, scaled(100_000, args.scale)).await?);
        }
    }
    if want("D1") {
        for backend in env.backends() {
            out.extend(explain::run(env, backend, scaled(10_000, args.scale)).await?);
        }
    }
    Ok((out, machine))
}

/// `full` scaled, at least 1000.
fn scaled(full: u64, scale: f64) -> u64 {
    scaled_min(full, scale, 1000)
}

/// `full` scaled, at least `min`.
fn scaled_min(full: u64, scale: f64, min: u64) -> u64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::as_conversions
    )]
    let n = (full as f64 * scale).round() as u64;
    n.max(min)
}
