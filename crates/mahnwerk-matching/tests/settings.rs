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
    put_with(env, threshold, None, request_id).await
}

async fn put_with(
    env: &mut Env,
    threshold: u32,
    accept_unbalanced: Option<bool>,
    request_id: &str,
) -> Result<pb::MatchingSettings, tonic::Status> {
    env.client
        .put_matching_settings(env.req(pb::PutMatchingSettingsRequest {
            tenant: String::new(),
            threshold,
            request_id: request_id.into(),
            accept_unbalanced,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_accepts_unbalanced_statements_gets_them_imported_with_a_warning_event() {
    let mut env = Env::start().await;
    let a = env.issue("RE-2026-0211", "Weiß KG", 10000, None).await;
    // Opening 0 + 100.00 is not the closing 99.99: rejected by default, nothing recorded.
    let wrong = camt("053", &[("UNB-1", 10000, "RE-2026-0211")], 0, 9999);
    let head = env.log.head_position().await.unwrap();
    let err = import(&mut env, &wrong).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert_eq!(env.log.head_position().await.unwrap(), head);

    // The tenant accepts such statements (the threshold stays as it is); a retry of the same
    // request changes nothing, the same request id asking for the opposite is refused.
    let s = put_with(&mut env, 85, Some(true), "unb-1").await.unwrap();
    assert!(s.accept_unbalanced, "{s:?}");
    assert!(put_with(&mut env, 85, Some(true), "unb-1").await.is_ok());
    let err = put_with(&mut env, 85, Some(false), "unb-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    // Setting only the threshold keeps the acceptance.
    assert!(put(&mut env, 90, "unb-2").await.unwrap().accept_unbalanced);

    let res = import(&mut env, &wrong).await.unwrap();
    assert_eq!((res.entries, res.applied), (1, 1), "{res:?}");
    assert!(
        res.warnings
            .iter()
            .any(|w| w.contains("closing balance is 9999") && w.contains("difference -1")),
        "{:?}",
        res.warnings
    );
    assert!(
        env.case_types(&a)
            .await
            .contains(&"payment.applied.v1".to_owned())
    );
    // One warning event on its statement's check stream, with the numbers; a second import of
    // the same statement records neither a warning nor a payment again.
    let log = env.log.clone();
    let warnings = || async {
        let mut found = Vec::new();
        for e in log.read_all(0, 10_000).await.unwrap() {
            if e.event_type == "matching.statement_unbalanced.v1" {
                found.push(e);
            }
        }
        found
    };
    let first = warnings().await;
    assert_eq!(first.len(), 1);
    let w = &first[0];
    assert!(
        w.stream
            .as_str()
            .starts_with(&format!("{}/statement_check/", env.tenant.as_str())),
        "{}",
        w.stream.as_str()
    );
    assert_eq!(
        (
            w.payload["statement_id"].as_str(),
            w.payload["opening_minor"].as_i64(),
            w.payload["credits_minor"].as_i64(),
            w.payload["closing_minor"].as_i64(),
            w.payload["difference_minor"].as_i64(),
            w.payload["currency"].as_str(),
        ),
        (
            Some("S-053"),
            Some(0),
            Some(10000),
            Some(9999),
            Some(-1),
            Some("EUR")
        )
    );
    let res = import(&mut env, &wrong).await.unwrap();
    assert_eq!((res.duplicates, res.applied), (1, 0), "{res:?}");
    assert_eq!(warnings().await.len(), 1);

    // Switched off again: rejected again.
    put_with(&mut env, 90, Some(false), "unb-3").await.unwrap();
    let other = camt("053", &[("UNB-2", 500, "Danke")], 0, 1);
    let err = import(&mut env, &other).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    env.stop().await;
}
