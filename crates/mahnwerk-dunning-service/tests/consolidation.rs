//! Consolidated steps in the dunning service, against the real event log (SQLite, and
//! PostgreSQL when DATABASE_URL is set): two replicas running the same day's pass at the same
//! time append each case's step once, as one consolidation with one fee.

mod common;
use common::*;

use chrono::Duration;
use mahnwerk_clock::{Clock, SharedClock, SimulatedClock};
use mahnwerk_domain::{CaseId, InvoiceNumber, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning_service::Dunning;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deciding_the_same_day_append_one_consolidation_with_one_fee() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let tenant: TenantId = "acme".parse().unwrap();
        let clock = SimulatedClock::starting_on(d("2026-03-01"));
        let mut replicas = Vec::new();
        for _ in 0..2 {
            let log = EventLog::connect(&url).await.unwrap();
            let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
            mahnwerk_dunning_service::ensure_schema(&pool)
                .await
                .unwrap();
            let shared: SharedClock = Arc::new(clock.clone());
            replicas.push(Dunning::new(log, pool, shared, FederalState::NW));
        }
        let log = replicas[0].log().clone();
        let due = d("2026-03-16");
        let mut cases = Vec::new();
        for number in ["RE-K9-1", "RE-K9-2", "RE-K9-3"] {
            let case = CaseId::for_invoice(&tenant, &number.parse::<InvoiceNumber>().unwrap());
            log.append(AppendBatch {
                stream: case.stream(&tenant),
                expected: ExpectedVersion::NoStream,
                events: vec![issued(number, "K-9", due)],
            })
            .await
            .unwrap();
            // What the handler does on invoice.issued: open the case and record its next action.
            replicas[0]
                .reconcile(&tenant, case, None, false, clock.today())
                .await
                .unwrap();
            cases.push(case);
        }
        // Day by day, both replicas run the pass at the same time, until the 1. Mahnung.
        let mut today = clock.today();
        while steps(&log, &tenant, cases[0]).await.len() < 2 {
            assert!(today < due + Duration::days(40), "no 1. Mahnung by {today}");
            clock.advance(Duration::days(1));
            today = clock.today();
            let (a, b) = tokio::join!(replicas[0].run_due(today), replicas[1].run_due(today));
            a.unwrap();
            b.unwrap();
        }
        let mut sorted: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
        sorted.sort();
        for number in [1, 2] {
            let lines: Vec<StepReached> = {
                let mut v = Vec::new();
                for case in &cases {
                    let s = steps(&log, &tenant, *case).await;
                    assert_eq!(s.len(), 2, "{url}: each step once: {s:?}");
                    v.push(s[number - 1].clone());
                }
                v
            };
            let ids: Vec<&str> = lines
                .iter()
                .map(|l| l.consolidation.as_ref().expect("consolidated").id.as_str())
                .collect();
            assert!(
                ids.iter().all(|i| *i == ids[0]),
                "{url}: one consolidation: {ids:?}"
            );
            assert_eq!(lines[0].consolidation.as_ref().unwrap().cases, sorted);
            let fees: i64 = lines.iter().map(|l| l.fee.minor).sum();
            let expected = if number == 1 { 0 } else { 250 };
            assert_eq!(fees, expected, "{url}: one fee for step {number}");
            if number == 2 {
                assert_eq!(lines.iter().filter(|l| l.fee_waived.is_some()).count(), 2);
                let c = lines[0].consolidation.as_ref().unwrap();
                assert_eq!(c.fee.minor, 250);
                assert_eq!(
                    c.total.minor,
                    lines.iter().map(|l| l.balance.minor).sum::<i64>()
                );
            }
        }
    }
}
