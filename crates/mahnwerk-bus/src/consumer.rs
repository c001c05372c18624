//! The consumer library every service uses to handle events.
//!
//! Durable pull consumers with explicit acks, one per partition of the event stream (one when the
//! bus is not partitioned, see [`BusConfig::partitions`]) plus one on the consumer's replay subject.
//! Each has `max_ack_pending = 1`: the server hands out a partition's next message only after the
//! previous one is acked, so events of one case (one partition) are handled strictly in order by
//! one instance at a time, whichever instance that is; every instance pulls every partition, so
//! the server spreads the partitions' messages over the live instances, and a dead instance's
//! in-flight message goes to another one after `ack_wait`. With [`ConsumerConfig::pinned`] the
//! instances pull through a pinned-client priority group instead: the server pins each partition
//! to one instance and moves the pin to a standby instance when the pinned one stops pulling for
//! [`ConsumerConfig::pin_ttl`] (affinity, at the price of balance: the first instance to pull
//! may hold every pin). ADR 005.
//!
//! For each message, in order:
//! 1. open a transaction on the service's own database and insert `(consumer, event_id)` into
//!    `bus_inbox`; if it is already there the event was handled before (a redelivery after a
//!    crash between commit and ack): ack and move on;
//! 2. run the handler inside that transaction, commit, then ack (awaiting the server's
//!    confirmation);
//! 3. a [`HandlerError::Transient`] failure (also: database down, commit failed) is retried in
//!    place with capped exponential backoff for as long as it lasts, sending `+WPI` (progress) so
//!    the server does not redeliver meanwhile. It never dead-letters;
//! 4. a [`HandlerError::Permanent`] failure gets [`ConsumerConfig::max_attempts`] attempts
//!    (default 1: dead-lettered at once), then the event goes to the dead-letter subject
//!    ([`crate::deadletter`]), is terminated on the consumer and the partition moves on;
//! 5. crash-poison: a message delivered [`ConsumerConfig::max_deliver`] times (each delivery
//!    after the first means an instance died or stalled holding it) is dead-lettered with that
//!    reason instead of being handled again, unless the inbox shows it was handled.
//!
//! A failed ack, term or dead-letter publish is retried; the partition does not move on (and the
//! server, holding the message as pending, would not deliver the next one anyway).

use crate::deadletter::{self, Reason};
use crate::envelope::Envelope;
use crate::{BusConfig, Result, nats_err};

mod config;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{
    AckPolicy, DeliverPolicy, PriorityPolicy, PullConsumer, pull,
};
pub use config::{ConsumerConfig, ConsumerStats, partition_filter};
use futures::StreamExt;
use sqlx::{Any, AnyPool, Transaction};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (database or network trouble): retried in place until it succeeds.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (a malformed or unexpected event): dead-lettered.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Transient(e.to_string())
    }
}

/// A service's reaction to events. Write state only through `tx`: it commits together with the
/// inbox row that makes redeliveries harmless. Events of different cases may be handled
/// concurrently (several partitions, several instances); events of one case never are.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> impl Future<Output = std::result::Result<(), HandlerError>> + Send + 'a;
}

/// The priority group every instance of a pinned consumer pulls with.
pub const PRIORITY_GROUP: &str = "mahnwerk";

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

/// Which durable consumer: a partition of the event stream, or the replay subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Partition(u16),
    Replay,
}

/// What to do with a delivered message once decided.
enum Verdict {
    Ack,
    DeadLetter(Reason, String),
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

