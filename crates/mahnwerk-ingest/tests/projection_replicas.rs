//! The invoice projection with several followers (ingest replicas) on one real SQLite database
//! and a real SQLite event log: every event applied once, the checkpoint never moves backwards,
//! and an event that does not decode stops the projection instead of being skipped.
//!
//! The two-follower test fails on the old projection (both followers applied the same batches:
//! credits counted twice; the shared checkpoint could move backwards).

use chrono::NaiveDate;
use mahnwerk_domain::lifecycle::{InvoiceCredited, InvoiceIssued};
use mahnwerk_domain::{
    BankAccount, CaseEvent, CaseState, Currency, Debtor, DebtorKind, Invoice, Money, PostalAddress,
    StreamId,
};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_ingest::projection::{self, Applied, ProjectionError};
use std::time::Duration;

fn invoice(number: &str) -> Invoice {
    Invoice {
        number: number.parse().unwrap(),
        issue_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        due_date: NaiveDate::from_ymd_opt(2026, 3, 15).unwrap(),
        currency: Currency::EUR,
        net: 10000,
        tax: 1900,
        gross: 11900,
        debtor: Debtor {
            name: "Erika Mustermann".to_owned().into(),
            kind: DebtorKind::Consumer,
            address: PostalAddress {
                street: vec!["Heidestraße 17".into()],
                postal_code: "51147".into(),
                city: "Köln".into(),
                country: "DE".into(),
                region: None,
            }
            .into(),
            email: None,
            language: "de".into(),
            customer_number: Some("K-1".into()),
            vat_id: None,
        },
        payment_reference: None,
        creditor_account: BankAccount {
            iban: "DE89370400440532013000".parse().unwrap(),
            bic: None,
            holder: None,
        },
        default_notice: false,
        prepaid: 0,
        rounding: 0,
        cash_discounts: vec![],
        source: None,
        direct_debit: None,
        due_date_by_calendar: false,
    }
}

fn new_event(event: &CaseEvent) -> NewEvent {
    let payload = match event {
        CaseEvent::InvoiceIssued(e) => serde_json::to_value(e).unwrap(),
        CaseEvent::InvoiceCredited(e) => serde_json::to_value(e).unwrap(),
        other => panic!("not used here: {other:?}"),
    };
    raw_event(event.event_type(), payload)
}

fn raw_event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

const CREDITS: i64 = 3;

/// An invoice issued and credited `CREDITS` times by 100.
fn case_events(n: usize) -> Vec<NewEvent> {
    let mut events = vec![new_event(&CaseEvent::InvoiceIssued(InvoiceIssued {
        invoice: invoice(&format!("RE-{n}")),
    }))];
    for k in 1..=CREDITS {
        events.push(new_event(&CaseEvent::InvoiceCredited(InvoiceCredited {
            credit_note_number: format!("GS-{n}-{k}"),
            amount: Money::new(100, Currency::EUR),
            reason: "goodwill".into(),
            open_after: Money::new(11900 - 100 * k, Currency::EUR),
        })));
    }
    events
}

/// The projection databases of one test: SQLite always, plus a fresh PostgreSQL database when
/// DATABASE_URL is set.
async fn projection_urls(dir: &tempfile::TempDir) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("svc.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = format!("mwp_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        urls.push(format!("{base}/{name}"));
    }
    urls
}

async fn setup(dir: &tempfile::TempDir) -> (EventLog, sqlx::AnyPool) {
    let url = projection_urls(dir).await.remove(0);
    setup_at(dir, &url).await
}

async fn setup_at(dir: &tempfile::TempDir, url: &str) -> (EventLog, sqlx::AnyPool) {
    let log_url = format!(
        "sqlite:{}?mode=rwc",
        dir.path()
            .join(format!("log-{}.db", uuid::Uuid::new_v4().simple()))
            .display()
    );
    let log = EventLog::connect(&log_url).await.unwrap();
    let sqlite = url.starts_with("sqlite:");
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA busy_timeout = 30000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap();
    projection::ensure_schema(&pool).await.unwrap();
    (log, pool)
}

async fn checkpoint(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT position FROM ingest_checkpoint WHERE name = 'invoices'")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn two_followers_apply_every_event_once_and_never_move_the_checkpoint_back() {
    let dir = tempfile::tempdir().unwrap();
    for url in projection_urls(&dir).await {
        two_followers_on(&dir, &url).await;
    }
}

