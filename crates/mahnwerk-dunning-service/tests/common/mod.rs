//! Setup shared by the dunning service's tests: dates, fresh databases (SQLite, plus
//! PostgreSQL when DATABASE_URL is set), unique names, and `World` (the service on a simulated
//! clock over a real log, with invoice and case-stream helpers).
#![allow(dead_code)]

use chrono::NaiveDate;
use mahnwerk_clock::{Clock, SharedClock, SimulatedClock};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, InvoiceNumber, TenantId};
use mahnwerk_dunning::dunning_case::{DunningEvent, StepReached};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning_service::Dunning;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use std::sync::Arc;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// `prefix` followed by 12 random hex characters.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// SQLite in `dir`, plus a fresh PostgreSQL database when DATABASE_URL is set.
pub async fn databases(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = unique("mwd_");
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

/// A business invoice of 119.00 EUR issued 2026-12-01 (debtor in `region`, ISO 3166-2).
pub fn invoice(number: &str, due: &str, region: Option<&str>) -> mahnwerk_domain::Invoice {
    let mut address = serde_json::json!({"street": ["Hauptstr. 1"], "postal_code": "80331", "city": "München", "country": "DE"});
    if let Some(r) = region {
        address["region"] = r.into();
    }
    let invoice: mahnwerk_domain::Invoice = serde_json::from_value(serde_json::json!({
        "number": number, "issue_date": "2026-12-01", "due_date": due,
        "currency": "EUR", "net": 10000, "tax": 1900, "gross": 11900,
        "debtor": {"name": "Muster GmbH", "kind": "business", "address": address,
                   "language": "de", "customer_number": format!("K-{number}")},
        "creditor_account": {"iban": "DE89370400440532013000"}
    }))
    .unwrap();
    assert!(invoice.check().is_empty(), "{:?}", invoice.check());
    invoice
}

/// The dunning service on a simulated clock from 2026-12-01 over a real log, tenant acme in NW.
pub struct World {
    pub dunning: Dunning,
    pub log: EventLog,
    pub clock: SimulatedClock,
    pub tenant: TenantId,
}

impl World {
    pub async fn new(url: &str) -> World {
        let log = EventLog::connect(url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(url).await.unwrap();
        mahnwerk_dunning_service::ensure_schema(&pool)
            .await
            .unwrap();
        let clock = SimulatedClock::starting_on(d("2026-12-01"));
        let shared: SharedClock = Arc::new(clock.clone());
        World {
            dunning: Dunning::new(log.clone(), pool, shared, FederalState::NW),
            log,
            clock,
            tenant: "acme".parse().unwrap(),
        }
    }

    pub fn case(&self, number: &str) -> CaseId {
        CaseId::for_invoice(&self.tenant, &number.parse::<InvoiceNumber>().unwrap())
    }

    /// Ingest's event, then the service opens the case (what the handler's wake-up does).
    pub async fn issue(&self, number: &str, due: &str, region: Option<&str>) {
        self.issue_invoice(invoice(number, due, region)).await;
        let done = self.reconcile(number).await;
        assert_eq!(done, ["dunning.case_opened.v1"], "{number}");
    }

    /// Append `invoice.issued.v1` of `invoice` on its case stream.
    pub async fn issue_invoice(&self, invoice: mahnwerk_domain::Invoice) {
        let e = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
        let number = match &e {
            CaseEvent::InvoiceIssued(i) => i.invoice.number.to_string(),
            _ => unreachable!(),
        };
        self.append(&number, e.event_type(), e.to_payload()).await;
    }

    /// Append one event to a case stream, as another service would.
    pub async fn append(&self, number: &str, event_type: &str, payload: serde_json::Value) {
        self.log
            .append(AppendBatch {
                stream: self.case(number).stream(&self.tenant),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: event_type.into(),
                    payload,
                    occurred_at: self.clock.now(),
                    metadata: Metadata {
                        actor: "test".into(),
                        ..Default::default()
                    },
                }],
            })
            .await
            .unwrap();
    }

    /// What the handler's wake-up does for a case: the pending facts, no step. The types appended.
    pub async fn reconcile(&self, number: &str) -> Vec<String> {
        self.dunning
            .reconcile(
                &self.tenant,
                self.case(number),
                None,
                false,
                self.clock.today(),
            )
            .await
            .unwrap()
            .appended
            .iter()
            .map(|t| t.to_string())
            .collect()
    }

    /// The case's folded dunning state.
    pub async fn state(&self, number: &str) -> mahnwerk_dunning::dunning_case::DunningCase {
        let folded = self
            .dunning
            .read_case(&self.case(number).stream(&self.tenant))
            .await
            .unwrap();
        folded.state.unwrap()
    }

    /// The day default starts from (§ 286), if it does.
    pub async fn default_trigger(&self, number: &str) -> Option<NaiveDate> {
        self.state(number).await.default().map(|d| d.trigger)
    }

    pub async fn events(&self, number: &str) -> Vec<DunningEvent> {
        self.log
            .read_stream(&self.case(number).stream(&self.tenant), 1, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| DunningEvent::from_parts(&e.event_type, &e.payload).unwrap())
            .collect()
    }
}

/// `invoice.issued.v1` of a consumer invoice of 119.00 EUR issued 2026-03-01 to `customer`.
pub fn issued(number: &str, customer: &str, due: NaiveDate) -> NewEvent {
    let invoice = serde_json::from_value(serde_json::json!({
        "number": number, "issue_date": "2026-03-01", "due_date": due.to_string(),
        "currency": "EUR", "net": 10000, "tax": 1900, "gross": 11900,
        "debtor": {"name": "Erika Mustermann", "kind": "consumer",
                   "address": {"street": ["Heidestraße 17"], "postal_code": "51147", "city": "Köln", "country": "DE"},
                   "language": "de", "customer_number": customer},
        "creditor_account": {"iban": "DE89370400440532013000"}
    }))
    .unwrap();
    let e = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    NewEvent {
        event_id: event_id_now(),
        event_type: e.event_type().into(),
        payload: e.to_payload(),
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

/// The steps reached on a case stream.
pub async fn steps(log: &EventLog, tenant: &TenantId, case: CaseId) -> Vec<StepReached> {
    log.read_stream(&case.stream(tenant), 1, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(
            |e| match DunningEvent::from_parts(&e.event_type, &e.payload) {
                Ok(Some(DunningEvent::StepReached(s))) => Some(*s),
                _ => None,
            },
        )
        .collect()
}
