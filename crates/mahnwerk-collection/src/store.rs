//! The service's own tables (portable SQL through `sqlx::Any`: PostgreSQL and SQLite).
//!
//! - `collection_partners`: the current version of each partner (a projection of the
//!   `{tenant}/partner/{id}` streams; a row is only replaced by a later version).
//! - `collection_requests`: request ids of mutating calls, for idempotent retries.
//! - `collection_pending`: escalated cases whose hand-over is still to be decided (written by the
//!   handler in the consumer's transaction, worked off by [`crate::service::Collection::work`]).

use sqlx::AnyPool;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS collection_partners (tenant TEXT NOT NULL, partner_id TEXT NOT NULL, version BIGINT NOT NULL, partner_json TEXT NOT NULL, PRIMARY KEY (tenant, partner_id))",
    "CREATE TABLE IF NOT EXISTS collection_pending (tenant TEXT NOT NULL, case_id TEXT NOT NULL, escalated_on TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (tenant, case_id))",
    "CREATE TABLE IF NOT EXISTS collection_requests (tenant TEXT NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, response TEXT, PRIMARY KEY (tenant, request_id))",
];

pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(pool).await?;
    }
    Ok(())
}

/// Record a partner version unless a later one is there.
pub async fn put_partner(
    pool: &AnyPool,
    tenant: &str,
    partner_id: &str,
    version: u64,
    json: &str,
) -> Result<(), sqlx::Error> {
    let v = i64::try_from(version).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO collection_partners (tenant, partner_id, version, partner_json) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, partner_id) DO UPDATE SET version = excluded.version, partner_json = excluded.partner_json \
         WHERE collection_partners.version < excluded.version",
    )
    .bind(tenant.to_owned())
    .bind(partner_id.to_owned())
    .bind(v)
    .bind(json.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

/// `(version, partner json)` of every partner of a tenant, by id.
pub async fn partners(pool: &AnyPool, tenant: &str) -> Result<Vec<(u64, String)>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, partner_json FROM collection_partners WHERE tenant = $1 ORDER BY partner_id",
    )
    .bind(tenant.to_owned())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(v, j)| (u64::try_from(v).unwrap_or(0), j))
        .collect())
}

/// Claim a request id; `false` when it is known already.
pub async fn claim_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
    fingerprint: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO collection_requests (tenant, request_id, fingerprint) VALUES ($1, $2, $3) ON CONFLICT (tenant, request_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .bind(fingerprint.to_owned())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Fingerprint and stored answer of a known request.
pub async fn request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, response FROM collection_requests WHERE tenant = $1 AND request_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .fetch_optional(pool)
    .await
}

pub async fn finish_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
    response: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE collection_requests SET response = $3 WHERE tenant = $1 AND request_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .bind(response.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

/// Forget a claimed request whose call was refused (so a corrected retry may use the id).
pub async fn drop_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM collection_requests WHERE tenant = $1 AND request_id = $2 AND response IS NULL",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

/// Record an escalated case to decide (in the consumer's transaction).
pub async fn add_pending(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &str,
    case_id: &str,
    escalated_on: &str,
    event_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO collection_pending (tenant, case_id, escalated_on, event_id) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, case_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .bind(escalated_on.to_owned())
    .bind(event_id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `(tenant, case id, escalated on, event id)` of pending escalations.
pub async fn pending(
    pool: &AnyPool,
    limit: i64,
) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant, case_id, escalated_on, event_id FROM collection_pending ORDER BY tenant, case_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn done_pending(pool: &AnyPool, tenant: &str, case_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM collection_pending WHERE tenant = $1 AND case_id = $2")
        .bind(tenant.to_owned())
        .bind(case_id.to_owned())
        .execute(pool)
        .await?;
    Ok(())
}
