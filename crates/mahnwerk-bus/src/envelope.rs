//! The public wire format of events on JetStream.
//!
//! Subject: `{prefix}.{tenant}.{stream kind}.{event type}.{stream id}`, e.g.
//! `mahnwerk.events.acme.case.invoice.issued.v1.0190…` (the dots of the versioned type become
//! subject tokens, so `mahnwerk.events.acme.case.invoice.>` selects all invoice events of one
//! tenant; the last token names the stream, so the server can partition by case). Event types
//! have three tokens (`{subject}.{fact}.v{n}`), so every subject has six after the prefix.
//! Headers: `Nats-Msg-Id` (the event id), `Mahnwerk-Event-Type`, `Mahnwerk-Stream`,
//! `Mahnwerk-Version`, `Mahnwerk-Position` and, when known, `traceparent`.
//! Body: the JSON [`Envelope`].

use chrono::{DateTime, Utc};
use mahnwerk_eventlog::{Metadata, RawRecordedEvent, RecordedEvent};
use serde::{Deserialize, Serialize};

pub const HDR_EVENT_TYPE: &str = "Mahnwerk-Event-Type";
pub const HDR_STREAM: &str = "Mahnwerk-Stream";
pub const HDR_VERSION: &str = "Mahnwerk-Version";
pub const HDR_POSITION: &str = "Mahnwerk-Position";

/// One event as published: everything the log recorded about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: String,
    /// `{tenant}/{kind}/{id}`.
    pub stream: String,
    pub version: u64,
    pub position: i64,
    pub tenant: String,
    /// Versioned type, e.g. `invoice.issued.v1`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
    pub payload: serde_json::Value,
    /// Hex SHA-256 of the event in its stream's hash chain.
    pub hash: String,
}

impl From<&RecordedEvent> for Envelope {
    fn from(e: &RecordedEvent) -> Self {
        Envelope {
            event_id: e.event_id.to_string(),
            stream: e.stream.to_string(),
            version: e.version,
            position: e.position,
            tenant: e.tenant.to_string(),
            event_type: e.event_type.clone(),
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            metadata: e.metadata.clone(),
            payload: e.payload.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// The JSON body of an event as published: the [`Envelope`] (same fields, same order), written
/// directly from the stored event with its payload text copied through, neither parsed nor
/// re-encoded. This is the relay's per-event hot path.
pub fn encode_raw(e: &RawRecordedEvent) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, key: &str, value: &str) {
        out.extend_from_slice(key.as_bytes());
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    fn time(out: &mut Vec<u8>, key: &str, value: &DateTime<Utc>) {
        out.extend_from_slice(key.as_bytes());
        write_time(out, value);
    }
    let payload = e.payload.as_str();
    let mut out = Vec::with_capacity(payload.len() + 640);
    out.extend_from_slice(b"{\"event_id\":\"");
    out.extend_from_slice(
        e.event_id
            .0
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
    text(&mut out, ",\"stream\":", e.stream.as_str());
    out.extend_from_slice(b",\"version\":");
    out.extend_from_slice(itoa::Buffer::new().format(e.version).as_bytes());
    out.extend_from_slice(b",\"position\":");
    out.extend_from_slice(itoa::Buffer::new().format(e.position).as_bytes());
    text(&mut out, ",\"tenant\":", e.tenant.as_str());
    text(&mut out, ",\"type\":", &e.event_type);
    time(&mut out, ",\"occurred_at\":", &e.occurred_at);
    time(&mut out, ",\"recorded_at\":", &e.recorded_at);
    out.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &e.metadata);
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload.as_bytes());
    text(&mut out, ",\"hash\":", &e.hash);
    out.push(b'}');
    out
}

/// Writes `t` as a JSON string exactly as chrono's `Serialize` does (RFC 3339, `Z`, the
/// fraction in 0, 3, 6 or 9 digits), without going through `fmt` for the common case.
fn write_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        // Years with a sign or more digits, leap seconds: the general path.
        let _ = serde_json::to_writer(&mut *out, t);
        return;
    }
    fn digits(out: &mut Vec<u8>, value: u32, width: usize) {
        let mut buf = [b'0'; 9];
        let mut v = value;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + u8::try_from(v % 10).unwrap_or(0);
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
    }
    out.push(b'"');
    digits(out, u32::try_from(t.year()).unwrap_or(0), 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    digits(out, t.second(), 2);
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
}

