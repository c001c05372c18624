//! The console's read side, built from the events by a [`Handler`] on the consumer library (its
//! rows commit with the inbox row, so a redelivery changes nothing twice):
//!
//! - `console_cases`: one row per case, [`CaseView`] as JSON plus the indexed columns the
//!   overview and the invoice list filter on (stage, step, due/issue day, open amount, debtor);
//! - `console_payments`: payments (and reversals) by booking day, for "paid in the last 30 days";
//! - `console_review`: the review queue's entries (open or done), from the statement streams;
//! - `console_offers`: the offers to take over dunning (`dunning.offered.v1`, approval mode)
//!   until the creditor approves or declines them.
//!
//! Every query takes the tenant: there is no way to read across tenants.

use crate::stage::{AGEING_BOUNDS, CaseView, Stage, day_number};
use chrono::NaiveDate;
use mahnwerk_bus::{Envelope, Handler, HandlerError};
use sqlx::{Any, AnyPool, Row, Transaction};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS console_cases (tenant TEXT NOT NULL, case_id TEXT NOT NULL, invoice_number TEXT NOT NULL, debtor_lc TEXT NOT NULL, debtor_key TEXT NOT NULL, currency TEXT NOT NULL, stage TEXT NOT NULL, step BIGINT NOT NULL, closed BIGINT NOT NULL, open_minor BIGINT NOT NULL, gross_minor BIGINT NOT NULL, issue_day BIGINT NOT NULL, due_day BIGINT NOT NULL, view_json TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, case_id))",
    // Covering indexes: the overview's aggregates never read the rows (with their JSON).
    "CREATE INDEX IF NOT EXISTS console_cases_stage_v2 ON console_cases (tenant, stage, step, currency, due_day, open_minor)",
    "CREATE INDEX IF NOT EXISTS console_cases_due_v2 ON console_cases (tenant, closed, due_day, open_minor)",
    "CREATE INDEX IF NOT EXISTS console_cases_issue_v2 ON console_cases (tenant, issue_day, gross_minor, closed, open_minor)",
    "CREATE INDEX IF NOT EXISTS console_cases_debtor ON console_cases (tenant, debtor_key)",
    "CREATE INDEX IF NOT EXISTS console_cases_number ON console_cases (tenant, invoice_number)",
    "CREATE TABLE IF NOT EXISTS console_payments (tenant TEXT NOT NULL, payment_id TEXT NOT NULL, case_id TEXT NOT NULL, amount_minor BIGINT NOT NULL, booked_day BIGINT NOT NULL, PRIMARY KEY (tenant, payment_id))",
    "CREATE INDEX IF NOT EXISTS console_payments_day_v2 ON console_payments (tenant, booked_day, amount_minor)",
    "CREATE TABLE IF NOT EXISTS console_review (tenant TEXT NOT NULL, entry_id TEXT NOT NULL, open BIGINT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, entry_id))",
    "CREATE INDEX IF NOT EXISTS console_review_open ON console_review (tenant, open)",
    // Offers to take over dunning (approval mode): open until approved or declined.
    "CREATE TABLE IF NOT EXISTS console_offers (tenant TEXT NOT NULL, case_id TEXT NOT NULL, open BIGINT NOT NULL, offered_day BIGINT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, case_id))",
    "CREATE INDEX IF NOT EXISTS console_offers_open ON console_offers (tenant, open)",
];

/// Create the console's tables (idempotent).
pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for s in SCHEMA {
        sqlx::query(*s).execute(pool).await?;
    }
    Ok(())
}

/// The projection's event handler.
pub struct Projection;

fn stream_parts(stream: &str) -> Option<(&str, &str, &str)> {
    let mut it = stream.splitn(3, '/');
    Some((it.next()?, it.next()?, it.next()?))
}

impl Handler for Projection {
    async fn handle(
        &self,
        event: &Envelope,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        let Some((tenant, kind, id)) = stream_parts(&event.stream) else {
            return Ok(());
        };
        match kind {
            "case" => apply_case(tx, tenant, id, event).await,
            "statement" => apply_statement(tx, tenant, id, event).await,
            _ => Ok(()),
        }
    }
}

