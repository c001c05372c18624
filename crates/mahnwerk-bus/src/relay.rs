//! The outbox relay: the event log is the outbox.
//!
//! It reads the log in position order and publishes every event with `Nats-Msg-Id = event_id`,
//! keeping up to `window` publishes in flight and awaiting their acks in order. A read-ahead task
//! reads and encodes (the stored payload text is copied into the envelope, not re-parsed); once
//! caught up it takes this process's new commits from the log's in-process tail instead of
//! reading them back, and returns to the database on any gap. Progress is the
//! position of the last acked event, saved in the log's checkpoint table after every batch. On
//! start it resumes from the larger of that checkpoint and the position carried by the last
//! message already in the stream, so a crash between publish and checkpoint resends nothing the
//! stream holds — even outside the server's dedupe window; inside it, the server drops any
//! duplicate as well.

use crate::envelope::{self, HDR_EVENT_TYPE, HDR_POSITION, HDR_STREAM, HDR_VERSION};
use crate::{BusConfig, Result, nats_err};
use async_nats::header::{HeaderMap, HeaderName, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use mahnwerk_eventlog::{EventLog, RawRecordedEvent};
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events encoded per message on the reader's channel.
const SEND_CHUNK: usize = 256;

/// One event ready to publish.
struct Outgoing {
    position: i64,
    subject: String,
    message: PublishMessage,
}

/// Aborts the task when the relay attempt that spawned it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

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

    /// The message the relay publishes for an event: the JSON [`crate::Envelope`] with
    /// `Nats-Msg-Id` and the Mahnwerk headers.
    pub fn message(e: &RawRecordedEvent) -> PublishMessage {
        // Names are static (no validation or copy per message); values are moved in.
        const EVENT_TYPE: HeaderName = HeaderName::from_static(HDR_EVENT_TYPE);
        const STREAM: HeaderName = HeaderName::from_static(HDR_STREAM);
        const VERSION: HeaderName = HeaderName::from_static(HDR_VERSION);
        const POSITION: HeaderName = HeaderName::from_static(HDR_POSITION);
        const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, e.event_id.to_string());
        headers.insert(EVENT_TYPE, e.event_type.as_str());
        headers.insert(STREAM, e.stream.as_str());
        headers.insert(VERSION, itoa::Buffer::new().format(e.version));
        headers.insert(POSITION, itoa::Buffer::new().format(e.position));
        if let Some(tp) = &e.metadata.traceparent {
            headers.insert(TRACEPARENT, tp.as_str());
        }
        PublishMessage::build()
            .payload(envelope::encode_raw(e).into())
            .headers(headers)
    }

    /// Reads the log after `after` and sends ready-to-publish messages in chunks, so that
    /// reading and encoding (on another worker thread) overlap with publishing; small chunks
    /// keep this task from holding a worker (and the NATS connection task) for long.
    ///
    /// Once caught up with the database it follows the log's in-process tail: events this
    /// process commits arrive without being read back. Anything else (a gap: another writer,
    /// a lag of more than `TAIL_COMMITS` commits, a restart) goes back to reading the log, so
    /// no position is ever skipped. Commits of other processes are found by the database read
    /// after a head change (PostgreSQL `NOTIFY`) or within 250 ms.
    async fn read_ahead(
        log: EventLog,
        prefix: String,
        batch: usize,
        mut after: i64,
        tx: mpsc::Sender<Result<Vec<Outgoing>>>,
    ) {
        let mut head = log.watch_head();
        // Subscribed before the first read, so nothing committed after it can be missed.
        let mut tail = log.tail();
        let mut caught_up = false;
        loop {
            if caught_up {
                // The writer sends a commit's events before it raises the head, so a local
                // commit is taken from the tail (biased) and only a head beyond it (another
                // process's commit, seen by PostgreSQL NOTIFY) leads to a read. A lagged
                // receiver (or a closed one, impossible while `log` is held), a head change
                // or the poll interval all mean: read the log.
                let next = tokio::select! {
                    biased;
                    next = tail.recv() => next.ok(),
                    _ = head.wait_for(|h| *h > after) => None,
                    () = tokio::time::sleep(Duration::from_millis(250)) => None,
                };
                if let Some(events) = next {
                    let fresh: Vec<&RawRecordedEvent> =
                        events.iter().filter(|e| e.position > after).collect();
                    match fresh.first() {
                        None => continue,
                        Some(first) if first.position == after + 1 => {
                            metrics::counter!("mahnwerk_relay_tail_events_total")
                                .increment(fresh.len() as u64);
                            if !Self::send_chunks(&prefix, &fresh, &mut after, &tx).await {
                                return;
                            }
                            continue;
                        }
                        // A gap: read the log.
                        Some(_) => {}
                    }
                }
            }
            let events = match log.read_all_raw(after, batch).await {
                Ok(events) => events,
                Err(err) => {
                    let _ = tx.send(Err(err.into())).await;
                    return;
                }
            };
            caught_up = events.len() < batch;
            let refs: Vec<&RawRecordedEvent> = events.iter().collect();
            if !Self::send_chunks(&prefix, &refs, &mut after, &tx).await {
                return;
            }
        }
    }

    /// Encodes `events` (consecutive, after `after`) and sends them in chunks; false when the
    /// publisher is gone.
    async fn send_chunks(
        prefix: &str,
        events: &[&RawRecordedEvent],
        after: &mut i64,
        tx: &mpsc::Sender<Result<Vec<Outgoing>>>,
    ) -> bool {
        for chunk in events.chunks(SEND_CHUNK) {
            let out: Vec<Outgoing> = chunk
                .iter()
                .map(|e| Outgoing {
                    position: e.position,
                    subject: envelope::subject(prefix, e),
                    message: Self::message(e),
                })
                .collect();
            if let Some(last) = out.last() {
                *after = last.position;
            }
            if tx.send(Ok(out)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Saves `acked` as the relay's progress; returns it as the new saved position.
    async fn save(&self, log: &EventLog, acked: i64) -> Result<i64> {
        log.save_checkpoint(&self.checkpoint, acked).await?;
        metrics::gauge!("mahnwerk_relay_position").set(acked as f64);
        Ok(acked)
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
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let after = log
                    .load_checkpoint(&self.checkpoint)
                    .await?
                    .max(self.last_published(&js).await?);
                tracing::info!(after, stream = %self.bus.stream, "relay resuming");
                // Publishes stay in flight across batches (up to `window`) while the reader
                // task fetches and encodes the next ones. The checkpoint only ever names the
                // last *acked* position.
                let (tx, mut rx) = mpsc::channel((2 * self.batch).div_ceil(SEND_CHUNK).max(2));
                let _reader = AbortOnDrop(tokio::spawn(Self::read_ahead(
                    log.clone(),
                    self.bus.subject_prefix.clone(),
                    self.batch,
                    after,
                    tx,
                )));
                let window = self.window.max(1);
                let mut in_flight: VecDeque<(i64, PublishAckFuture)> =
                    VecDeque::with_capacity(window);
                let mut saved = after;
                let mut acked = after;
                loop {
                    let batch = match rx.try_recv() {
                        Ok(batch) => batch,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            // Nothing read yet: settle what is in flight first.
                            acked = Self::drain(&mut in_flight, 0, acked).await?;
                            if acked > saved {
                                saved = self.save(&log, acked).await?;
                            }
                            rx.recv().await.ok_or(crate::Error::ReaderGone)?
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            return Err(crate::Error::ReaderGone);
                        }
                    }?;
                    for out in batch {
                        let ack = js
                            .send_publish(out.subject, out.message)
                            .await
                            .map_err(nats_err)?;
                        in_flight.push_back((out.position, ack));
                        if in_flight.len() >= window {
                            acked = Self::drain(&mut in_flight, window - 1, acked).await?;
                        }
                    }
                    // Progress is saved every `batch` acked events while busy, and whenever
                    // the reader has nothing ready (above).
                    if acked - saved >= i64::try_from(self.batch).unwrap_or(i64::MAX) {
                        saved = self.save(&log, acked).await?;
                    }
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
