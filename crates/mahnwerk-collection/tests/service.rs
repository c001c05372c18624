//! The collection service against the real components: a real event log (SQLite, plus
//! PostgreSQL when DATABASE_URL is set), the real relay and JetStream (NATS_URL), the consumer
//! and worker in-process, CollectionService over gRPC on 127.0.0.1:0. The case stream is written
//! as ingest and the dunning service would (the dunning events come from the pure dunning core).
//!
//! Approval mode: escalation → approval requested → hold → approve (idempotent) → published on
//! the partner's subject with the business claim (€ 40 lump sum offset against the fees) →
//! write-off refused while the partner holds it → recall (published) → write-off closes it.

use chrono::NaiveDate;
use mahnwerk_auth::KeyStore;
use mahnwerk_auth::partner::PartnerKeys;
use mahnwerk_bus::{BusConfig, Relay};
use mahnwerk_clock::{SharedClock, SimulatedClock};
use mahnwerk_collection::grpc::CollectionApi;
use mahnwerk_collection::{Collection, Config, Subjects};
use mahnwerk_domain::{CaseId, DebtorKind, InvoiceNumber, Money, TenantId};
use mahnwerk_dunning::dunning_case::{CaseFacts, DunningCase, DunningCommand, decide, evolve};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;
use pb::collection_service_client::CollectionServiceClient;
use sha2::Digest;
use std::sync::Arc;
use tonic::Code;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn databases(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = unique("mwc_");
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("DATABASE_URL must reach PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        urls.push(format!("{base}/{name}"));
    } else {
        eprintln!("DATABASE_URL not set: this test ran on SQLite only");
    }
    urls
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn authed<T>(key: &str, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

fn event(event_type: &str, payload: serde_json::Value, actor: &str) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: actor.into(),
            ..Default::default()
        },
    }
}

/// invoice.issued, then the dunning core's events until the case escalates.
fn business_case_events() -> Vec<NewEvent> {
    let invoice = serde_json::json!({"invoice": {
        "number": "RE-B-1", "issue_date": "2026-01-02", "due_date": "2026-01-16", "currency": "EUR",
        "net": 100000, "tax": 19000, "gross": 119000,
        "debtor": {"name": "Muster GmbH", "kind": "business",
                   "address": {"street": ["Hauptstr. 1"], "postal_code": "10115", "city": "Berlin", "country": "DE"},
                   "email": null, "language": "de", "customer_number": "K-9", "vat_id": null},
        "payment_reference": null, "creditor_account": {"iban": "DE89370400440532013000", "bic": null, "holder": null},
        "default_notice": false}});
    let mut out = vec![event("invoice.issued.v1", invoice, "apikey:test")];
    let facts = CaseFacts {
        invoice_number: "RE-B-1".into(),
        debtor_key: "K-9".into(),
        debtor: DebtorKind::Business,
        issue_date: d("2026-01-02"),
        due_date: d("2026-01-16"),
        principal: Money::eur(119_000),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    };
    let mut state: Option<DunningCase> = None;
    let mut run = |state: &mut Option<DunningCase>, cmd: DunningCommand, day: NaiveDate| {
        for e in decide(state.as_ref(), &cmd, day).unwrap() {
            *state = evolve(state.take(), &e);
            out.push(event(e.event_type(), e.to_payload(), "service:dunning"));
        }
    };
    run(
        &mut state,
        DunningCommand::Open {
            facts,
            policy: Policy::default_business(FederalState::NW),
        },
        d("2026-01-02"),
    );
    let mut day = d("2026-01-03");
    while state.as_ref().unwrap().escalated_on.is_none() {
        run(&mut state, DunningCommand::Advance, day);
        day = day.succ_opt().unwrap();
        assert!(day < d("2026-12-31"));
    }
    out
}

