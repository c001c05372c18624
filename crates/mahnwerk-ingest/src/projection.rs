//! The ingest service's own read model for `ListInvoices`, built from the log.
//!
//! A follower reads the log from its checkpoint and upserts one row per case. The checkpoint is
//! written in the same transaction as the rows, so a restart resumes exactly where it stopped
//! and replaying an event changes nothing twice. Portable SQL (`sqlx::Any`): PostgreSQL and
//! SQLite alike.

use mahnwerk_domain::case::{CaseEvent, CaseState, evolve};
use mahnwerk_eventlog::{EventLog, RecordedEvent};
use sqlx::AnyPool;
use std::future::Future;
use std::time::Duration;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS ingest_invoices (tenant TEXT NOT NULL, invoice_number TEXT NOT NULL, case_id TEXT NOT NULL, status TEXT NOT NULL, due_date TEXT NOT NULL, open_minor BIGINT NOT NULL, customer_number TEXT NOT NULL, state_json TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, invoice_number))",
    "CREATE INDEX IF NOT EXISTS ingest_invoices_due ON ingest_invoices (tenant, status, due_date)",
    "CREATE TABLE IF NOT EXISTS ingest_checkpoint (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
];

pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(pool).await?;
    }
    Ok(())
}

async fn checkpoint(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM ingest_checkpoint WHERE name = 'invoices'")
            .fetch_optional(pool)
            .await?;
    Ok(row.map_or(0, |r| r.0))
}

/// Apply one batch of log events in one transaction.
pub async fn apply(pool: &AnyPool, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for e in events {
        if e.stream.kind() != "case" {
            continue;
        }
        let Ok(Some(event)) = CaseEvent::from_parts(&e.event_type, &e.payload) else {
            continue;
        };
        let tenant = e.tenant.to_string();
        let prior: Option<CaseState> = match &event {
            CaseEvent::InvoiceIssued(_) => None,
            _ => {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT state_json FROM ingest_invoices WHERE tenant = $1 AND case_id = $2",
                )
                .bind(tenant.clone())
                .bind(e.stream.id().to_owned())
                .fetch_optional(&mut *tx)
                .await?;
                row.and_then(|(json,)| serde_json::from_str(&json).ok())
            }
        };
        let Some(state) = evolve(prior, &event) else {
            continue;
        };
        let json = serde_json::to_string(&state).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO ingest_invoices (tenant, invoice_number, case_id, status, due_date, open_minor, customer_number, state_json, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, invoice_number) DO UPDATE SET status = excluded.status, due_date = excluded.due_date, \
             open_minor = excluded.open_minor, state_json = excluded.state_json, position = excluded.position",
        )
        .bind(tenant)
        .bind(state.invoice.number.to_string())
        .bind(e.stream.id().to_owned())
        .bind(state.status.as_str())
        .bind(state.due_date.to_string())
        .bind(state.open.minor)
        .bind(state.invoice.debtor.customer_number.clone().unwrap_or_default())
        .bind(json)
        .bind(e.position)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(last) = events.last() {
        sqlx::query(
            "INSERT INTO ingest_checkpoint (name, position) VALUES ('invoices', $1) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        )
        .bind(last.position)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Follow the log until `shutdown`.
pub async fn follow(log: EventLog, pool: AnyPool, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut head = log.watch_head();
    loop {
        let step = async {
            let after = checkpoint(&pool).await.map_err(|e| e.to_string())?;
            let events = log.read_all(after, 2000).await.map_err(|e| e.to_string())?;
            if events.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(250), head.changed()).await;
                return Ok::<(), String>(());
            }
            apply(&pool, &events).await.map_err(|e| e.to_string())
        };
        tokio::select! {
            () = &mut shutdown => return,
            res = step => if let Err(err) = res {
                tracing::warn!(error = %err, "invoice projection failed, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Wait until the projection has caught up with `position` (tests and read-your-writes).
pub async fn caught_up(pool: &AnyPool, position: i64) -> Result<bool, sqlx::Error> {
    Ok(checkpoint(pool).await? >= position)
}
