//! The outbox relay: the event log is the outbox.
//!
//! It reads the log in position order and publishes every event with `Nats-Msg-Id = event_id`,
//! keeping up to `window` publishes in flight and awaiting their acks in order. A read-ahead task
//! reads and encodes (the stored payload text is copied into the envelope, not re-parsed); once
//! caught up it takes this process's new commits from the log's in-process tail instead of
//! reading them back, and returns to the database on any gap.
//!
//! **JetStream is always a strict prefix of the log** (ADR 004). The stream belongs to the relay
//! alone, so every message's stream sequence is known in advance: each publish carries
//! `Nats-Expected-Last-Sequence` of the message before it, and the server refuses anything after
//! a gap (bytes lost in a reconnect, one publish rejected while later ones got through). Every
//! ack must name exactly the sequence the message was chained to. On any rejection, timeout or
//! unexpected ack the pipeline stops and the relay starts again from the stream's tail.
//!
//! On start it resumes from the stream's tail, not from its checkpoint: the tail message's
//! `Nats-Msg-Id` must equal the log's event id at the tail's `Mahnwerk-Position`, otherwise the
//! stream holds another log and the relay refuses to run ([`crate::Error::StreamMismatch`]). A tail
//! below the checkpoint (JetStream lost acked messages) is repaired by republishing from the tail,
//! with a warning. The checkpoint is the position of the last acked event, saved after every batch.

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

/// The end of the event stream when an attempt starts.
struct StreamTail {
    /// The stream's last sequence (that of a deleted message too): the first publish expects it.
    last_sequence: u64,
    /// The log position of the last message (0 for an empty stream).
    position: i64,
}

/// A publish in flight: its position, the stream sequence it was chained to, its ack.
struct InFlight {
    position: i64,
    sequence: u64,
    ack: PublishAckFuture,
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

    /// Where the stream ends, checked against the log: a tail that is not the log's event at
    /// its position is a [`crate::Error::StreamMismatch`].
    async fn stream_tail(
        &self,
        js: &async_nats::jetstream::Context,
        log: &EventLog,
    ) -> Result<StreamTail> {
        let mut stream = self.bus.ensure_streams(js).await?;
        // The last sequence first, then the last message: a message appended in between shows
        // as a tail beyond that sequence, and the attempt starts over.
        let state = stream.info().await.map_err(nats_err)?.state.clone();
        if state.messages == 0 {
            return Ok(StreamTail {
                last_sequence: state.last_sequence,
                position: 0,
            });
        }
        let filter = format!("{}.>", self.bus.subject_prefix);
        let msg = stream
            .get_last_raw_message_by_subject(&filter)
            .await
            .map_err(nats_err)?;
        if msg.sequence > state.last_sequence {
            return Err(crate::Error::Nats(format!(
                "stream {} grew while its tail was read (sequence {} beyond {}); another \
                 publisher on {filter}?",
                self.bus.stream, msg.sequence, state.last_sequence
            )));
        }
        let header = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_owned());
        let (Some(position), Some(msg_id)) = (
            header(HDR_POSITION).and_then(|p| p.parse::<i64>().ok()),
            header(NATS_MESSAGE_ID.as_ref()),
        ) else {
            return Err(crate::Error::StreamMismatch(format!(
                "the last message of stream {} (sequence {}, subject {}) is not a relay message \
                 (no {HDR_POSITION} or Nats-Msg-Id): another publisher uses {filter}; give this \
                 deployment its own MAHNWERK_NAMESPACE",
                self.bus.stream, msg.sequence, msg.subject
            )));
        };
        let at = log.read_all_raw(position - 1, 1).await?;
        match at.first() {
            Some(e) if e.position == position && e.event_id.to_string() == msg_id => {
                Ok(StreamTail {
                    last_sequence: state.last_sequence,
                    position,
                })
            }
            Some(e) if e.position == position => Err(crate::Error::StreamMismatch(format!(
                "stream {} ends at log position {position} with event {msg_id}, but the log's \
                 event at position {position} is {}: the stream holds another log (NATS reused \
                 with a fresh database, or a namespace clash); use another MAHNWERK_NAMESPACE \
                 or remove the stream",
                self.bus.stream, e.event_id
            ))),
            _ => {
                let head = log.head_position().await?;
                Err(crate::Error::StreamMismatch(format!(
                    "stream {} ends at log position {position} (event {msg_id}), but the log \
                     ends at position {head}: the stream holds another log (NATS reused with a \
                     fresh database, or a namespace clash); use another MAHNWERK_NAMESPACE or \
                     remove the stream",
                    self.bus.stream
                )))
            }
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
            // The relay's part of the case's trace (only events that carry one pay for a span).
            let span = tracing::info_span!("relay_publish", event_type = %e.event_type, position = e.position);
            crate::trace::follow(&span, Some(tp.as_str()));
            let _in_span = span.enter();
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
    /// the last acked event. An ack must name the sequence its message was chained to (a
    /// duplicate of a message the stream no longer holds names an older one): anything else
    /// stops the pipeline.
    async fn drain(in_flight: &mut VecDeque<InFlight>, keep: usize, mut acked: i64) -> Result<i64> {
        let mut count = 0_u64;
        let mut result = Ok(());
        while in_flight.len() > keep {
            let Some(f) = in_flight.pop_front() else {
                break;
            };
            match f.ack.await {
                Ok(ack) if ack.sequence == f.sequence => {
                    acked = f.position;
                    count += 1;
                }
                Ok(ack) => {
                    result = Err(crate::Error::Nats(format!(
                        "publish of position {} acked as sequence {} (duplicate: {}), chained to \
                         {}",
                        f.position, ack.sequence, ack.duplicate, f.sequence
                    )));
                    break;
                }
                Err(err) => {
                    result = Err(crate::Error::Nats(format!(
                        "publish of position {} (sequence {}) failed: {err}",
                        f.position, f.sequence
                    )));
                    break;
                }
            }
        }
        metrics::counter!("mahnwerk_relay_published_events_total").increment(count);
        result.map(|()| acked)
    }

    /// Waits (bounded) for the acks still in flight after a failure, so that none of them
    /// lands after the next attempt has read the stream's tail.
    async fn settle(in_flight: &mut VecDeque<InFlight>) {
        let pending: Vec<_> = in_flight
            .drain(..)
            .map(|f| std::future::IntoFuture::into_future(f.ack))
            .collect();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(pending)).await;
    }

