//! Configuration: flags override `MAHNWERK_*` environment variables, which override defaults.

use std::net::SocketAddr;

/// Where the state lives and how to reach the other parts.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Event log and service database: `postgres://…` (production) or `sqlite:PATH?mode=rwc`
    /// (embedded default for one machine).
    #[arg(
        long,
        env = "MAHNWERK_DATABASE_URL",
        default_value = "sqlite:var/mahnwerk.db?mode=rwc"
    )]
    pub database_url: String,
}

/// The services `serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// InvoiceService and CaseService over gRPC, plus the invoice projection.
    Ingest,
    /// The outbox relay from the event log to JetStream.
    Relay,
    /// DunningService over gRPC, the dunning consumer and its scheduler.
    Dunning,
    /// PaymentService over gRPC (bank statements and transactions applied to invoices) and its
    /// open-items projection.
    Matching,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// NATS server with JetStream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// gRPC listen address.
    #[arg(long, env = "MAHNWERK_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Namespace of the JetStream subjects and streams (`<ns>.events.>`, `<NS>_EVENTS`).
    #[arg(long, env = "MAHNWERK_NAMESPACE", default_value = "mahnwerk")]
    pub namespace: String,
    /// Services to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',', env = "MAHNWERK_SERVICES")]
    pub services: Vec<Service>,
    /// Prometheus metrics endpoint (`GET /metrics`); `off` disables it.
    #[arg(
        long,
        env = "MAHNWERK_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: String,
    /// Events the relay reads and publishes per batch.
    #[arg(long, env = "MAHNWERK_RELAY_BATCH", default_value_t = 2000)]
    pub relay_batch: usize,
    /// gRPC requests handled at once over all connections (more wait): bounds memory.
    #[arg(long, env = "MAHNWERK_GRPC_CONCURRENCY", default_value_t = 256)]
    pub grpc_concurrency: usize,
    /// Partitions of the event stream (ADR 005): consumers of every service run one durable
    /// consumer per partition and replicas share them. Fixed when the stream is created; every
    /// instance must use the same value.
    #[arg(long, env = "MAHNWERK_PARTITIONS", default_value_t = 1)]
    pub partitions: u16,
    /// Create a `demo` tenant and print a fresh API key for it (for `make run`).
    #[arg(long)]
    pub demo: bool,
    /// Run on a simulated clock standing at START_DATE (YYYY-MM-DD) that only
    /// `mahnwerk clock advance` moves: for tests and demos, never production. Without it the
    /// system clock is used and AdvanceClock is refused.
    #[arg(long, env = "MAHNWERK_SIMULATED_CLOCK", value_name = "START_DATE")]
    pub simulated_clock: Option<chrono::NaiveDate>,
    /// Federal state (place of performance) of the built-in dunning policies: its holidays
    /// move deadlines and letter dates.
    #[arg(long, env = "MAHNWERK_DUNNING_STATE", default_value = "NW")]
    pub dunning_state: mahnwerk_dunning::law::calendar::FederalState,
    /// gRPC over TLS (rustls): PEM certificate chain of the server (with --tls-key). Without
    /// it gRPC is plain HTTP/2 (behind a TLS-terminating proxy only).
    #[arg(long, env = "MAHNWERK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MAHNWERK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Mutual TLS: PEM CA certificate(s); only clients presenting a certificate it issued may
    /// connect (they still need an API key).
    #[arg(long, env = "MAHNWERK_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

impl ServeArgs {
    pub fn runs(&self, s: Service) -> bool {
        self.services.is_empty() || self.services.contains(&s)
    }

    /// The JetStream names and partitioning every service of this process uses.
    pub fn bus(&self) -> mahnwerk_bus::BusConfig {
        mahnwerk_bus::BusConfig::with_namespace(&self.namespace).with_partitions(self.partitions)
    }
}
