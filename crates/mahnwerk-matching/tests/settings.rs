//! Per-tenant matching settings over gRPC: the threshold a tenant sets is an event on its
//! settings stream and decides the next entries.

mod common;
use common::*;

fn pay(bank_ref: &str, minor: i64, name: &str, iban: &str) -> pb::Transaction {
    let mut t = tx(bank_ref, minor, "Vielen Dank");
    t.counterparty_name = name.into();
    t.counterparty_iban = iban.into();
    t
}

async fn record(env: &mut Env, t: pb::Transaction) -> pb::EntryResult {
    let res = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![t],
        }))
        .await
        .unwrap()
        .into_inner();
    res.results.into_iter().next().unwrap()
}

async fn put(
    env: &mut Env,
    threshold: u32,
    request_id: &str,
) -> Result<pb::MatchingSettings, tonic::Status> {
    env.client
        .put_matching_settings(env.req(pb::PutMatchingSettingsRequest {
            tenant: String::new(),
            threshold,
            request_id: request_id.into(),
        }))
        .await
        .map(|r| r.into_inner().settings.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_above_the_default_but_below_the_tenants_threshold_goes_to_review() {
    let mut env = Env::start().await;
    let get = env
        .client
        .get_matching_settings(env.req(pb::GetMatchingSettingsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!((get.threshold, get.is_default), (85, true));

    // Control, under the default threshold 85: no reference, the exact amount and the debtor's
    // name (confidence 90) are applied.
    let a = env
        .issue("RE-2026-0201", "Hoffmann Elektro GmbH", 4321, None)
        .await;
    let r = record(
        &mut env,
        pay(
            "SET-1",
            4321,
            "Hoffmann Elektro GmbH",
            "DE02120300000000202051",
        ),
    )
    .await;
    assert_eq!(
        (r.decision.as_str(), r.rule.as_str(), r.confidence),
        ("applied", "amount_debtor", 90),
        "{r:?}"
    );
    assert_eq!(r.allocations[0].case_id, a);

    // The tenant asks for 95; a retry with the same request id changes nothing, another value
    // under it is refused, and so is a threshold out of range, naming the field.
    let s = put(&mut env, 95, "thr-1").await.unwrap();
    assert_eq!((s.threshold, s.is_default), (95, false));
    assert_eq!(put(&mut env, 95, "thr-1").await.unwrap().threshold, 95);
    let err = put(&mut env, 96, "thr-1").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    let err = put(&mut env, 20, "thr-2").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().starts_with("threshold:"), "{err:?}");
    let stream = mahnwerk_matching::settings::stream(&env.tenant);
    let events = env.log.read_stream(&stream, 1, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.event_type.as_str(), e.payload["threshold"].as_u64()))
            .collect::<Vec<_>>(),
        [("matching.settings_changed.v1", Some(95))],
        "one event, for the first request only"
    );
    assert!(
        events[0].metadata.actor.starts_with("apikey:"),
        "{:?}",
        events[0].metadata
    );

    // The same kind of evidence (confidence 90) is now below the tenant's threshold: review.
    let b = env.issue("RE-2026-0202", "Krause Bau KG", 5678, None).await;
    let r = record(
        &mut env,
        pay("SET-2", 5678, "Krause Bau KG", "GB29NWBK60161331926819"),
    )
    .await;
    assert_eq!(
        (r.decision.as_str(), r.rule.as_str(), r.confidence),
        ("review", "amount_debtor", 90),
        "{r:?}"
    );
    assert!(r.reason.contains("threshold 95"), "{r:?}");
    assert!(r.allocations.is_empty(), "{r:?}");
    assert_eq!(env.case_types(&b).await, ["invoice.issued.v1"]);
    wait_for("the entry in the review queue", || async {
        env.client
            .clone()
            .list_unmatched(env.req(pb::ListUnmatchedRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .entries
            .iter()
            .any(|e| e.entry_id == r.entry_id && e.candidate_case_ids == [b.clone()])
    })
    .await;

    let get = env
        .client
        .get_matching_settings(env.req(pb::GetMatchingSettingsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!((get.threshold, get.is_default), (95, false));
    env.stop().await;
}
