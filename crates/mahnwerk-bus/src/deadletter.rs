//! Dead letters: events a consumer gave up on, kept for an operator to inspect and replay.
//!
//! A dead letter is published on `{dead_letter_prefix}.{consumer}` (stream
//! [`BusConfig::dead_letter_stream`]) with the original message's body and event headers, plus
//! the headers below. Its `Nats-Msg-Id` is `{consumer}:{original stream}:{original sequence}`:
//! unique per message (so two malformed messages both arrive), and the same when a message is
//! dead-lettered again after a lost term (so it is stored once).
//!
//! A replay republishes the body on `{replay_prefix}.{consumer}` (stream
//! [`BusConfig::replay_stream`]), which every consumer also pulls. Never onto the event stream:
//! that one holds exactly the log in order, which the relay relies on and checks (ADR 005). A
//! dead-lettered event never reached the consumer's inbox, so the replay is handled; replaying
//! an event that was handled meanwhile changes nothing (the inbox).

use crate::envelope::{Envelope, HDR_EVENT_TYPE, HDR_POSITION, HDR_STREAM, HDR_VERSION};
use crate::{BusConfig, Error, Result, nats_err};
use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub const HDR_CONSUMER: &str = "Mahnwerk-Consumer";
pub const HDR_ERROR: &str = "Mahnwerk-Error";
pub const HDR_REASON: &str = "Mahnwerk-Reason";
pub const HDR_ORIGINAL_SUBJECT: &str = "Mahnwerk-Original-Subject";
pub const HDR_ORIGINAL_STREAM: &str = "Mahnwerk-Original-Stream";
pub const HDR_ORIGINAL_SEQUENCE: &str = "Mahnwerk-Original-Sequence";
pub const HDR_DELIVERED: &str = "Mahnwerk-Delivered";
pub const HDR_REPLAY_OF: &str = "Mahnwerk-Replay-Of";

/// The event headers a dead letter and a replay carry over from the original message.
const EVENT_HEADERS: [&str; 5] = [
    HDR_EVENT_TYPE,
    HDR_STREAM,
    HDR_VERSION,
    HDR_POSITION,
    "traceparent",
];

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The handler said it can never succeed.
    Permanent,
    /// The body is not an envelope.
    Malformed,
    /// Delivered `max_deliver` times without an ack: it crashed or stalled the consumer.
    MaxDeliver,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Permanent => "permanent",
            Reason::Malformed => "malformed",
            Reason::MaxDeliver => "max_deliver",
        }
    }
}

/// `{dead_letter_prefix}.{consumer}`.
pub fn dead_letter_subject(bus: &BusConfig, consumer: &str) -> String {
    format!("{}.{consumer}", bus.dead_letter_prefix)
}

/// `{replay_prefix}.{consumer}`.
pub fn replay_subject(bus: &BusConfig, consumer: &str) -> String {
    format!("{}.{consumer}", bus.replay_prefix)
}

fn copy_event_headers(from: Option<&HeaderMap>, to: &mut HeaderMap) {
    if let Some(from) = from {
        for name in EVENT_HEADERS {
            if let Some(v) = from.get(name) {
                to.insert(name, v.as_str());
            }
        }
    }
}

/// Publish `msg` as a dead letter of `consumer` and wait for the server's confirmation.
pub(crate) async fn publish(
    js: &async_nats::jetstream::Context,
    bus: &BusConfig,
    consumer: &str,
    msg: &async_nats::jetstream::Message,
    reason: Reason,
    error: &str,
) -> Result<()> {
    let (stream, sequence, delivered) = match msg.info() {
        Ok(i) => (i.stream.to_owned(), i.stream_sequence, i.delivered),
        Err(_) => (String::new(), 0, 0),
    };
    let mut headers = HeaderMap::new();
    copy_event_headers(msg.headers.as_ref(), &mut headers);
    headers.insert(HDR_CONSUMER, consumer);
    headers.insert(HDR_REASON, reason.as_str());
    headers.insert(HDR_ERROR, error.replace(['\r', '\n'], " ").as_str());
    headers.insert(HDR_ORIGINAL_SUBJECT, msg.subject.as_str());
    headers.insert(HDR_ORIGINAL_STREAM, stream.as_str());
    headers.insert(HDR_ORIGINAL_SEQUENCE, itoa::Buffer::new().format(sequence));
    headers.insert(HDR_DELIVERED, itoa::Buffer::new().format(delivered));
    let message = PublishMessage::build()
        .payload(msg.payload.clone())
        .headers(headers)
        .message_id(format!("{consumer}:{stream}:{sequence}"));
    js.send_publish(dead_letter_subject(bus, consumer), message)
        .await
        .map_err(nats_err)?
        .await
        .map_err(nats_err)?;
    Ok(())
}

