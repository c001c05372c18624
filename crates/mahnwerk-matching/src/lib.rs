//! # Matching service
//!
//! Bank statements (camt.052/053/054, MT940, CSV) and single transactions come in; each payment
//! is applied to the right invoice's case stream, or goes to review. Precision over recall: a
//! payment applied to a wrong invoice is worse than one left for a person.
//!
//! ## Layout
//! - [`engine`]: the pure matching engine (open items + bank entry → decision with its rule and
//!   reasons). No IO, no clock.
//! - [`text`]: RF references, invoice numbers and names read out of remittance text.
//! - [`entry`]: bank entries from the statement parsers, and their stable identity.
//! - [`events`]: the events of an entry's stream `{tenant}/statement/{entry id}`.
//! - [`apply`]: recording entries and applying decisions to case streams, exactly once.
//! - [`projection`]: the open-items and review-queue tables, kept by a consumer [`Handler`].
//! - [`service`]: `PaymentService` over gRPC.
//! - [`settings`]: per-tenant settings (the review threshold) on the tenant's settings stream.
//! - [`cli`]: `mahnwerk match`, the offline dry run of the engine, and `mahnwerk import statement`.
//! - [`review_cli`]: `mahnwerk review`, the review queue of a running mahnwerk.
//!
//! [`Handler`]: mahnwerk_bus::Handler
//!
//! ## Invariants
//! The engine never applies a payment in another currency, to a closed case, or on evidence below
//! the tenant's threshold. Personal data (names, IBANs, texts) never reaches a log line.

pub mod apply;
pub mod cli;
pub mod engine;
pub mod entry;
pub mod error;
pub mod events;
pub mod projection;
pub mod review_cli;
pub mod service;
pub mod settings;
pub mod text;

pub use engine::{BankEntry, Decision, OpenItem, OpenItems, Outcome, Rule, Settings, decide};
pub use error::{Error, Result};
pub use service::Matching;

use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig};
use mahnwerk_proto::v1::payment_service_server::PaymentServiceServer;
use std::future::Future;

/// Configuration of the matching service's background work.
#[derive(Debug, Clone)]
pub struct MatchingConfig {
    pub bus: BusConfig,
    /// Durable consumer name (also the inbox key).
    pub consumer: String,
}

impl MatchingConfig {
    pub fn new(bus: BusConfig) -> Self {
        Self {
            bus,
            consumer: "matching".into(),
        }
    }
}

/// Create the matching tables (and the consumer inbox).
pub async fn ensure_schema(pool: &sqlx::AnyPool) -> std::result::Result<(), sqlx::Error> {
    projection::ensure_schema(pool).await?;
    mahnwerk_bus::consumer::ensure_inbox(pool)
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))
}

/// Keep the open-items projection and the review queue from the events until `shutdown`.
pub async fn run(
    config: MatchingConfig,
    pool: sqlx::AnyPool,
    js: async_nats::jetstream::Context,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), mahnwerk_bus::Error> {
    projection::ensure_schema(&pool).await?;
    let consumer = Consumer {
        config: ConsumerConfig::new(&config.consumer, &config.bus, ">"),
        bus: config.bus,
        pool,
        handler: projection::Projection,
    };
    consumer.run(js, shutdown).await
}

/// The gRPC service, ready to add to a tonic router.
pub fn service(matching: Matching) -> PaymentServiceServer<Matching> {
    PaymentServiceServer::new(matching).max_decoding_message_size(16 * 1024 * 1024)
}
