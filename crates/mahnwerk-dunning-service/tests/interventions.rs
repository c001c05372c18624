//! The operator's interventions over gRPC against the running service (real event log, relay,
//! JetStream, consumer and scheduler; simulated clock): a settlement (Vergleich) paid in time
//! settles the case and waives the rest, skipping a step puts the next one in its place, and
//! both are idempotent by request id and refuse bad input with the field named.

mod common;
mod served;
use common::{d, databases};
use served::*;

use mahnwerk_clock::Clock;
use mahnwerk_domain::Money;
use mahnwerk_dunning::dunning_case::{DunningEvent, Pause};
use mahnwerk_proto::v1 as pb;

fn eur(minor: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor,
        currency: "EUR".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_and_a_skipped_step_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let w = World::new(&url, "2026-03-02").await;
        let instance = w.start().await;
        let mut api = w.client(&instance).await;
        w.issue_for("S-1", d("2026-03-16"), "K-S1").await;
        w.issue_for("K-1", d("2026-03-16"), "K-K1").await;
        for n in ["S-1", "K-1"] {
            wait_for("the case to open", 20, || async {
                !w.dunning_events(n).await.is_empty()
            })
            .await;
        }

        // Skip K-1's reminder before it goes out: refused without a reason or with a control
        // character, named; then recorded once however often the request is retried.
        let skip = |reason: &str| {
            w.authed(pb::SkipStepRequest {
                request_id: "skip-1".into(),
                case_id: w.case("K-1").to_string(),
                reason: reason.into(),
                ..Default::default()
            })
        };
        for bad in ["", "known\0to ignore reminders", "line\r\nbreak"] {
            let err = api.skip_step(skip(bad)).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}: {bad:?}");
            assert!(err.message().contains("reason"), "{url}: {err:?}");
        }
        let first = api
            .skip_step(skip("known to ignore reminders"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.event_types, ["dunning.step_skipped.v1"], "{url}");
        let again = api
            .skip_step(skip("known to ignore reminders"))
            .await
            .unwrap()
            .into_inner();
        assert!(
            again.event_types.is_empty(),
            "{url}: a retry changes nothing"
        );
        assert_eq!(again.stream_version, first.stream_version);
        let err = api.skip_step(skip("another reason")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{url}");
        let actor = w
            .log
            .read_stream(&w.stream("K-1"), first.stream_version, 1)
            .await
            .unwrap()
            .remove(0)
            .metadata;
        assert!(actor.actor.starts_with("apikey:"), "{url}: {actor:?}");

        // Both reach the reminder's day (03-21 is a Saturday: Monday 03-23): S-1 gets its
        // reminder, K-1 the 1. Mahnung in the reminder's place.
        api.advance_clock(w.authed(pb::AdvanceClockRequest { days: 21 }))
            .await
            .unwrap();
        assert_eq!(w.steps("S-1").await, [(1, d("2026-03-23"))], "{url}");
        assert_eq!(w.steps("K-1").await, [(2, d("2026-03-23"))], "{url}");

        // K-1's 1. Mahnung came back: sent again today with no second fee, once per request.
        let repeat = || {
            w.authed(pb::RepeatStepRequest {
                request_id: "repeat-1".into(),
                case_id: w.case("K-1").to_string(),
                reason: "returned undeliverable".into(),
                ..Default::default()
            })
        };
        let before = w.steps("K-1").await;
        let today = w.clock.today();
        let r = api.repeat_step(repeat()).await.unwrap().into_inner();
        assert_eq!(r.event_types, ["dunning.step_reached.v1"], "{url}");
        let again = api.repeat_step(repeat()).await.unwrap().into_inner();
        assert!(again.event_types.is_empty(), "{url}");
        let after = w.steps("K-1").await;
        assert_eq!(after.len(), before.len() + 1, "{url}: {after:?}");
        let last = w
            .dunning_events("K-1")
            .await
            .into_iter()
            .filter_map(|e| match e {
                DunningEvent::StepReached(s) => Some(s),
                _ => None,
            })
            .next_back()
            .unwrap();
        let (number, _) = before.iter().rfind(|(n, _)| *n > 0).copied().unwrap();
        assert_eq!((last.number, last.date), (number, today), "{url}");
        assert_eq!(last.repeat.as_ref().map(|r| r.count), Some(1));
        assert_eq!(last.fee, Money::eur(0));

        // A settlement of 50.00 of the 119.00: refused when it waives nothing or is overdue.
        let settle = |id: &str, minor: i64, pay_by: &str| {
            w.authed(pb::AgreeSettlementRequest {
                request_id: id.into(),
                case_id: w.case("S-1").to_string(),
                amount: eur(minor),
                pay_by: pay_by.into(),
                ..Default::default()
            })
        };
        let err = api
            .agree_settlement(settle("v-0", 11_900, "2026-04-30"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}");
        assert!(err.message().contains("amount"), "{url}: {err:?}");
        // A refused request holds no claim on its key: retried it is refused the same way
        // (not "in progress"), corrected under the same key it runs.
        let err = api
            .agree_settlement(settle("v-0", 11_900, "2026-04-30"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{url}: {err:?}");
        let err = api
            .agree_settlement(settle("v-0", 5_000, "2026-03-01"))
            .await
            .unwrap_err();
        assert!(err.message().contains("pay_by"), "{url}: {err:?}");
        let agreed = api
            .agree_settlement(settle("v-1", 5_000, "2026-04-30"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(agreed.event_types, ["dunning.paused.v1"], "{url}");
        let ex = api
            .explain_case(w.authed(pb::ExplainCaseRequest {
                case_id: w.case("S-1").to_string(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ex.status, "paused", "{url}");

        // Twenty days on: no further letter to S-1 under the settlement.
        api.advance_clock(w.authed(pb::AdvanceClockRequest { days: 20 }))
            .await
            .unwrap();
        assert_eq!(w.steps("S-1").await.len(), 1, "{url}");
        // The 50.00 arrive: settled, 69.00 waived.
        w.pay("S-1", "pay-1", 5_000).await;
        w.settled_in("S-1").await;
        // The scheduler decides what the payment leads to (the clock's pass finishes today).
        api.advance_clock(w.authed(pb::AdvanceClockRequest { days: 1 }))
            .await
            .unwrap();
        let events = w.dunning_events("S-1").await;
        assert!(
            events.iter().any(|e| matches!(
                e,
                DunningEvent::Paused { pause: Pause::Settlement { amount, .. }, .. }
                    if *amount == Money::eur(5_000)
            )),
            "{url}"
        );
        let waived = events.iter().find_map(|e| match e {
            DunningEvent::Settled { waived, .. } => Some(*waived),
            _ => None,
        });
        let all: Vec<String> = w
            .log
            .read_stream(&w.stream("S-1"), 1, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.event_type, e.payload))
            .collect();
        assert_eq!(waived, Some(Money::eur(6_900)), "{url}: {all:#?}");
        api.advance_clock(w.authed(pb::AdvanceClockRequest { days: 30 }))
            .await
            .unwrap();
        assert_eq!(
            w.steps("S-1").await.len(),
            1,
            "{url}: nothing after settling"
        );

        instance.abort();
    }
}