    /// Run until `shutdown` resolves. Errors from NATS or the log are retried with backoff,
    /// resuming from the stream's tail; a stream that does not hold a prefix of this log
    /// ([`crate::Error::StreamMismatch`]) ends the run with that error.
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
                let checkpoint = log.load_checkpoint(&self.checkpoint).await?;
                let tail = self.stream_tail(&js, &log).await?;
                let after = tail.position;
                if after < checkpoint {
                    tracing::warn!(
                        tail = after,
                        checkpoint,
                        stream = %self.bus.stream,
                        "jetstream lost acked messages (stream tail below the relay checkpoint); \
                         republishing from the tail"
                    );
                    metrics::counter!("mahnwerk_relay_stream_repairs_total").increment(1);
                }
                tracing::info!(after, sequence = tail.last_sequence, stream = %self.bus.stream, "relay resuming");
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
                let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(window);
                // Each publish expects the stream to end at the sequence of the one before.
                let mut expected = tail.last_sequence;
                let mut saved = checkpoint.min(after);
                let mut acked = after;
                let result: Result<()> = async {
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
                                .send_publish(
                                    out.subject,
                                    out.message.expected_last_sequence(expected),
                                )
                                .await
                                .map_err(nats_err)?;
                            expected += 1;
                            in_flight.push_back(InFlight {
                                position: out.position,
                                sequence: expected,
                                ack,
                            });
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
                }
                .await;
                // Stop the pipeline: nothing more is sent, and what is still in flight is
                // settled before the next attempt reads the tail. What was acked is saved.
                Self::settle(&mut in_flight).await;
                if acked > saved {
                    let _ = self.save(&log, acked).await;
                }
                if acked > after {
                    // It got somewhere: the next failure starts the backoff afresh.
                    backoff = Duration::from_millis(100);
                }
                result
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                res = attempt => {
                    match res {
                        Err(err) if err.is_fatal() => {
                            tracing::error!(error = %err, "relay refuses to run");
                            return Err(err);
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, ?backoff, "relay failed, retrying");
                        }
                        Ok(()) => {}
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
