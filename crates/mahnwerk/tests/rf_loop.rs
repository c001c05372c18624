//! The RF loop (issues #11 and #13): the reminder letter of an overdue invoice prints an RF
//! creditor reference the letters service derived for the case (the invoice has none of its
//! own); a debtor pays quoting only that reference, as a banking app does from the letter's
//! GiroCode; matching applies it by the RF rule, the invoice is settled and dunning stops.
//!
//! `mahnwerk serve` with ingest, relay, dunning, letters and matching on a simulated clock
//! against the real components (SQLite log, JetStream, typst letters in the post spool); the
//! letter is read back from the stored PDF with independent readers (pdfplumber, pypdf,
//! pdftoppm + zxing-cpp: `mahnwerk-letters/tests/readback.py`).

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_proto::v1 as pb;

fn count(events: &[(String, serde_json::Value)], t: &str) -> usize {
    events.iter().filter(|e| e.0 == t).count()
}

fn first<'a>(events: &'a [(String, serde_json::Value)], t: &str) -> &'a serde_json::Value {
    &events
        .iter()
        .find(|e| e.0 == t)
        .unwrap_or_else(|| {
            panic!(
                "no {t} in {:?}",
                events.iter().map(|e| &e.0).collect::<Vec<_>>()
            )
        })
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_quoting_only_the_letters_rf_reference_settles_and_dunning_stops() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let (docs, spool) = (dir.path().join("documents"), dir.path().join("spool"));
    let server = start_with(&url, move |a| {
        a.services = vec![
            Service::Ingest,
            Service::Relay,
            Service::Dunning,
            Service::Letters,
            Service::Matching,
        ];
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
        a.letters.documents_dir = docs;
        a.letters.post_spool = spool;
        a.letters.smtp_host = None;
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let ch = server.channel().await;
    let mut letters = pb::letter_service_client::LetterServiceClient::new(ch.clone());
    let settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "email_from": "buchhaltung@muster-handel.test",
        "copy_to": {"mode": "inbox"},
        "signature": "Erika Muster"
    });
    letters
        .put_letterhead(authed(
            &key,
            pb::PutLetterheadRequest {
                tenant: String::new(),
                settings_json: settings.to_string(),
            },
        ))
        .await
        .unwrap();

    // Two overdue invoices without an RF reference of their own, of two debtors: the first is
    // paid after its reminder, the second (unpaid) shows dunning going on around it.
    let mut invoices = pb::invoice_service_client::InvoiceServiceClient::new(ch.clone());
    let mut cases = Vec::new();
    for (number, debtor, customer) in [
        ("RE-LOOP-1", "Erika Mustermann", "K-1"),
        ("RE-LOOP-2", "Max Beispiel", "K-2"),
    ] {
        let mut inv = invoice(number);
        inv.payment_reference = String::new();
        let d = inv.debtor.as_mut().unwrap();
        d.name = debtor.into();
        d.customer_number = customer.into();
        let case = invoices
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    invoice: Some(inv),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap()
            .case_id;
        cases.push(case);
    }
    let (paid, unpaid) = (&cases[0], &cases[1]);

    // Past the reminder day: both reminders go out (by post: no SMTP configured).
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(ch.clone());
    dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 25 }))
        .await
        .unwrap();
    for case in &cases {
        wait_for("the reminder letter on the log", 90, || async {
            count(
                &case_file_events(&server, &key, case).await,
                "letter.dispatched.v1",
            ) == 1
        })
        .await;
    }

    // The reference the letter printed: in its event, in the GiroCode and in the text.
    let file = case_file_events(&server, &key, paid).await;
    let rendered = first(&file, "letter.rendered.v1");
    let reference = rendered["payment_reference"]
        .as_str()
        .expect("letter.rendered.v1 names the printed reference")
        .to_owned();
    let rf = mahnwerk_formats::rf::RfReference::parse(&reference).expect("a valid RF reference");
    let pdf = letters
        .get_document(authed(
            &key,
            pb::GetDocumentRequest {
                tenant: String::new(),
                sha256: rendered["document_sha256"].as_str().unwrap().into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (pages, qr) = read_back(&pdf.content);
    let text = pages.first().cloned().unwrap_or_default();
    let epc: Vec<&str> = qr
        .iter()
        .find(|q| q.starts_with("BCD"))
        .expect("a GiroCode on page 1")
        .lines()
        .collect();
    // EPC069-12: line 10 is the structured creditor reference.
    assert_eq!(epc.get(9).copied(), Some(rf.as_str()), "{epc:?}");
    assert!(
        text.contains(&rf.to_print_format()),
        "the remittance line prints {}: {text}",
        rf.to_print_format()
    );
    let step = first(&file, "dunning.step_reached.v1");
    let total = step["balance"]["minor"].as_i64().unwrap();
    assert_eq!(
        step["principal_open"]["minor"].as_i64(),
        Some(total),
        "{step}"
    );

    // The debtor's partner pays from an account matching has never seen, quoting only the
    // reference the GiroCode carries: nothing but the RF reference names the invoice.
    let mut payments = pb::payment_service_client::PaymentServiceClient::new(ch.clone());
    let res = payments
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![pb::Transaction {
                    bank_reference: "LOOP-BANK-1".into(),
                    account: "DE89370400440532013000".into(),
                    amount: Some(pb::Money {
                        minor: total,
                        currency: "EUR".into(),
                    }),
                    booking_date: "2026-03-27".into(),
                    counterparty_name: "Hans Schmidt".into(),
                    counterparty_iban: "DE02120300000000202051".into(),
                    references: vec![epc[9].to_owned()],
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entry = &res.results[0];
    assert_eq!(
        (
            entry.decision.as_str(),
            entry.rule.as_str(),
            entry.confidence
        ),
        ("applied", "rf_reference", 100),
        "{entry:?}"
    );
    assert_eq!(entry.allocations.len(), 1, "{entry:?}");
    assert_eq!(&entry.allocations[0].case_id, paid);

    wait_for("invoice.settled and dunning.settled", 60, || async {
        let file = case_file_events(&server, &key, paid).await;
        count(&file, "invoice.settled.v1") == 1 && count(&file, "dunning.settled.v1") == 1
    })
    .await;

    // Weeks later the unpaid invoice has its next step; the paid one has none, and no letter.
    dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 30 }))
        .await
        .unwrap();
    wait_for("the unpaid invoice's next step and letter", 90, || async {
        let file = case_file_events(&server, &key, unpaid).await;
        count(&file, "dunning.step_reached.v1") >= 2 && count(&file, "letter.dispatched.v1") >= 2
    })
    .await;
    let file = case_file_events(&server, &key, paid).await;
    assert_eq!(count(&file, "dunning.step_reached.v1"), 1);
    assert_eq!(count(&file, "letter.rendered.v1"), 1);
    assert_eq!(count(&file, "letter.dispatched.v1"), 1);
    let applied = first(&file, "payment.applied.v1");
    assert_eq!(applied["rule"], "rf_reference", "{applied}");
    server.stop().await;
}

/// A letter that printed another RF reference than the one derived for its case (a letter of
/// another release, say): matching learns it from `letter.rendered.v1` and matches by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_learns_a_printed_reference_from_the_letters_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let server = start_with(&url, |a| {
        a.services = vec![Service::Ingest, Service::Relay, Service::Matching];
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let ch = server.channel().await;
    let mut inv = invoice("RE-LOOP-9");
    inv.payment_reference = String::new();
    let case = pb::invoice_service_client::InvoiceServiceClient::new(ch.clone())
        .create_invoice(authed(
            &key,
            pb::CreateInvoiceRequest {
                invoice: Some(inv),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id;
    let printed = mahnwerk_formats::rf::RfReference::create("ALT4711").unwrap();
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    let stream: mahnwerk_domain::StreamId = format!("acme/case/{case}").parse().unwrap();
    log.append(mahnwerk_eventlog::AppendBatch {
        stream,
        expected: mahnwerk_eventlog::ExpectedVersion::Any,
        events: vec![mahnwerk_eventlog::NewEvent {
            event_id: mahnwerk_eventlog::event_id_now(),
            event_type: "letter.rendered.v1".into(),
            payload: serde_json::json!({
                "letter_id": "l-1", "step": 1, "kind": "reminder", "document_sha256": "00",
                "letterhead_version": 1, "templates": [], "draft": false,
                "payment_reference": printed.to_print_format()
            }),
            occurred_at: chrono::Utc::now(),
            metadata: mahnwerk_eventlog::Metadata {
                actor: "service:letters".into(),
                ..Default::default()
            },
        }],
    })
    .await
    .unwrap();
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    wait_for(
        "the printed reference in the matching projection",
        60,
        || async {
            mahnwerk_matching::projection::load_items(&pool, "acme")
                .await
                .unwrap()
                .get(&case)
                .is_some_and(|i| i.letter_references == [printed.as_str()])
        },
    )
    .await;
    let res = pb::payment_service_client::PaymentServiceClient::new(ch)
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![pb::Transaction {
                    bank_reference: "LOOP-BANK-9".into(),
                    account: "DE89370400440532013000".into(),
                    amount: Some(pb::Money {
                        minor: 11900,
                        currency: "EUR".into(),
                    }),
                    booking_date: "2026-03-27".into(),
                    counterparty_name: "Hans Schmidt".into(),
                    remittance: format!("Zahlung {}", printed.as_str()),
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entry = &res.results[0];
    assert_eq!(
        (
            entry.decision.as_str(),
            entry.rule.as_str(),
            entry.confidence
        ),
        ("applied", "rf_reference", 100),
        "{entry:?}"
    );
    assert_eq!(entry.allocations[0].case_id, case);
    server.stop().await;
}
