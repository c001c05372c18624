//! Canonical bytes of an event and its chained SHA-256.
//!
//! The payload is written in the JSON Canonicalization Scheme (RFC 8785): object members sorted by
//! the UTF-16 code units of their names, no insignificant whitespace, strings escaped as
//! ECMAScript's `JSON.stringify` does, floating-point numbers in ECMAScript's shortest form. Two
//! stores that keep the same JSON value in different text (PostgreSQL `jsonb` reorders keys and
//! drops whitespace) therefore give the same bytes, and `verify` recomputes the same hash.
//!
//! One deliberate deviation from RFC 8785: integers that fit `i64`/`u64` are written exactly
//! instead of through an IEEE double, so two different large integers never hash alike.
//!
//! The hashed envelope is itself a canonical JSON object:
//! `{"event_id":…,"metadata":{"actor":…,"causation_id":…,"correlation_id":…,"traceparent":…},
//! "occurred_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ","payload":…,"stream":…,"type":…,"version":n}`,
//! and `hash = SHA-256(previous hash of the stream (32 bytes, zeros for version 1) || envelope)`.
//!
//! Hash versions (column `hash_version`): version 2, written by every append since issue 10, adds
//! `"recorded_at":"YYYY-MM-DDTHH:MM:SS.ffffffZ"` between `payload` and `stream`; version 1 (events
//! written before) lacks it and is verified as it was written.

use crate::Metadata;
use chrono::{DateTime, Utc};
use mahnwerk_domain::{EventId, StreamId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The hash that the first event of every stream chains from.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// Why a payload cannot be stored.
#[derive(Debug)]
pub(crate) struct PayloadError(pub String);

/// Writes `value` in canonical form. Refuses what PostgreSQL `jsonb` cannot store (`\u0000` in a
/// string), so both backends accept the same payloads.
pub(crate) fn canonical_json(value: &Value) -> Result<String, PayloadError> {
    let mut out = String::with_capacity(512);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), PayloadError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = n.as_f64() {
                write_f64(out, f);
            } else {
                return Err(PayloadError(format!("unsupported number {n}")));
            }
        }
        Value::String(s) => write_string(out, s)?,
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            if keys_in_utf16_order(map) {
                // The common case (serde_json's default map is sorted by UTF-8 bytes): no sort.
                for (i, (k, v)) in map.iter().enumerate() {
                    write_member(out, i, k, v)?;
                }
            } else {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                for (i, (k, v)) in members.into_iter().enumerate() {
                    write_member(out, i, k, v)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_member(out: &mut String, i: usize, k: &str, v: &Value) -> Result<(), PayloadError> {
    if i > 0 {
        out.push(',');
    }
    write_string(out, k)?;
    out.push(':');
    write_value(out, v)
}

/// Whether iterating `map` already gives RFC 8785 order. UTF-8 byte order equals code point
/// order, which equals UTF-16 order unless a key holds a character from U+E000 up (UTF-8 lead
/// byte 0xEE or more), where surrogate pairs sort differently.
fn keys_in_utf16_order(map: &serde_json::Map<String, Value>) -> bool {
    let mut prev: Option<&str> = None;
    for k in map.keys() {
        if k.bytes().any(|b| b >= 0xEE) {
            return false;
        }
        if let Some(p) = prev
            && p.as_bytes() >= k.as_bytes()
        {
            return false;
        }
        prev = Some(k);
    }
    true
}

pub(crate) fn write_string(out: &mut String, s: &str) -> Result<(), PayloadError> {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            0 => return Err(PayloadError("strings must not contain \\u0000".into())),
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x01..=0x1f => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `start..i` ends on a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
    Ok(())
}

/// ECMAScript `Number.prototype.toString` for a finite double (RFC 8785 §3.2.2.3).
fn write_f64(out: &mut String, f: f64) {
    if f == 0.0 {
        out.push('0');
        return;
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exp + 1;
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).unwrap_or(0));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in 0..(-n) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e >= 0 { "+" } else { "-" }, e.abs());
    }
}

