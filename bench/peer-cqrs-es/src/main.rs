//! B2 peer: appends N `invoice.issued` events through cqrs-es 0.5 + postgres-es 0.5 the way their
//! docs show (`postgres_cqrs(pool, vec![], services)`, then `cqrs.execute_with_metadata(id,
//! command, metadata)` per command; pure event store, no snapshots), spread over N/4 aggregates
//! like B1, with `--concurrency` commands in flight (the docs' pool has 10 connections).
//! Prints one JSON object with the rate on stdout.
//!
//! Usage: peer-cqrs-es --database-url URL --events N --payload-file FILE [--concurrency C]

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::{default_postgress_pool, postgres_cqrs};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CaseEvent {
    InvoiceIssued { invoice: serde_json::Value },
}

impl DomainEvent for CaseEvent {
    fn event_type(&self) -> String {
        "invoice.issued".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

pub enum CaseCommand {
    Issue { invoice: serde_json::Value },
}

#[derive(Debug)]
pub struct CaseError(String);

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaseError {}

#[derive(Default, Serialize, Deserialize)]
pub struct Case {
    invoices: u64,
}

impl Aggregate for Case {
    const TYPE: &'static str = "case";
    type Command = CaseCommand;
    type Event = CaseEvent;
    type Error = CaseError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            CaseCommand::Issue { invoice } => {
                if invoice.is_null() {
                    return Err(CaseError("no invoice".into()));
                }
                sink.write(CaseEvent::InvoiceIssued { invoice }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CaseEvent::InvoiceIssued { .. } => self.invoices += 1,
        }
    }
}

const INIT: &[&str] = &[
    // postgres-es db/init.sql
    "CREATE TABLE IF NOT EXISTS events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
     sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, \
     event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
     PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    "CREATE TABLE IF NOT EXISTS snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
     last_sequence bigint CHECK (last_sequence >= 0) NOT NULL, \
     current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL, \
     PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
];

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--database-url").ok_or("--database-url required")?;
    let events: u64 = arg(&args, "--events").ok_or("--events required")?.parse()?;
    let concurrency: u64 = arg(&args, "--concurrency").map_or(Ok(8), |c| c.parse())?;
    let template: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        arg(&args, "--payload-file").ok_or("--payload-file required")?,
    )?)?;
    let invoice = template.get("invoice").cloned().unwrap_or(template);
    let aggregates = (events / 4).max(1000);

    let pool = default_postgress_pool(&url).await;
    for stmt in INIT {
        sqlx::query(stmt).execute(&pool).await?;
    }
    let cqrs = Arc::new(postgres_cqrs::<Case>(pool.clone(), vec![], ()));
    let invoice = Arc::new(invoice);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let cqrs = cqrs.clone();
        let invoice = invoice.clone();
        tasks.push(tokio::spawn(async move {
            // Worker w owns the aggregates a with a % C == w, so an aggregate's commands
            // run in order and never race (no AggregateConflict retries needed).
            for i in (0..events).filter(|i| (i % aggregates) % concurrency == w) {
                let mut inv = (*invoice).clone();
                if let Some(obj) = inv.as_object_mut() {
                    obj.insert("number".into(), serde_json::json!(format!("RE-peer-{i:09}")));
                }
                let id = format!("case-{}", i % aggregates);
                let metadata = HashMap::from([
                    ("actor".to_string(), "key:bench".to_string()),
                    ("correlation_id".to_string(), format!("import-peer-{}", i / 1000)),
                ]);
                cqrs.execute_with_metadata(&id, CaseCommand::Issue { invoice: inv }, metadata)
                    .await
                    .map_err(|e| format!("event {i}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    if u64::try_from(stored)? != events {
        return Err(format!("stored {stored} events, expected {events}").into());
    }
    println!(
        "{}",
        serde_json::json!({
            "peer": "cqrs-es 0.5.0 + postgres-es 0.5.0 (postgres_cqrs, event store, no snapshots)",
            "events": events,
            "aggregates": aggregates,
            "concurrency": concurrency,
            "seconds": seconds,
            "events_per_sec": events as f64 / seconds,
        })
    );
    Ok(())
}
