//! The service's own tables (portable SQL through `sqlx::Any`, PostgreSQL and SQLite alike):
//! the invoice projection, the steps to write letters for, the dispatch ledger and the
//! creditor inbox.
//!
//! # The dispatch ledger
//! One row per (case, step, channel, recipient, resend key), moving
//! `intent → rendered → sending → sent | unknown` (or `failed`, `suppressed`, `draft`, or
//! `held` until the creditor gives what is missing, then `intent` again).
//! `sending` is committed before the channel is called and `sent` after it answered, so a
//! process killed in between leaves `sending`, which the next start turns into `unknown`
//! (flagged for review, never sent again automatically). `reported = 0` marks a final state
//! whose event is not yet on the case stream.

use mahnwerk_domain::Invoice;
use sqlx::{Any, AnyPool, Executor, Row};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS letters_invoices (tenant TEXT NOT NULL, case_id TEXT NOT NULL, invoice_json TEXT NOT NULL, PRIMARY KEY (tenant, case_id))",
    "CREATE TABLE IF NOT EXISTS letters_steps (tenant TEXT NOT NULL, case_id TEXT NOT NULL, step BIGINT NOT NULL, event_id TEXT NOT NULL, step_json TEXT NOT NULL, PRIMARY KEY (tenant, case_id, step))",
    "CREATE TABLE IF NOT EXISTS letters_ledger (id TEXT PRIMARY KEY, letter_id TEXT NOT NULL, tenant TEXT NOT NULL, case_id TEXT NOT NULL, step BIGINT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL, seq TEXT NOT NULL, state TEXT NOT NULL, document TEXT, provider_id TEXT, reason TEXT, attempts BIGINT NOT NULL, next_attempt_ms BIGINT NOT NULL, reported BIGINT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, UNIQUE (tenant, case_id, step, channel, recipient, seq))",
    "CREATE INDEX IF NOT EXISTS letters_ledger_work ON letters_ledger (state, next_attempt_ms)",
    "CREATE INDEX IF NOT EXISTS letters_ledger_case ON letters_ledger (tenant, case_id)",
    "CREATE TABLE IF NOT EXISTS letters_inbox (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, case_id TEXT NOT NULL, step BIGINT NOT NULL, letter_id TEXT NOT NULL, document TEXT NOT NULL, draft BIGINT NOT NULL, created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS letters_consolidations (tenant TEXT NOT NULL, consolidation_id TEXT NOT NULL, consolidation_json TEXT NOT NULL, PRIMARY KEY (tenant, consolidation_id))",
    // Repetitions of a step (`repeat` of `dunning.step_reached.v1`), keyed by their ledger seq.
    "CREATE TABLE IF NOT EXISTS letters_step_repeats (tenant TEXT NOT NULL, case_id TEXT NOT NULL, step BIGINT NOT NULL, seq TEXT NOT NULL, event_id TEXT NOT NULL, step_json TEXT NOT NULL, PRIMARY KEY (tenant, case_id, step, seq))",
    "CREATE TABLE IF NOT EXISTS letters_requests (tenant TEXT NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL, letter_id TEXT NOT NULL, PRIMARY KEY (tenant, request_id))",
];

pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(pool).await?;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Ledger states.
pub mod state {
    pub const INTENT: &str = "intent";
    pub const RENDERED: &str = "rendered";
    pub const SENDING: &str = "sending";
    pub const SENT: &str = "sent";
    pub const UNKNOWN: &str = "unknown";
    pub const FAILED: &str = "failed";
    pub const SUPPRESSED: &str = "suppressed";
    pub const DRAFT: &str = "draft";
    /// Waits for the creditor (a post letter to a debtor without a postal address); back to
    /// `intent` by [`super::release_held`].
    pub const HELD: &str = "held";
}

/// The reason of a held letter.
pub const POSTAL_ADDRESS_MISSING: &str = "postal address missing";

/// The case's held letters go back to `intent` (the reason is gone: the address was given).
/// Returns how many.
pub async fn release_held<'e, E>(ex: E, tenant: &str, case_id: &str) -> Result<u64, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    Ok(sqlx::query(
        "UPDATE letters_ledger SET state = 'intent', reason = NULL, attempts = 0, next_attempt_ms = 0, updated_ms = $1 \
         WHERE tenant = $2 AND case_id = $3 AND state = 'held'",
    )
    .bind(now_ms())
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .execute(ex)
    .await?
    .rows_affected())
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: String,
    pub letter_id: String,
    pub tenant: String,
    pub case_id: String,
    pub step: u32,
    pub channel: String,
    pub recipient: String,
    pub seq: String,
    pub state: String,
    pub document: Option<String>,
    pub provider_id: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub reported: bool,
}