async fn two_followers_on(dir: &tempfile::TempDir, url: &str) {
    const CASES: usize = 200;
    let (log, pool) = setup_at(dir, url).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let followers: Vec<_> = (0..2)
        .map(|_| {
            let (log, pool, mut stopped) = (log.clone(), pool.clone(), stopped.clone());
            tokio::spawn(projection::follow(log, pool, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    // Watch the checkpoint while the log grows in many small commits.
    let watcher = {
        let (pool, mut stopped) = (pool.clone(), stopped.clone());
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                let now = checkpoint(&pool).await;
                assert!(now >= last, "checkpoint moved back from {last} to {now}");
                last = now;
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {},
                }
            }
        })
    };
    drop(stopped);
    // Round by round (the issue, then each credit), so credits arrive in later batches than the
    // issue; both followers wake on the same commits.
    let mut all: Vec<Vec<NewEvent>> = (0..CASES).map(case_events).collect();
    let mut head = 0;
    for round in 0..=usize::try_from(CREDITS).unwrap() {
        for chunk in 0..CASES / 10 {
            let batches = (0..10)
                .map(|i| {
                    let n = chunk * 10 + i;
                    AppendBatch {
                        stream: format!("acme/case/c{n}").parse::<StreamId>().unwrap(),
                        expected: ExpectedVersion::Exact(u64::try_from(round).unwrap()),
                        events: vec![all[n].remove(0)],
                    }
                })
                .collect();
            for r in log.append_many(batches).await.unwrap() {
                head = head.max(r.unwrap().last_position);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !projection::caught_up(&pool, head).await.unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "projection caught up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop.send_replace(true);
    for f in followers {
        f.await.unwrap();
    }
    watcher.await.unwrap();
    assert_eq!(checkpoint(&pool).await, head);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state_json, open_minor FROM ingest_invoices")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), CASES);
    for (json, open) in rows {
        let state: CaseState = serde_json::from_str(&json).unwrap();
        assert_eq!(
            state.credits.len(),
            usize::try_from(CREDITS).unwrap(),
            "each credit counted once"
        );
        assert_eq!(open, 11900 - 100 * CREDITS);
    }
}

#[tokio::test]
async fn a_batch_another_follower_applied_is_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let (log, pool) = setup(&dir).await;
    log.append(AppendBatch {
        stream: "acme/case/c1".parse().unwrap(),
        expected: ExpectedVersion::NoStream,
        events: case_events(1),
    })
    .await
    .unwrap();
    let events = log.read_all(0, 100).await.unwrap();
    // Both followers read after 0; the second to commit finds the checkpoint moved.
    assert_eq!(
        projection::apply(&pool, 0, &events).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        projection::apply(&pool, 0, &events).await.unwrap(),
        Applied::Lost
    );
    let (json,): (String,) = sqlx::query_as("SELECT state_json FROM ingest_invoices")
        .fetch_one(&pool)
        .await
        .unwrap();
    let state: CaseState = serde_json::from_str(&json).unwrap();
    assert_eq!(state.credits.len(), 3);
    assert_eq!(checkpoint(&pool).await, events.last().unwrap().position);
}

#[tokio::test]
async fn an_undecodable_event_stops_the_projection_instead_of_being_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (log, pool) = setup(&dir).await;
    log.append(AppendBatch {
        stream: "acme/case/c1".parse().unwrap(),
        expected: ExpectedVersion::NoStream,
        events: vec![
            new_event(&CaseEvent::InvoiceIssued(InvoiceIssued {
                invoice: invoice("RE-1"),
            })),
            raw_event(
                "invoice.credited.v1",
                serde_json::json!({ "amount": "lots" }),
            ),
            // Not an invoice fact: skipped by design, not an error.
            raw_event("dunning.step_reached.v1", serde_json::json!({})),
        ],
    })
    .await
    .unwrap();
    let events = log.read_all(0, 100).await.unwrap();
    let err = projection::apply(&pool, 0, &events).await.unwrap_err();
    match err {
        ProjectionError::Undecodable {
            position,
            event_type,
            ..
        } => {
            assert_eq!(position, events[1].position);
            assert_eq!(event_type, "invoice.credited.v1");
        }
        other => panic!("expected undecodable, got {other}"),
    }
    // Nothing of the batch was applied; the checkpoint stays before it.
    assert_eq!(checkpoint(&pool).await, 0);
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ingest_invoices")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // The event before it alone applies; the bad one keeps stopping the follower.
    assert_eq!(
        projection::apply(&pool, 0, &events[..1]).await.unwrap(),
        Applied::Done
    );
    assert!(
        projection::apply(&pool, events[0].position, &events[1..])
            .await
            .is_err()
    );
    assert_eq!(checkpoint(&pool).await, events[0].position);
}
