//! The outbox relay: the event log is the outbox.
//!
//! It reads the log in position order and publishes every event with `Nats-Msg-Id = event_id`,
//! keeping up to `window` publishes in flight and awaiting their acks in order. Progress is the
//! position of the last acked event, saved in the log's checkpoint table after every batch. On
//! start it resumes from the larger of that checkpoint and the position carried by the last
//! message already in the stream, so a crash between publish and checkpoint resends nothing the
//! stream holds — even outside the server's dedupe window; inside it, the server drops any
//! duplicate as well.

use crate::envelope::{self, Envelope, HDR_EVENT_TYPE, HDR_POSITION, HDR_STREAM, HDR_VERSION};
use crate::{BusConfig, Result, nats_err};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use mahnwerk_eventlog::{EventLog, RecordedEvent};
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct Relay {
    pub bus: BusConfig,
    /// Checkpoint name in the log.
    pub checkpoint: String,
    /// Events read from the log per batch.
    pub batch: usize,
    /// Publishes in flight before the oldest ack is awaited.
    pub window: usize,
}

impl Relay {
    pub fn new(bus: BusConfig) -> Self {
        Self {
            checkpoint: format!("relay:{}", bus.stream),
            bus,
            batch: 2000,
            window: 512,
        }
    }

    /// The position carried by the newest message in the stream (0 when empty).
    async fn last_published(&self, js: &async_nats::jetstream::Context) -> Result<i64> {
        let mut stream = self.bus.ensure_streams(js).await?;
        let last = stream.info().await.map_err(nats_err)?.state.last_sequence;
        if last == 0 {
            return Ok(0);
        }
        match stream.get_raw_message(last).await {
            Ok(msg) => Ok(msg
                .headers
                .get(HDR_POSITION)
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or(0)),
            Err(_) => Ok(0),
        }
    }

    fn message(e: &RecordedEvent) -> Result<PublishMessage> {
        let body = serde_json::to_vec(&Envelope::from(e))
            .map_err(|err| crate::Error::Malformed(err.to_string()))?;
        let mut msg = PublishMessage::build()
            .payload(body.into())
            .message_id(e.event_id.to_string())
            .header(HDR_EVENT_TYPE, e.event_type.as_str())
            .header(HDR_STREAM, e.stream.as_str())
            .header(HDR_VERSION, e.version.to_string().as_str())
            .header(HDR_POSITION, e.position.to_string().as_str());
        if let Some(tp) = &e.metadata.traceparent {
            msg = msg.header("traceparent", tp.as_str());
        }
        Ok(msg)
    }

    /// Await acks, oldest first, until at most `keep` are in flight; returns the position of
    /// the last acked event.
    async fn drain(
        in_flight: &mut VecDeque<(i64, PublishAckFuture)>,
        keep: usize,
        mut acked: i64,
    ) -> Result<i64> {
        let mut count = 0_u64;
        while in_flight.len() > keep {
            let Some((position, ack)) = in_flight.pop_front() else {
                break;
            };
            ack.await.map_err(nats_err)?;
            acked = position;
            count += 1;
        }
        metrics::counter!("mahnwerk_relay_published_events_total").increment(count);
        Ok(acked)
    }

    /// Run until `shutdown` resolves. Errors from NATS or the log are retried with backoff,
    /// resuming from the last saved progress.
    pub async fn run(
        self,
        log: EventLog,
        js: async_nats::jetstream::Context,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        let mut head = log.watch_head();
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let mut after = log
                    .load_checkpoint(&self.checkpoint)
                    .await?
                    .max(self.last_published(&js).await?);
                tracing::info!(after, stream = %self.bus.stream, "relay resuming");
                // Publishes stay in flight across batches (up to `window`), so reading the
                // next batch from the log overlaps with waiting for acks. The checkpoint only
                // ever names the last *acked* position.
                let mut in_flight: VecDeque<(i64, PublishAckFuture)> =
                    VecDeque::with_capacity(self.window);
                let mut saved = after;
                let mut acked = after;
                loop {
                    let events = log.read_all(after, self.batch).await?;
                    if events.is_empty() {
                        acked = Self::drain(&mut in_flight, 0, acked).await?;
                        if acked > saved {
                            log.save_checkpoint(&self.checkpoint, acked).await?;
                            saved = acked;
                        }
                        // Wake on a local commit, or poll for other writers.
                        let _ =
                            tokio::time::timeout(Duration::from_millis(250), head.changed()).await;
                        continue;
                    }
                    for e in &events {
                        let subject = envelope::subject(&self.bus.subject_prefix, e);
                        let ack = js
                            .send_publish(subject, Self::message(e)?)
                            .await
                            .map_err(nats_err)?;
                        in_flight.push_back((e.position, ack));
                        if in_flight.len() >= self.window.max(1) {
                            acked =
                                Self::drain(&mut in_flight, self.window.max(1) - 1, acked).await?;
                        }
                    }
                    after = events.last().map_or(after, |e| e.position);
                    if acked > saved {
                        log.save_checkpoint(&self.checkpoint, acked).await?;
                        metrics::gauge!("mahnwerk_relay_position").set(acked as f64);
                        saved = acked;
                    }
                    tracing::debug!(after, acked, "relay read batch");
                }
                #[allow(unreachable_code)]
                Ok::<(), crate::Error>(())
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                res = attempt => {
                    if let Err(err) = res {
                        tracing::warn!(error = %err, ?backoff, "relay failed, retrying");
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