async fn types(log: &EventLog, stream: &mahnwerk_domain::StreamId) -> Vec<String> {
    log.read_stream(stream, 1, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn last_on(
    js: &async_nats::jetstream::Context,
    stream: &str,
    subject: &str,
) -> Option<serde_json::Value> {
    let s = js.get_stream(stream).await.ok()?;
    let m = s.get_last_raw_message_by_subject(subject).await.ok()?;
    serde_json::from_slice(&m.payload).ok()
}

async fn approval_hold_approve_recall_write_off(url: &str) {
    let log = EventLog::connect(url).await.unwrap();
    let pool = mahnwerk_auth::connect_any(url).await.unwrap();
    let keys = KeyStore::open(pool.clone()).await.unwrap();
    mahnwerk_collection::ensure_schema(&pool).await.unwrap();
    let tenant: TenantId = "acme".parse().unwrap();
    keys.create_tenant(&tenant, "Acme GmbH").await.unwrap();
    let key = keys
        .create_key(std::slice::from_ref(&tenant), "test")
        .await
        .unwrap()
        .token;
    let bus = BusConfig::with_namespace(&unique("c"));
    let js = mahnwerk_bus::connect(&nats_url())
        .await
        .expect("NATS_URL must reach NATS");
    let relay = {
        let (log, js, bus) = (log.clone(), js.clone(), bus.clone());
        tokio::spawn(async move {
            let _ = Relay::new(bus).run(log, js, std::future::pending()).await;
        })
    };
    let clock: SharedClock = Arc::new(SimulatedClock::starting_on(d("2026-03-02")));
    let dir = tempfile::tempdir().unwrap();
    let collection = Collection::new(
        log.clone(),
        pool.clone(),
        clock,
        Arc::new(mahnwerk_docstore::FsDocuments::new(dir.path())),
    );
    let exporter = collection.clone();
    let consumer = {
        let (c, js, bus) = (collection.clone(), js.clone(), bus.clone());
        tokio::spawn(async move {
            mahnwerk_collection::run(Config::new(bus), c, js, std::future::pending())
                .await
                .unwrap();
        })
    };
    let api = CollectionApi {
        collection,
        keys,
        partner_keys: PartnerKeys::open(pool.clone()).await.unwrap(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let grpc = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(mahnwerk_collection::service(api))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let mut col = CollectionServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    col.put_partner(authed(
        &key,
        pb::PutPartnerRequest {
            tenant: String::new(),
            partner: Some(pb::Partner {
                partner_id: "sued".into(),
                name: "Inkasso Süd AG".into(),
                subject_token: "sued".into(),
                min_amount_minor: 50_000,
                debtor_kinds: vec![pb::DebtorKind::Business as i32],
                countries: vec![],
                mode: pb::HandoverMode::Approval as i32,
                waive_costs_if_principal_paid: false,
                active: true,
            }),
        },
    ))
    .await
    .unwrap();

    let case = CaseId::for_invoice(&tenant, &"RE-B-1".parse::<InvoiceNumber>().unwrap());
    let stream = case.stream(&tenant);
    log.append(AppendBatch {
        stream: stream.clone(),
        expected: ExpectedVersion::NoStream,
        events: business_case_events(),
    })
    .await
    .unwrap();
    wait_for("the approval request", 20, || {
        let (log, stream) = (log.clone(), stream.clone());
        async move {
            types(&log, &stream)
                .await
                .iter()
                .any(|t| t == "collection.approval_requested.v1")
        }
    })
    .await;
    let note = |rid: &str, reason: &str| pb::CaseNoteRequest {
        tenant: String::new(),
        request_id: rid.into(),
        case_id: case.to_string(),
        reason: reason.into(),
    };
    let held = col
        .hold_handover(authed(&key, note("h1", "talk first")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.phase, "held");
    let approve = || pb::ApproveHandoverRequest {
        tenant: String::new(),
        request_id: "a1".into(),
        case_id: case.to_string(),
        partner_id: String::new(),
    };
    let a = col
        .approve_handover(authed(&key, approve()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.event_types, ["case.handed_over.v1"]);
    let a2 = col
        .approve_handover(authed(&key, approve()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a2.stream_version, a2.event_types.len()),
        (a.stream_version, 0)
    );
    let e = col
        .approve_handover(authed(
            &key,
            pb::ApproveHandoverRequest {
                partner_id: "other".into(),
                ..approve()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);

    // Published on the partner's subject, with the business claim.
    let subjects = Subjects::of(&bus);
    let handover_subject = subjects.subject("acme", "sued", "handover");
    wait_for("the hand-over on the partner subject", 20, || {
        let (js, s, subj) = (
            js.clone(),
            subjects.stream.clone(),
            handover_subject.clone(),
        );
        async move { last_on(&js, &s, &subj).await.is_some() }
    })
    .await;
    let env = last_on(&js, &subjects.stream, &handover_subject)
        .await
        .unwrap();
    assert_eq!(env["type"], "case.handed_over.v1");
    assert_eq!(env["version"], a.stream_version);
    let claim = &env["payload"]["claim"];
    assert_eq!(claim["lump_sum"]["minor"], 4000, "{claim}");
    assert!(
        claim["lump_sum_offset"]["minor"].as_i64().unwrap() > 0,
        "{claim}"
    );
    assert!(claim["interest_total"]["minor"].as_i64().unwrap() > 0);
    assert_eq!(env["payload"]["debtor"]["kind"], "business");

    // The per-case waiver of collection costs (idempotent on the case state).
    let w = col
        .waive_costs(authed(&key, note("c1", "good customer")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.event_types, ["collection.costs_waived.v1"]);
    let w = col
        .waive_costs(authed(&key, note("c2", "again")))
        .await
        .unwrap()
        .into_inner();
    assert!(w.event_types.is_empty());

    // Write-off only after a recall; the recall is published too.
    let e = col
        .write_off(authed(&key, note("w1", "insolvent")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let r = col
        .recall(authed(&key, note("r1", "paid directly")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.phase, "recalled");
    let recall_subject = subjects.subject("acme", "sued", "recall");
    wait_for("the recall on the partner subject", 20, || {
        let (js, s, subj) = (js.clone(), subjects.stream.clone(), recall_subject.clone());
        async move { last_on(&js, &s, &subj).await.is_some() }
    })
    .await;
    let w = col
        .write_off(authed(&key, note("w2", "insolvent")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.event_types, ["case.closed.v1"]);
    assert_eq!(w.phase, "closed:written_off");
    assert!(log.verify().await.unwrap().is_ok());

    // The export: an untouched archive verifies without the database; one byte changed
    // anywhere fails, naming what changed.
    let pdf = b"%PDF-1.4 letter".to_vec();
    let sha = hex::encode(sha2::Sha256::digest(&pdf));
    std::fs::create_dir_all(dir.path().join(&sha[..2])).unwrap();
    std::fs::write(dir.path().join(&sha[..2]).join(format!("{sha}.pdf")), &pdf).unwrap();
    log.append(AppendBatch {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![event(
            "letter.rendered.v1",
            serde_json::json!({"letter_id": "l-9", "step": 3, "kind": "last_notice", "document_sha256": sha,
                "letterhead_version": 1, "templates": [], "draft": false}),
            "service:letters",
        )],
    })
    .await
    .unwrap();
    let archive = exporter.export(&tenant, case).await.unwrap();
    let ok = mahnwerk_collection::archive::verify(&archive).unwrap();
    assert_eq!(
        (ok.documents, ok.events),
        (1, types(&log, &stream).await.len())
    );
    let mut named = std::collections::BTreeSet::new();
    for i in (0..archive.len()).step_by(37) {
        let mut bad = archive.clone();
        bad[i] ^= 0x01;
        let problems = match mahnwerk_collection::archive::verify(&bad) {
            Ok(_) => panic!(
                "byte {i} changed but the archive verified: {:?}",
                String::from_utf8_lossy(
                    &archive[i.saturating_sub(60)..(i + 20).min(archive.len())]
                )
            ),
            Err(p) => p,
        };
        named.insert(problems[0].split(':').next().unwrap_or_default().to_owned());
    }
    assert!(
        named.iter().any(|n| n.starts_with("case.json")),
        "{named:?}"
    );
    assert!(
        named.iter().any(|n| n.starts_with("documents/")),
        "{named:?}"
    );
    consumer.abort();
    grpc.abort();
    relay.abort();
}

#[tokio::test]
async fn approval_mode_hold_approve_recall_and_write_off_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        approval_hold_approve_recall_write_off(&url).await;
    }
}
