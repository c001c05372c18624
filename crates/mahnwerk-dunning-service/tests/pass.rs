//! The scheduler pass in batches, against the real event log (SQLite, and PostgreSQL when
//! DATABASE_URL is set): the steps of a batch of due cases go into one group commit; a debtor
//! whose cases fall into different batches of the index still gets one consolidated letter;
//! two replicas passing over the same cases at the same time append each step once.

mod common;
use common::*;

use chrono::Duration;
use futures::StreamExt;
use mahnwerk_clock::{Clock, SharedClock, SimulatedClock};
use mahnwerk_domain::{CaseId, InvoiceNumber, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning_service::Dunning;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion};
use std::sync::Arc;

/// Cases of the run: more than two batches of the pass (512).
const CASES: usize = 1100;
/// Of which this many belong to one debtor (customer number K-SHARED), the others each to their own.
const SHARED: usize = 6;

struct World {
    replicas: Vec<Dunning>,
    clock: SimulatedClock,
    tenant: TenantId,
    /// The cases of debtor K-SHARED first, then the others.
    cases: Vec<CaseId>,
}

/// `CASES` invoices due on 2026-03-16, issued and opened as the handler and a reconcile leave
/// them, with `n` service instances on `url`.
async fn world(url: &str, n: usize) -> World {
    let tenant: TenantId = "acme".parse().unwrap();
    let clock = SimulatedClock::starting_on(d("2026-03-01"));
    let mut replicas = Vec::new();
    for _ in 0..n {
        let log = EventLog::connect(url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(url).await.unwrap();
        mahnwerk_dunning_service::ensure_schema(&pool)
            .await
            .unwrap();
        let shared: SharedClock = Arc::new(clock.clone());
        replicas.push(Dunning::new(log, pool, shared, FederalState::NW));
    }
    let due = d("2026-03-16");
    let numbers: Vec<(String, String)> = (0..CASES)
        .map(|i| {
            let customer = if i < SHARED {
                "K-SHARED".to_owned()
            } else {
                format!("K-{i}")
            };
            (format!("RE-{i:05}"), customer)
        })
        .collect();
    let log = replicas[0].log().clone();
    let batches = numbers
        .iter()
        .map(|(number, customer)| {
            let case = CaseId::for_invoice(&tenant, &number.parse::<InvoiceNumber>().unwrap());
            AppendBatch {
                stream: case.stream(&tenant),
                expected: ExpectedVersion::NoStream,
                events: vec![issued(number, customer, due)],
            }
        })
        .collect();
    for r in log.append_many(batches).await.unwrap() {
        r.unwrap();
    }
    let cases: Vec<CaseId> = numbers
        .iter()
        .map(|(number, _)| CaseId::for_invoice(&tenant, &number.parse::<InvoiceNumber>().unwrap()))
        .collect();
    // What the handler does on invoice.issued: open the case and record its next action.
    let first = &replicas[0];
    let today = clock.today();
    let opened: Vec<_> = futures::stream::iter(cases.iter().copied())
        .map(|case| {
            let tenant = tenant.clone();
            async move { first.reconcile(&tenant, case, None, false, today).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in opened {
        r.unwrap();
    }
    World {
        replicas,
        clock,
        tenant,
        cases,
    }
}

/// Day by day until the reminders: each day's pass run by every replica at the same time.
/// Returns the log's group commits of the day the reminders were appended.
async fn run_until_reminders(w: &World) -> u64 {
    let log = w.replicas[0].log();
    loop {
        assert!(
            w.clock.today() < d("2026-04-20"),
            "no reminder by {}",
            w.clock.today()
        );
        w.clock.advance(Duration::days(1));
        let today = w.clock.today();
        let before = log.commit_stats().commits;
        let passes = futures::future::join_all(w.replicas.iter().map(|r| r.run_due(today))).await;
        let acted: u64 = passes.into_iter().map(Result::unwrap).sum();
        let commits = log.commit_stats().commits - before;
        if acted > 0 {
            assert_eq!(
                usize::try_from(acted).unwrap(),
                CASES,
                "every case reaches its reminder on the same day"
            );
            return commits;
        }
    }
}

/// Each case has exactly one step, the reminder; debtor K-SHARED's are one consolidation listing
/// all its cases, the others stand alone.
async fn assert_one_reminder_each(url: &str, w: &World) {
    let log = w.replicas[0].log();
    let mut shared: Vec<StepReached> = Vec::new();
    for (i, case) in w.cases.iter().enumerate() {
        let s = steps(log, &w.tenant, *case).await;
        assert_eq!(s.len(), 1, "{url}: case {i}: each step once: {s:?}");
        if i < SHARED {
            shared.push(s[0].clone());
        } else {
            assert!(s[0].consolidation.is_none(), "{url}: case {i} is alone");
        }
    }
    let mut members: Vec<String> = w.cases[..SHARED].iter().map(ToString::to_string).collect();
    members.sort();
    let first = shared[0].consolidation.as_ref().expect("consolidated");
    assert_eq!(
        first.cases, members,
        "{url}: the letter lists every case of the debtor"
    );
    for line in &shared {
        assert_eq!(
            line.consolidation.as_ref().map(|c| c.id.as_str()),
            Some(first.id.as_str()),
            "{url}: one consolidation"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_appends_each_batch_in_one_group_commit_and_consolidates_a_debtor_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let w = world(&url, 1).await;
        // The debtor's cases are spread over the index (ordered by case id on one day): they
        // fall into different batches of the pass.
        let mut order: Vec<String> = w.cases.iter().map(ToString::to_string).collect();
        order.sort();
        let pages: std::collections::HashSet<usize> = w.cases[..SHARED]
            .iter()
            .map(|c| order.iter().position(|o| *o == c.to_string()).unwrap() / 512)
            .collect();
        assert!(pages.len() > 1, "precondition: the debtor spans batches");
        let commits = run_until_reminders(&w).await;
        // One group commit per batch of the index (three for 1,100 cases), not one per case.
        assert!(
            commits <= u64::try_from(CASES.div_ceil(512)).unwrap(),
            "{url}: {commits} group commits for {CASES} steps"
        );
        assert_one_reminder_each(&url, &w).await;
        // Nothing is left for the day.
        assert_eq!(w.replicas[0].run_due(w.clock.today()).await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_passing_over_the_same_batches_append_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let w = world(&url, 2).await;
        run_until_reminders(&w).await;
        assert_one_reminder_each(&url, &w).await;
        for r in &w.replicas {
            assert_eq!(r.run_due(w.clock.today()).await.unwrap(), 0);
        }
    }
}

/// Two replicas record the next actions of overlapping cases at the same time, each in its own
/// order (what one decided, then what it found the other had written): the rows are written in
/// one order, so neither deadlocks the other (on PostgreSQL a deadlock failed the pass of one
/// replica now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_recording_the_same_cases_in_opposite_orders_never_deadlock() {
    use mahnwerk_dunning_service::projection::{CaseRow, record_many};
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
        mahnwerk_dunning_service::ensure_schema(&pool)
            .await
            .unwrap();
        let ids: Vec<String> = (0..600).map(|i| format!("case-{i:04}")).collect();
        for round in 0..12u64 {
            let rows = |reversed: bool| {
                let mut rows: Vec<CaseRow<'_>> = ids
                    .iter()
                    .map(|id| CaseRow {
                        tenant: "acme",
                        case_id: id,
                        stream_version: round,
                        state: None,
                        status: "active".into(),
                        due_on: Some(d("2026-04-01")),
                    })
                    .collect();
                if reversed {
                    rows.reverse();
                }
                rows
            };
            async fn write(
                pool: &sqlx::AnyPool,
                rows: Vec<CaseRow<'_>>,
            ) -> Result<(), sqlx::Error> {
                let mut tx = pool.begin().await?;
                record_many(&mut tx, &rows).await?;
                tx.commit().await
            }
            let (a, b) = tokio::join!(write(&pool, rows(false)), write(&pool, rows(true)));
            a.unwrap_or_else(|e| panic!("{url}: round {round}: {e}"));
            b.unwrap_or_else(|e| panic!("{url}: round {round}: {e}"));
        }
    }
}