/// One dead letter as stored.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Sequence in the dead-letter stream: what `show` and `replay` take.
    pub sequence: u64,
    pub time: Option<DateTime<Utc>>,
    pub consumer: String,
    pub reason: String,
    pub error: String,
    pub original_subject: String,
    pub original_stream: String,
    pub original_sequence: u64,
    pub delivered: i64,
    pub event_type: Option<String>,
    /// The event id, when the body is an envelope.
    pub event_id: Option<String>,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

impl DeadLetter {
    fn from_message(m: async_nats::jetstream::message::StreamMessage) -> Self {
        let h = |name: &str| {
            m.headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let envelope = serde_json::from_slice::<Envelope>(&m.payload).ok();
        let time = DateTime::from_timestamp(m.time.unix_timestamp(), m.time.nanosecond());
        DeadLetter {
            sequence: m.sequence,
            time,
            consumer: h(HDR_CONSUMER),
            reason: h(HDR_REASON),
            error: h(HDR_ERROR),
            original_subject: h(HDR_ORIGINAL_SUBJECT),
            original_stream: h(HDR_ORIGINAL_STREAM),
            original_sequence: h(HDR_ORIGINAL_SEQUENCE).parse().unwrap_or(0),
            delivered: h(HDR_DELIVERED).parse().unwrap_or(0),
            event_type: envelope
                .as_ref()
                .map(|e| e.event_type.clone())
                .or_else(|| m.headers.get(HDR_EVENT_TYPE).map(|v| v.as_str().to_owned())),
            event_id: envelope.map(|e| e.event_id),
            headers: m.headers,
            payload: m.payload,
        }
    }
}

/// Every dead letter of the namespace (of one consumer if given), oldest first.
pub async fn list(
    js: &async_nats::jetstream::Context,
    bus: &BusConfig,
    consumer: Option<&str>,
) -> Result<Vec<DeadLetter>> {
    bus.ensure_side_streams(js).await?;
    let mut stream = js
        .get_stream(&bus.dead_letter_stream)
        .await
        .map_err(nats_err)?;
    let state = stream.info().await.map_err(nats_err)?.state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for seq in state.first_sequence..=state.last_sequence {
        match stream.get_raw_message(seq).await {
            Ok(m) => {
                let dl = DeadLetter::from_message(m);
                if consumer.is_none_or(|c| c == dl.consumer) {
                    out.push(dl);
                }
            }
            // Deleted messages leave gaps.
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(nats_err(e)),
        }
    }
    Ok(out)
}

/// One dead letter by its sequence.
pub async fn show(
    js: &async_nats::jetstream::Context,
    bus: &BusConfig,
    sequence: u64,
) -> Result<DeadLetter> {
    bus.ensure_side_streams(js).await?;
    let stream = js
        .get_stream(&bus.dead_letter_stream)
        .await
        .map_err(nats_err)?;
    match stream.get_raw_message(sequence).await {
        Ok(m) => Ok(DeadLetter::from_message(m)),
        Err(e)
            if e.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Err(Error::NotFound(sequence))
        }
        Err(e) => Err(nats_err(e)),
    }
}

/// Where a replay went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub subject: String,
    /// Sequence in the replay stream.
    pub sequence: u64,
    /// The same dead letter was replayed within the dedupe window; nothing new was published.
    pub duplicate: bool,
}

/// Hand a dead letter back to its consumer: publish its body on the consumer's replay subject.
/// Idempotent within the dedupe window (`Nats-Msg-Id = replay:{dead-letter sequence}`).
pub async fn replay(
    js: &async_nats::jetstream::Context,
    bus: &BusConfig,
    sequence: u64,
) -> Result<Replayed> {
    let dl = show(js, bus, sequence).await?;
    if dl.consumer.is_empty() {
        return Err(Error::Malformed(format!(
            "dead letter {sequence} names no consumer"
        )));
    }
    let mut headers = HeaderMap::new();
    copy_event_headers(Some(&dl.headers), &mut headers);
    headers.insert(HDR_REPLAY_OF, itoa::Buffer::new().format(sequence));
    headers.insert(HDR_ORIGINAL_SUBJECT, dl.original_subject.as_str());
    let subject = replay_subject(bus, &dl.consumer);
    let message = PublishMessage::build()
        .payload(dl.payload)
        .headers(headers)
        .message_id(format!("replay:{}:{sequence}", bus.dead_letter_stream));
    let ack = js
        .send_publish(subject.clone(), message)
        .await
        .map_err(nats_err)?
        .await
        .map_err(nats_err)?;
    Ok(Replayed {
        subject,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
