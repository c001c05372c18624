//! The dunning service's own tables (portable SQL through `sqlx::Any`: PostgreSQL and SQLite).
//!
//! - `dunning_cases`: per case the stream version the row was computed from, the policy and
//!   version it runs under, its status and its folded state (JSON).
//! - `dunning_next_action(tenant, case_id, due_on)`: when the scheduler must wake the case, with
//!   an index on `(due_on, tenant, case_id)`; the scheduler only ever asks for `due_on <= today`
//!   in that order.
//! - `dunning_requests`: request ids of interventions, for idempotent retries.
//! - `dunning_policy_ids`: which policy streams a tenant has (for ListPolicies).
//!
//! A row is only replaced by one computed from the same or a later stream version, so a slow
//! writer with an older view can never move a case's next action back or drop it.

use chrono::NaiveDate;
use mahnwerk_dunning::dunning_case::DunningCase;
use sqlx::{Any, AnyPool, Transaction};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS dunning_cases (tenant TEXT NOT NULL, case_id TEXT NOT NULL, stream_version BIGINT NOT NULL, policy_id TEXT NOT NULL, policy_version BIGINT NOT NULL, status TEXT NOT NULL, debtor_key TEXT NOT NULL, state_json TEXT NOT NULL, PRIMARY KEY (tenant, case_id))",
    "CREATE INDEX IF NOT EXISTS dunning_cases_debtor ON dunning_cases (tenant, debtor_key)",
    "CREATE TABLE IF NOT EXISTS dunning_next_action (tenant TEXT NOT NULL, case_id TEXT NOT NULL, due_on TEXT NOT NULL, PRIMARY KEY (tenant, case_id))",
    // The scheduler's order (`due_on, tenant, case_id`): a pass reads its batches off the index
    // and stops at the limit, instead of sorting every due case for each batch.
    "DROP INDEX IF EXISTS dunning_next_action_due",
    "CREATE INDEX IF NOT EXISTS dunning_next_action_due_order ON dunning_next_action (due_on, tenant, case_id)",
    "CREATE TABLE IF NOT EXISTS dunning_requests (tenant TEXT NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, response TEXT, PRIMARY KEY (tenant, request_id))",
    "CREATE TABLE IF NOT EXISTS dunning_policy_ids (tenant TEXT NOT NULL, policy_id TEXT NOT NULL, PRIMARY KEY (tenant, policy_id))",
];

pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(pool).await?;
    }
    Ok(())
}

/// One case as the scheduler and the handler leave it.
#[derive(Debug, Clone)]
pub struct CaseRow<'a> {
    pub tenant: &'a str,
    pub case_id: &'a str,
    pub stream_version: u64,
    pub state: Option<&'a DunningCase>,
    pub status: String,
    pub due_on: Option<NaiveDate>,
}

fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Record a case unless a row from a later stream version is already there. Returns whether
/// the row was written.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    row: &CaseRow<'_>,
) -> Result<bool, sqlx::Error> {
    let (policy_id, policy_version) = row.state.map_or((String::new(), 0), |s| {
        (s.policy.id.clone(), i64::from(s.policy.version))
    });
    let state_json = match row.state {
        Some(s) => serde_json::to_string(s).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
        None => "null".to_owned(),
    };
    let debtor_key = row
        .state
        .map_or(String::new(), |s| s.facts.debtor_key.clone());
    let version = version_i64(row.stream_version);
    let updated = sqlx::query(
        "UPDATE dunning_cases SET stream_version = $3, policy_id = $4, policy_version = $5, status = $6, state_json = $7, debtor_key = $8 \
         WHERE tenant = $1 AND case_id = $2 AND stream_version <= $3",
    )
    .bind(row.tenant.to_owned())
    .bind(row.case_id.to_owned())
    .bind(version)
    .bind(policy_id.clone())
    .bind(policy_version)
    .bind(row.status.clone())
    .bind(state_json.clone())
    .bind(debtor_key.clone())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated == 0 {
        let inserted = sqlx::query(
            "INSERT INTO dunning_cases (tenant, case_id, stream_version, policy_id, policy_version, status, state_json, debtor_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, case_id) DO NOTHING",
        )
        .bind(row.tenant.to_owned())
        .bind(row.case_id.to_owned())
        .bind(version)
        .bind(policy_id)
        .bind(policy_version)
        .bind(row.status.clone())
        .bind(state_json)
        .bind(debtor_key)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // A later version is recorded already.
            return Ok(false);
        }
    }
    match row.due_on {
        Some(day) => {
            sqlx::query(
                "INSERT INTO dunning_next_action (tenant, case_id, due_on) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, case_id) DO UPDATE SET due_on = excluded.due_on",
            )
            .bind(row.tenant.to_owned())
            .bind(row.case_id.to_owned())
            .bind(day.to_string())
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM dunning_next_action WHERE tenant = $1 AND case_id = $2")
                .bind(row.tenant.to_owned())
                .bind(row.case_id.to_owned())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(true)
}

/// Cases per statement of [`record_many`] (8 parameters each: within every backend's limit).
const RECORD_CHUNK: usize = 128;

/// [`record`] for many cases at once (a scheduler pass), with the same guarantee: one
/// multi-row upsert of the case rows, each replacing only a row of the same or an earlier stream
/// version, then one upsert of the next actions of the rows now at exactly their version. A
/// case without a next action (it ended) goes through [`record`] alone.
/// Another writer's locks got in the way (PostgreSQL deadlock or serialization failure, SQLite
/// busy or locked): worth running the same transaction again.
pub fn is_contention(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("40P01" | "40001" | "5" | "6" | "517")
            ) || db.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Record many cases in one transaction. The rows are written in (tenant, case) order whatever
/// order they come in: two writers recording overlapping cases take the row locks in the same
/// order, so one waits for the other instead of both deadlocking (PostgreSQL).
pub async fn record_many(
    tx: &mut Transaction<'static, Any>,
    rows: &[CaseRow<'_>],
) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<&CaseRow<'_>> = rows.iter().collect();
    sorted.sort_by(|a, b| (a.tenant, a.case_id).cmp(&(b.tenant, b.case_id)));
    let rows = &sorted[..];
    // One statement cannot upsert a row twice: a case given twice goes one by one, in order.
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    if !rows.iter().all(|r| seen.insert((r.tenant, r.case_id))) {
        for row in rows {
            record(tx, row).await?;
        }
        return Ok(());
    }
    for chunk in rows.chunks(RECORD_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO dunning_cases (tenant, case_id, stream_version, policy_id, policy_version, status, state_json, debtor_key) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 8;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8
            ));
        }
        sql.push_str(
            " ON CONFLICT (tenant, case_id) DO UPDATE SET stream_version = excluded.stream_version, policy_id = excluded.policy_id, \
             policy_version = excluded.policy_version, status = excluded.status, state_json = excluded.state_json, debtor_key = excluded.debtor_key \
             WHERE dunning_cases.stream_version <= excluded.stream_version",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            let (policy_id, policy_version) = row.state.map_or((String::new(), 0), |s| {
                (s.policy.id.clone(), i64::from(s.policy.version))
            });
            let state_json = match row.state {
                Some(s) => {
                    serde_json::to_string(s).map_err(|e| sqlx::Error::Encode(Box::new(e)))?
                }
                None => "null".to_owned(),
            };
            q = q
                .bind(row.tenant.to_owned())
                .bind(row.case_id.to_owned())
                .bind(version_i64(row.stream_version))
                .bind(policy_id)
                .bind(policy_version)
                .bind(row.status.clone())
                .bind(state_json)
                .bind(
                    row.state
                        .map_or(String::new(), |s| s.facts.debtor_key.clone()),
                );
        }
        q.execute(&mut **tx).await?;

        let due: Vec<&CaseRow<'_>> = chunk
            .iter()
            .copied()
            .filter(|r| r.due_on.is_some())
            .collect();
        if !due.is_empty() {
            let sql = next_action_upsert_sql(due.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in &due {
                q = q
                    .bind(row.tenant.to_owned())
                    .bind(row.case_id.to_owned())
                    .bind(row.due_on.map(|d| d.to_string()).unwrap_or_default())
                    .bind(version_i64(row.stream_version));
            }
            q.execute(&mut **tx).await?;
        }
        for row in chunk.iter().filter(|r| r.due_on.is_none()) {
            record(tx, row).await?;
        }
    }
    Ok(())
}

/// The next actions of `n` cases in one statement: `(tenant, case_id, due_on, stream_version)`
/// per case, written only where `dunning_cases` holds that very version (a row a later writer
/// replaced keeps that writer's next action).
///
/// The version check is a scalar subquery, one primary-key lookup per value row, and not a
/// join: PostgreSQL plans a join against the table's statistics, and right after a bulk write
/// (a large import, a first pass) those say the table is small, so it hashed the values and
/// scanned all of `dunning_cases` for every batch of 128 (30 ms each at 100,000 cases).
fn next_action_upsert_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO dunning_next_action (tenant, case_id, due_on) SELECT v.column1, v.column2, v.column3 FROM (VALUES ",
    );
    for i in 0..n {
        let b = i * 4;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, CAST(${} AS BIGINT))",
            b + 1,
            b + 2,
            b + 3,
            b + 4
        ));
    }
    sql.push_str(
        ") AS v WHERE (SELECT c.stream_version FROM dunning_cases c WHERE c.tenant = v.column1 AND c.case_id = v.column2) = v.column4 \
         ON CONFLICT (tenant, case_id) DO UPDATE SET due_on = excluded.due_on",
    );
    sql
}

