//! Entries recorded and applied in chunks (`apply::process_chunk`, the statement import's
//! path): two group commits per chunk, and still every entry applied exactly once, also when
//! an import was killed between the two commits, or a case changed under the chunk.

mod common;

use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceCancelled, InvoiceIssued};
use mahnwerk_domain::{CaseId, Currency, Money, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_matching::apply::{Incoming, process_chunk};
use mahnwerk_matching::engine::{BankEntry, OpenItem, OpenItems, Outcome, Settings, decide};
use mahnwerk_matching::events::{ENTRY_KIND, EntryEvent, Payer, TransactionReceived};

struct World {
    _dir: tempfile::TempDir,
    log: EventLog,
    tenant: TenantId,
    items: OpenItems,
}

fn meta() -> Metadata {
    Metadata {
        actor: "test".into(),
        ..Default::default()
    }
}

async fn append(log: &EventLog, stream: mahnwerk_domain::StreamId, ev: &CaseEvent) {
    log.append(AppendBatch {
        stream,
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_id: event_id_now(),
            event_type: ev.event_type().into(),
            payload: ev.to_payload(),
            occurred_at: chrono::Utc::now(),
            metadata: meta(),
        }],
    })
    .await
    .unwrap();
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("mw.db").display());
        World {
            log: EventLog::connect(&url).await.unwrap(),
            _dir: dir,
            tenant: "acme".parse().unwrap(),
            items: OpenItems::new(),
        }
    }

    /// An open invoice: `invoice.issued.v1` on its case stream and the engine's open item.
    async fn issue(&mut self, number: &str, gross: i64) -> String {
        let inv = common::invoice(number, "Weiß KG", gross, None);
        let case = CaseId::for_invoice(&self.tenant, &inv.number);
        let ev = CaseEvent::InvoiceIssued(InvoiceIssued { invoice: inv });
        append(&self.log, case.stream(&self.tenant), &ev).await;
        self.items.upsert(OpenItem {
            case_id: case.to_string(),
            invoice_number: number.into(),
            debtor_name: "Weiß KG".into(),
            debtor_ibans: vec![],
            customer_number: None,
            open: Money::new(gross, Currency::EUR),
            payment_reference: None,
            letter_references: vec![],
            due_date: "2026-10-15".parse().unwrap(),
            cash_discount: None,
            closed: None,
        });
        case.to_string()
    }

    async fn case_types(&self, case_id: &str) -> Vec<String> {
        let case: CaseId = case_id.parse().unwrap();
        self.log
            .read_stream(&case.stream(&self.tenant), 1, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    async fn entry_types(&self, entry_id: &str) -> Vec<String> {
        let stream = mahnwerk_domain::StreamId::new(&self.tenant, ENTRY_KIND, entry_id);
        self.log
            .read_stream(&stream, 1, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    async fn chunk(&mut self, chunk: &[Incoming]) -> Vec<mahnwerk_matching::apply::Processed> {
        process_chunk(
            &self.log,
            &self.tenant,
            &mut self.items,
            &Settings::default(),
            chunk,
            &meta(),
            None,
        )
        .await
        .unwrap()
    }
}

fn entry(bank_ref: &str, minor: i64, text: &str) -> Incoming {
    Incoming {
        entry: BankEntry {
            entry_ref: format!("DE89370400440532013000:{bank_ref}:2026-11-03:{minor}"),
            amount: Some(Money::new(minor, Currency::EUR)),
            booked_on: Some("2026-11-03".parse().unwrap()),
            booked: true,
            counterparty_name: Some("Weiß KG".into()),
            counterparty_iban: Some("DE02120300000000202051".into()),
            remittance: Some(text.into()),
            ..Default::default()
        },
        charges: None,
        bank_reference: Some(bank_ref.into()),
        source: "statement",
        fingerprint: None,
        end_to_end_id: None,
    }
}

const PAID: [&str; 3] = [
    "invoice.issued.v1",
    "payment.applied.v1",
    "invoice.settled.v1",
];

#[tokio::test]
async fn a_chunk_applies_every_entry_once_and_chains_two_payments_of_one_case() {
    let mut w = World::new().await;
    let a = w.issue("RE-2026-0701", 3000).await;
    let b = w.issue("RE-2026-0702", 4000).await;
    let chunk = [
        entry("K-1", 3000, "RE-2026-0701"),
        entry("K-2", 1500, "Rechnung RE-2026-0702"),
        entry("K-3", 2500, "Rechnung RE-2026-0702"),
        // The same entry twice in one chunk (a bank delivering it twice).
        entry("K-1", 3000, "RE-2026-0701"),
    ];
    let out = w.chunk(&chunk).await;
    let outcomes: Vec<(Outcome, bool)> = out
        .iter()
        .map(|p| (p.decision.outcome, p.duplicate))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::Applied, false),
            (Outcome::Partial, false),
            (Outcome::Applied, false),
            (Outcome::Applied, true),
        ]
    );
    assert_eq!(w.case_types(&a).await, PAID);
    assert_eq!(
        w.case_types(&b).await,
        [
            "invoice.issued.v1",
            "payment.applied.v1",
            "payment.applied.v1",
            "invoice.settled.v1",
        ]
    );
    // The items follow what was applied.
    assert_eq!(w.items.get(&a).unwrap().open.minor, 0);
    assert_eq!(w.items.get(&b).unwrap().open.minor, 0);

    // The same chunk again: all duplicates, nothing new on any stream.
    let again = w.chunk(&chunk).await;
    assert!(again.iter().all(|p| p.duplicate), "{again:?}");
    assert_eq!(w.case_types(&a).await, PAID);
    assert_eq!(w.case_types(&b).await.len(), 4);
}

