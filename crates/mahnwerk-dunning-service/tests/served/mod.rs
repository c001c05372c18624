//! The dunning service running in-process against the real components, for the gRPC tests:
//! the event log, the relay and JetStream, consumer, scheduler and `DunningService` on
//! 127.0.0.1:0, one simulated clock (see `service.rs`).
#![allow(dead_code)]

use crate::common::*;
use chrono::{Duration, NaiveDate};
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::{BusConfig, Relay};
use mahnwerk_clock::{Clock, SharedClock, SimulatedClock};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::payment::{PaymentApplied, PaymentEvent};
use mahnwerk_domain::{CaseId, InvoiceNumber, Money, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::DunningEvent;
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning_service::grpc::DunningApi;
use mahnwerk_dunning_service::{Config, Dunning, projection};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_client::DunningServiceClient;
use std::sync::Arc;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
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

/// Shared parts of one test: stores, bus namespace, tenant and key, the simulated clock.
pub struct World {
    pub url: String,
    pub log: EventLog,
    pub pool: sqlx::AnyPool,
    pub bus: BusConfig,
    pub js: async_nats::jetstream::Context,
    pub clock: SimulatedClock,
    pub tenant: TenantId,
    pub token: String,
    pub relay: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// One running service instance (consumer + scheduler + gRPC), killed by `abort`.
pub struct Instance {
    pub addr: std::net::SocketAddr,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Instance {
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl World {
    pub async fn new(url: &str, start: &str) -> World {
        let log = EventLog::connect(url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(url).await.unwrap();
        let keys = KeyStore::open(pool.clone()).await.unwrap();
        mahnwerk_dunning_service::ensure_schema(&pool)
            .await
            .unwrap();
        let tenant: TenantId = "acme".parse().unwrap();
        keys.create_tenant(&tenant, "Acme GmbH").await.unwrap();
        let token = keys
            .create_key(std::slice::from_ref(&tenant), "test")
            .await
            .unwrap()
            .token;
        let bus = BusConfig::with_namespace(&unique("d"));
        let js = mahnwerk_bus::connect(&nats_url())
            .await
            .expect("NATS_URL must reach NATS");
        let relay = {
            let (log, js, bus) = (log.clone(), js.clone(), bus.clone());
            tokio::spawn(async move {
                let _ = Relay::new(bus).run(log, js, std::future::pending()).await;
            })
        };
        World {
            url: url.to_owned(),
            log,
            pool,
            bus,
            js,
            clock: SimulatedClock::starting_on(d(start)),
            tenant,
            token,
            relay,
        }
    }

    /// Start an instance on its own connections (as another process would have).
    pub async fn start(&self) -> Instance {
        let log = EventLog::connect(&self.url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(&self.url).await.unwrap();
        let clock: SharedClock = Arc::new(self.clock.clone());
        let dunning = Dunning::new(log, pool.clone(), clock, FederalState::NW);
        let mut config = Config::new(self.bus.clone());
        config.tick = std::time::Duration::from_millis(20);
        let run = {
            let (dunning, js) = (dunning.clone(), self.js.clone());
            tokio::spawn(async move {
                mahnwerk_dunning_service::run(config, dunning, js, std::future::pending())
                    .await
                    .unwrap();
            })
        };
        let api = DunningApi {
            dunning,
            keys: KeyStore::open(pool).await.unwrap(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let grpc = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(mahnwerk_dunning_service::service(api))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Instance {
            addr,
            tasks: vec![run, grpc],
        }
    }

    pub async fn client(
        &self,
        instance: &Instance,
    ) -> DunningServiceClient<tonic::transport::Channel> {
        DunningServiceClient::connect(format!("http://{}", instance.addr))
            .await
            .unwrap()
    }

    pub fn authed<T>(&self, body: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(body);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        req
    }

    pub fn case(&self, number: &str) -> CaseId {
        CaseId::for_invoice(&self.tenant, &number.parse::<InvoiceNumber>().unwrap())
    }

    pub fn stream(&self, number: &str) -> StreamId {
        self.case(number).stream(&self.tenant)
    }

    pub fn event(&self, event_type: &str, payload: serde_json::Value) -> NewEvent {
        NewEvent {
            event_id: event_id_now(),
            event_type: event_type.into(),
            payload,
            occurred_at: self.clock.now(),
            metadata: Metadata {
                actor: "test".into(),
                ..Default::default()
            },
        }
    }

    /// Append another service's fact to a case stream, as ingest or matching would.
    pub async fn append(&self, number: &str, event: NewEvent) {
        self.log
            .append(AppendBatch {
                stream: self.stream(number),
                expected: ExpectedVersion::Any,
                events: vec![event],
            })
            .await
            .unwrap();
    }

    pub async fn issue_many(&self, invoices: &[(String, NaiveDate)]) {
        let batches = invoices
            .iter()
            .map(|(number, due)| AppendBatch {
                stream: self.stream(number),
                expected: ExpectedVersion::NoStream,
                events: vec![
                    self.event(
                        "invoice.issued.v1",
                        CaseEvent::InvoiceIssued(InvoiceIssued {
                            invoice: invoice(number, *due - Duration::days(14), *due),
                        })
                        .to_payload(),
                    ),
                ],
            })
            .collect();
        for r in self.log.append_many(batches).await.unwrap() {
            r.unwrap();
        }
    }

    pub async fn issue_for(&self, number: &str, due: NaiveDate, customer: &str) {
        let e = CaseEvent::InvoiceIssued(InvoiceIssued {
            invoice: invoice_of(number, due - Duration::days(14), due, customer),
        });
        self.append(number, self.event(e.event_type(), e.to_payload()))
            .await;
    }

    pub async fn pay(&self, number: &str, id: &str, minor: i64) {
        let e = PaymentEvent::Applied(PaymentApplied {
            payment_id: id.into(),
            entry_id: id.into(),
            amount: Money::eur(minor),
            booked_on: self.clock.today(),
            rule: "manual".into(),
            open_after: Money::eur(0),
            discount: None,
        });
        self.append(number, self.event(e.event_type(), e.to_payload()))
            .await;
    }

    pub async fn case_event(&self, number: &str, e: CaseEvent) {
        self.append(number, self.event(e.event_type(), e.to_payload()))
            .await;
    }

    /// Until the handler has seen the case's latest fact.
    pub async fn settled_in(&self, number: &str) {
        let stream = self.stream(number);
        let case = self.case(number).to_string();
        wait_for("the handler to see the case", 20, || async {
            let head = self.log.stream_version(&stream).await.unwrap().unwrap_or(0);
            projection::recorded_version(&self.pool, "acme", &case)
                .await
                .unwrap()
                .is_some_and(|v| v >= head)
        })
        .await;
    }

    pub async fn dunning_events(&self, number: &str) -> Vec<DunningEvent> {
        self.log
            .read_stream(&self.stream(number), 1, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| DunningEvent::from_parts(&e.event_type, &e.payload).unwrap())
            .collect()
    }

    /// (step number or 0 for the hand-over, date) of every step and escalation of a case.
    pub async fn steps(&self, number: &str) -> Vec<(u32, NaiveDate)> {
        self.dunning_events(number)
            .await
            .into_iter()
            .filter_map(|e| match e {
                DunningEvent::StepReached(s) => Some((s.number, s.date)),
                DunningEvent::Escalated { escalated_on, .. } => Some((0, escalated_on)),
                _ => None,
            })
            .collect()
    }

    pub async fn due_left(&self, today: NaiveDate) -> i64 {
        let row: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM dunning_next_action WHERE due_on <= $1")
                .bind(today.to_string())
                .fetch_one(&self.pool)
                .await
                .unwrap();
        row.0
    }

    pub async fn opened(&self) -> i64 {
        let row: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM dunning_cases WHERE status <> 'pending'")
                .fetch_one(&self.pool)
                .await
                .unwrap();
        row.0
    }
}

pub fn invoice(number: &str, issue: NaiveDate, due: NaiveDate) -> mahnwerk_domain::Invoice {
    invoice_of(number, issue, due, &format!("K-{number}"))
}

pub fn invoice_of(
    number: &str,
    issue: NaiveDate,
    due: NaiveDate,
    customer: &str,
) -> mahnwerk_domain::Invoice {
    serde_json::from_value(serde_json::json!({
        "number": number, "issue_date": issue.to_string(), "due_date": due.to_string(),
        "currency": "EUR", "net": 10000, "tax": 1900, "gross": 11900,
        "debtor": {"name": "Muster GmbH", "kind": "business",
                   "address": {"street": ["Hauptstr. 1"], "postal_code": "50667", "city": "Köln", "country": "DE"},
                   "language": "de", "customer_number": customer},
        "creditor_account": {"iban": "DE89370400440532013000"}
    }))
    .unwrap()
}
