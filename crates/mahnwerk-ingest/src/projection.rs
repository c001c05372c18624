//! The ingest service's own read model for `ListInvoices`, built from the log.
//!
//! A follower reads the log from its checkpoint and upserts one row per case. The checkpoint is
//! written in the same transaction as the rows, so a restart resumes exactly where it stopped
//! and replaying an event changes nothing twice. Portable SQL (`sqlx::Any`): PostgreSQL and
//! SQLite alike.
//!
//! Any number of followers (ingest replicas) may share the tables: a batch's transaction first
//! moves the checkpoint from the position it read to the batch's last one (`UPDATE … WHERE
//! position = $read`); a follower that finds the checkpoint moved meanwhile rolls back and reads
//! again. So each batch is applied once and the checkpoint never moves backwards; rows also keep
//! their position and are only overwritten by a later one. An event of a known type that does not
//! decode stops the projection there (logged with its position, counted in
//! `mahnwerk_projection_decode_errors_total`) instead of being skipped.

use mahnwerk_domain::lifecycle::{CaseEvent, CaseState, evolve};
use mahnwerk_eventlog::{EventLog, RecordedEvent};
use sqlx::AnyPool;
use std::future::Future;
use std::time::Duration;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS ingest_invoices (tenant TEXT NOT NULL, invoice_number TEXT NOT NULL, case_id TEXT NOT NULL, status TEXT NOT NULL, due_date TEXT NOT NULL, open_minor BIGINT NOT NULL, customer_number TEXT NOT NULL, state_json TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, invoice_number))",
    "CREATE INDEX IF NOT EXISTS ingest_invoices_due ON ingest_invoices (tenant, status, due_date)",
    "CREATE INDEX IF NOT EXISTS ingest_invoices_case ON ingest_invoices (tenant, case_id)",
    "CREATE TABLE IF NOT EXISTS ingest_checkpoint (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "INSERT INTO ingest_checkpoint (name, position) VALUES ('invoices', 0) ON CONFLICT (name) DO NOTHING",
];

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening personal data failed (the key table unreachable): retried.
    #[error("personal data: {0}")]
    Privacy(#[from] mahnwerk_eventlog::Error),
    /// An event (or the stored state it applies to) does not decode: the projection stops here.
    #[error("event at position {position} ({event_type}) does not decode: {reason}")]
    Undecodable {
        position: i64,
        event_type: String,
        reason: String,
    },
}

/// What [`apply`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied; the checkpoint is now the batch's last position.
    Done,
    /// Another follower moved the checkpoint first; nothing was written.
    Lost,
}

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

/// Apply one batch of log events, read after checkpoint `after`, in one transaction: only if
/// the checkpoint is still `after` (see the module docs).
pub async fn apply(
    pool: &AnyPool,
    after: i64,
    events: &[RecordedEvent],
) -> Result<Applied, ProjectionError> {
    let Some(last) = events.last() else {
        return Ok(Applied::Done);
    };
    let mut tx = pool.begin().await?;
    // Claim the batch first: this write also serialises competing followers.
    let claimed = sqlx::query(
        "UPDATE ingest_checkpoint SET position = $1 WHERE name = 'invoices' AND position = $2",
    )
    .bind(last.position)
    .bind(after)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(Applied::Lost);
    }
    let undecodable = |e: &RecordedEvent, reason: String| {
        metrics::counter!("mahnwerk_projection_decode_errors_total", "projection" => "invoices")
            .increment(1);
        ProjectionError::Undecodable {
            position: e.position,
            event_type: e.event_type.clone(),
            reason,
        }
    };
    for e in events {
        if e.stream.kind() != "case" {
            continue;
        }
        let event = match CaseEvent::from_parts(&e.event_type, &e.payload) {
            Ok(Some(event)) => event,
            // Not an invoice fact (payments, dunning, letters): nothing to project.
            Ok(None) => continue,
            Err(err) => return Err(undecodable(e, err.to_string())),
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
                match row {
                    None => None,
                    Some((json,)) => {
                        let mut value: serde_json::Value = serde_json::from_str(&json)
                            .map_err(|err| undecodable(e, format!("stored state: {err}")))?;
                        mahnwerk_eventlog::privacy::open_json(&tenant, &mut value).await?;
                        Some(
                            serde_json::from_value(value)
                                .map_err(|err| undecodable(e, format!("stored state: {err}")))?,
                        )
                    }
                }
            }
        };
        let Some(state) = evolve(prior, &event) else {
            continue;
        };
        // The stored state holds the debtor sealed, like the log (ADR 006).
        let mut value =
            serde_json::to_value(&state).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        mahnwerk_eventlog::privacy::seal_json(&tenant, e.stream.as_str(), &mut value).await?;
        let json = value.to_string();
        sqlx::query(
            "INSERT INTO ingest_invoices (tenant, invoice_number, case_id, status, due_date, open_minor, customer_number, state_json, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, invoice_number) DO UPDATE SET status = excluded.status, due_date = excluded.due_date, \
             open_minor = excluded.open_minor, state_json = excluded.state_json, position = excluded.position \
             WHERE ingest_invoices.position < excluded.position",
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
    tx.commit().await?;
    Ok(Applied::Done)
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
            match apply(&pool, after, &events).await {
                Ok(Applied::Done) => Ok(()),
                Ok(Applied::Lost) => {
                    tracing::debug!(after, "another follower applied this batch");
                    Ok(())
                }
                Err(err @ ProjectionError::Undecodable { .. }) => {
                    tracing::error!(error = %err, "invoice projection stopped at an undecodable event");
                    Err(err.to_string())
                }
                Err(err) => Err(err.to_string()),
            }
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