#[tokio::test]
async fn a_chunk_killed_between_its_two_commits_is_applied_exactly_once_on_restart() {
    let mut w = World::new().await;
    let cases = [
        w.issue("RE-2026-0801", 1000).await,
        w.issue("RE-2026-0802", 2000).await,
        w.issue("RE-2026-0803", 3000).await,
    ];
    let chunk = [
        entry("K-1", 1000, "RE-2026-0801"),
        entry("K-2", 2000, "RE-2026-0802"),
        entry("K-3", 3000, "RE-2026-0803"),
    ];
    // The first import recorded entries 1 and 2 (the first group commit) and was killed before
    // the second: their decisions are on their streams, nothing on the case streams.
    for inc in &chunk[..2] {
        let d = decide(&w.items, &inc.entry, &Settings::default());
        assert_eq!(d.outcome, Outcome::Applied);
        let received = EntryEvent::Received(Box::new(TransactionReceived {
            entry_id: inc.entry.entry_ref.clone(),
            source: "statement".into(),
            bank_reference: inc.bank_reference.clone(),
            amount: inc.entry.amount.unwrap(),
            booked_on: inc.entry.booked_on,
            booked: true,
            reversal: false,
            return_reason: None,
            fingerprint: None,
            payer: Payer::default(),
            decision: (&d).into(),
        }));
        w.log
            .append(AppendBatch {
                stream: mahnwerk_domain::StreamId::new(&w.tenant, ENTRY_KIND, &inc.entry.entry_ref),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: received.event_type().into(),
                    payload: received.to_payload(),
                    occurred_at: chrono::Utc::now(),
                    metadata: meta(),
                }],
            })
            .await
            .unwrap();
    }
    for c in &cases {
        assert_eq!(w.case_types(c).await, ["invoice.issued.v1"]);
    }
    // Restarted: the recorded entries are repaired, the third recorded and applied.
    let out = w.chunk(&chunk).await;
    let dup: Vec<bool> = out.iter().map(|p| p.duplicate).collect();
    assert_eq!(dup, [true, true, false]);
    assert!(out.iter().all(|p| p.decision.outcome == Outcome::Applied));
    for c in &cases {
        assert_eq!(w.case_types(c).await, PAID, "case {c}");
    }
    for inc in &chunk {
        assert_eq!(
            w.entry_types(&inc.entry.entry_ref).await,
            ["bank_transaction.received.v1"]
        );
    }
    // And once more: nothing applied twice.
    w.chunk(&chunk).await;
    for c in &cases {
        assert_eq!(w.case_types(c).await, PAID, "case {c}");
    }
}