/// The one text form of `occurred_at` in the hash and in SQLite (microseconds, as PostgreSQL keeps).
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let mut out = String::with_capacity(27);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        (t.nanosecond() % 1_000_000_000) / 1_000
    );
    out
}

fn write_opt(out: &mut String, s: &Option<String>) -> Result<(), PayloadError> {
    match s {
        Some(s) => write_string(out, s),
        None => {
            out.push_str("null");
            Ok(())
        }
    }
}

/// The fields of one event that its hash covers.
pub(crate) struct HashInput<'a> {
    pub event_id: &'a EventId,
    pub stream: &'a StreamId,
    pub version: u64,
    pub event_type: &'a str,
    /// Canonical JSON of the payload, from [`canonical_json`].
    pub payload_canonical: &'a str,
    /// `occurred_at` as [`format_time`] writes it.
    pub occurred_at: &'a str,
    pub metadata: &'a Metadata,
    /// `recorded_at` as [`format_time`] writes it: `Some` for hash version 2 (every event
    /// appended now), `None` for version 1 (events written before it was covered).
    pub recorded_at: Option<&'a str>,
}

/// The canonical envelope of an event (see the module docs).
pub(crate) fn envelope(e: &HashInput<'_>) -> Result<String, PayloadError> {
    let mut out = String::with_capacity(e.payload_canonical.len() + 320);
    out.push_str("{\"event_id\":\"");
    let _ = write!(out, "{}", e.event_id.0.hyphenated());
    out.push_str("\",\"metadata\":{\"actor\":");
    write_string(&mut out, &e.metadata.actor)?;
    out.push_str(",\"causation_id\":");
    write_opt(&mut out, &e.metadata.causation_id)?;
    out.push_str(",\"correlation_id\":");
    write_opt(&mut out, &e.metadata.correlation_id)?;
    out.push_str(",\"traceparent\":");
    write_opt(&mut out, &e.metadata.traceparent)?;
    out.push_str("},\"occurred_at\":\"");
    out.push_str(e.occurred_at);
    out.push_str("\",\"payload\":");
    out.push_str(e.payload_canonical);
    if let Some(recorded_at) = e.recorded_at {
        out.push_str(",\"recorded_at\":\"");
        out.push_str(recorded_at);
        out.push('"');
    }
    out.push_str(",\"stream\":");
    write_string(&mut out, e.stream.as_str())?;
    out.push_str(",\"type\":");
    write_string(&mut out, e.event_type)?;
    let _ = write!(out, ",\"version\":{}}}", e.version);
    Ok(out)
}

