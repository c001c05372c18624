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
    /// Letters for dunning steps (render, store, email/post, creditor copy) and LetterService.
    Letters,
    /// DunningService over gRPC, the dunning consumer and its scheduler.
    Dunning,
    /// PaymentService over gRPC (bank statements and transactions applied to invoices) and its
    /// open-items projection.
    Matching,
    /// CollectionService over gRPC and the collection consumer (hand-overs to partners).
    Collection,
    /// The creditor console (HTTP, `--console-listen`) and its projection.
    Console,
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
    #[command(flatten)]
    pub letters: Box<LettersArgs>,
    /// gRPC requests handled at once over all connections (more wait): bounds memory.
    #[arg(long, env = "MAHNWERK_GRPC_CONCURRENCY", default_value_t = 256)]
    pub grpc_concurrency: usize,
    /// Partitions of the event stream (ADR 005): consumers of every service run one durable
    /// consumer per partition and replicas share them. Fixed when the stream is created; every
    /// instance must use the same value.
    #[arg(long, env = "MAHNWERK_PARTITIONS", default_value_t = 1)]
    pub partitions: u16,
    /// Replicas of the JetStream streams (events, dead letters, replays, hand-overs), 1 to 5:
    /// at most the cluster's servers (3 on the production cluster). The streams are created
    /// with it, and an existing stream with another count is moved to it at start.
    #[arg(long, env = "MAHNWERK_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
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
    /// A base-rate table (§ 247 BGB) to use instead of the shipped one, in its CSV format
    /// (`valid_from,rate_percent,verified|to_verify,source`): e.g. with a half-year's rate the
    /// Bundesbank published after this build. It must keep every published rate of the shipped
    /// table; refused at start, naming the line or half-year.
    #[arg(long, env = "MAHNWERK_BASE_RATES", value_name = "FILE")]
    pub base_rates: Option<std::path::PathBuf>,
    /// Collection: a filesystem document store to serve letter PDFs and export documents from;
    /// default the store letters and ingest use (`MAHNWERK_DOCUMENTS_*`: filesystem or S3).
    #[arg(long)]
    pub collection_documents_dir: Option<std::path::PathBuf>,
    /// The creditor console's HTTP listen address.
    #[arg(
        long,
        env = "MAHNWERK_CONSOLE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub console_listen: SocketAddr,
    /// The gRPC endpoint the console calls the services on (default: this process's own).
    #[arg(long, env = "MAHNWERK_CONSOLE_GRPC")]
    pub console_grpc: Option<String>,
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
    /// Mutual TLS: a file binding client certificates to tenants like API keys, one
    /// `<sha-256 fingerprint> <tenant>[,<tenant>…]` per line. Such a certificate authenticates
    /// alone for its tenants, and an API key sent with it acts only for the tenants both share.
    #[arg(long, env = "MAHNWERK_TLS_CLIENT_TENANTS", requires = "tls_client_ca")]
    pub tls_client_tenants: Option<std::path::PathBuf>,
}

impl ServeArgs {
    pub fn runs(&self, s: Service) -> bool {
        self.services.is_empty() || self.services.contains(&s)
    }

    /// The JetStream names and partitioning every service of this process uses.
    pub fn bus(&self) -> mahnwerk_bus::BusConfig {
        mahnwerk_bus::BusConfig::with_namespace(&self.namespace)
            .with_partitions(self.partitions)
            .with_replicas(self.stream_replicas)
    }
}