async fn apply_statement(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    entry_id: &str,
    event: &Envelope,
) -> Result<(), HandlerError> {
    let open = match event.event_type.as_str() {
        "payment.unmatched.v1" => 1,
        "payment.matched_manually.v1"
        | "payment.marked_not_ours.v1"
        | "payment.match_undone.v1" => 0,
        _ => return Ok(()),
    };
    sqlx::query(
        "INSERT INTO console_review (tenant, entry_id, open, position) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, entry_id) DO UPDATE SET open = excluded.open, position = excluded.position",
    )
    .bind(tenant.to_owned())
    .bind(entry_id.to_owned())
    .bind(open)
    .bind(event.position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply_case(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    case_id: &str,
    event: &Envelope,
) -> Result<(), HandlerError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT view_json FROM console_cases WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(&mut **tx)
            .await?;
    let on = event.occurred_at.date_naive();
    let mut payment = None;
    let view = match (row, event.event_type.as_str()) {
        (None, "invoice.issued.v1") => {
            CaseView::issued(&event.payload).map_err(HandlerError::Permanent)?
        }
        // Events of a case whose invoice this console never saw (none in a consistent log).
        (None, _) => return Ok(()),
        (Some((json,)), ty) => {
            let mut v: CaseView = serde_json::from_str(&json)
                .map_err(|e| HandlerError::Permanent(format!("console_cases.view_json: {e}")))?;
            payment = v.apply(ty, &event.payload, on);
            v
        }
    };
    let json = serde_json::to_string(&view).map_err(|e| HandlerError::Permanent(e.to_string()))?;
    sqlx::query(
        "INSERT INTO console_cases (tenant, case_id, invoice_number, debtor_lc, debtor_key, currency, stage, step, closed, open_minor, gross_minor, issue_day, due_day, view_json, position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (tenant, case_id) DO UPDATE SET stage = excluded.stage, step = excluded.step, closed = excluded.closed, open_minor = excluded.open_minor, due_day = excluded.due_day, view_json = excluded.view_json, position = excluded.position",
    )
    .bind(tenant.to_owned())
    .bind(case_id.to_owned())
    .bind(view.invoice_number.clone())
    .bind(view.debtor_name.to_lowercase())
    .bind(view.debtor_key.clone())
    .bind(view.currency.clone())
    .bind(view.stage.as_str().to_owned())
    .bind(i64::from(view.step))
    .bind(i64::from(view.stage.closed()))
    .bind(view.open_minor)
    .bind(view.gross_minor)
    .bind(day_number(view.issue_date))
    .bind(day_number(view.due_date))
    .bind(json)
    .bind(event.position)
    .execute(&mut **tx)
    .await?;
    let offer = match event.event_type.as_str() {
        "dunning.offered.v1" => Some(1),
        "dunning.approved.v1" | "dunning.declined.v1" => Some(0),
        _ => None,
    };
    if let Some(open) = offer {
        sqlx::query(
            "INSERT INTO console_offers (tenant, case_id, open, offered_day, position) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, case_id) DO UPDATE SET open = excluded.open, position = excluded.position",
        )
        .bind(tenant.to_owned())
        .bind(case_id.to_owned())
        .bind(open)
        .bind(day_number(on))
        .bind(event.position)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(p) = payment {
        sqlx::query(
            "INSERT INTO console_payments (tenant, payment_id, case_id, amount_minor, booked_day) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, payment_id) DO NOTHING",
        )
        .bind(tenant.to_owned())
        .bind(p.payment_id)
        .bind(case_id.to_owned())
        .bind(p.amount_minor)
        .bind(day_number(p.on))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Count and open sum of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figure {
    pub count: i64,
    pub open_minor: i64,
}

/// One stage row of the overview (dunning stages per step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFigure {
    pub stage: Stage,
    pub step: u32,
    pub currency: String,
    pub figure: Figure,
}

/// Everything the overview page shows.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub stages: Vec<StageFigure>,
    /// Overdue open cases per ageing bucket (0–30, 31–60, 61–90, 90+ days).
    pub ageing: [Figure; 4],
    pub paid_30_days: Figure,
    /// Open receivables and the sales of the last 90 days (for DSO).
    pub open_total: i64,
    pub sales_90_days: i64,
    pub review_queue: i64,
}

/// The overview of one tenant as of `today`: five indexed aggregate queries.
pub async fn overview(
    pool: &AnyPool,
    tenant: &str,
    today: NaiveDate,
) -> Result<Overview, sqlx::Error> {
    let t = day_number(today);
    let mut out = Overview::default();
    let rows = sqlx::query(
        "SELECT CASE WHEN stage = 'open' AND due_day < $2 THEN 'overdue' ELSE stage END AS s, step, currency, COUNT(*) AS n, CAST(SUM(open_minor) AS BIGINT) AS open_sum \
         FROM console_cases WHERE tenant = $1 GROUP BY 1, step, currency ORDER BY 1, step",
    )
    .bind(tenant.to_owned())
    .bind(t)
    .fetch_all(pool)
    .await?;
    for r in rows {
        let s: String = r.try_get(0)?;
        out.stages.push(StageFigure {
            stage: Stage::parse(&s).unwrap_or(Stage::Open),
            step: u32::try_from(r.try_get::<i64, _>(1)?).unwrap_or(0),
            currency: r.try_get(2)?,
            figure: Figure {
                count: r.try_get(3)?,
                open_minor: r.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
            },
        });
    }
    let rows = sqlx::query(
        "SELECT CASE WHEN $2 - due_day <= $3 THEN 0 WHEN $2 - due_day <= $4 THEN 1 WHEN $2 - due_day <= $5 THEN 2 ELSE 3 END AS b, COUNT(*), CAST(SUM(open_minor) AS BIGINT) \
         FROM console_cases WHERE tenant = $1 AND closed = 0 AND due_day < $2 GROUP BY 1",
    )
    .bind(tenant.to_owned())
    .bind(t)
    .bind(AGEING_BOUNDS[0])
    .bind(AGEING_BOUNDS[1])
    .bind(AGEING_BOUNDS[2])
    .fetch_all(pool)
    .await?;
    for r in rows {
        let b = usize::try_from(r.try_get::<i64, _>(0)?).unwrap_or(3).min(3);
        out.ageing[b] = Figure {
            count: r.try_get(1)?,
            open_minor: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
        };
    }
    let r = sqlx::query(
        "SELECT COUNT(*), CAST(SUM(amount_minor) AS BIGINT) FROM console_payments WHERE tenant = $1 AND booked_day > $2",
    )
    .bind(tenant.to_owned())
    .bind(t - 30)
    .fetch_one(pool)
    .await?;
    out.paid_30_days = Figure {
        count: r.try_get(0)?,
        open_minor: r.try_get::<Option<i64>, _>(1)?.unwrap_or(0),
    };
    let r = sqlx::query(
        "SELECT CAST(SUM(CASE WHEN closed = 0 THEN open_minor ELSE 0 END) AS BIGINT), CAST(SUM(CASE WHEN issue_day > $2 THEN gross_minor ELSE 0 END) AS BIGINT) FROM console_cases WHERE tenant = $1",
    )
    .bind(tenant.to_owned())
    .bind(t - 90)
    .fetch_one(pool)
    .await?;
    out.open_total = r.try_get::<Option<i64>, _>(0)?.unwrap_or(0);
    out.sales_90_days = r.try_get::<Option<i64>, _>(1)?.unwrap_or(0);
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM console_review WHERE tenant = $1 AND open = 1")
            .bind(tenant.to_owned())
            .fetch_one(pool)
            .await?;
    out.review_queue = n;
    Ok(out)
}

/// The invoice list's filters (all optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub stage: String,
    /// With stage `dunning`: only this step.
    #[serde(default)]
    pub step: Option<u32>,
    /// Debtor key (customer number or name).
    #[serde(default)]
    pub debtor: String,
    /// Open and due before this day (YYYY-MM-DD).
    #[serde(default)]
    pub overdue_as_of: String,
    /// Ageing bucket 0–3 (overdue days as of today).
    #[serde(default)]
    pub ageing: Option<usize>,
    /// Open amount at least / at most, in major units (e.g. `100` or `99.50`).
    #[serde(default)]
    pub min: String,
    #[serde(default)]
    pub max: String,
    /// Invoice number or debtor name contains.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: u32,
}

/// One listed case.
#[derive(Debug, Clone)]
pub struct Listed {
    pub case_id: String,
    pub view: CaseView,
}

pub const PAGE_SIZE: i64 = 50;

/// Parse a major-unit amount (`12`, `12.5`, `12,50`) into minor units; errors name the field.
pub fn parse_amount(field: &str, s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let s = s.replace(',', ".");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let bad = || format!("{field}: {s:?} is not an amount like 100 or 99.50");
    if int.is_empty()
        || frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int: i64 = int.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    int.checked_mul(100)
        .and_then(|v| v.checked_add(frac))
        .map(Some)
        .ok_or_else(bad)
}

/// A page of the tenant's cases matching `f`, and whether there is a next page.
pub async fn list(
    pool: &AnyPool,
    tenant: &str,
    today: NaiveDate,
    f: &Filter,
) -> Result<(Vec<Listed>, bool), String> {
    let t = day_number(today);
    let mut sql = String::from("SELECT case_id, view_json FROM console_cases WHERE tenant = $1");
    let mut args: Vec<Arg> = vec![Arg::S(tenant.to_owned())];
    let mut push = |sql: &mut String, cond: &str, a: Arg| {
        args.push(a);
        sql.push_str(&cond.replace('?', &format!("${}", args.len())));
    };
    match f.stage.as_str() {
        "" => {}
        "overdue" => {
            push(&mut sql, " AND stage = 'open' AND due_day < ?", Arg::I(t));
        }
        "open" => {
            push(&mut sql, " AND stage = 'open' AND due_day >= ?", Arg::I(t));
        }
        s => {
            let stage = Stage::parse(s).ok_or_else(|| format!("stage: unknown stage {s:?}"))?;
            push(
                &mut sql,
                " AND stage = ?",
                Arg::S(stage.as_str().to_owned()),
            );
        }
    }
    if let Some(step) = f.step {
        push(&mut sql, " AND step = ?", Arg::I(i64::from(step)));
    }
    if !f.debtor.is_empty() {
        push(&mut sql, " AND debtor_key = ?", Arg::S(f.debtor.clone()));
    }
    if !f.overdue_as_of.trim().is_empty() {
        let d: NaiveDate = f.overdue_as_of.trim().parse().map_err(|_| {
            format!(
                "overdue_as_of: {:?} is not a date (YYYY-MM-DD)",
                f.overdue_as_of
            )
        })?;
        push(
            &mut sql,
            " AND closed = 0 AND due_day < ?",
            Arg::I(day_number(d)),
        );
    }
    if let Some(b) = f.ageing {
        let (lo, hi) = match b {
            0 => (1, AGEING_BOUNDS[0]),
            1 => (AGEING_BOUNDS[0] + 1, AGEING_BOUNDS[1]),
            2 => (AGEING_BOUNDS[1] + 1, AGEING_BOUNDS[2]),
            3 => (AGEING_BOUNDS[2] + 1, i64::MAX / 4),
            _ => return Err(format!("ageing: {b} is not a bucket 0-3")),
        };
        push(&mut sql, " AND closed = 0 AND due_day <= ?", Arg::I(t - lo));
        push(&mut sql, " AND due_day >= ?", Arg::I(t - hi));
    }
    if let Some(min) = parse_amount("min", &f.min)? {
        push(&mut sql, " AND open_minor >= ?", Arg::I(min));
    }
    if let Some(max) = parse_amount("max", &f.max)? {
        push(&mut sql, " AND open_minor <= ?", Arg::I(max));
    }
    let q = f.q.trim();
    if !q.is_empty() {
        let like = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
        push(
            &mut sql,
            " AND (LOWER(invoice_number) LIKE ?",
            Arg::S(like.clone()),
        );
        push(&mut sql, " OR debtor_lc LIKE ?)", Arg::S(like));
    }
    sql.push_str(&format!(
        " ORDER BY due_day, case_id LIMIT {} OFFSET {}",
        PAGE_SIZE + 1,
        i64::from(f.page) * PAGE_SIZE
    ));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in args {
        query = match a {
            Arg::S(s) => query.bind(s),
            Arg::I(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(pool).await.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let case_id: String = r.try_get(0).map_err(|e| e.to_string())?;
        let json: String = r.try_get(1).map_err(|e| e.to_string())?;
        let view = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        out.push(Listed { case_id, view });
    }
    let more = out.len() > usize::try_from(PAGE_SIZE).unwrap_or(50);
    out.truncate(usize::try_from(PAGE_SIZE).unwrap_or(50));
    Ok((out, more))
}

enum Arg {
    S(String),
    I(i64),
}

/// One case of the tenant, if it is the tenant's.
pub async fn case(
    pool: &AnyPool,
    tenant: &str,
    case_id: &str,
) -> Result<Option<CaseView>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT view_json FROM console_cases WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(j,)| serde_json::from_str(&j).ok()))
}

