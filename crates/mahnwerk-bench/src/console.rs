//! C1: the creditor console's overview over 100,000 cases (scaled). The projection is filled
//! through the console's own event handler (invoices issued, a share dunned, paid, settled,
//! letters sent), then the overview page (its five aggregate queries and the HTML render) is
//! measured; baseline: the single raw `GROUP BY stage` query over the same table, the least
//! any overview must do. Target: a page under one second (measured, not asserted).

use crate::report::Row;
use anyhow::{Context, Result};
use mahnwerk_bus::{Envelope, Handler};
use mahnwerk_console::{i18n::Lang, pages, projection, session::Sessions};
use std::time::Instant;

fn envelope(
    tenant: &str,
    case: &str,
    position: i64,
    ty: &str,
    payload: serde_json::Value,
    on: &str,
) -> Envelope {
    let at: chrono::DateTime<chrono::Utc> = format!("{on}T10:00:00Z").parse().unwrap_or_default();
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        stream: format!("{tenant}/case/{case}"),
        version: 1,
        position,
        tenant: tenant.into(),
        event_type: ty.into(),
        occurred_at: at,
        recorded_at: at,
        metadata: Default::default(),
        payload,
        hash: String::new(),
    }
}

/// The events of case `i`: issued in the 200 days before 2026-12-01; a third dunned (one to
/// three steps), a quarter paid and settled.
fn case_events(tenant: &str, i: u64, pos: &mut i64) -> Vec<Envelope> {
    let case = uuid::Uuid::from_u128(u128::from(i) + 1).to_string();
    let base = chrono::NaiveDate::from_ymd_opt(2026, 5, 15).unwrap_or_default();
    let issue = base + chrono::Duration::days(i64::try_from(i % 200).unwrap_or(0));
    let due = issue + chrono::Duration::days(14);
    let gross = 5_000 + i64::try_from(i % 997).unwrap_or(0) * 137;
    let mut out = Vec::new();
    let mut push = |ty: &str, p: serde_json::Value, on: chrono::NaiveDate| {
        *pos += 1;
        out.push(envelope(tenant, &case, *pos, ty, p, &on.to_string()));
    };
    push(
        "invoice.issued.v1",
        serde_json::json!({"invoice": {"number": format!("RE-{i:07}"), "issue_date": issue.to_string(),
            "due_date": due.to_string(), "currency": "EUR", "net": gross, "tax": 0, "gross": gross,
            "debtor": {"name": format!("Kunde {}", i % 5000), "customer_number": format!("K-{}", i % 5000), "kind": "business"}}}),
        issue,
    );
    if i.is_multiple_of(3) {
        for step in 1..=(1 + i % 3) {
            let on = due + chrono::Duration::days(i64::try_from(step * 10).unwrap_or(0));
            push(
                "dunning.step_reached.v1",
                serde_json::json!({"number": step, "title": format!("Stufe {step}")}),
                on,
            );
            push(
                "letter.dispatched.v1",
                serde_json::json!({"step": step, "channel": "post", "document_sha256": "00"}),
                on,
            );
        }
    }
    if i % 4 == 1 {
        let on = due + chrono::Duration::days(3);
        push(
            "payment.applied.v1",
            serde_json::json!({"payment_id": format!("e-{i}:{case}"), "entry_id": format!("e-{i}"), "amount": {"minor": gross, "currency": "EUR"},
                "booked_on": on.to_string(), "rule": "rf_reference", "open_after": {"minor": 0, "currency": "EUR"}}),
            on,
        );
        push(
            "invoice.settled.v1",
            serde_json::json!({"settled_on": on.to_string()}),
            on,
        );
    }
    out
}

pub async fn run(url: &str, backend: &str, cases: u64) -> Result<Row> {
    let pool = mahnwerk_auth::connect_any(url)
        .await
        .context("console bench database")?;
    projection::ensure_schema(&pool).await?;
    let tenant = "bench";
    let started = Instant::now();
    let mut pos = 0;
    let mut events = 0u64;
    let mut i = 0;
    while i < cases {
        let mut tx = pool.begin().await?;
        for j in i..(i + 1000).min(cases) {
            for e in case_events(tenant, j, &mut pos) {
                projection::Projection
                    .handle(&e, &mut tx)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                events += 1;
            }
        }
        tx.commit().await?;
        i += 1000;
    }
    let fill = started.elapsed().as_secs_f64();
    eprintln!("C1/{backend}: projected {events} events of {cases} cases in {fill:.1} s");

    let sessions = Sessions::default();
    let id = sessions.create("mwk_bench".into(), "bench".into(), tenant.into());
    let session = sessions.get(&id).context("session")?;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
    let runs = 20;
    let mut page_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let o = projection::overview(&pool, tenant, today).await?;
        bytes = pages::overview_markup(Lang::De, &session, &o)
            .into_string()
            .len();
        page_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut raw_ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT stage, COUNT(*) FROM console_cases WHERE tenant = $1 GROUP BY stage",
        )
        .bind(tenant.to_owned())
        .fetch_all(&pool)
        .await?;
        anyhow::ensure!(!rows.is_empty(), "raw query found no cases");
        raw_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (page, raw) = (median(&mut page_ms), median(&mut raw_ms));
    let mut row = Row::new(
        "C1",
        format!("console overview over {cases} cases ({backend}; {events} events projected)"),
        1000.0 / page,
        "pages/s",
    )
    .against(
        "raw GROUP BY stage queries/s",
        Some(1000.0 / raw),
        0.0,
        "page < 1 s",
    );
    row.target_met = Some(page < 1000.0);
    row.notes.push(format!(
        "C1/{backend}: overview page median {page:.1} ms ({bytes} bytes HTML, 5 queries + render) vs one raw GROUP BY {raw:.1} ms; projection filled at {:.0} events/s",
        f64::from(u32::try_from(events).unwrap_or(u32::MAX)) / fill
    ));
    pool.close().await;
    Ok(row)
}
