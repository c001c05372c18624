//! `mahnwerk serve` with the letters service: its LetterService answers on the one gRPC server
//! (health SERVING, authenticated calls), and a dunning step on the log becomes a letter in the
//! post spool (no SMTP configured: the email falls back to post), recorded on the case stream.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;
use std::time::Duration;

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_letters_a_step_becomes_a_spooled_letter() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    );
    let spool = dir.path().join("spool");
    let (docs, spool2) = (dir.path().join("documents"), spool.clone());
    let server = start_with(&url, move |a| {
        a.services = vec![Service::Relay, Service::Letters];
        a.letters.documents_dir = docs;
        a.letters.post_spool = spool2;
        a.letters.smtp_host = None;
    })
    .await;
    let mut health = HealthClient::new(server.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: "mahnwerk.v1.LetterService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let key = tenant_key(&url, "acme").await;
    let ch = server.channel().await;
    put_sample_letterhead(&ch, &key).await;
    let mut letters = pb::letter_service_client::LetterServiceClient::new(ch);

    // An invoice and its first dunning step, as ingest and the dunning service write them.
    let log = EventLog::connect(&url).await.unwrap();
    let tenant: TenantId = "acme".parse().unwrap();
    let invoice: mahnwerk_domain::Invoice = serde_json::from_value(serde_json::json!({
        "number": "RE-SERVE-1", "issue_date": "2026-01-15", "due_date": "2026-01-29",
        "currency": "EUR", "net": 100000, "tax": 19000, "gross": 119000,
        "debtor": {"name": "Bäckerei Größl OHG", "kind": "business",
            "address": {"street": ["Mühlenweg 12"], "postal_code": "80331", "city": "München", "country": "DE"},
            "email": "kunde@debtor.test", "language": "de", "customer_number": null, "vat_id": null},
        "payment_reference": null,
        "creditor_account": {"iban": "DE89370400440532013000", "bic": null, "holder": null},
        "default_notice": false
    }))
    .unwrap();
    let case = CaseId::for_invoice(&tenant, &invoice.number);
    let issued = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    let step = serde_json::json!({
        "number": 1, "title": "Zahlungserinnerung", "tone": "friendly", "template_id": "reminder",
        "channels": ["email", "post"], "date": "2026-02-05",
        "fee": {"minor": 0, "currency": "EUR"}, "fee_waived": null,
        "lump_sum": {"minor": 0, "currency": "EUR"}, "interest_charged": {"minor": 0, "currency": "EUR"},
        "interest": null, "default": null, "creates_default": true,
        "deadline": {"deadline": "2026-02-19", "unmoved": "2026-02-19", "reasons": []},
        "principal_open": {"minor": 119000, "currency": "EUR"}, "balance": {"minor": 119000, "currency": "EUR"}
    });
    log.append(AppendBatch {
        stream: case.stream(&tenant),
        expected: ExpectedVersion::NoStream,
        events: vec![
            event(issued.event_type(), issued.to_payload()),
            event("dunning.step_reached.v1", step),
        ],
    })
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let letter = loop {
        let list = letters
            .list_letters(authed(
                &key,
                pb::ListLettersRequest {
                    tenant: String::new(),
                    case_id: case.0.to_string(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .letters;
        if let Some(l) = list
            .iter()
            .find(|l| l.recipient == "debtor" && l.channel == "post" && l.state == "sent")
        {
            break l.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no letter: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(spool.join(format!("{}.json", letter.provider_id)).exists());
    // The ledger says `sent` as soon as the spool has the job; `letter.dispatched.v1` is
    // appended right after it: wait for it on the log (a clean-clone CI run read the log in
    // between).
    let types: Vec<String> = loop {
        let types: Vec<String> = log
            .read_stream(&case.stream(&tenant), 1, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        if types.iter().any(|t| t == "letter.dispatched.v1")
            || tokio::time::Instant::now() >= deadline
        {
            break types;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(types.contains(&"letter.failed.v1".to_owned()), "{types:?}");
    assert!(
        types.contains(&"letter.dispatched.v1".to_owned()),
        "{types:?}"
    );
    server.stop().await;
}
