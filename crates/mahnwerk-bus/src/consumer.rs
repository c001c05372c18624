//! The consumer library every service uses to handle events.
//!
//! A durable pull consumer with explicit acks. For each message, in order:
//! 1. open a transaction on the service's own database and insert `(consumer, event_id)` into
//!    `bus_inbox`; if it is already there the event was handled before (a redelivery after a
//!    crash between commit and ack): ack and move on;
//! 2. run the handler inside that transaction, commit, then ack (awaiting the server's
//!    confirmation);
//! 3. a failing handler is retried in place with backoff (so per-case order holds), at most
//!    `max_attempts` times; then the event goes to the dead-letter subject with the error, is
//!    terminated on the consumer and the consumer moves on.

use crate::envelope::Envelope;
use crate::{BusConfig, Result, nats_err};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use futures::StreamExt;
use sqlx::{Any, AnyPool, Transaction};
use std::future::Future;
use std::time::Duration;

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (database or network trouble).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (a malformed or unexpected event): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Transient(e.to_string())
    }
}

/// A service's reaction to events. Write state only through `tx`: it commits together with the
/// inbox row that makes redeliveries harmless.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> impl Future<Output = std::result::Result<(), HandlerError>> + Send + 'a;
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Durable name; also the inbox key and the dead-letter subject suffix.
    pub name: String,
    /// Subject filter, e.g. `mahnwerk.events.*.case.>` (one filter: NATS 2.9).
    pub filter_subject: String,
    /// How long the server waits for an ack before redelivering (process crashed).
    pub ack_wait: Duration,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// Pause before attempt n+1 (the last entry repeats).
    pub backoff: Vec<Duration>,
}

impl ConsumerConfig {
    pub fn new(name: &str, bus: &BusConfig, filter: &str) -> Self {
        Self {
            name: name.to_owned(),
            filter_subject: format!("{}.{filter}", bus.subject_prefix),
            ack_wait: Duration::from_secs(30),
            max_attempts: 5,
            backoff: vec![
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
        }
    }
}

/// Whether an event changed state now or had been handled before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    Duplicate,
}

/// A running consumer's parts.
pub struct Consumer<H> {
    pub config: ConsumerConfig,
    pub bus: BusConfig,
    pub pool: AnyPool,
    pub handler: H,
}

const INBOX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bus_inbox (consumer TEXT NOT NULL, event_id TEXT NOT NULL, position BIGINT NOT NULL, processed_at TEXT NOT NULL, PRIMARY KEY (consumer, event_id))";

/// Create the inbox table in a service database.
pub async fn ensure_inbox(pool: &AnyPool) -> Result<()> {
    sqlx::query(INBOX_SCHEMA).execute(pool).await?;
    Ok(())
}

impl<H: Handler> Consumer<H> {
    /// Handle one event exactly once with respect to the service's database: inbox row and
    /// handler effects commit together.
    pub async fn apply_once(&self, event: &Envelope) -> std::result::Result<Applied, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO bus_inbox (consumer, event_id, position, processed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(self.config.name.clone())
        .bind(event.event_id.clone())
        .bind(event.position)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        self.handler.handle(event, &mut tx).await?;
        tx.commit().await?;
        Ok(Applied::Done)
    }

    /// Create or open the durable consumer.
    pub async fn open(&self, js: &async_nats::jetstream::Context) -> Result<PullConsumer> {
        ensure_inbox(&self.pool).await?;
        let stream = self.bus.ensure_streams(js).await?;
        stream
            .get_or_create_consumer(
                &self.config.name,
                pull::Config {
                    durable_name: Some(self.config.name.clone()),
                    filter_subject: self.config.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.config.ack_wait,
                    max_ack_pending: 1000,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_err)
    }

    async fn dead_letter(
        &self,
        js: &async_nats::jetstream::Context,
        raw: &[u8],
        event_id: &str,
        error: &str,
    ) -> Result<()> {
        let subject = format!("{}.{}", self.bus.dead_letter_prefix, self.config.name);
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(raw.to_vec().into())
            .message_id(format!("{}:{event_id}", self.config.name))
            .header("Mahnwerk-Consumer", self.config.name.as_str())
            .header("Mahnwerk-Error", error.replace(['\r', '\n'], " ").as_str());
        js.send_publish(subject, msg)
            .await
            .map_err(nats_err)?
            .await
            .map_err(nats_err)?;
        Ok(())
    }

    /// Handle one delivered message: apply with retries, dead-letter if it keeps failing, ack.
    async fn process(
        &self,
        js: &async_nats::jetstream::Context,
        msg: &async_nats::jetstream::Message,
    ) -> Result<()> {
        let event: Envelope = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(error = %err, "malformed event, dead-lettering");
                self.dead_letter(js, &msg.payload, "malformed", &format!("malformed: {err}"))
                    .await?;
                msg.ack_with(AckKind::Term).await.map_err(nats_err)?;
                return Ok(());
            }
        };
        let span = tracing::info_span!("handle_event", consumer = %self.config.name, event_type = %event.event_type, position = event.position);
        let _guard = span.enter();
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            match self.apply_once(&event).await {
                Ok(applied) => {
                    tracing::debug!(?applied, "event handled");
                    let outcome = match applied {
                        Applied::Done => "handled",
                        Applied::Duplicate => "duplicate",
                    };
                    metrics::counter!("mahnwerk_consumer_events_total", "consumer" => self.config.name.clone(), "outcome" => outcome).increment(1);
                    msg.double_ack().await.map_err(nats_err)?;
                    return Ok(());
                }
                Err(HandlerError::Transient(err)) if attempt < self.config.max_attempts => {
                    let pause = self
                        .config
                        .backoff
                        .get(attempt as usize - 1)
                        .or(self.config.backoff.last())
                        .copied()
                        .unwrap_or(Duration::from_secs(1));
                    tracing::warn!(attempt, error = %err, ?pause, "handler failed, retrying");
                    // Keep the server from redelivering while we wait.
                    let _ = msg.ack_with(AckKind::Progress).await;
                    tokio::time::sleep(pause).await;
                }
                Err(err) => {
                    tracing::error!(attempt, error = %err, "handler gave up, dead-lettering");
                    metrics::counter!("mahnwerk_consumer_events_total", "consumer" => self.config.name.clone(), "outcome" => "dead_lettered").increment(1);
                    self.dead_letter(js, &msg.payload, &event.event_id, &err.to_string())
                        .await?;
                    msg.ack_with(AckKind::Term).await.map_err(nats_err)?;
                    return Ok(());
                }
            }
        }
    }

    /// Pull and handle events until `shutdown` resolves. The in-flight event is finished
    /// before returning (stop pulling, finish, return).
    pub async fn run(
        self,
        js: async_nats::jetstream::Context,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            let consumer = tokio::select! {
                () = &mut shutdown => return Ok(()),
                c = self.open(&js) => c,
            };
            let mut messages = match consumer {
                Ok(c) => match c.messages().await {
                    Ok(m) => m,
                    Err(err) => {
                        tracing::warn!(error = %err, "consumer pull failed");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "consumer open failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(msg)) => {
                        if let Err(err) = self.process(&js, &msg).await {
                            tracing::warn!(error = %err, "event processing failed; will be redelivered");
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "pull error");
                        break;
                    }
                    None => break,
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }
}