macro_rules! columns {
    () => {
        "id, letter_id, tenant, case_id, step, channel, recipient, seq, state, document, provider_id, reason, attempts, reported"
    };
}

fn row(r: &sqlx::any::AnyRow) -> Result<LedgerRow, sqlx::Error> {
    Ok(LedgerRow {
        id: r.try_get("id")?,
        letter_id: r.try_get("letter_id")?,
        tenant: r.try_get("tenant")?,
        case_id: r.try_get("case_id")?,
        step: u32::try_from(r.try_get::<i64, _>("step")?).unwrap_or(0),
        channel: r.try_get("channel")?,
        recipient: r.try_get("recipient")?,
        seq: r.try_get("seq")?,
        state: r.try_get("state")?,
        document: r.try_get("document")?,
        provider_id: r.try_get("provider_id")?,
        reason: r.try_get("reason")?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
        reported: r.try_get::<i64, _>("reported")? != 0,
    })
}

/// The stable id of a ledger row: UUIDv5 of its key.
pub fn row_id(
    tenant: &str,
    case: &str,
    step: u32,
    channel: &str,
    recipient: &str,
    seq: &str,
) -> String {
    let name =
        format!("{tenant}\u{1f}{case}\u{1f}{step}\u{1f}{channel}\u{1f}{recipient}\u{1f}{seq}");
    uuid::Uuid::new_v5(&LETTER_NAMESPACE, name.as_bytes()).to_string()
}

/// The stable id of a letter (one per case, step, recipient and resend key; all channels of
/// one letter share it).
pub fn letter_id(tenant: &str, case: &str, step: u32, recipient: &str, seq: &str) -> String {
    let name = format!("letter\u{1f}{tenant}\u{1f}{case}\u{1f}{step}\u{1f}{recipient}\u{1f}{seq}");
    uuid::Uuid::new_v5(&LETTER_NAMESPACE, name.as_bytes()).to_string()
}

const LETTER_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6a4f_1c2e_93d0_4b8a_8f1e_5d27_c0b3_9e41);

/// A new ledger row.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    pub tenant: &'a str,
    pub case_id: &'a str,
    pub step: u32,
    pub channel: &'a str,
    pub recipient: &'a str,
    pub seq: &'a str,
    pub letter_id: &'a str,
    pub state: &'a str,
    pub document: Option<&'a str>,
}

impl NewRow<'_> {
    /// The row [`insert_row`] records for this (reported: nothing to put on the case yet).
    pub fn row(&self) -> LedgerRow {
        LedgerRow {
            id: row_id(
                self.tenant,
                self.case_id,
                self.step,
                self.channel,
                self.recipient,
                self.seq,
            ),
            letter_id: self.letter_id.to_owned(),
            tenant: self.tenant.to_owned(),
            case_id: self.case_id.to_owned(),
            step: self.step,
            channel: self.channel.to_owned(),
            recipient: self.recipient.to_owned(),
            seq: self.seq.to_owned(),
            state: self.state.to_owned(),
            document: self.document.map(str::to_owned),
            provider_id: None,
            reason: None,
            attempts: 0,
            reported: true,
        }
    }
}

/// Insert a row unless its key exists (idempotent). Returns whether it was inserted.
pub async fn insert_row<'e, E>(ex: E, new: &NewRow<'_>) -> Result<bool, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let id = new.row().id;
    let now = now_ms();
    let n = sqlx::query(
        "INSERT INTO letters_ledger (id, letter_id, tenant, case_id, step, channel, recipient, seq, state, document, provider_id, reason, attempts, next_attempt_ms, reported, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, 0, 0, 1, $11, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(new.letter_id.to_owned())
    .bind(new.tenant.to_owned())
    .bind(new.case_id.to_owned())
    .bind(i64::from(new.step))
    .bind(new.channel.to_owned())
    .bind(new.recipient.to_owned())
    .bind(new.seq.to_owned())
    .bind(new.state.to_owned())
    .bind(new.document.map(str::to_owned))
    .bind(now)
    .execute(ex)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Move a row from `from` to `to` (compare-and-set); returns whether it moved.
#[allow(clippy::too_many_arguments)]
pub async fn transition<'e, E>(
    ex: E,
    id: &str,
    from: &str,
    to: &str,
    document: Option<&str>,
    provider_id: Option<&str>,
    reason: Option<&str>,
    reported: bool,
) -> Result<bool, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let n = sqlx::query(
        "UPDATE letters_ledger SET state = $1, document = COALESCE($2, document), provider_id = COALESCE($3, provider_id), \
         reason = COALESCE($4, reason), reported = $5, updated_ms = $6 WHERE id = $7 AND state = $8",
    )
    .bind(to.to_owned())
    .bind(document.map(str::to_owned))
    .bind(provider_id.map(str::to_owned))
    .bind(reason.map(str::to_owned))
    .bind(i64::from(reported))
    .bind(now_ms())
    .bind(id.to_owned())
    .bind(from.to_owned())
    .execute(ex)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Put a row back to `rendered` after a transient failure, to be tried at `next_ms`.