/// Cases whose next action is due on or before `today` (index range scan on `due_on`).
pub async fn due(
    pool: &AnyPool,
    today: NaiveDate,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant, case_id FROM dunning_next_action WHERE due_on <= $1 ORDER BY due_on, tenant, case_id LIMIT $2",
    )
    .bind(today.to_string())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// [`due`] after the key `after` (`due_on, tenant, case_id`, the index's order): a pass pages
/// through the due cases without reading a batch twice.
pub async fn due_after(
    pool: &AnyPool,
    today: NaiveDate,
    after: Option<&(String, String, String)>,
    limit: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    match after {
        None => sqlx::query_as(
            "SELECT due_on, tenant, case_id FROM dunning_next_action WHERE due_on <= $1 ORDER BY due_on, tenant, case_id LIMIT $2",
        )
        .bind(today.to_string())
        .bind(limit)
        .fetch_all(pool)
        .await,
        Some((due_on, tenant, case_id)) => sqlx::query_as(
            "SELECT due_on, tenant, case_id FROM dunning_next_action WHERE due_on <= $1 AND (due_on, tenant, case_id) > ($2, $3, $4) \
             ORDER BY due_on, tenant, case_id LIMIT $5",
        )
        .bind(today.to_string())
        .bind(due_on.clone())
        .bind(tenant.clone())
        .bind(case_id.clone())
        .bind(limit)
        .fetch_all(pool)
        .await,
    }
}

/// The stream version a case's row was computed from (tests and read-your-writes).
pub async fn recorded_version(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
) -> Result<Option<u64>, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT stream_version FROM dunning_cases WHERE tenant = $1 AND case_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(v,)| u64::try_from(v).unwrap_or(0)))
}

/// The next action recorded for a case.
pub async fn next_action(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT due_on FROM dunning_next_action WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(d,)| d.parse().ok()))
}

/// A stored intervention request: its fingerprint and, once done, its response.
pub async fn request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, response FROM dunning_requests WHERE tenant = $1 AND request_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .fetch_optional(pool)
    .await
}

/// Remember a request's fingerprint before acting on it. Returns false when the id is taken.
pub async fn claim_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
    fingerprint: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO dunning_requests (tenant, request_id, fingerprint, response) VALUES ($1, $2, $3, NULL) \
         ON CONFLICT (tenant, request_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .bind(fingerprint.to_owned())
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Drop the claim of a request that took no effect (it failed before finishing).
pub async fn release_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM dunning_requests WHERE tenant = $1 AND request_id = $2 AND response IS NULL",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn finish_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
    response: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dunning_requests SET response = $3 WHERE tenant = $1 AND request_id = $2")
        .bind(tenant.to_owned())
        .bind(request_id.to_owned())
        .bind(response.to_owned())
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn add_policy_id(
    pool: &AnyPool,
    tenant: &str,
    policy_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dunning_policy_ids (tenant, policy_id) VALUES ($1, $2) ON CONFLICT (tenant, policy_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(policy_id.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn policy_ids(pool: &AnyPool, tenant: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT policy_id FROM dunning_policy_ids WHERE tenant = $1 ORDER BY policy_id",
    )
    .bind(tenant.to_owned())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// Folded states of a tenant's cases that are still open (not settled, cancelled, credited,
/// written off or handed over), for previews.
pub async fn open_states(
    pool: &AnyPool,
    tenant: &str,
) -> Result<Vec<(String, DunningCase)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT case_id, state_json FROM dunning_cases WHERE tenant = $1 AND status NOT IN ('pending', 'settled', 'cancelled', 'credited', 'written_off', 'escalated') ORDER BY case_id",
    )
    .bind(tenant.to_owned())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, json)| serde_json::from_str(&json).ok().map(|s| (id, s)))
        .collect())
}

/// The cases of one debtor (by debtor key).
pub async fn debtor_cases(
    pool: &AnyPool,
    tenant: &str,
    debtor_key: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT case_id FROM dunning_cases WHERE tenant = $1 AND debtor_key = $2 ORDER BY case_id",
    )
    .bind(tenant.to_owned())
    .bind(debtor_key.to_owned())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// The open cases of one debtor (by debtor key): those a step can still be due for
