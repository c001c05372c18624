//! # Dunning service
//!
//! Runs the pure dunning core (`mahnwerk-dunning`) against the case file: every overdue case
//! gets the right step on the right day, exactly once, under the policy it was opened with.
//!
//! How it meets that:
//! - **Exactly once**: every `dunning.*` event is appended to the case stream with the expected
//!   version the decision was made on; a conflict re-reads and decides again (a case settled in
//!   between gets nothing). Two replicas, or a restart in the middle of a pass, can therefore
//!   never append the same step twice, and since the next action is only moved past today after
//!   the append, a crash never loses a step.
//! - **Facts**: payments, disputes, credits… are read from the case stream itself and translated
//!   into core commands in the same batch (see [`facts`]): the scheduler never decides on an
//!   outdated view of the case.
//! - **Wake-up**: the consumer handler records each case's next action in
//!   `dunning_next_action(tenant, case_id, due_on)`; the scheduler only queries
//!   `due_on <= today` on its index, never all cases. A pass decides a batch of due cases,
//!   then appends every decision in one group commit (each with its own expected version).
//! - **Time**: every date comes from one [`mahnwerk_clock::Clock`]; with a simulated clock,
//!   `AdvanceClock` moves it day by day and runs each day's pass before answering.
//!
//! # Layout
//! - [`facts`]: pure: case-stream events → core commands, pending facts, [`facts::plan`]; the
//!   debtor's federal state from its address's region (`CaseFacts::from_invoice`).
//! - [`engine`]: [`Dunning`]: reconcile a case (read, decide, append, record), scheduler passes.
//! - [`pass`]: the scheduler pass: due cases in batches of whole debtors, one group commit each.
//! - [`consolidation`]: a debtor's steps due the same day as one letter ("Sammelmahnung").
//! - [`handler`]: the bus handler (facts → next action).
//! - [`projection`]: the service's tables.
//! - [`policies`]: tenant policies as `{tenant}/policy/{id}` streams.
//! - [`assignments`]: policy overrides per debtor group and per debtor.
//! - [`grpc`]: the `DunningService` handlers.
//! - [`error`]: the error type and its gRPC mapping.
//!
//! # Invariants
//! Only this service writes `dunning.*` events, and only through [`Dunning::reconcile`]. The
//! handler never appends. No personal data in logs.

pub mod assignments;
pub mod consolidation;
pub mod engine;
pub mod error;
pub mod facts;
pub mod grpc;
pub mod handler;
pub mod pass;
pub mod policies;
pub mod projection;

pub use engine::Dunning;
pub use error::{Error, Result};

use futures::FutureExt;
use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig};
use mahnwerk_proto::v1::dunning_service_server::DunningServiceServer;
use std::future::Future;
use std::time::Duration;

/// Settings of the background work.
#[derive(Debug, Clone)]
pub struct Config {
    pub bus: BusConfig,
    /// Durable consumer name (shared by replicas).
    pub consumer: String,
    /// The scheduler looks for due cases at least this often.
    pub tick: Duration,
}

impl Config {
    pub fn new(bus: BusConfig) -> Self {
        Self {
            bus,
            consumer: "dunning".into(),
            tick: Duration::from_secs(1),
        }
    }
}

/// Create the service's tables (and the consumer inbox).
pub async fn ensure_schema(pool: &sqlx::AnyPool) -> std::result::Result<(), sqlx::Error> {
    projection::ensure_schema(pool).await?;
    mahnwerk_bus::consumer::ensure_inbox(pool)
        .await
        .map_err(|e| match e {
            mahnwerk_bus::Error::Database(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })
}

/// The consumer handler and the scheduler, until `shutdown`.
pub async fn run(
    config: Config,
    dunning: Dunning,
    js: async_nats::jetstream::Context,
    shutdown: impl Future<Output = ()> + Send,
) -> std::result::Result<(), mahnwerk_bus::Error> {
    ensure_schema(dunning.pool()).await?;
    let shutdown = shutdown.shared();
    let consumer = Consumer {
        config: ConsumerConfig::new(&config.consumer, &config.bus, handler::FILTER),
        bus: config.bus.clone(),
        pool: dunning.pool().clone(),
        handler: handler::CaseHandler {
            dunning: dunning.clone(),
        },
    };
    let scheduler = dunning.schedule(config.tick, shutdown.clone());
    let (consumed, ()) = tokio::join!(consumer.run(js, shutdown), scheduler);
    consumed
}

/// The gRPC service, ready to add to the shared tonic server.
pub fn service(api: grpc::DunningApi) -> DunningServiceServer<grpc::DunningApi> {
    DunningServiceServer::new(api)
}
