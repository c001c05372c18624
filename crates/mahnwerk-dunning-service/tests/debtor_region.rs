//! The debtor's federal state (`debtor.address.region`, ISO 3166-2) through the service: the
//! invoice in the real log, the case opened and stepped by the service's scheduler path on a
//! simulated clock (tenant in NW), the holidays of the debtor's state moving its dates (§ 193
//! BGB at the place of performance). SQLite, plus PostgreSQL when DATABASE_URL is set.
//!
//! Regression: `CaseFacts.state` was never filled, so every case used the tenant's holidays.

mod common;
use common::*;

use mahnwerk_dunning::dunning_case::DunningEvent;
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::Metadata;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bavarian_debtors_dates_move_off_epiphany_a_hamburg_debtors_do_not() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let w = World::new(&url).await;
        // The tenant (in NW) agrees payment dates by the calendar (§ 286 Abs. 2 Nr. 1).
        let mut policy = Policy::default_business(FederalState::NW);
        policy.calendar_due_date = true;
        mahnwerk_dunning_service::policies::put(
            &w.log,
            &w.tenant,
            policy,
            &Metadata {
                actor: "test".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Due on Wednesday 2027-01-06, Heilige Drei Könige in BY (and BW, ST), a working day in
        // HH and in the tenant's NW.
        w.issue("RE-BY", "2027-01-06", Some("DE-BY")).await;
        w.issue("RE-HH", "2027-01-06", Some("DE-HH")).await;
        w.issue("RE-NONE", "2027-01-06", None).await;
        // Due Friday 2026-12-25: reminder 5 days later, Wednesday 12-30, with 7 days to pay:
        // the printed deadline falls on 2027-01-06 as well.
        w.issue("RE-BY-2", "2026-12-25", Some("DE-BY")).await;
        w.issue("RE-HH-2", "2026-12-25", Some("DE-HH")).await;

        let opened = |events: &[DunningEvent]| match events.first() {
            Some(DunningEvent::Opened { facts, .. }) => facts.state,
            other => panic!("first event {other:?}"),
        };
        assert_eq!(opened(&w.events("RE-BY").await), Some(FederalState::BY));
        assert_eq!(opened(&w.events("RE-HH").await), Some(FederalState::HH));
        assert_eq!(opened(&w.events("RE-NONE").await), None);

        // The calendar due date: moved to Thursday in Bavaria only.
        let trigger = |number: &'static str| {
            let w = &w;
            async move { w.default_trigger(number).await.unwrap() }
        };
        assert_eq!(trigger("RE-BY").await, d("2027-01-07"), "{url}");
        assert_eq!(trigger("RE-HH").await, d("2027-01-06"), "{url}");
        assert_eq!(
            trigger("RE-NONE").await,
            d("2027-01-06"),
            "no region: the tenant's NW"
        );

        // The scheduler's passes up to the reminders: their printed deadlines.
        w.dunning.advance_clock(30).await.unwrap().unwrap();
        let reminder = |events: Vec<DunningEvent>| {
            events
                .into_iter()
                .find_map(|e| match e {
                    DunningEvent::StepReached(s) if s.number == 1 => Some(*s),
                    _ => None,
                })
                .expect("a reminder")
        };
        let by = reminder(w.events("RE-BY-2").await);
        assert_eq!(
            (by.date, by.deadline.unmoved, by.deadline.deadline),
            (d("2026-12-30"), d("2027-01-06"), d("2027-01-07")),
            "{url}"
        );
        assert!(
            by.deadline.reasons.iter().any(|r| r.contains("BY")),
            "{:?}",
            by.deadline.reasons
        );
        let hh = reminder(w.events("RE-HH-2").await);
        assert_eq!(
            (hh.date, hh.deadline.deadline),
            (d("2026-12-30"), d("2027-01-06")),
            "{url}"
        );
    }
}