pub async fn retry_later(
    pool: &AnyPool,
    id: &str,
    attempts: u32,
    next_ms: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE letters_ledger SET state = 'rendered', attempts = $1, next_attempt_ms = $2, reason = $3, updated_ms = $4 WHERE id = $5 AND state = 'sending'",
    )
    .bind(i64::from(attempts))
    .bind(next_ms)
    .bind(reason.to_owned())
    .bind(now_ms())
    .bind(id.to_owned())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn mark_reported(pool: &AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE letters_ledger SET reported = 1 WHERE id = $1")
        .bind(id.to_owned())
        .execute(pool)
        .await?;
    Ok(())
}

/// Rows with work to do: to render, to send (due), or a final state not yet reported.
pub async fn work(pool: &AnyPool, limit: i64) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM letters_ledger WHERE (state IN ('intent', 'rendered') AND next_attempt_ms <= $1) OR reported = 0 \
         ORDER BY created_ms, id LIMIT $2"))
    .bind(now_ms())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(row).collect()
}

/// At start: every row still `sending` was interrupted mid-send; its outcome is unknown.
pub async fn recover_interrupted(pool: &AnyPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE letters_ledger SET state = 'unknown', reason = 'outcome unknown: interrupted while sending', reported = 0, updated_ms = $1 WHERE state = 'sending'",
    )
    .bind(now_ms())
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn rows_of_case(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM letters_ledger WHERE tenant = $1 AND case_id = $2 ORDER BY step, created_ms, id"
    ))
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .fetch_all(pool)
    .await?;
    rows.iter().map(row).collect()
}

/// The letters a case is in: its own rows and those of every consolidated letter one of its
/// steps belongs to (keyed on the consolidation's first case, which may be another one).
pub async fn letters_of_case(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let mut rows = rows_of_case(pool, tenant, case_id).await?;
    let steps: Vec<(String,)> =
        sqlx::query_as("SELECT step_json FROM letters_steps WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_all(pool)
            .await?;
    let mut seqs: Vec<String> = steps
        .iter()
        .filter_map(|(json,)| {
            let step: serde_json::Value = serde_json::from_str(json).ok()?;
            Some(consolidation_seq(
                step.get("consolidation")?.get("id")?.as_str()?,
            ))
        })
        .collect();
    seqs.sort();
    seqs.dedup();
    for seq in seqs {
        let found = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM letters_ledger WHERE tenant = $1 AND seq = $2 ORDER BY step, created_ms, id"
        ))
        .bind(tenant.to_owned())
        .bind(seq)
        .fetch_all(pool)
        .await?;
        for r in &found {
            let r = row(r)?;
            if !rows.iter().any(|have| have.id == r.id) {
                rows.push(r);
            }
        }
    }
    Ok(rows)
}

pub async fn all_rows(pool: &AnyPool) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM letters_ledger ORDER BY created_ms, id"
    ))
    .fetch_all(pool)
    .await?;
    rows.iter().map(row).collect()
}

pub async fn put_invoice<'e, E>(
    ex: E,
    tenant: &str,
    case_id: &str,
    invoice: &Invoice,
) -> Result<(), sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    // The debtor is stored sealed, like the log (ADR 006).
    let mut value = serde_json::to_value(invoice).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    mahnwerk_eventlog::privacy::seal_json(tenant, &format!("{tenant}/case/{case_id}"), &mut value)
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("sealing personal data: {e}")))?;
    let json = value.to_string();
    sqlx::query(
        "INSERT INTO letters_invoices (tenant, case_id, invoice_json) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant, case_id) DO UPDATE SET invoice_json = excluded.invoice_json",
    )
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .bind(json)
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn invoice<'e, E>(
    ex: E,
    tenant: &str,
    case_id: &str,
) -> Result<Option<Invoice>, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT invoice_json FROM letters_invoices WHERE tenant = $1 AND case_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .fetch_optional(ex)
    .await?;
    let Some((json,)) = row else {
        return Ok(None);
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    mahnwerk_eventlog::privacy::open_json(tenant, &mut value)
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("opening personal data: {e}")))?;
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Remember a step event: the first sending under `seq` "" (once per step), a repetition under
/// its [`repeat_seq`].
pub async fn put_step<'e, E>(
    ex: E,
    tenant: &str,
    case_id: &str,
    step: u32,
    seq: &str,
    event_id: &str,
    json: &str,
) -> Result<(), sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let q = if seq.is_empty() {
        sqlx::query(
            "INSERT INTO letters_steps (tenant, case_id, step, event_id, step_json) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, case_id, step) DO NOTHING",
        )
    } else {
        sqlx::query(
            "INSERT INTO letters_step_repeats (seq, tenant, case_id, step, event_id, step_json) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant, case_id, step, seq) DO NOTHING",
        )
        .bind(seq.to_owned())
    };
    q.bind(tenant.to_owned())
        .bind(case_id.to_owned())
        .bind(i64::from(step))
        .bind(event_id.to_owned())
        .bind(json.to_owned())
        .execute(ex)
        .await?;
    Ok(())
}

