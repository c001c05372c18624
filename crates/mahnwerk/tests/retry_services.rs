//! Must show 1 of issue 10 for the services beyond ingest (ingest's lifecycle RPCs are in
//! api.rs): every mutating RPC of dunning, matching and collection, in `mahnwerk serve` against
//! the real components, is safe to retry (the same key and request: the same answer, nothing
//! appended twice) and its key reused for another request is ALREADY_EXISTS. Letters' Resend is
//! in mahnwerk-letters-service/tests/grpc.rs; versioned puts (policies, partners, letterheads,
//! templates) are idempotent by content where they are tested.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_eventlog::EventLog;
use mahnwerk_proto::v1 as pb;
use pb::collection_service_client::CollectionServiceClient;
use pb::dunning_service_client::DunningServiceClient;
use pb::payment_service_client::PaymentServiceClient;
use std::fmt::Debug;
use std::future::Future;
use tonic::{Code, Response, Status};

type Answer<T> = Result<Response<T>, Status>;

/// `call(same)` twice, then `call(other)`: both answers, after checking that the retry
/// appended nothing to `stream` and that the other request is ALREADY_EXISTS.
async fn retried<Req, T, F, Fut>(
    what: &str,
    log: &EventLog,
    stream: &mahnwerk_domain::StreamId,
    same: Req,
    other: Req,
    mut call: F,
) -> (T, T)
where
    Req: Clone,
    T: Debug,
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Answer<T>>,
{
    let first = call(same.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: first call: {e:?}"))
        .into_inner();
    let version = log.stream_version(stream).await.unwrap();
    let again = call(same)
        .await
        .unwrap_or_else(|e| panic!("{what}: retry: {e:?}"))
        .into_inner();
    let after = log.stream_version(stream).await.unwrap();
    if after != version {
        // Other services react to the first call through the bus (dunning records a reversed
        // payment, for one) and write as `service:…`; what the retry itself wrote would carry
        // the caller's actor.
        let from = version.map_or(1, |v| v + 1);
        let added: Vec<(String, String)> = log
            .read_stream(stream, from, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event_type, e.metadata.actor))
            .collect();
        assert!(
            added.iter().all(|(_, actor)| actor.starts_with("service:")),
            "{what}: the retry appended to {stream}: {added:?}"
        );
    }
    let err = call(other).await.expect_err(what);
    assert_eq!(err.code(), Code::AlreadyExists, "{what}: {err:?}");
    (first, again)
}

/// One CollectionService call on a case note, boxed so a table of calls can share a type.
type CollectionCall =
    fn(
        CollectionServiceClient<tonic::transport::Channel>,
        tonic::Request<pb::CaseNoteRequest>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Answer<pb::CaseActionResponse>> + Send>>;

fn eur(minor: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor,
        currency: "EUR".into(),
    })
}

/// An invoice that stays out of dunning for the whole test (due at the end of the year).
fn later(number: &str) -> pb::Invoice {
    pb::Invoice {
        due_date: "2026-12-31".into(),
        ..invoice(number)
    }
}

struct World {
    server: Running,
    log: EventLog,
    key: String,
    channel: tonic::transport::Channel,
    dunning: DunningServiceClient<tonic::transport::Channel>,
    payments: PaymentServiceClient<tonic::transport::Channel>,
    collection: CollectionServiceClient<tonic::transport::Channel>,
}

impl World {
    async fn start(url: &str, docs: std::path::PathBuf) -> World {
        let server = start_with(url, |a| {
            a.services = vec![
                Service::Ingest,
                Service::Relay,
                Service::Dunning,
                Service::Matching,
                Service::Collection,
            ];
            a.simulated_clock = Some("2026-03-01".parse().unwrap());
            a.collection_documents_dir = Some(docs);
        })
        .await;
        let key = tenant_key(url, "acme").await;
        let log = EventLog::connect(url).await.unwrap();
        let ch = server.channel().await;
        World {
            server,
            log,
            key,
            channel: ch.clone(),
            dunning: DunningServiceClient::new(ch.clone()),
            payments: PaymentServiceClient::new(ch.clone()),
            collection: CollectionServiceClient::new(ch),
        }
    }

    fn req<T>(&self, body: T) -> tonic::Request<T> {
        authed(&self.key, body)
    }

    /// Record an invoice and wait until dunning knows its case.
    async fn case(&mut self, inv: pb::Invoice) -> String {
        let case = create_case_of(&self.channel, &self.key, inv).await;
        wait_dunning_opened(&self.channel, &self.key, &case, 30).await;
        case
    }