#[tokio::test]
async fn a_case_cancelled_under_the_chunk_sends_its_entry_to_review_and_applies_the_rest() {
    let mut w = World::new().await;
    let a = w.issue("RE-2026-0901", 1000).await;
    let b = w.issue("RE-2026-0902", 2000).await;
    // Cancelled on the log; the items (a lagging projection) still show it open.
    let case: CaseId = a.parse().unwrap();
    let cancel = CaseEvent::InvoiceCancelled(InvoiceCancelled {
        reason: "wrong address".into(),
        request_id: None,
    });
    append(&w.log, case.stream(&w.tenant), &cancel).await;
    let chunk = [
        entry("K-1", 1000, "RE-2026-0901"),
        entry("K-2", 2000, "RE-2026-0902"),
    ];
    let out = w.chunk(&chunk).await;
    assert_eq!(out[0].decision.outcome, Outcome::Review);
    assert!(out[0].decision.reason.contains("cancelled"), "{:?}", out[0]);
    assert_eq!(out[1].decision.outcome, Outcome::Applied);
    assert_eq!(
        w.case_types(&a).await,
        ["invoice.issued.v1", "invoice.cancelled.v1"]
    );
    assert_eq!(w.case_types(&b).await, PAID);
    assert_eq!(
        w.entry_types(&chunk[0].entry.entry_ref).await,
        ["bank_transaction.received.v1", "payment.unmatched.v1"]
    );
    // The item of the cancelled case is set back to what its stream says.
    let item = w.items.get(&a).unwrap();
    assert_eq!(
        (item.open.minor, item.closed.as_deref()),
        (1000, Some("cancelled"))
    );
}

/// The matching projection built from the log by its consumer handler (what the NATS consumer
/// does), up to the head.
async fn project(log: &EventLog, pool: &sqlx::AnyPool, mut after: i64) -> i64 {
    use mahnwerk_bus::{Envelope, Handler};
    loop {
        let events = log.read_all(after, 1000).await.unwrap();
        let Some(last) = events.last() else {
            return after;
        };
        after = last.position;
        let mut tx = pool.begin().await.unwrap();
        for e in &events {
            mahnwerk_matching::projection::Projection
                .handle(&Envelope::from(e), &mut tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_second_payment_before_the_projection_caught_up_sees_the_first() {
    let mut w = World::new().await;
    let case = w.issue("RE-2026-1001", 4000).await;
    let url = format!("sqlite:{}?mode=rwc", w._dir.path().join("mw.db").display());
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    mahnwerk_matching::ensure_schema(&pool).await.unwrap();
    let keys = mahnwerk_auth::KeyStore::open(pool.clone()).await.unwrap();
    project(&w.log, &pool, 0).await;
    let m = mahnwerk_matching::Matching::new(w.log.clone(), keys, pool, Settings::default());
    let first = m
        .record(
            &w.tenant,
            &[entry("K-1", 1500, "RE-2026-1001")],
            &meta(),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(first[0].decision.outcome, Outcome::Partial);
    // The projection has not seen the payment: the service's own balance is used.
    let second = m
        .record(
            &w.tenant,
            &[entry("K-2", 2500, "RE-2026-1001")],
            &meta(),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(second[0].decision.outcome, Outcome::Applied, "{second:?}");
    assert_eq!(
        w.case_types(&case).await,
        [
            "invoice.issued.v1",
            "payment.applied.v1",
            "payment.applied.v1",
            "invoice.settled.v1"
        ]
    );
}
