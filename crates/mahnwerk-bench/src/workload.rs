//! The realistic workload every row shares: invoices as a billing platform sends them, and the
//! `invoice.issued.v1` events ingest turns them into (≈0.5 kB of JSON each).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, InvoiceNumber, StreamId, TenantId};
use mahnwerk_eventlog::{AppendBatch, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;

const CITIES: &[(&str, &str)] = &[
    ("10115", "Berlin"),
    ("20095", "Hamburg"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("60311", "Frankfurt am Main"),
    ("70173", "Stuttgart"),
];
const STREETS: &[&str] = &[
    "Hauptstraße",
    "Bahnhofstraße",
    "Gartenweg",
    "Lindenallee",
    "Am Markt",
];
const NAMES: &[&str] = &[
    "Müller Haustechnik GmbH",
    "Erika Mustermann",
    "Schneider & Söhne KG",
    "Jonas Becker",
    "Fischer Logistik AG",
];

/// The `i`-th invoice of a run; `run` keeps invoice numbers unique across runs.
pub fn proto_invoice(run: &str, i: u64) -> pb::Invoice {
    let pick = |xs: usize| usize::try_from(i % u64::try_from(xs).unwrap_or(1)).unwrap_or(0);
    let (postal_code, city) = CITIES[pick(CITIES.len())];
    let net = 10_000 + i64::try_from(i % 900_000).unwrap_or(0) * 7;
    let tax = net * 19 / 100;
    let consumer = i.is_multiple_of(3);
    pb::Invoice {
        invoice_number: format!("RE-{run}-{i:09}"),
        issue_date: "2026-11-02".into(),
        due_date: "2026-11-16".into(),
        currency: "EUR".into(),
        net_amount: net,
        tax_amount: tax,
        gross_amount: net + tax,
        debtor: Some(pb::Debtor {
            name: NAMES[pick(NAMES.len())].into(),
            kind: if consumer {
                pb::DebtorKind::Consumer
            } else {
                pb::DebtorKind::Business
            }
            .into(),
            address: Some(pb::PostalAddress {
                street: vec![format!("{} {}", STREETS[pick(STREETS.len())], 1 + i % 180)],
                postal_code: postal_code.into(),
                city: city.into(),
                country: "DE".into(),
                region: String::new(),
            }),
            email: format!("buchhaltung+{i}@kunde-{}.example", i % 9973),
            language: "de".into(),
            customer_number: format!("K-{:07}", i % 250_000),
            vat_id: if consumer {
                String::new()
            } else {
                "DE123456789".into()
            },
        }),
        payment_reference: format!("RF18{i:020}"),
        creditor_account: Some(pb::BankAccount {
            iban: "DE89370400440532013000".into(),
            bic: "COBADEFFXXX".into(),
            holder: "Beispiel Versorgung GmbH".into(),
        }),
        default_notice: consumer,
        ..Default::default()
    }
}

/// One generated event: where it goes and what it says.
pub struct GenEvent {
    pub stream: StreamId,
    pub event: NewEvent,
}

/// The `invoice.issued.v1` event ingest writes for [`proto_invoice`]`(run, i)`.
pub fn issued_event(
    run: &str,
    tenant: &TenantId,
    i: u64,
    stream: Option<StreamId>,
) -> Result<GenEvent> {
    let p = proto_invoice(run, i);
    let invoice = mahnwerk_ingest::convert::invoice_from_proto(&p, "invoice")
        .map_err(|e| anyhow::anyhow!("generated invoice {i} invalid: {e:?}"))?;
    let number: InvoiceNumber = p.invoice_number.parse().context("invoice number")?;
    let stream = stream.unwrap_or_else(|| CaseId::for_invoice(tenant, &number).stream(tenant));
    let event = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    Ok(GenEvent {
        stream,
        event: NewEvent {
            event_id: event_id_now(),
            event_type: event.event_type().to_owned(),
            payload: event.to_payload(),
            occurred_at: now_micros(),
            metadata: Metadata {
                correlation_id: Some(format!("import-{run}-{}", i / 1000)),
                causation_id: Some(format!("request:{run}-{}", i / 1000)),
                actor: "key:bench".into(),
                traceparent: None,
            },
        },
    })
}

fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// B1's spread over streams: event `i` goes to case stream `i % streams`, so every stream gets
/// several events and every append checks a real expected version. Stream ids are real case
/// ids (UUIDv5 of tenant and invoice number, as ingest makes them), so index inserts land at
/// random places as they do in production, not in a convenient sorted order.
pub struct StreamSpread {
    pub run: String,
    pub tenant: TenantId,
    pub streams: u64,
    versions: Vec<u64>,
}

impl StreamSpread {
    pub fn new(run: &str, tenant: TenantId, streams: u64) -> Self {
        Self {
            run: run.to_owned(),
            tenant,
            streams,
            versions: vec![0; usize::try_from(streams).unwrap_or(0)],
        }
    }

    /// Events `from..to` as one-event batches with exact expected versions.
    pub fn batches(&mut self, from: u64, to: u64) -> Result<Vec<AppendBatch>> {
        (from..to)
            .map(|i| {
                let s = i % self.streams;
                let number: InvoiceNumber = format!("{}-{s}", self.run)
                    .parse()
                    .context("invoice number")?;
                let stream = CaseId::for_invoice(&self.tenant, &number).stream(&self.tenant);
                let g = issued_event(&self.run, &self.tenant, i, Some(stream))?;
                let slot = self
                    .versions
                    .get_mut(usize::try_from(s).unwrap_or(0))
                    .context("stream slot")?;
                let expected = if *slot == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(*slot)
                };
                *slot += 1;
                Ok(AppendBatch {
                    stream: g.stream,
                    expected,
                    events: vec![g.event],
                })
            })
            .collect()
    }
}