/// The subject an event is published on:
/// `{prefix}.{tenant}.{kind}.{event type}.{stream id token}` (see [`subject_token`]).
pub fn subject<P>(prefix: &str, e: &RecordedEvent<P>) -> String {
    let id = e.stream.id();
    let mut s = String::with_capacity(prefix.len() + e.event_type.len() + id.len() + 48);
    s.push_str(prefix);
    s.push('.');
    s.push_str(e.tenant.as_str());
    s.push('.');
    s.push_str(e.stream.kind());
    s.push('.');
    s.push_str(&e.event_type);
    s.push('.');
    push_token(&mut s, id);
    s
}

/// A stream id as one subject token: characters other than `A-Z a-z 0-9 - _` become `_` (case
/// ids are UUIDs and pass unchanged). Two ids that map to the same token only share a partition.
pub fn subject_token(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    push_token(&mut s, id);
    s
}

fn push_token(out: &mut String, id: &str) {
    out.extend(id.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// The case id of a `{tenant}/case/{id}` stream, for routing and ordering.
pub fn case_of(env: &Envelope) -> Option<&str> {
    let mut parts = env.stream.splitn(3, '/');
    let _tenant = parts.next()?;
    (parts.next()? == "case").then(|| parts.next()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mahnwerk_domain::EventId;
    use mahnwerk_eventlog::JsonText;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #[test]
        fn times_are_written_as_chrono_serialises_them(
            // Years -1 to 10000: both sides of the fast path's range.
            secs in -62_198_755_200_i64..253_402_387_200,
            nanos in prop_oneof![
                Just(0_u32),
                (0_u32..1000).prop_map(|m| m * 1_000_000),
                (0_u32..1_000_000).prop_map(|u| u * 1000),
                0_u32..1_000_000_000,
                1_000_000_000_u32..2_000_000_000,
            ],
        ) {
            // Leap-second nanos are only valid at :59; from_timestamp says which.
            if let Some(t) = DateTime::<Utc>::from_timestamp(secs, nanos) {
                let mut out = Vec::new();
                write_time(&mut out, &t);
                prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&t).unwrap());
            }
        }
    }

    fn event<P>(payload: P, traceparent: Option<&str>) -> RecordedEvent<P> {
        let tenant: mahnwerk_domain::TenantId = "acme".parse().unwrap();
        RecordedEvent {
            position: 42,
            event_id: EventId(uuid::Uuid::from_u128(
                0x0193_0000_0000_7000_8000_0000_0000_0001,
            )),
            stream: mahnwerk_domain::StreamId::new(&tenant, "case", "c-1"),
            version: 3,
            tenant,
            event_type: "invoice.issued.v1".into(),
            payload,
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 26, 7, 0, 0).unwrap(),
            recorded_at: Utc.with_ymd_and_hms(2026, 11, 26, 7, 0, 1).unwrap(),
            metadata: Metadata {
                correlation_id: Some("corr \"quoted\"".into()),
                causation_id: None,
                actor: "key:k1".into(),
                traceparent: traceparent.map(str::to_owned),
            },
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn subjects_end_with_the_stream_id_token() {
        let e = event(json!({}), None);
        assert_eq!(
            subject("mahnwerk.events", &e),
            "mahnwerk.events.acme.case.invoice.issued.v1.c-1"
        );
        assert_eq!(subject_token("a.b*c>d e/f"), "a_b_c_d_e_f");
    }

    #[test]
    fn raw_encoding_is_the_envelope_of_the_parsed_event() {
        let payload = json!({"invoice_number": "R-1 ä€", "gross": {"minor": 11900, "currency": "EUR"},
                             "lines": [1, 2.5, null, true], "nested": {"z": {}, "a": []}});
        for tp in [
            None,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ] {
            // Stored text in another spacing and key order (as jsonb once gave back): the same JSON.
            let stored = "{\"lines\": [1, 2.5, null, true], \"gross\": {\"minor\": 11900, \"currency\": \"EUR\"}, \
                          \"nested\": {\"a\": [], \"z\": {}}, \"invoice_number\": \"R-1 \\u00e4€\"}";
            let raw = event(JsonText::new_unchecked(stored), tp);
            let parsed = event(payload.clone(), tp);
            let body = encode_raw(&raw);
            let decoded: Envelope = serde_json::from_slice(&body).unwrap();
            assert_eq!(decoded, Envelope::from(&parsed));
            // Byte for byte what serde writes for the owned envelope, apart from the payload
            // text (the only part passed through).
            let mut owned = Envelope::from(&parsed);
            owned.payload = json!("@");
            let expected = serde_json::to_string(&owned).unwrap();
            let text = String::from_utf8(body).unwrap().replace(stored, "\"@\"");
            assert_eq!(text, expected);
        }
    }
}