/// The ledger key (`seq`) of the `count`-th repetition of a step (`RepeatStep`).
pub fn repeat_seq(count: u32) -> String {
    format!("repeat:{count}")
}

/// A ledger row's `seq` names a repetition of its step.
pub fn is_repeat_seq(seq: &str) -> bool {
    seq.starts_with("repeat:")
}

/// Which repetition of its step a ledger row's `seq` names (`None`: not a repetition).
pub fn repetition_of_seq(seq: &str) -> Option<u32> {
    seq.strip_prefix("repeat:")?.parse().ok()
}

/// The step event's id and payload.
/// The ledger key (`seq`) of a consolidated letter: one letter per consolidation id, whichever
/// member's step arrives first.
pub fn consolidation_seq(consolidation_id: &str) -> String {
    format!("c:{consolidation_id}")
}

/// The consolidation id of a ledger row's `seq`, when it is a consolidated letter's.
pub fn consolidation_of_seq(seq: &str) -> Option<&str> {
    seq.strip_prefix("c:")
}

/// Remember a consolidation (its members and what the letter prints) the first time a member's
/// step arrives.
pub async fn put_consolidation<'e, E>(
    ex: E,
    tenant: &str,
    consolidation_id: &str,
    json: &str,
) -> Result<(), sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO letters_consolidations (tenant, consolidation_id, consolidation_json) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant, consolidation_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(consolidation_id.to_owned())
    .bind(json.to_owned())
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn consolidation(
    pool: &AnyPool,
    tenant: &str,
    consolidation_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT consolidation_json FROM letters_consolidations WHERE tenant = $1 AND consolidation_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(consolidation_id.to_owned())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(j,)| j))
}

/// The step event (id and payload) a ledger row renders: its repetition for a [`repeat_seq`],
/// else the step's first sending (also for resends and consolidated rows).
pub async fn step(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
    step: u32,
    seq: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    if is_repeat_seq(seq) {
        return sqlx::query_as("SELECT event_id, step_json FROM letters_step_repeats WHERE tenant = $1 AND case_id = $2 AND step = $3 AND seq = $4")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .bind(i64::from(step))
            .bind(seq.to_owned())
            .fetch_optional(pool)
            .await;
    }
    sqlx::query_as("SELECT event_id, step_json FROM letters_steps WHERE tenant = $1 AND case_id = $2 AND step = $3")
        .bind(tenant.to_owned())
        .bind(case_id.to_owned())
        .bind(i64::from(step))
        .fetch_optional(pool)
        .await
}

pub async fn inbox_put<'e, E>(
    ex: E,
    row: &LedgerRow,
    document: &str,
    draft: bool,
) -> Result<String, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let id = row.id.clone();
    sqlx::query(
        "INSERT INTO letters_inbox (id, tenant, case_id, step, letter_id, document, draft, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.clone())
    .bind(row.tenant.clone())
    .bind(row.case_id.clone())
    .bind(i64::from(row.step))
    .bind(row.letter_id.clone())
    .bind(document.to_owned())
    .bind(i64::from(draft))
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(id)
}

pub async fn inbox_count(pool: &AnyPool, tenant: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM letters_inbox WHERE tenant = $1")
        .bind(tenant.to_owned())
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Record an idempotency key; returns the letter id already recorded under it, if any, and
/// whether its fingerprint matches.
pub async fn claim_request(
    pool: &AnyPool,
    tenant: &str,
    request_id: &str,
    fingerprint: &str,
    letter_id: &str,
) -> Result<Option<(bool, String)>, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO letters_requests (tenant, request_id, fingerprint, letter_id) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, request_id) DO NOTHING",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .bind(fingerprint.to_owned())
    .bind(letter_id.to_owned())
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        return Ok(None);
    }
    let (fp, id): (String, String) = sqlx::query_as(
        "SELECT fingerprint, letter_id FROM letters_requests WHERE tenant = $1 AND request_id = $2",
    )
    .bind(tenant.to_owned())
    .bind(request_id.to_owned())
    .fetch_one(pool)
    .await?;
    Ok(Some((fp == fingerprint, id)))
}
