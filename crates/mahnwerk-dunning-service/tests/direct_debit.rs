//! Invoices the creditor collects by SEPA direct debit, through the service on a simulated
//! clock over a real log: no step while the debit stands, the step after it came back (a
//! reversed payment, as the matching service writes it for a returned debit); and an invoice
//! whose due date was agreed by the calendar is in default from that date without a reminder.
//! SQLite, plus PostgreSQL when DATABASE_URL is set.
//!
//! Regression: `Invoice` had no direct debit and `CaseFacts.calendar_due_date` was always
//! false, so a direct-debit invoice got a Zahlungserinnerung 5 days after its due date although
//! the creditor had collected it, and only the policy-wide flag said "calendar".

mod common;
use common::*;

use mahnwerk_clock::Clock;
use mahnwerk_domain::DirectDebit;
use mahnwerk_dunning::dunning_case::{DunningEvent, Pause, PauseKind, ResumeReason};

fn steps(events: &[DunningEvent]) -> Vec<(u32, chrono::NaiveDate)> {
    events
        .iter()
        .filter_map(|e| match e {
            DunningEvent::StepReached(s) => Some((s.number, s.date)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_debit_invoice_is_dunned_only_after_the_debit_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let w = World::new(&url).await;
        // Due Wednesday 2026-12-09, collected by direct debit; a control invoice alike without.
        let mut debit = invoice("RE-DD", "2026-12-09", Some("DE-NW"));
        debit.direct_debit = Some(DirectDebit {
            mandate_id: Some("MANDAT-0042".into()),
            creditor_id: Some("DE98ZZZ09999999999".into()),
        });
        w.issue_invoice(debit).await;
        assert_eq!(
            w.reconcile("RE-DD").await,
            ["dunning.case_opened.v1", "dunning.paused.v1"],
            "{url}"
        );
        w.issue("RE-TRANSFER", "2026-12-09", Some("DE-NW")).await;
        let opened = w.events("RE-DD").await;
        match &opened[..] {
            [
                DunningEvent::Opened { facts, .. },
                DunningEvent::Paused { pause, .. },
            ] => {
                assert!(facts.direct_debit);
                assert_eq!(pause, &Pause::DirectDebit);
            }
            other => panic!("{other:?}"),
        }

        // 20 days on: the control invoice had its reminder (due + 5 = 12-14), the debit none.
        w.dunning.advance_clock(20).await.unwrap().unwrap();
        assert_eq!(
            steps(&w.events("RE-TRANSFER").await).first().map(|s| s.0),
            Some(1),
            "{url}"
        );
        assert_eq!(steps(&w.events("RE-DD").await), [], "{url}");
        let state = w.state("RE-DD").await;
        assert!(state.pause(PauseKind::DirectDebit).is_some());
        assert_eq!(
            mahnwerk_dunning::dunning_case::next_action_at(&state),
            None,
            "only the debit's return can move it"
        );

        // The bank collected it on the due date and returned it on 12-21 (MD06), as the
        // matching service writes it: the payment, then its reversal with the reason.
        let today = w.clock.today();
        w.append(
            "RE-DD",
            "payment.applied.v1",
            serde_json::json!({"payment_id": "e1:dd", "entry_id": "e1", "amount": {"minor": 11900, "currency": "EUR"},
                "booked_on": "2026-12-09", "rule": "rf_reference", "open_after": {"minor": 0, "currency": "EUR"}}),
        )
        .await;
        w.append(
            "RE-DD",
            "invoice.settled.v1",
            serde_json::json!({"settled_on": "2026-12-09", "by": "e1:dd"}),
        )
        .await;
        w.append(
            "RE-DD",
            "payment.reversed.v1",
            serde_json::json!({"payment_id": "e1:dd", "amount": {"minor": 11900, "currency": "EUR"},
                "reversed_on": today.to_string(), "reason": "MD06", "open_after": {"minor": 11900, "currency": "EUR"}}),
        )
        .await;
        let appended = w.reconcile("RE-DD").await;
        assert!(
            appended.contains(&"dunning.resumed.v1".to_owned()),
            "{appended:?} ({url})"
        );
        let resumed = w.events("RE-DD").await.into_iter().find_map(|e| match e {
            DunningEvent::Resumed { pause, why, .. } => Some((pause, why)),
            _ => None,
        });
        assert_eq!(
            resumed,
            Some((
                PauseKind::DirectDebit,
                ResumeReason::DirectDebitReturned {
                    payment_id: "e1:dd".into()
                }
            ))
        );

        // From the return on it is dunned like any other: its reminder comes 5 days later
        // (moved to a business day), not on the day of the return.
        w.dunning.advance_clock(10).await.unwrap().unwrap();
        let dd = steps(&w.events("RE-DD").await);
        assert_eq!(dd.len(), 1, "{dd:?} ({url})");
        assert!(dd[0].1 >= today + chrono::Duration::days(5), "{dd:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_date_agreed_by_the_calendar_is_a_fact_of_the_invoice() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        // The tenant's policy does not say "calendar" (the default): the invoice does.
        let w = World::new(&url).await;
        let mut calendar = invoice("RE-CAL", "2026-12-09", Some("DE-NW"));
        calendar.due_date_by_calendar = true;
        w.issue_invoice(calendar).await;
        assert_eq!(w.reconcile("RE-CAL").await, ["dunning.case_opened.v1"]);
        w.issue("RE-PLAIN", "2026-12-09", Some("DE-NW")).await;
        let trigger = |number: &'static str| {
            let w = &w;
            async move { w.default_trigger(number).await }
        };
        // By the calendar: in default from the due date on (§ 286 Abs. 2 Nr. 1); otherwise not
        // before a reminder or the 30 days of § 286 Abs. 3.
        assert_eq!(trigger("RE-CAL").await, Some(d("2026-12-09")), "{url}");
        assert_ne!(trigger("RE-PLAIN").await, Some(d("2026-12-09")), "{url}");
    }
}
