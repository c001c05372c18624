//! # Collection service
//!
//! When letters do not help, the case goes to a collection partner (Inkasso) with its complete
//! file, and the creditor keeps control: partners per tenant, hand-over on `dunning.escalated.v1`
//! (automatically or after an operator's approval), the partner's reports back, recall and
//! write-off. Downstream collectors receive hand-overs on a public subject per partner,
//! `<ns>.collection.{tenant}.{partner subject token}.handover` (stream `<NS>_COLLECTION`).
//!
//! # Layout
//! - [`engine`]: pure: partner selection, the claim, the hand-over and report state machine.
//! - [`archive`]: pure: the case export (tar) and its offline check.
//! - [`summary`]: the export's one-page `summary.pdf` (data pure; laid out by the letters'
//!   typst engine).
//! - [`casefile`]: pure: a case stream folded, and the complete case file of a hand-over.
//! - [`service`]: [`Collection`]: read, decide, append with the expected version; partners as
//!   `{tenant}/partner/{id}` streams; the document store (the letters service's layout).
//! - [`handler`]: the bus handler (escalation → hand-over; hand-over, recall, reports, costs
//!   waived and closing → the partner's public subject).
//! - [`store`]: the service's tables.
//! - [`grpc`]: the `CollectionService` handlers (tenant keys and partner keys).
//! - [`error`]: the error type and its gRPC mapping.
//!
//! # Invariants
//! Only this service writes `case.handed_over.v1`, `collection.*` and `case.closed.v1`, always
//! decided by [`engine::decide`] on the whole case stream and appended with its expected version.
//! A partner key reads and reports only on cases handed over to its partner; a refused report
//! appends nothing. No personal data in logs.

pub mod archive;
pub mod casefile;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod handler;
pub mod service;
pub mod store;
pub mod summary;

pub use error::{Error, Result};
pub use service::{Collection, Subjects};

use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig};
use mahnwerk_docstore::DocumentConfig;
use mahnwerk_proto::v1::collection_service_server::CollectionServiceServer;
use std::future::Future;
use std::path::PathBuf;

/// Settings of the background work.
#[derive(Debug, Clone)]
pub struct Config {
    pub bus: BusConfig,
    /// Durable consumer name (shared by replicas).
    pub consumer: String,
    /// The document store shared with letters and ingest (letter PDFs, original e-invoices);
    /// default the filesystem store at `MAHNWERK_DOCUMENTS_DIR`, else `var/documents`.
    pub documents: DocumentConfig,
}

impl Config {
    pub fn new(bus: BusConfig) -> Self {
        Self {
            bus,
            consumer: "collection".into(),
            documents: DocumentConfig::Fs(
                std::env::var_os("MAHNWERK_DOCUMENTS_DIR")
                    .map_or_else(|| PathBuf::from("var/documents"), PathBuf::from),
            ),
        }
    }
}

/// Create the service's tables (and the consumer inbox and the partner key table).
pub async fn ensure_schema(pool: &sqlx::AnyPool) -> std::result::Result<(), sqlx::Error> {
    store::ensure_schema(pool).await?;
    mahnwerk_auth::partner::PartnerKeys::open(pool.clone())
        .await
        .map_err(|e| match e {
            mahnwerk_auth::Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    mahnwerk_bus::consumer::ensure_inbox(pool)
        .await
        .map_err(|e| match e {
            mahnwerk_bus::Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })
}

/// The consumer (hand-overs and their publication), until `shutdown`.
pub async fn run(
    config: Config,
    collection: Collection,
    js: async_nats::jetstream::Context,
    shutdown: impl Future<Output = ()> + Send,
) -> std::result::Result<(), mahnwerk_bus::Error> {
    ensure_schema(collection.pool()).await?;
    let subjects = Subjects::of(&config.bus);
    subjects
        .ensure(&js)
        .await
        .map_err(|e| mahnwerk_bus::Error::Nats(e.to_string()))?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let consumer = Consumer {
        config: ConsumerConfig::new(&config.consumer, &config.bus, handler::FILTER),
        bus: config.bus.clone(),
        pool: collection.pool().clone(),
        handler: handler::CaseHandler {
            wake: wake.clone(),
            js: js.clone(),
            subjects,
            log: collection.log().clone(),
        },
    };
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let worker = collection.work(wake, shutdown.clone());
    let (consumed, ()) = tokio::join!(consumer.run(js, shutdown), worker);
    consumed
}

/// The gRPC service, ready to add to the shared tonic server.
pub fn service(api: grpc::CollectionApi) -> CollectionServiceServer<grpc::CollectionApi> {
    CollectionServiceServer::new(api)
}
