//! Quick throughput probe: `cargo run --release --example append_bench -- URL EVENTS BATCH`.
//! Appends EVENTS invoice-like events (~0.5 kB) in groups of BATCH one-event batches over many
//! streams, then the same rows into a plain table by multi-row INSERT, and prints both rates.
//! The product benchmark (B1) lives with the CLI; this is the crate's own profiling aid.

#![allow(clippy::float_arithmetic)] // rates for a human to read

use chrono::Utc;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, StreamId, event_id_now,
};
use serde_json::json;
use std::time::Instant;

fn payload(i: u64) -> serde_json::Value {
    json!({
        "invoice_number": format!("RE-2026-{i:08}"),
        "issue_date": "2026-11-01", "due_date": "2026-11-15",
        "currency": "EUR", "net_minor": 100_000 + i, "tax_minor": 19_000, "gross_minor": 119_000 + i,
        "debtor": {"key_id": format!("dk-{i}"), "ciphertext": "x".repeat(180), "kind": "business", "language": "de"},
        "payment_reference": format!("RF18{i:020}"),
        "creditor_account": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "sqlite:/tmp/append_bench.db?mode=rwc".into());
    let total: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let group: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let streams: u64 = (total / 4).max(1);
    let log = EventLog::connect(&url).await?;
    let tenant = "bench".parse()?;
    let start_head = log.head_position().await?;
    let t = Instant::now();
    let mut i = 0;
    while i < total {
        let batches: Vec<AppendBatch> = (i..(i + group).min(total))
            .map(|k| AppendBatch {
                stream: StreamId::new(&tenant, "case", &format!("{}-{}", start_head, k % streams)),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: "invoice.issued.v1".into(),
                    payload: payload(k),
                    occurred_at: Utc::now(),
                    metadata: Metadata {
                        actor: "bench".into(),
                        correlation_id: Some(format!("c{k}")),
                        ..Default::default()
                    },
                }],
            })
            .collect();
        for r in log.append_many(batches).await? {
            r?;
        }
        i += group;
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = total as f64 / secs;
    println!(
        "{} eventlog: {total} events in {secs:.2}s = {rate:.0}/s",
        log.backend_name()
    );
    if std::env::var("NO_BASELINE").is_ok() {
        return Ok(());
    }
    let base = baseline(&log, total, group, streams).await?;
    println!(
        "{} plain multi-row INSERT: {base:.0}/s; ratio {:.2}",
        log.backend_name(),
        rate / base
    );
    Ok(())
}

/// The same rows into a plain table with the same columns (primary key only), one multi-row
/// INSERT per group, in one transaction per group.
async fn baseline(
    log: &EventLog,
    total: u64,
    group: u64,
    streams: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let cols = "position, event_id, stream_id, stream_version, tenant, event_type, payload, occurred_at, \
                recorded_at, correlation_id, causation_id, actor, traceparent, hash";
    let t;
    if let Some(pool) = log.pg_pool() {
        sqlx::query("DROP TABLE IF EXISTS public.plain")
            .execute(pool)
            .await?;
        sqlx::query(
            "CREATE TABLE public.plain (position BIGINT PRIMARY KEY, event_id UUID NOT NULL, stream_id TEXT NOT NULL, \
             stream_version BIGINT NOT NULL, tenant TEXT NOT NULL, event_type TEXT NOT NULL, payload JSONB NOT NULL, \
             occurred_at TIMESTAMPTZ NOT NULL, recorded_at TIMESTAMPTZ NOT NULL, correlation_id TEXT, causation_id TEXT, \
             actor TEXT NOT NULL, traceparent TEXT, hash TEXT NOT NULL)",
        )
        .execute(pool)
        .await?;
        t = Instant::now();
        let mut i = 0;
        while i < total {
            let n = group.min(total - i);
            let mut sql = format!("INSERT INTO public.plain ({cols}) VALUES ");
            for r in 0..n {
                let b = r * 14;
                if r > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${},${},${},${},${},${},${}::json,${},${},${},${},${},${},${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8,
                    b + 9,
                    b + 10,
                    b + 11,
                    b + 12,
                    b + 13,
                    b + 14
                ));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in i..i + n {
                q = q
                    .bind(k as i64 + 1)
                    .bind(uuid::Uuid::now_v7())
                    .bind(format!("bench/case/p-{}", k % streams))
                    .bind(1i64)
                    .bind("bench")
                    .bind("invoice.issued.v1")
                    .bind(serde_json::to_string(&payload(k))?)
                    .bind(Utc::now())
                    .bind(Utc::now())
                    .bind(Some(format!("c{k}")))
                    .bind(None::<String>)
                    .bind("bench")
                    .bind(None::<String>)
                    .bind("0".repeat(64));
            }
            let mut tx = pool.begin().await?;
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            i += n;
        }
    } else {
        let pool = log.sqlite_pool().ok_or("no pool")?;
        sqlx::query("DROP TABLE IF EXISTS plain")
            .execute(pool)
            .await?;
        sqlx::query(
            "CREATE TABLE plain (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, stream_id TEXT NOT NULL, \
             stream_version INTEGER NOT NULL, tenant TEXT NOT NULL, event_type TEXT NOT NULL, payload TEXT NOT NULL, \
             occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, correlation_id TEXT, causation_id TEXT, \
             actor TEXT NOT NULL, traceparent TEXT, hash TEXT NOT NULL)",
        )
        .execute(pool)
        .await?;
        t = Instant::now();
        let mut i = 0;
        while i < total {
            let n = group.min(total - i);
            let mut sql = format!("INSERT INTO plain ({cols}) VALUES ");
            for r in 0..n {
                if r > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in i..i + n {
                q = q
                    .bind(k as i64 + 1)
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(format!("bench/case/p-{}", k % streams))
                    .bind(1i64)
                    .bind("bench")
                    .bind("invoice.issued.v1")
                    .bind(serde_json::to_string(&payload(k))?)
                    .bind(Utc::now().to_rfc3339())
                    .bind(Utc::now().to_rfc3339())
                    .bind(Some(format!("c{k}")))
                    .bind(None::<String>)
                    .bind("bench")
                    .bind(None::<String>)
                    .bind("0".repeat(64));
            }
            let mut tx = pool.begin().await?;
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            i += n;
        }
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}