    async fn handled_before(&self, event_id: &str) -> std::result::Result<bool, HandlerError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT position FROM bus_inbox WHERE consumer = $1 AND event_id = $2")
                .bind(self.config.name.clone())
                .bind(event_id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// The durable name of a source.
    pub fn durable_name(&self, source: Source) -> String {
        match source {
            Source::Replay => format!("{}-replay", self.config.name),
            Source::Partition(_) if self.bus.partitions <= 1 => self.config.name.clone(),
            Source::Partition(p) => format!("{}-p{p}", self.config.name),
        }
    }

    /// Every source this consumer pulls from: its partitions, then its replay subject.
    pub fn sources(&self) -> Vec<Source> {
        (0..self.bus.partitions.max(1))
            .map(Source::Partition)
            .chain([Source::Replay])
            .collect()
    }

    /// Create or open the durable consumer of partition 0 (the only one of an unpartitioned
    /// bus).
    pub async fn open(&self, js: &async_nats::jetstream::Context) -> Result<PullConsumer> {
        self.open_source(js, Source::Partition(0)).await
    }

    /// Create or open the durable consumer of one source.
    pub async fn open_source(
        &self,
        js: &async_nats::jetstream::Context,
        source: Source,
    ) -> Result<PullConsumer> {
        ensure_inbox(&self.pool).await?;
        let events = self.bus.ensure_streams(js).await?;
        let (stream, (filter_subject, filter_subjects)) = match source {
            Source::Partition(p) => {
                let partition = (self.bus.partitions > 1).then_some(p);
                (events, self.config.durable_filters(&self.bus, partition)?)
            }
            Source::Replay => (
                js.get_stream(&self.bus.replay_stream)
                    .await
                    .map_err(nats_err)?,
                (
                    deadletter::replay_subject(&self.bus, &self.config.name),
                    Vec::new(),
                ),
            ),
        };
        let name = self.durable_name(source);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject,
            filter_subjects,
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: self.config.ack_wait,
            max_ack_pending: 1,
            // One spare delivery: if the instance dies while dead-lettering the message at
            // `max_deliver`, the server still hands it out once more.
            max_deliver: if self.config.max_deliver > 0 {
                self.config.max_deliver + 1
            } else {
                -1
            },
            priority_policy: if self.config.pinned {
                PriorityPolicy::PinnedClient
            } else {
                PriorityPolicy::None
            },
            priority_groups: if self.config.pinned {
                vec![PRIORITY_GROUP.to_owned()]
            } else {
                Vec::new()
            },
            priority_timeout: if self.config.pinned {
                self.config.pin_ttl
            } else {
                Duration::ZERO
            },
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&name, config.clone())
            .await
            .map_err(nats_err)?;
        // A durable created by an older library (up to 1000 in flight, no delivery bound) or
        // with other timings: bring it to this configuration, or order would not hold.
        let have = &consumer.cached_info().config;
        if have.max_ack_pending != config.max_ack_pending
            || have.max_deliver != config.max_deliver
            || have.ack_wait != config.ack_wait
            || have.filter_subject != config.filter_subject
            || have.filter_subjects != config.filter_subjects
        {
            tracing::info!(consumer = %name, "updating the durable consumer's configuration");
            return stream.update_consumer(config).await.map_err(nats_err);
        }
        Ok(consumer)
    }