/// The letters service: document store, SMTP and post spool.
#[derive(Debug, Clone, clap::Args)]
pub struct LettersArgs {
    /// Directory of the filesystem document store (used unless an S3 bucket is set).
    #[arg(long, env = "MAHNWERK_DOCUMENTS_DIR", default_value = "var/documents")]
    pub documents_dir: std::path::PathBuf,
    /// S3-compatible bucket for documents; enables the S3 store.
    #[arg(long, env = "MAHNWERK_DOCUMENTS_S3_BUCKET")]
    pub documents_s3_bucket: Option<String>,
    /// S3 endpoint (MinIO, Ceph, …); AWS when unset.
    #[arg(long, env = "MAHNWERK_DOCUMENTS_S3_ENDPOINT")]
    pub documents_s3_endpoint: Option<String>,
    #[arg(
        long,
        env = "MAHNWERK_DOCUMENTS_S3_REGION",
        default_value = "eu-central-1"
    )]
    pub documents_s3_region: String,
    #[arg(
        long,
        env = "MAHNWERK_DOCUMENTS_S3_PREFIX",
        default_value = "documents/"
    )]
    pub documents_s3_prefix: String,
    #[arg(
        long,
        env = "MAHNWERK_DOCUMENTS_S3_ACCESS_KEY_ID",
        default_value = "",
        hide_env_values = true
    )]
    pub documents_s3_access_key_id: String,
    #[arg(
        long,
        env = "MAHNWERK_DOCUMENTS_S3_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub documents_s3_secret_access_key: String,
    /// SMTP server for letters by email; without it emails fall back to post.
    #[arg(long, env = "MAHNWERK_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "MAHNWERK_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    #[arg(long, env = "MAHNWERK_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,
    #[arg(long, env = "MAHNWERK_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "MAHNWERK_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Spool directory of the print-and-mail provider (PDF + JSON job per letter).
    #[arg(long, env = "MAHNWERK_POST_SPOOL", default_value = "var/post-spool")]
    pub post_spool: std::path::PathBuf,
}

impl Default for LettersArgs {
    /// The defaults (and `MAHNWERK_…` variables) as `serve` would read them.
    fn default() -> Self {
        use clap::{Args, FromArgMatches};
        let m =
            LettersArgs::augment_args(clap::Command::new("letters")).get_matches_from(["letters"]);
        LettersArgs::from_arg_matches(&m).expect("the letters defaults parse")
    }
}

impl LettersArgs {
    /// The document store (`MAHNWERK_DOCUMENTS_*`), shared by letters and ingest.
    pub fn documents(&self) -> mahnwerk_docstore::DocumentConfig {
        use mahnwerk_docstore::{DocumentConfig, S3Config};
        match &self.documents_s3_bucket {
            Some(bucket) => DocumentConfig::S3(S3Config {
                endpoint: self.documents_s3_endpoint.clone(),
                bucket: bucket.clone(),
                region: self.documents_s3_region.clone(),
                access_key_id: self.documents_s3_access_key_id.clone(),
                secret_access_key: self.documents_s3_secret_access_key.clone(),
                prefix: self.documents_s3_prefix.clone(),
            }),
            None => DocumentConfig::Fs(self.documents_dir.clone()),
        }
    }

    /// The letters service configuration; errors name the variable.
    pub fn config(
        &self,
        bus: mahnwerk_bus::BusConfig,
    ) -> anyhow::Result<mahnwerk_letters_service::Config> {
        use mahnwerk_letters_service::channels::{SmtpConfig, SmtpTls};
        let mut c = mahnwerk_letters_service::Config::new(bus);
        c.documents = self.documents();
        let tls = match self.smtp_tls.as_str() {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            other => anyhow::bail!("MAHNWERK_SMTP_TLS: {other:?} is not none, starttls or tls"),
        };
        c.smtp = self.smtp_host.as_ref().map(|host| SmtpConfig {
            host: host.clone(),
            port: self.smtp_port,
            tls,
            username: self.smtp_username.clone(),
            password: self.smtp_password.clone(),
            timeout: None,
        });
        c.spool_dir = self.post_spool.clone();
        Ok(c)
    }
}

/// The document store configured by the environment alone (`MAHNWERK_DOCUMENTS_*`, the same
/// variables and defaults as `serve`), for CLI commands that read documents.
pub fn documents_from_env() -> anyhow::Result<mahnwerk_docstore::DocumentConfig> {
    use clap::{Args, FromArgMatches};
    let matches = LettersArgs::augment_args(clap::Command::new("documents"))
        .try_get_matches_from(["documents"])?;
    Ok(LettersArgs::from_arg_matches(&matches)?.documents())
}