/// The tenant's case for an invoice number.
pub async fn case_by_number(
    pool: &AnyPool,
    tenant: &str,
    number: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT case_id FROM console_cases WHERE tenant = $1 AND invoice_number = $2",
    )
    .bind(tenant.to_owned())
    .bind(number.to_owned())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.0))
}

/// An offer to take over dunning that waits for the creditor.
#[derive(Debug, Clone)]
pub struct Offer {
    pub case_id: String,
    pub offered_on: NaiveDate,
    pub view: CaseView,
}

/// The tenant's open offers (cases still open), oldest first, at most `limit`.
pub async fn offers(pool: &AnyPool, tenant: &str, limit: i64) -> Result<Vec<Offer>, sqlx::Error> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT o.case_id, o.offered_day, c.view_json FROM console_offers o JOIN console_cases c ON c.tenant = o.tenant AND c.case_id = o.case_id \
         WHERE o.tenant = $1 AND o.open = 1 AND c.closed = 0 ORDER BY o.offered_day, o.case_id LIMIT $2",
    )
    .bind(tenant.to_owned())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(case_id, day, json)| {
            Some(Offer {
                case_id,
                offered_on: crate::stage::from_day_number(day),
                view: serde_json::from_str(&json).ok()?,
            })
        })
        .collect())
}