    /// Retry `ack` (or `term`) until the server confirms it. Gives up only when the ack wait
    /// has passed (the server redelivers the message, ahead of anything later of its
    /// partition) or on shutdown.
    async fn settle(
        &self,
        msg: &async_nats::jetstream::Message,
        kind: AckKind,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let deadline = Instant::now() + self.config.ack_wait;
        let mut pause = Duration::from_millis(50);
        loop {
            let sent = match kind {
                AckKind::Term => msg.double_ack_with(AckKind::Term).await,
                _ => msg.double_ack().await,
            };
            match sent {
                Ok(()) => return true,
                Err(err) => {
                    ConsumerStats::bump(&self.config.stats.ack_failures);
                    tracing::warn!(error = %err, "ack failed, retrying");
                }
            }
            if Instant::now() + pause >= deadline {
                tracing::warn!(
                    "ack not confirmed within ack_wait; the server redelivers the event"
                );
                return false;
            }
            if sleep_or_stop(pause, stop).await {
                return false;
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Publish the dead letter until the server confirms it, keeping the message ours
    /// meanwhile. `false` on shutdown.
    async fn publish_dead_letter(
        &self,
        js: &async_nats::jetstream::Context,
        msg: &async_nats::jetstream::Message,
        reason: Reason,
        error: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match deadletter::publish(js, &self.bus, &self.config.name, msg, reason, error).await {
                Ok(()) => return true,
                Err(err) => {
                    ConsumerStats::bump(&self.config.stats.dead_letter_failures);
                    tracing::warn!(attempt, error = %err, "dead-letter publish failed, retrying")
                }
            }
            let _ = msg.ack_with(AckKind::Progress).await;
            if self.backoff_with_progress(msg, attempt, stop).await {
                return false;
            }
        }
    }

    /// Sleep the backoff pause of `attempt`, telling the server every third of the ack wait
    /// that the message is still being worked on. `true` if shutdown came first.
    async fn backoff_with_progress(
        &self,
        msg: &async_nats::jetstream::Message,
        attempt: u32,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let until = Instant::now() + self.config.pause(attempt);
        let tick = (self.config.ack_wait / 3).max(Duration::from_millis(10));
        loop {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            if sleep_or_stop((until - now).min(tick), stop).await {
                return true;
            }
            // Keep the server from redelivering while we wait (errors: NATS is down too; the
            // server redelivers after ack_wait, still ahead of later events).
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    }

    /// Decide once what to do with a delivered message (`Err`: transient, retry).
    async fn attempt(
        &self,
        msg: &async_nats::jetstream::Message,
        event: &Envelope,
        poisoned: Option<i64>,
        permanent_failures: &mut u32,
    ) -> std::result::Result<Verdict, String> {
        if let Some(delivered) = poisoned {
            return match self.handled_before(&event.event_id).await {
                Ok(true) => Ok(Verdict::Ack),
                Ok(false) => Ok(Verdict::DeadLetter(
                    Reason::MaxDeliver,
                    format!(
                        "delivered {delivered} times without an ack (max_deliver {}): the consumer crashed or stalled on it",
                        self.config.max_deliver
                    ),
                )),
                Err(err) => Err(err.to_string()),
            };
        }
        // A slow handler keeps the message ours: without `+WPI` the server would redeliver it
        // after `ack_wait` (to another instance, and counting towards `max_deliver`).
        let work = self.apply_once(event);
        tokio::pin!(work);
        let tick = (self.config.ack_wait / 3).max(Duration::from_millis(10));
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                () = tokio::time::sleep(tick) => {
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            }
        };
        match result {
            Ok(applied) => {
                tracing::debug!(?applied, "event handled");
                let outcome = match applied {
                    Applied::Done => {
                        ConsumerStats::bump(&self.config.stats.handled);
                        "handled"
                    }
                    Applied::Duplicate => {
                        ConsumerStats::bump(&self.config.stats.duplicates);
                        "duplicate"
                    }
                };
                metrics::counter!("mahnwerk_consumer_events_total", "consumer" => self.config.name.clone(), "outcome" => outcome).increment(1);
                Ok(Verdict::Ack)
            }
            Err(HandlerError::Transient(err)) => Err(err),
            Err(HandlerError::Permanent(err)) => {
                *permanent_failures += 1;
                if *permanent_failures >= self.config.max_attempts.max(1) {
                    Ok(Verdict::DeadLetter(
                        Reason::Permanent,
                        format!("permanent: {err}"),
                    ))
                } else {
                    Err(format!("permanent: {err}"))
                }
            }
        }
    }

    /// Handle one delivered message to its end: acked, dead-lettered and terminated, or (on
    /// shutdown, or an ack that never got through) left for the server to redeliver.
    async fn process(
        &self,
        js: &async_nats::jetstream::Context,
        msg: &async_nats::jetstream::Message,
        stop: &mut watch::Receiver<bool>,
    ) {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        let poisoned = (self.config.max_deliver > 0 && delivered >= self.config.max_deliver)
            .then_some(delivered);
        let mut event: Envelope = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(error = %err, "malformed event, dead-lettering");
                self.dead_letter(
                    js,
                    msg,
                    Reason::Malformed,
                    &format!("malformed: {err}"),
                    stop,
                )
                .await;
                return;
            }
        };
        // Personal data arrives sealed (the log's form); handlers see it opened, or as
        // placeholders once the debtor is erased. Opening needs the key table: if it is
        // unreachable, leave the message to be redelivered.
        if let Some(keyring) = mahnwerk_eventlog::privacy::process_keyring() {
            let tenant = event.tenant.clone();
            if let Err(err) = keyring
                .open_payloads(&mut [(tenant.as_str(), &mut event.payload)])
                .await
            {
                tracing::warn!(error = %err, "cannot open sealed personal data; left for redelivery");
                return;
            }
        }
        let span = tracing::info_span!("handle_event", consumer = %self.config.name, event_type = %event.event_type, position = event.position, delivered);
        // One trace per case: the handling is a child of the span that appended the event.
        crate::trace::follow(&span, event.metadata.traceparent.as_deref());
        if delivered > 1 {
            metrics::counter!("mahnwerk_consumer_redeliveries_total", "consumer" => self.config.name.clone()).increment(1);
        }
        // Messages of this consumer still waiting behind this one (JetStream's own count).
        if let Ok(info) = msg.info() {
            metrics::gauge!("mahnwerk_consumer_lag_events", "consumer" => self.config.name.clone(), "durable" => info.consumer.to_owned())
                .set(info.pending as f64);
        }
        async {
            let mut attempt = 0_u32;
            let mut permanent_failures = 0_u32;
            loop {
                attempt += 1;
                match self.attempt(msg, &event, poisoned, &mut permanent_failures).await {
                    Ok(Verdict::Ack) => {
                        self.settle(msg, AckKind::Ack, stop).await;
                        return;
                    }
                    Ok(Verdict::DeadLetter(reason, error)) => {
                        tracing::error!(attempt, reason = reason.as_str(), "dead-lettering event");
                        self.dead_letter(js, msg, reason, &error, stop).await;
                        return;
                    }
                    Err(err) => {
                        let pause = self.config.pause(attempt);
                        tracing::warn!(attempt, error = %err, ?pause, "handler failed, retrying in place");
                        metrics::counter!("mahnwerk_consumer_retries_total", "consumer" => self.config.name.clone()).increment(1);
                        ConsumerStats::bump(&self.config.stats.retries);
                        let _ = msg.ack_with(AckKind::Progress).await;
                        if self.backoff_with_progress(msg, attempt, stop).await {
                            tracing::info!("stopping; the event is left to be redelivered");
                            return;
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    async fn dead_letter(
        &self,
        js: &async_nats::jetstream::Context,
        msg: &async_nats::jetstream::Message,
        reason: Reason,
        error: &str,
        stop: &mut watch::Receiver<bool>,
    ) {
        if self.publish_dead_letter(js, msg, reason, error, stop).await {
            metrics::counter!("mahnwerk_consumer_dead_letters_total", "consumer" => self.config.name.clone(), "reason" => reason.as_str()).increment(1);
            metrics::counter!("mahnwerk_consumer_events_total", "consumer" => self.config.name.clone(), "outcome" => reason.as_str()).increment(1);
            ConsumerStats::bump(&self.config.stats.dead_lettered);
            self.settle(msg, AckKind::Term, stop).await;
        }
    }

    /// Pull one source and handle its messages one at a time until `stop`.
    async fn run_source(
        &self,
        js: &async_nats::jetstream::Context,
        source: Source,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        // Pull requests expire well within the pin TTL, so a live pinned instance keeps its pin
        // (unpinned: a re-pull every few seconds, harmless).
        let expires =
            (self.config.pin_ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let opened = tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                c = self.open_source(js, source) => c,
            };
            let consumer = match opened {
                Ok(c) => c,
                Err(err) if err.is_fatal() => {
                    tracing::error!(error = %err, ?source, "consumer refuses to run");
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(error = %err, ?source, "consumer open failed");
                    if sleep_or_stop(backoff, &mut stop).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let mut builder = consumer
                .stream()
                .max_messages_per_batch(16)
                .expires(expires)
                .heartbeat(expires / 4);
            if self.config.pinned {
                builder = builder.group(PRIORITY_GROUP);
            }
            let messages = builder.messages().await;
            let mut messages = match messages {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(error = %err, ?source, "consumer pull failed");
                    if sleep_or_stop(backoff, &mut stop).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                let next = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(msg)) => self.process(js, &msg, &mut stop).await,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, ?source, "pull error");
                        break;
                    }
                    None => break,
                }
            }
            if sleep_or_stop(backoff, &mut stop).await {
                return Ok(());
            }
        }
    }

    /// Pull and handle events of every partition (and replays) until `shutdown` resolves. The
    /// in-flight events are finished before returning, except one being retried, which is left
    /// unacked for redelivery. Returns an error only for a configuration the bus refuses
    /// (partition count, filter); NATS and database trouble is waited out.
    pub async fn run(
        self,
        js: async_nats::jetstream::Context,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        // The failure series exist from the start (at 0), so a dashboard or an alert on them
        // does not mistake "never happened" for "not reported".
        let name = self.config.name.clone();
        metrics::counter!("mahnwerk_consumer_retries_total", "consumer" => name.clone())
            .increment(0);
        metrics::counter!("mahnwerk_consumer_redeliveries_total", "consumer" => name.clone())
            .increment(0);
        for reason in [Reason::Permanent, Reason::MaxDeliver, Reason::Malformed] {
            metrics::counter!("mahnwerk_consumer_dead_letters_total", "consumer" => name.clone(), "reason" => reason.as_str())
                .increment(0);
        }
        let sources = self.sources();
        let workers = futures::future::try_join_all(
            sources
                .into_iter()
                .map(|s| self.run_source(&js, s, stop_rx.clone())),
        );
        tokio::pin!(workers);
        tokio::pin!(shutdown);
        tokio::select! {
            res = &mut workers => return res.map(|_| ()),
            () = &mut shutdown => {},
        }
        let _ = stop_tx.send(true);
        workers.await.map(|_| ())
    }
}

/// Sleep for `d`; `true` if `stop` was set first.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}
