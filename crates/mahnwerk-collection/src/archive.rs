//! Pure: the case file export for humans and courts, and its offline check.
//!
//! One tar archive (POSIX ustar) with `case.json` (every event of the case stream as envelopes,
//! in order, with their hashes), `summary.pdf` (one page for a person: invoice, claim, history,
//! chain head; [`crate::summary`]), `documents/{sha256}.pdf` (every letter PDF the events name),
//! `documents/original-{sha256}.xml|pdf` (the original e-invoice file `invoice.issued.v1` names in
//! `invoice.source`, when there is one) and `manifest.json` (SHA-256 of every other file; `erased`:
//! the documents left out because the debtor was erased, accepted only when the events record
//! `case.debtor_erased.v1`). [`verify`] needs no database: it reads the tar
//! strictly (header checksums, zero padding, the end marker, nothing after it), checks every file
//! against the manifest, every document against its name, and recomputes the hash chain of the
//! events; each problem names the file or the event that changed.

use mahnwerk_bus::Envelope;
use mahnwerk_eventlog::RecordedEvent;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const BLOCK: usize = 512;

/// The one-page summary in an archive (checked by the manifest like every other file).
pub const SUMMARY: &str = "summary.pdf";

/// Format of the export (`manifest.json` `schema`).
pub const SCHEMA: &str = "mahnwerk.case_export.v1";

/// The event that lets an archive leave out documents (`manifest.json` `erased`).
const ERASED_EVENT: &str = "case.debtor_erased.v1";

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    schema: String,
    stream: String,
    head: Option<String>,
    files: BTreeMap<String, String>,
    /// Documents the events name that were left out because their debtor was erased (GDPR
    /// Art. 17, ADR 006): unreadable for good. Absent when none (archives before it unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    erased: Vec<String>,
}

/// The original invoice document an event names: `invoice.issued.v1` with `invoice.source`
/// (an imported e-invoice) gives its SHA-256 and archive name.
pub fn original_of(e: &RecordedEvent) -> Option<(&str, String)> {
    if e.event_type != "invoice.issued.v1" {
        return None;
    }
    let source = e.payload.get("invoice")?.get("source")?;
    let sha256 = source.get("sha256")?.as_str()?;
    let ext = match source.get("media_type").and_then(|m| m.as_str()) {
        Some("application/pdf") => "pdf",
        _ => "xml",
    };
    Some((sha256, format!("documents/original-{sha256}.{ext}")))
}

/// The SHA-256 a document's archive name claims: `documents/{sha}.pdf` or
/// `documents/original-{sha}.xml|pdf`.
fn named_sha(name: &str) -> Option<&str> {
    let n = name.strip_prefix("documents/")?;
    let n = n.strip_prefix("original-").unwrap_or(n);
    n.strip_suffix(".pdf").or_else(|| n.strip_suffix(".xml"))
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn octal(out: &mut [u8], value: u64) {
    let n = out.len();
    let s = format!("{value:0width$o}", width = n - 1);
    out[..n - 1].copy_from_slice(s.as_bytes());
    out[n - 1] = 0;
}

fn header(name: &str, size: usize) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size as u64);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Write entries as a ustar archive (names < 100 bytes).
pub fn write_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&header(&e.name, e.bytes.len()));
        out.extend_from_slice(&e.bytes);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn parse_octal(field: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    usize::from_str_radix(s, 8).ok()
}

/// Read a ustar archive strictly: any byte outside the files' contents that is not what
/// [`write_tar`] writes is an error naming where.
pub fn read_tar(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let h = bytes
            .get(at..at + BLOCK)
            .ok_or_else(|| format!("archive truncated at byte {at}"))?;
        if h.iter().all(|b| *b == 0) {
            let end = bytes
                .get(at..at + 2 * BLOCK)
                .ok_or_else(|| "archive end marker truncated".to_owned())?;
            if !end.iter().all(|b| *b == 0) || bytes.len() != at + 2 * BLOCK {
                return Err(format!("bytes changed after the end marker (byte {at})"));
            }
            return Ok(entries);
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8(h[..name_end].to_vec())
            .map_err(|_| format!("file name at byte {at} is not UTF-8"))?;
        let size =
            parse_octal(&h[124..136]).ok_or_else(|| format!("{name}: size field changed"))?;
        if header(&name, size)[..] != h[..] {
            return Err(format!("{name}: tar header changed (byte {at})"));
        }
        let start = at + BLOCK;
        let content = bytes
            .get(start..start + size)
            .ok_or_else(|| format!("{name}: truncated"))?;
        let padded = (start + size).div_ceil(BLOCK) * BLOCK;
        if bytes
            .get(start + size..padded)
            .is_none_or(|p| p.iter().any(|b| *b != 0))
        {
            return Err(format!("{name}: padding after the file changed"));
        }
        entries.push(Entry {
            name,
            bytes: content.to_vec(),
        });
        at = padded;
    }
}