    fn stream(&self, case: &str) -> mahnwerk_domain::StreamId {
        format!("acme/case/{case}").parse().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_rpc_of_dunning_matching_and_collection_is_safe_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let docs = dir.path().join(unique("docs"));
        let mut w = World::start(&url, docs).await;
        collection_actions(&mut w).await;
        dunning_interventions(&mut w).await;
        matching_review_actions(&mut w).await;
        let report = w.log.verify().await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        w.server.stop().await;
    }
}

/// A partner that wants approval; the case escalates, waits, is held, approved, its costs
/// waived, recalled and written off: each action retried and its id reused.
async fn collection_actions(w: &mut World) {
    let partner = pb::Partner {
        partner_id: "inkasso-sued".into(),
        name: "Inkasso Süd GmbH".into(),
        subject_token: "sued".into(),
        min_amount_minor: 1000,
        debtor_kinds: vec![pb::DebtorKind::Consumer as i32],
        countries: vec!["DE".into()],
        mode: pb::HandoverMode::Approval as i32,
        waive_costs_if_principal_paid: false,
        active: true,
    };
    w.collection
        .put_partner(w.req(pb::PutPartnerRequest {
            tenant: String::new(),
            partner: Some(partner),
        }))
        .await
        .unwrap();
    let case = w.case(invoice("RE-COLL")).await;
    let stream = w.stream(&case);
    w.dunning
        .advance_clock(w.req(pb::AdvanceClockRequest { days: 90 }))
        .await
        .unwrap();
    let note = |rid: &str, reason: &str| pb::CaseNoteRequest {
        tenant: String::new(),
        request_id: rid.into(),
        case_id: case.clone(),
        reason: reason.into(),
    };
    // The escalation reaches collection through the bus: hold once it waits for approval (a
    // refused hold keeps nothing of its request id).
    let (c, key) = (w.collection.clone(), w.key.clone());
    wait_for("the hand-over to wait for approval", 60, || {
        let mut c = c.clone();
        let req = authed(&key, note("hold-1", "talk to the debtor first"));
        async move { c.hold_handover(req).await.is_ok() }
    })
    .await;
    let c = w.collection.clone();
    let key = w.key.clone();
    let col = move |f: CollectionCall| {
        let (c, key) = (c.clone(), key.clone());
        move |r: pb::CaseNoteRequest| f(c.clone(), authed(&key, r))
    };
    let hold = col(|mut c, r| Box::pin(async move { c.hold_handover(r).await }));
    let version = w.log.stream_version(&stream).await.unwrap();
    let again = hold(note("hold-1", "talk to the debtor first"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.phase.as_str(), again.event_types.len()), ("held", 0));
    assert_eq!(w.log.stream_version(&stream).await.unwrap(), version);
    let err = hold(note("hold-1", "another reason")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    let approve = |rid: &str, partner: &str| pb::ApproveHandoverRequest {
        tenant: String::new(),
        request_id: rid.into(),
        case_id: case.clone(),
        partner_id: partner.into(),
    };
    let (a, b) = retried(
        "ApproveHandover",
        &w.log,
        &stream,
        approve("approve-1", ""),
        approve("approve-1", "someone-else"),
        |r| {
            let mut c = w.collection.clone();
            let req = w.req(r);
            async move { c.approve_handover(req).await }
        },
    )
    .await;
    assert_eq!(a.event_types, ["case.handed_over.v1"]);
    assert_eq!((b.stream_version, b.phase), (a.stream_version, a.phase));

    let waive = col(|mut c, r| Box::pin(async move { c.waive_costs(r).await }));
    let (a, b) = retried(
        "WaiveCosts",
        &w.log,
        &stream,
        note("waive-1", "goodwill"),
        note("waive-1", "other"),
        waive,
    )
    .await;
    assert_eq!(a.event_types, ["collection.costs_waived.v1"]);
    assert_eq!(b.stream_version, a.stream_version);

    let recall = col(|mut c, r| Box::pin(async move { c.recall(r).await }));
    let (a, b) = retried(
        "Recall",
        &w.log,
        &stream,
        note("recall-1", "settled directly"),
        note("recall-1", "other"),
        recall,
    )
    .await;
    assert_eq!(a.event_types, ["collection.recalled.v1"]);
    assert_eq!(b.stream_version, a.stream_version);

    let write_off = col(|mut c, r| Box::pin(async move { c.write_off(r).await }));
    let (a, b) = retried(
        "CollectionService.WriteOff",
        &w.log,
        &stream,
        note("off-1", "insolvent"),
        note("off-1", "other"),
        write_off,
    )
    .await;
    assert!(
        a.event_types.contains(&"case.closed.v1".to_owned()),
        "{a:?}"
    );
    assert_eq!((b.stream_version, b.phase), (a.stream_version, a.phase));
}

/// Every dunning intervention on cases not yet due (so no step interferes).
async fn dunning_interventions(w: &mut World) {
    let (a, b) = (
        w.case(later("RE-PAUSE")).await,
        w.case(later("RE-OTHER")).await,
    );
    let stream = w.stream(&a);
    macro_rules! dunning {
        ($rpc:ident) => {
            |r| {
                let mut d = w.dunning.clone();
                let req = w.req(r);
                async move { d.$rpc(req).await }
            }
        };
    }
    let pause = |reason: &str| pb::PauseCaseRequest {
        request_id: "pause-1".into(),
        case_id: a.clone(),
        reason: reason.into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "PauseCase",
        &w.log,
        &stream,
        pause("checking"),
        pause("other"),
        dunning!(pause_case),
    )
    .await;
    assert_eq!(x.event_types, ["dunning.paused.v1"]);
    assert_eq!(y.stream_version, x.stream_version);

    let resume = |case: &str| pb::ResumeCaseRequest {
        request_id: "resume-1".into(),
        case_id: case.into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "ResumeCase",
        &w.log,
        &stream,
        resume(&a),
        resume(&b),
        dunning!(resume_case),
    )
    .await;
    assert_eq!(x.event_types, ["dunning.resumed.v1"]);
    assert_eq!(y.stream_version, x.stream_version);

    let promise = |minor: i64| pb::RecordPromiseToPayRequest {
        request_id: "promise-1".into(),
        case_id: a.clone(),
        until: "2026-07-15".into(),
        amount: eur(minor),
        ..Default::default()
    };
    let (x, y) = retried(
        "RecordPromiseToPay",
        &w.log,
        &stream,
        promise(11_900),
        promise(5_000),
        dunning!(record_promise_to_pay),
    )
    .await;
    assert!(!x.event_types.is_empty(), "{x:?}");
    assert_eq!(y.stream_version, x.stream_version);

    let plan = |second: &str| pb::AgreePaymentPlanRequest {
        request_id: "plan-1".into(),
        case_id: b.clone(),
        instalments: vec![
            pb::Instalment {
                date: "2027-01-15".into(),
                amount: eur(5_000),
            },
            pb::Instalment {
                date: second.into(),
                amount: eur(6_900),
            },
        ],
        ..Default::default()
    };
    let (x, y) = retried(
        "AgreePaymentPlan",
        &w.log,
        &w.stream(&b),
        plan("2027-02-15"),
        plan("2027-03-15"),
        dunning!(agree_payment_plan),
    )
    .await;
    assert!(!x.event_types.is_empty(), "{x:?}");
    assert_eq!(y.stream_version, x.stream_version);

    let debtor_pause = |reason: &str| pb::PauseDebtorRequest {
        request_id: "debtor-pause-1".into(),
        debtor_key: "K-1".into(),
        reason: reason.into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "PauseDebtor",
        &w.log,
        &stream,
        debtor_pause("insolvency check"),
        debtor_pause("other"),
        dunning!(pause_debtor),
    )
    .await;
    assert!(x.cases_changed >= 1, "{x:?}");
    assert_eq!(y.cases, x.cases);
    let debtor_resume = |debtor: &str| pb::ResumeDebtorRequest {
        request_id: "debtor-resume-1".into(),
        debtor_key: debtor.into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "ResumeDebtor",
        &w.log,
        &stream,
        debtor_resume("K-1"),
        debtor_resume("K-2"),
        dunning!(resume_debtor),
    )
    .await;
    assert!(x.cases_changed >= 1, "{x:?}");
    assert_eq!(y.cases, x.cases);

    let off = |reason: &str| pb::WriteOffRequest {
        request_id: "dunning-off-1".into(),
        case_id: a.clone(),
        reason: reason.into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "DunningService.WriteOff",
        &w.log,
        &stream,
        off("insolvent"),
        off("other"),
        dunning!(write_off),
    )
    .await;
    assert_eq!(x.event_types, ["dunning.written_off.v1"]);
    assert_eq!(y.stream_version, x.stream_version);
}

/// Bank entries (natural key) and the review actions (request_id). Regressions: a retried
/// UndoMatch answered with no payments, a delayed MatchManually retry after the undo applied
/// the entry a second time, a second MarkNotOurs with another note was a silent OK.
async fn matching_review_actions(w: &mut World) {
    let case = w.case(later("RE-MATCH")).await;
    let stream = w.stream(&case);
    let tx = |text: &str, bank_ref: &str| pb::Transaction {
        bank_reference: bank_ref.into(),
        account: "DE89370400440532013000".into(),
        amount: eur(5_000),
        booking_date: "2026-05-29".into(),
        counterparty_name: "Hans Schmidt".into(),
        counterparty_iban: "DE02120300000000202051".into(),
        remittance: text.into(),
        ..Default::default()
    };
    let record = |t: pb::Transaction| pb::RecordTransactionsRequest {
        tenant: String::new(),
        transactions: vec![t],
    };
    let mut p = w.payments.clone();
    let first = p
        .record_transactions(w.req(record(tx("Oktober", "PSP-1"))))
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0);
    assert_eq!(first.decision, "review", "{first:?}");
    let again = p
        .record_transactions(w.req(record(tx("Oktober", "PSP-1"))))
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0);
    assert!(again.duplicate, "{again:?}");
    assert_eq!(
        (&again.entry_id, &again.decision),
        (&first.entry_id, &first.decision)
    );
    let err = p
        .record_transactions(w.req(record(tx("November", "PSP-1"))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let entry = first.entry_id;

    macro_rules! payments {
        ($rpc:ident) => {
            |r| {
                let mut p = w.payments.clone();
                let req = w.req(r);
                async move { p.$rpc(req).await }
            }
        };
    }
    let manual = |note: &str| pb::MatchManuallyRequest {
        entry_id: entry.clone(),
        allocations: vec![pb::ManualAllocation {
            case_id: case.clone(),
            amount_minor: 5_000,
        }],
        note: note.into(),
        request_id: "match-1".into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "MatchManually",
        &w.log,
        &stream,
        manual("phoned"),
        manual("other"),
        payments!(match_manually),
    )
    .await;
    assert_eq!(x, y);
    assert_eq!(x.result.unwrap().rule, "manual");
    let applied = w.log.stream_version(&stream).await.unwrap();

    let undo = |reason: &str| pb::UndoMatchRequest {
        entry_id: entry.clone(),
        reason: reason.into(),
        request_id: "undo-1".into(),
        ..Default::default()
    };
    let (x, y) = retried(
        "UndoMatch",
        &w.log,
        &stream,
        undo("wrong customer"),
        undo("other"),
        payments!(undo_match),
    )
    .await;
    assert_eq!(x.payment_ids.len(), 1, "{x:?}");
    assert_eq!(x, y, "a retried undo answers with the payments it undid");
    let undone = w.log.stream_version(&stream).await.unwrap();
    assert!(undone > applied);
    // The match's first request arrives again, late: it is not applied a second time.
    let late = w
        .payments
        .match_manually(w.req(manual("phoned")))
        .await
        .unwrap();
    assert_eq!(late.into_inner().result.unwrap().rule, "manual");
    // Dunning's reaction to the undo may land meanwhile (`service:dunning`); the late request
    // itself must have written nothing.
    let after_late: Vec<(String, String)> = w
        .log
        .read_stream(&stream, undone.map_or(1, |v| v + 1), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.metadata.actor))
        .collect();
    assert!(
        after_late
            .iter()
            .all(|(_, actor)| actor.starts_with("service:")),
        "the late match appended: {after_late:?}"
    );

    // Another entry, marked as not ours: a retry is OK, another note under the id (or for the
    // same entry without one) is ALREADY_EXISTS.
    let other = p
        .record_transactions(w.req(record(tx("Spende", "PSP-2"))))
        .await
        .unwrap()
        .into_inner()
        .results
        .remove(0)
        .entry_id;
    let entry_stream: mahnwerk_domain::StreamId =
        mahnwerk_domain::StreamId::new(&"acme".parse().unwrap(), "statement", &other);
    let mark = |note: &str, rid: &str| pb::MarkNotOursRequest {
        entry_id: other.clone(),
        note: note.into(),
        request_id: rid.into(),
        ..Default::default()
    };
    retried(
        "MarkNotOurs",
        &w.log,
        &entry_stream,
        mark("donation", "mark-1"),
        mark("other", "mark-1"),
        payments!(mark_not_ours),
    )
    .await;
    let err = w
        .payments
        .mark_not_ours(w.req(mark("yet another", "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    w.payments
        .mark_not_ours(w.req(mark("donation", "")))
        .await
        .expect("a repeat without a request id is OK");
}