/// Whether the tenant's case waits for the creditor's approval.
pub async fn offer_open(pool: &AnyPool, tenant: &str, case_id: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT open FROM console_offers WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some_and(|(o,)| o == 1))
}

/// The tenant's cases that reached each step (1-based), the latest first: one per step, for
/// the letter previews.
pub async fn case_per_step(
    pool: &AnyPool,
    tenant: &str,
) -> Result<Vec<(u32, String, String)>, sqlx::Error> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT COALESCE(MAX(step), 0) FROM console_cases WHERE tenant = $1")
            .bind(tenant.to_owned())
            .fetch_all(pool)
            .await?;
    let max = rows.first().map_or(0, |r| r.0);
    let mut out = Vec::new();
    for step in 1..=max.min(20) {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT case_id, invoice_number FROM console_cases WHERE tenant = $1 AND step >= $2 ORDER BY position DESC LIMIT 1",
        )
        .bind(tenant.to_owned())
        .bind(step)
        .fetch_optional(pool)
        .await?;
        if let Some((case_id, number)) = row {
            out.push((u32::try_from(step).unwrap_or(0), case_id, number));
        }
    }
    Ok(out)
}

/// Payment behaviour of one debtor.
#[derive(Debug, Clone)]
pub struct DebtorFigure {
    pub debtor_key: String,
    pub name: String,
    pub invoices: i64,
    pub dunned: i64,
    pub open_minor: i64,
    pub avg_days_late: Option<i64>,
    pub promises: i64,
    pub broken_promises: i64,
}