/// `SHA-256(prev || envelope)`.
pub(crate) fn chain_hash(prev: &[u8; 32], e: &HashInput<'_>) -> Result<[u8; 32], PayloadError> {
    let env = envelope(e)?;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(env.as_bytes());
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        canonical_json(&v).unwrap()
    }

    #[test]
    fn objects_are_sorted_and_compact() {
        assert_eq!(
            canon(json!({"b": 1, "a": [true, null, "x"]})),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn rfc8785_sorts_by_utf16_code_units() {
        // From RFC 8785 §3.2.3: U+20AC (€) < U+1F600 (surrogates D83D…) < U+FB33 in UTF-16 order,
        // while UTF-8 byte order would put the emoji last.
        let v: Value = serde_json::from_str(r#"{"\ufb33":3,"\ud83d\ude00":2,"\u20ac":1}"#).unwrap();
        assert_eq!(canon(v), "{\"\u{20ac}\":1,\"\u{1f600}\":2,\"\u{fb33}\":3}");
    }

    #[test]
    fn rfc8785_numbers() {
        // Samples from RFC 8785 appendix B.
        let cases: [(f64, &str); 12] = [
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (18014398509481984.0, "18014398509481984"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (333333333.3333333, "333333333.3333333"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (4.5, "4.5"),
            (0.1, "0.1"),
            (123e-20, "1.23e-18"),
        ];
        for (f, want) in cases {
            let mut s = String::new();
            write_f64(&mut s, f);
            assert_eq!(s, want, "{f:?}");
        }
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        assert_eq!(
            canon(json!("a\"\\\n\u{1}\u{7f}é€")),
            "\"a\\\"\\\\\\n\\u0001\u{7f}é€\""
        );
        assert!(canonical_json(&json!({"x": "a\u{0}b"})).is_err());
    }

    #[test]
    fn time_is_written_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T09:05:03.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(&t), "2026-11-26T09:05:03.123456Z");
        assert_eq!(
            format_time(&t),
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        );
    }

    #[test]
    fn unsorted_maps_are_sorted() {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), json!(1));
        m.insert("a".into(), json!(2));
        // Whatever order the map iterates in, the output is sorted.
        assert_eq!(canon(Value::Object(m)), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn reordered_and_reformatted_json_hashes_alike() {
        let a: Value =
            serde_json::from_str(r#"{ "amount": 1250, "b": {"y": 1.50, "x": "z"} }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"x":"z","y":1.5},"amount":1250}"#).unwrap();
        assert_eq!(canon(a), canon(b));
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "\\PC{0,12}".prop_map(|s: String| json!(s.replace('\0', ""))),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("\\PC{0,8}", inner), 0..6).prop_map(|kv| {
                    Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.replace('\0', ""), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Canonical text is a fixed point, and any other text of the same value (as jsonb
        /// keeps it) canonicalises alike.
        #[test]
        fn canonical_form_round_trips_and_is_stable(v in arb_json()) {
            // (Values compare by canonical text: 0.0 and 0 are one JSON number.)
            let c = canon(v.clone());
            let back: Value = serde_json::from_str(&c).unwrap();
            proptest::prop_assert_eq!(canon(back), c.clone());
            let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
            proptest::prop_assert_eq!(canon(pretty), c);
        }
    }

    /// The version 1 envelope is pinned byte for byte (so events written before version 2 keep
    /// verifying); version 2 adds `recorded_at` in its sorted place.
    #[test]
    fn envelope_versions_1_and_2() {
        let id = EventId(uuid::Uuid::from_u128(1));
        let stream: StreamId = "acme/case/1".parse().unwrap();
        let metadata = Metadata {
            actor: "svc".into(),
            ..Default::default()
        };
        let mut input = HashInput {
            event_id: &id,
            stream: &stream,
            version: 3,
            event_type: "x.happened.v1",
            payload_canonical: r#"{"a":1}"#,
            occurred_at: "2026-11-26T10:00:00.000000Z",
            metadata: &metadata,
            recorded_at: None,
        };
        assert_eq!(
            envelope(&input).unwrap(),
            r#"{"event_id":"00000000-0000-0000-0000-000000000001","metadata":{"actor":"svc","causation_id":null,"correlation_id":null,"traceparent":null},"occurred_at":"2026-11-26T10:00:00.000000Z","payload":{"a":1},"stream":"acme/case/1","type":"x.happened.v1","version":3}"#
        );
        let v1 = chain_hash(&GENESIS, &input).unwrap();
        input.recorded_at = Some("2026-11-26T10:00:01.000000Z");
        assert_eq!(
            envelope(&input).unwrap(),
            r#"{"event_id":"00000000-0000-0000-0000-000000000001","metadata":{"actor":"svc","causation_id":null,"correlation_id":null,"traceparent":null},"occurred_at":"2026-11-26T10:00:00.000000Z","payload":{"a":1},"recorded_at":"2026-11-26T10:00:01.000000Z","stream":"acme/case/1","type":"x.happened.v1","version":3}"#
        );
        assert_ne!(chain_hash(&GENESIS, &input).unwrap(), v1);
    }
}