/// The archive of one case stream, its one-page summary (`summary.pdf`) and the documents its
/// events name: `documents` are `(archive name, bytes)`, e.g. `documents/{sha256}.pdf` for a
/// letter and [`original_of`]'s name for the original invoice.
pub fn build(
    events: &[RecordedEvent],
    summary: Option<&[u8]>,
    documents: &[(String, Vec<u8>)],
    erased: &[String],
) -> Vec<u8> {
    let envelopes: Vec<Envelope> = events.iter().map(Envelope::from).collect();
    let case_json = serde_json::to_vec_pretty(&envelopes).unwrap_or_default();
    let mut entries = vec![Entry {
        name: "case.json".into(),
        bytes: case_json,
    }];
    if let Some(pdf) = summary {
        entries.push(Entry {
            name: SUMMARY.into(),
            bytes: pdf.to_vec(),
        });
    }
    for (name, bytes) in documents {
        entries.push(Entry {
            name: name.clone(),
            bytes: bytes.clone(),
        });
    }
    let manifest = Manifest {
        schema: SCHEMA.into(),
        stream: events
            .first()
            .map(|e| e.stream.to_string())
            .unwrap_or_default(),
        head: events.last().map(|e| e.hash.clone()),
        files: entries
            .iter()
            .map(|e| (e.name.clone(), sha(&e.bytes)))
            .collect(),
        erased: erased.to_vec(),
    };
    entries.push(Entry {
        name: "manifest.json".into(),
        bytes: serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    });
    write_tar(&entries)
}

fn recorded(e: &Envelope) -> Result<RecordedEvent, String> {
    Ok(RecordedEvent {
        position: e.position,
        event_id: serde_json::from_value(serde_json::Value::String(e.event_id.clone()))
            .map_err(|_| format!("event {}: event id changed", e.version))?,
        stream: e
            .stream
            .parse()
            .map_err(|_| format!("event {}: stream changed", e.version))?,
        version: e.version,
        tenant: e
            .tenant
            .parse()
            .map_err(|_| format!("event {}: tenant changed", e.version))?,
        event_type: e.event_type.clone(),
        payload: e.payload.clone(),
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at,
        metadata: e.metadata.clone(),
        hash: e.hash.clone(),
    })
}

/// What an intact archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub stream: String,
    pub events: usize,
    pub documents: usize,
    pub head: Option<String>,
}

/// Check an archive offline; `Err` lists what changed.
pub fn verify(bytes: &[u8]) -> Result<Verified, Vec<String>> {
    let entries = read_tar(bytes).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let get = |name: &str| entries.iter().find(|e| e.name == name);
    let manifest_entry =
        get("manifest.json").ok_or_else(|| vec!["manifest.json missing".to_owned()])?;
    let manifest: Manifest = serde_json::from_slice(&manifest_entry.bytes)
        .map_err(|e| vec![format!("manifest.json changed: {e}")])?;
    if serde_json::to_vec_pretty(&manifest).ok().as_deref() != Some(&manifest_entry.bytes[..]) {
        problems.push("manifest.json changed (not as written)".to_owned());
    }
    for e in &entries {
        if e.name == "manifest.json" {
            continue;
        }
        match manifest.files.get(&e.name) {
            None => problems.push(format!("{}: not in the manifest (added)", e.name)),
            Some(h) if *h != sha(&e.bytes) => problems.push(format!("{}: content changed", e.name)),
            Some(_) => {}
        }
        if let Some(s) = named_sha(&e.name)
            && sha(&e.bytes) != s
        {
            problems.push(format!("{}: does not match its SHA-256", e.name));
        }
    }
    for name in manifest.files.keys() {
        if get(name).is_none() {
            problems.push(format!("{name}: missing"));
        }
    }
    let Some(case) = get("case.json") else {
        problems.push("case.json missing".into());
        return Err(problems);
    };
    let envelopes: Vec<Envelope> = match serde_json::from_slice(&case.bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("case.json changed: {e}"));
            return Err(problems);
        }
    };
    let events: Result<Vec<RecordedEvent>, String> = envelopes.iter().map(recorded).collect();
    let events = match events {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("case.json: {e}"));
            return Err(problems);
        }
    };
    if let Some((version, reason)) = mahnwerk_eventlog::verify_stream_events(&events) {
        let t = events
            .iter()
            .find(|e| e.version == version)
            .map_or("", |e| e.event_type.as_str());
        problems.push(format!("case.json: event {version} ({t}): {reason}"));
    }
    if manifest.schema != SCHEMA {
        problems.push(format!(
            "manifest.json: schema changed to {:?}",
            manifest.schema
        ));
    }
    if events.iter().any(|e| e.stream.as_str() != manifest.stream) {
        problems.push("manifest.json: stream differs from the events' stream".into());
    }
    if events.last().map(|e| e.hash.clone()) != manifest.head {
        problems.push("case.json: the last event is not the manifest's hash-chain head".into());
    }
    // Documents may be listed as erased only when the verified chain records the erasure.
    if !manifest.erased.is_empty() && !events.iter().any(|e| e.event_type == ERASED_EVENT) {
        problems.push(format!(
            "manifest.json: documents listed as erased, but no {ERASED_EVENT} event: {:?}",
            manifest.erased
        ));
    }
    for e in &events {
        if let Some(s) = e.payload.get("document_sha256").and_then(|v| v.as_str())
            && e.event_type.starts_with("letter.")
            && get(&format!("documents/{s}.pdf")).is_none()
            && !manifest.erased.contains(&format!("documents/{s}.pdf"))
        {
            {
                problems.push(format!(
                    "documents/{s}.pdf: missing (named by event {})",
                    e.version
                ));
            }
        }
        if let Some((_, name)) = original_of(e)
            && get(&name).is_none()
            && !manifest.erased.contains(&name)
        {
            problems.push(format!(
                "{name}: missing (the original invoice named by event {})",
                e.version
            ));
        }
    }
    if problems.is_empty() {
        Ok(Verified {
            stream: manifest.stream,
            events: events.len(),
            documents: entries
                .iter()
                .filter(|e| e.name.starts_with("documents/"))
                .count(),
            head: manifest.head,
        })
    } else {
        Err(problems)
    }
}
