//! # Mahnwerk letters service
//!
//! Every dunning step becomes a white-label letter: rendered by the pure core
//! (`mahnwerk-letters`), stored content-addressed, sent by email or post with a copy to the
//! creditor, exactly once, and recorded on the case stream (`letter.rendered.v1`,
//! `letter.dispatched.v1`, `letter.failed.v1`, `letter.copy_sent.v1`, `letter.suppressed.v1`).
//!
//! # Layout
//! - [`handler`]: the consumer-library handler: invoice projection and ledger intents.
//! - [`dispatch`]: the worker that renders, checks the case, sends and reports.
//! - [`store`]: the service's tables (projection, steps, dispatch ledger, creditor inbox).
//! - [`mapping`]: the one mapping from a step and its invoice to the letter model (pure).
//! - [`case_file`]: settled / paused / disputed / ended, folded from the case stream (pure).
//! - [`channels`]: SMTP (lettre) and the post spool.
//! - [`pickup`]: a print shop's pickup of the spool (`mahnwerk spool pickup`): opened, handed
//!   out in clear, marked by a receipt.
//! - [`documents`]: the content-addressed document store (`mahnwerk-docstore`: filesystem,
//!   S3-compatible).
//! - [`tenant`]: letterhead, sender settings and template overrides, versioned as events.
//! - [`service`]: `LetterService` over gRPC.
//!
//! # Invariants
//! - No letter is sent twice: `sending` is committed before a channel is called; a row found
//!   `sending` at start is `unknown` and only an operator's `Resend` sends again.
//! - No letter for a case settled, paused, disputed or ended before the send: the case stream
//!   is read just before, and `letter.rendered.v1` is appended with the version read.
//! - The log never holds document bytes, only their SHA-256. No personal data in logs.
//! - Depends on no other service crate; meets them in the log and on the bus.

pub mod case_file;
pub mod channels;
pub mod dispatch;
/// The content-addressed document store (re-exported from `mahnwerk-docstore`).
pub use mahnwerk_docstore as documents;
pub mod error;
pub mod handler;
pub mod mapping;
pub mod pickup;
pub mod service;
pub mod store;
pub mod tenant;

pub use error::{Error, Result};

use channels::{PostSpool, SmtpConfig, SmtpSender};
use documents::Documents;
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig};
use mahnwerk_eventlog::EventLog;
use sqlx::AnyPool;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub use mahnwerk_docstore::DocumentConfig;

/// The letters service's configuration (see `mahnwerk serve` for the `MAHNWERK_…` variables).
#[derive(Debug, Clone)]
pub struct Config {
    /// JetStream names (namespace).
    pub bus: BusConfig,
    /// Durable consumer name.
    pub consumer: String,
    pub documents: DocumentConfig,
    /// `None`: emails fail permanently (and fall back to post).
    pub smtp: Option<SmtpConfig>,
    pub spool_dir: PathBuf,
    pub concurrency: usize,
    pub retry_backoff: Duration,
    /// How long JetStream waits for an ack before redelivering (after a crash).
    pub ack_wait: Duration,
}

impl Config {
    pub fn new(bus: BusConfig) -> Self {
        Self {
            bus,
            consumer: "letters".into(),
            documents: DocumentConfig::Fs(PathBuf::from("var/documents")),
            smtp: None,
            spool_dir: PathBuf::from("var/post-spool"),
            concurrency: 16,
            retry_backoff: Duration::from_secs(5),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// The parts `run` and the gRPC service share; build once with [`Letters::open`].
#[derive(Clone)]
pub struct Parts {
    pub config: Config,
    pub docs: Documents,
    pub renderers: tenant::Renderers,
    pub wake: Arc<Notify>,
}

impl Parts {
    /// Create the tables and open the document store.
    pub async fn open(config: Config, pool: &AnyPool) -> Result<Self> {
        store::ensure_schema(pool).await?;
        mahnwerk_bus::consumer::ensure_inbox(pool)
            .await
            .map_err(|e| Error::Precondition(format!("inbox table: {e}")))?;
        let docs: Documents = config.documents.open()?;
        Ok(Self {
            config,
            docs,
            renderers: tenant::Renderers::default(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// The gRPC service.
    pub fn service(
        &self,
        log: EventLog,
        keys: KeyStore,
        pool: AnyPool,
    ) -> mahnwerk_proto::v1::letter_service_server::LetterServiceServer<service::Letters> {
        mahnwerk_proto::v1::letter_service_server::LetterServiceServer::new(service::Letters {
            log,
            keys,
            pool,
            docs: self.docs.clone(),
            renderers: self.renderers.clone(),
            wake: self.wake.clone(),
        })
    }
}

/// Consume case events and dispatch letters until `shutdown`: the consumer (invoice projection,
/// ledger intents) and the dispatch worker run side by side; both stop on `shutdown`.
pub async fn run(
    parts: Parts,
    log: EventLog,
    pool: AnyPool,
    js: async_nats::jetstream::Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let smtp = parts
        .config
        .smtp
        .as_ref()
        .map(SmtpSender::new)
        .transpose()
        .map_err(|e| Error::invalid("smtp", e))?;
    let dispatcher = dispatch::Dispatcher {
        log,
        pool: pool.clone(),
        docs: parts.docs.clone(),
        smtp,
        spool: PostSpool {
            dir: parts.config.spool_dir.clone(),
        },
        renderers: parts.renderers.clone(),
        wake: parts.wake.clone(),
        concurrency: parts.config.concurrency,
        render_slots: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, usize::from),
        )),
        retry_backoff: parts.config.retry_backoff,
    };
    let mut consumer_config =
        ConsumerConfig::with_filters(&parts.config.consumer, &parts.config.bus, &handler::FILTERS);
    consumer_config.ack_wait = parts.config.ack_wait;
    let consumer = Consumer {
        config: consumer_config,
        bus: parts.config.bus.clone(),
        pool,
        handler: handler::LettersHandler {
            wake: parts.wake.clone(),
        },
    };
    // One task for both halves, so aborting `run` stops everything (as a crash would).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (c, d, ()) = tokio::join!(
        consumer.run(js, stopped(stop_rx.clone())),
        dispatcher.run(stopped(stop_rx)),
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    );
    c.map_err(|e| Error::Precondition(format!("consumer: {e}")))?;
    d
}
