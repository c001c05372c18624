//! `mahnwerk serve` beyond ingest: dunning on the simulated clock, health of a relay-only
//! process.

use super::*;

#[tokio::test]
async fn serve_runs_dunning_and_advance_clock_works_only_on_the_simulated_clock() {
    use pb::dunning_service_client::DunningServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let url = databases(&dir).await.remove(0);
    // The production configuration: the system clock, AdvanceClock refused.
    let server = start_with(&url, |a| a.services.clear()).await;
    let key = tenant_key(&url, "acme").await;
    let mut dunning = DunningServiceClient::new(server.channel().await);
    let err = dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 1 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    server.stop().await;

    // With --simulated-clock: an invoice created through InvoiceService (due Sunday 03-15)
    // gets its reminder five days after the due date, on Friday 03-20.
    let server = start_with(&url, |a| {
        a.services.clear(); // all
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
    })
    .await;
    let mut invoices = InvoiceServiceClient::new(server.channel().await);
    let created = invoices
        .create_invoice(authed(
            &key,
            pb::CreateInvoiceRequest {
                invoice: Some(invoice("RE-DUN-1")),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut dunning = DunningServiceClient::new(server.channel().await);
    let explain = |case_id: String| pb::ExplainCaseRequest {
        case_id,
        ..Default::default()
    };
    let case_id = created.invoice.as_ref().unwrap().case_id.clone();
    wait_for("dunning to open the case", 20, || {
        let mut d = dunning.clone();
        let req = authed(&key, explain(case_id.clone()));
        async move { d.explain_case(req).await.is_ok() }
    })
    .await;
    let r = dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 19 }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.today, "2026-03-20");
    let ex = dunning
        .explain_case(authed(&key, explain(case_id.clone())))
        .await
        .unwrap()
        .into_inner();
    let steps: Vec<(u32, String)> = ex
        .steps
        .iter()
        .map(|s| (s.number, s.date.clone()))
        .collect();
    assert_eq!(steps, [(1, "2026-03-20".to_owned())]);
    assert_eq!(ex.policy_id, "default-consumer");
    // The operator's CLI moves the same clock (run without blocking the in-process server).
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["clock", "advance", "--days", "2"])
        .env("MAHNWERK_SERVER", format!("http://{}", server.addr))
        .env("MAHNWERK_API_KEY", &key)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("today is 2026-03-22"), "{text}");
    server.stop().await;
}

/// Every Deployment runs `serve --services X` and is probed over gRPC health: a process that runs
/// only the relay (no gRPC API of its own) still answers health and reports the ingest API as
/// not served (it used to open no gRPC port at all without ingest).
#[tokio::test]
async fn a_relay_only_process_answers_grpc_health() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = tempfile::tempdir().unwrap();
    let url = databases(&dir).await.remove(0);
    let server = start_with(&url, |a| {
        a.services = vec![mahnwerk::config::Service::Relay]
    })
    .await;
    let mut health = HealthClient::new(server.channel().await);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overall.status, ServingStatus::Serving as i32);
    let ingest = health
        .check(HealthCheckRequest {
            service: "mahnwerk.v1.InvoiceService".into(),
        })
        .await;
    assert_eq!(ingest.unwrap_err().code(), Code::NotFound);
    server.stop().await;
}
