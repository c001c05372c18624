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

    /// Publish one batch; returns the position of the last acked event.
    async fn publish_batch(
        &self,
        js: &async_nats::jetstream::Context,
        events: &[RecordedEvent],
    ) -> Result<i64> {
        let mut in_flight: VecDeque<PublishAckFuture> = VecDeque::with_capacity(self.window);
        for e in events {
            let subject = envelope::subject(&self.bus.subject_prefix, e);
            let ack = js
                .send_publish(subject, Self::message(e)?)
                .await
                .map_err(nats_err)?;
            in_flight.push_back(ack);
            if in_flight.len() >= self.window
                && let Some(ack) = in_flight.pop_front()
            {
                ack.await.map_err(nats_err)?;
            }
        }
        while let Some(ack) = in_flight.pop_front() {
            ack.await.map_err(nats_err)?;
        }
        Ok(events.last().map_or(0, |e| e.position))
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
                loop {
                    let events = log.read_all(after, self.batch).await?;
                    if events.is_empty() {
                        // Wake on a local commit, or poll for other writers.
                        let _ =
                            tokio::time::timeout(Duration::from_millis(250), head.changed()).await;
                        continue;
                    }
                    after = self.publish_batch(&js, &events).await?;
                    log.save_checkpoint(&self.checkpoint, after).await?;
                    metrics::counter!("mahnwerk_relay_published_events_total")
                        .increment(events.len() as u64);
                    metrics::gauge!("mahnwerk_relay_position").set(after as f64);
                    tracing::debug!(after, count = events.len(), "relay published batch");
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
