//! Observability of the real binary: `mahnwerk serve` with every service on a simulated clock
//! exports its spans over OTLP/gRPC to a receiver in this test (the `opentelemetry-proto`
//! types on tonic). One invoice is driven to the hand-over to a collection partner (a letterhead,
//! an automatic partner, a part payment, 90 days); then every event of its case carries one
//! trace id, and that trace holds spans of every service: the ingest RPC, the relay, and the
//! handled events of matching, dunning, letters and collection. `/metrics` has the series each
//! service promises, and on SIGTERM the process exits cleanly after flushing its spans.

mod common;

use common::*;
use mahnwerk_eventlog::EventLog;
use mahnwerk_proto::v1 as pb;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    attributes: Vec<(String, String)>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Span {
                        service: service.clone(),
                        name: s.name.clone(),
                        trace_id: hex::encode(&s.trace_id),
                        attributes: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_invoice_across_every_service_metrics_and_a_clean_sigterm() {
    // The OTLP/gRPC receiver on loopback.
    let receiver = Receiver::default();
    let otlp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp_addr = otlp.local_addr().unwrap();
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(otlp)),
    );

    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let key = tenant_key(&url, "acme").await;
    let (grpc, metrics) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let namespace = unique("obs");
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .arg("serve")
        .env("MAHNWERK_DATABASE_URL", &url)
        .env("NATS_URL", nats_url())
        .env("MAHNWERK_LISTEN", &grpc)
        .env("MAHNWERK_METRICS_LISTEN", &metrics)
        .env("MAHNWERK_NAMESPACE", &namespace)
        .env("MAHNWERK_SIMULATED_CLOCK", "2026-03-01")
        .env("MAHNWERK_DOCUMENTS_DIR", dir.path().join("documents"))
        .env("MAHNWERK_POST_SPOOL", dir.path().join("spool"))
        .env_remove("MAHNWERK_SERVICES")
        .env_remove("MAHNWERK_SMTP_HOST")
        .env("MAHNWERK_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_addr}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
                .unwrap()
                .connect()
                .await
            {
                break c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "serve did not come up: {}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // The creditor's letterhead and an automatic collection partner.
    put_sample_letterhead(&channel, &key).await;
    put_partner(&channel, &key, partner(pb::HandoverMode::Auto, true)).await;

    // The invoice (no trace context from the caller: the RPC's span starts the trace).
    let case_id = create_case_of(&channel, &key, invoice("RE-TRACE-1")).await;
    wait_dunning_opened(&channel, &key, &case_id, 30).await;
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(channel.clone());
    // A part payment by its RF reference (matching), then time passes to the hand-over.
    let mut payments = pb::payment_service_client::PaymentServiceClient::new(channel.clone());
    payments
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![pb::Transaction {
                    bank_reference: "BANK-TRACE-1".into(),
                    account: "DE89370400440532013000".into(),
                    amount: Some(pb::Money {
                        minor: 1900,
                        currency: "EUR".into(),
                    }),
                    booking_date: "2026-03-10".into(),
                    value_date: "2026-03-10".into(),
                    counterparty_name: "Erika Mustermann".into(),
                    references: vec!["RF18539007547034".into()],
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap();
    let log = EventLog::connect(&url).await.unwrap();
    let stream = format!("acme/case/{case_id}").parse().unwrap();
    dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 90 }))
        .await
        .unwrap();
    wait_for("the hand-over", 150, || {
        let (log, stream) = (log.clone(), &stream);
        async move {
            let events = log.read_stream(stream, 1, 1000).await.unwrap();
            events.iter().any(|e| e.event_type == "case.handed_over.v1")
                && events
                    .iter()
                    .any(|e| e.event_type == "letter.dispatched.v1")
        }
    })
    .await;

    // Every event of the case carries one trace.
    let events = log.read_stream(&stream, 1, 1000).await.unwrap();
    let traces: BTreeSet<Option<String>> = events
        .iter()
        .map(|e| {
            e.metadata
                .traceparent
                .as_deref()
                .and_then(mahnwerk_bus::trace::trace_id)
        })
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(traces.len(), 1, "{traces:?} over {types:?}");
    let trace = traces.into_iter().next().flatten().expect("a trace id");

    // Metrics of every service after this small run.
    let body = {
        let mut body = String::new();
        // The log's totals are sampled once a second.
        for _ in 0..50 {
            body = scrape(&metrics).await;
            if body.contains("mahnwerk_relay_lag_events") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        body
    };
    let create = "path=\"/mahnwerk.v1.InvoiceService/CreateInvoice\"";
    for (name, labels) in [
        ("mahnwerk_rpc_requests_total", vec![create, "code=\"0\""]),
        ("mahnwerk_rpc_duration_seconds_count", vec![create]),
        (
            "mahnwerk_events_appended_total",
            vec!["type=\"invoice.issued.v1\""],
        ),
        (
            "mahnwerk_events_appended_total",
            vec!["type=\"dunning.step_reached.v1\""],
        ),
        (
            "mahnwerk_events_appended_total",
            vec!["type=\"case.handed_over.v1\""],
        ),
        ("mahnwerk_relay_published_events_total", vec![]),
        (
            "mahnwerk_consumer_events_total",
            vec!["consumer=\"dunning\""],
        ),
        ("mahnwerk_dunning_steps_total", vec![]),
        ("mahnwerk_letters_sent_total", vec!["channel=\"post\""]),
        ("mahnwerk_matching_entries_total", vec![]),
    ] {
        let v = sample(&body, name, &labels);
        assert!(
            v.is_some_and(|v| v >= 1.0),
            "{name} {labels:?} = {v:?} in\n{body}"
        );
    }
    for (name, labels) in [
        ("mahnwerk_relay_lag_events", vec![]),
        ("mahnwerk_consumer_lag_events", vec!["consumer=\"letters\""]),
        (
            "mahnwerk_consumer_redeliveries_total",
            vec!["consumer=\"collection\""],
        ),
        (
            "mahnwerk_consumer_dead_letters_total",
            vec!["consumer=\"matching\""],
        ),
    ] {
        assert!(
            sample(&body, name, &labels).is_some(),
            "{name} {labels:?} missing in\n{body}"
        );
    }

    // SIGTERM: the process stops, flushes its spans and exits 0 within the grace period.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exited within the grace period")
        .unwrap();
    let logs = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(status.success(), "{status:?}\n{logs}");

    let spans: Vec<Span> = receiver
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == trace)
        .cloned()
        .collect();
    let summary: BTreeSet<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s.service,
                s.name,
                s.attr("consumer").or(s.attr("path")).unwrap_or("")
            )
        })
        .collect();
    eprintln!(
        "trace {trace}: {} events {types:?}; spans {summary:#?}",
        events.len()
    );
    assert!(
        spans.iter().any(|s| s.name == "grpc"
            && s.attr("path") == Some("/mahnwerk.v1.InvoiceService/CreateInvoice")),
        "no ingest span in {summary:#?}"
    );
    assert!(
        spans.iter().any(|s| s.name == "relay_publish"),
        "no relay span in {summary:#?}"
    );
    for consumer in ["matching", "dunning", "letters", "collection"] {
        assert!(
            spans
                .iter()
                .any(|s| s.name == "handle_event" && s.attr("consumer") == Some(consumer)),
            "no {consumer} span in {summary:#?}"
        );
    }
    assert!(
        spans.iter().all(|s| s.service == "mahnwerk"),
        "{summary:#?}"
    );
}
