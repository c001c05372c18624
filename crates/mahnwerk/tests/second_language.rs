//! Independent clients: a Python nats-py subscriber receives the public events of an invoice
//! created over gRPC, with the documented subject, headers and envelope (docs/events.md).

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;
use std::path::PathBuf;

#[tokio::test]
async fn a_nats_py_subscriber_receives_the_documented_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let mut client = InvoiceServiceClient::new(server.channel().await);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = authed(
        &key,
        pb::CreateInvoiceRequest {
            tenant: String::new(),
            invoice: Some(invoice("RE-42")),
        },
    );
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let created = client
        .create_invoice(req)
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    client
        .dispute_invoice(authed(
            &key,
            pb::DisputeInvoiceRequest {
                tenant: String::new(),
                invoice_number: "RE-42".into(),
                reason: "late".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let subject = format!("{}.events.acme.case.>", server.namespace);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/nats_subscriber.py");
    let out = tokio::process::Command::new(python("nats-py"))
        .arg(script)
        .args([nats_url(), subject, "2".into()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let ns = &server.namespace;
    let case = &created.case_id;
    assert_eq!(
        lines[0]["subject"],
        format!("{ns}.events.acme.case.invoice.issued.v1.{case}")
    );
    assert_eq!(
        lines[1]["subject"],
        format!("{ns}.events.acme.case.invoice.disputed.v1.{case}")
    );
    let env = &lines[0]["envelope"];
    assert_eq!(env["type"], "invoice.issued.v1");
    assert_eq!(env["tenant"], "acme");
    assert_eq!(env["version"], 1);
    assert_eq!(env["stream"], format!("acme/case/{}", created.case_id));
    assert_eq!(env["payload"]["invoice"]["number"], "RE-42");
    assert_eq!(env["payload"]["invoice"]["gross"], 11900);
    assert_eq!(lines[0]["headers"]["Nats-Msg-Id"], env["event_id"]);
    assert_eq!(
        lines[0]["headers"]["Mahnwerk-Event-Type"],
        "invoice.issued.v1"
    );
    assert_eq!(lines[1]["headers"]["Mahnwerk-Version"], "2");
    // The caller's trace context travels with the event: metadata and NATS header.
    assert_eq!(lines[0]["headers"]["traceparent"], traceparent);
    assert_eq!(env["metadata"]["traceparent"], traceparent);
    server.stop().await;
}