/// (consolidation looks at them when one of them reaches a step).
pub async fn open_debtor_cases(
    pool: &AnyPool,
    tenant: &str,
    debtor_key: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT case_id FROM dunning_cases WHERE tenant = $1 AND debtor_key = $2 AND status NOT IN ('pending', 'settled', 'cancelled', 'credited', 'written_off', 'escalated') ORDER BY case_id",
    )
    .bind(tenant.to_owned())
    .bind(debtor_key.to_owned())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// Debtor keys per statement of [`open_cases_of_debtors`].
const DEBTOR_CHUNK: usize = 256;

/// [`open_debtor_cases`] for many debtors of one tenant at once (a scheduler batch): `(debtor
/// key, case id)`, ordered by both.
pub async fn open_cases_of_debtors(
    pool: &AnyPool,
    tenant: &str,
    debtor_keys: &[&str],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in debtor_keys.chunks(DEBTOR_CHUNK) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT debtor_key, case_id FROM dunning_cases WHERE tenant = $1 AND debtor_key IN ({}) \
             AND status NOT IN ('pending', 'settled', 'cancelled', 'credited', 'written_off', 'escalated') ORDER BY debtor_key, case_id",
            list.join(", ")
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant.to_owned());
        for k in chunk {
            q = q.bind((*k).to_owned());
        }
        let rows: Vec<(String, String)> = q.fetch_all(pool).await?;
        out.extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(tenant, case_id, due_on, stream_version)` rows bound to [`next_action_upsert_sql`].
    async fn upsert_next_actions(pool: &AnyPool, rows: &[(&str, &str, &str, i64)]) {
        let sql = next_action_upsert_sql(rows.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (t, c, d, v) in rows {
            q = q.bind(*t).bind(*c).bind(*d).bind(*v);
        }
        q.execute(pool).await.unwrap();
    }

    /// Writes a next action only where the case row holds the version it was computed from.
    async fn check_version_guard(pool: &AnyPool) {
        ensure_schema(pool).await.unwrap();
        for (case, version) in [("g1", 3_i64), ("g2", 5)] {
            sqlx::query(
                "INSERT INTO dunning_cases (tenant, case_id, stream_version, policy_id, policy_version, status, debtor_key, state_json) \
                 VALUES ('acme', $1, $2, 'p', 1, 'open', 'd', 'null')",
            )
            .bind(case)
            .bind(version)
            .execute(pool)
            .await
            .unwrap();
        }
        // g1 at its version; g2 from an older view (4 < 5); g3 has no case row.
        upsert_next_actions(
            pool,
            &[
                ("acme", "g1", "2026-12-10", 3),
                ("acme", "g2", "2026-12-11", 4),
                ("acme", "g3", "2026-12-12", 1),
            ],
        )
        .await;
        // Again, later: the upsert replaces g1's day.
        upsert_next_actions(pool, &[("acme", "g1", "2026-12-20", 3)]).await;
        let got: Vec<(String, String)> = sqlx::query_as(
            "SELECT case_id, due_on FROM dunning_next_action WHERE tenant = 'acme' AND case_id LIKE 'g%' ORDER BY case_id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(got, vec![("g1".to_owned(), "2026-12-20".to_owned())]);
    }

    #[tokio::test]
    async fn next_actions_follow_the_case_row_version_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
        check_version_guard(&pool).await;
    }

    /// Right after a bulk write PostgreSQL has no statistics for `dunning_cases` (autovacuum
    /// has not analysed it): the next-action upsert must still look each case up by its key,
    /// never scan the table (it did, as a hash join, 30 ms per batch at 100,000 cases).
    #[tokio::test]
    async fn next_actions_look_cases_up_by_key_without_statistics() {
        let Some(db) = mahnwerk_auth::scratch::ScratchDatabase::create("mahnwerk_dun_plan").await
        else {
            return;
        };
        let pool = db.pool.clone();
        ensure_schema(&pool).await.unwrap();
        sqlx::query("ALTER TABLE dunning_cases SET (autovacuum_enabled = false)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO dunning_cases (tenant, case_id, stream_version, policy_id, policy_version, status, debtor_key, state_json) \
             SELECT 'acme', 'c' || g, 2, 'p', 1, 'open', 'd' || g, 'null' FROM generate_series(1, 20000) g",
        )
        .execute(&pool)
        .await
        .unwrap();
        let n = RECORD_CHUNK;
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            next_action_upsert_sql(n)
        )));
        for i in 0..n {
            q = q
                .bind("acme")
                .bind(format!("c{}", i * 150 + 1))
                .bind("2026-12-10")
                .bind(2_i64);
        }
        let plan = q.fetch_all(&pool).await.unwrap().join("\n");
        assert!(
            !plan.contains("Seq Scan on dunning_cases"),
            "a sequential scan: {plan}"
        );
        assert!(plan.contains("Index Cond"), "no key lookup: {plan}");
        check_version_guard(&pool).await;
        db.drop().await;
    }
}