/// The tenant's debtors with most open first (at most `limit`), from the case views.
pub async fn debtors(
    pool: &AnyPool,
    tenant: &str,
    limit: i64,
) -> Result<Vec<DebtorFigure>, sqlx::Error> {
    let keys: Vec<(String,)> = sqlx::query_as(
        "SELECT debtor_key FROM console_cases WHERE tenant = $1 GROUP BY debtor_key ORDER BY SUM(CASE WHEN closed = 0 THEN open_minor ELSE 0 END) DESC, debtor_key LIMIT $2",
    )
    .bind(tenant.to_owned())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for (key,) in keys {
        let views: Vec<(String,)> = sqlx::query_as(
            "SELECT view_json FROM console_cases WHERE tenant = $1 AND debtor_key = $2",
        )
        .bind(tenant.to_owned())
        .bind(key.clone())
        .fetch_all(pool)
        .await?;
        let views: Vec<CaseView> = views
            .iter()
            .filter_map(|(j,)| serde_json::from_str(j).ok())
            .collect();
        let late: Vec<i64> = views.iter().filter_map(|v| v.settled_days_late).collect();
        let n_late = i64::try_from(late.len()).unwrap_or(1);
        out.push(DebtorFigure {
            name: views
                .first()
                .map(|v| v.debtor_name.clone())
                .unwrap_or_default(),
            debtor_key: key,
            invoices: i64::try_from(views.len()).unwrap_or(0),
            dunned: i64::try_from(views.iter().filter(|v| v.step > 0).count()).unwrap_or(0),
            open_minor: views
                .iter()
                .filter(|v| !v.stage.closed())
                .map(|v| v.open_minor)
                .sum(),
            avg_days_late: (n_late > 0).then(|| late.iter().sum::<i64>() / n_late),
            promises: views.iter().map(|v| i64::from(v.promises)).sum(),
            broken_promises: views.iter().map(|v| i64::from(v.broken_promises)).sum(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_parse_to_minor_units_and_bad_ones_name_the_field() {
        assert_eq!(parse_amount("min", "12"), Ok(Some(1200)));
        assert_eq!(parse_amount("min", "12,5"), Ok(Some(1250)));
        assert_eq!(parse_amount("min", " 0.07 "), Ok(Some(7)));
        assert_eq!(parse_amount("min", ""), Ok(None));
        assert!(
            parse_amount("max", "1.234")
                .unwrap_err()
                .starts_with("max:")
        );
        assert!(parse_amount("max", "-3").is_err());
    }
}
