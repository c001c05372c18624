//! Pure: a case stream → its folded views (dunning state, collection state) and the complete
//! case file carried by `case.handed_over.v1` (schema: `docs/schemas/case.handed_over.v1.json`).
//!
//! The case file is built only from the stream: debtor and invoice from `invoice.issued.v1`,
//! payments and reversals, letters (`letter.*`, read by their JSON since the letters crate is its
//! own service), dunning steps, disputes and their outcomes, credits, the claim, an index of
//! every event with its hash, and the hash-chain head (the last event's hash before the
//! hand-over), so the partner can check what it got against the chain.

use crate::engine::{self, Claim, CollectionState, Event, Partner};
use chrono::NaiveDate;
use mahnwerk_dunning::dunning_case::{DunningCase, DunningEvent, evolve};
use mahnwerk_eventlog::RecordedEvent;
use serde_json::{Map, Value, json};

/// Schema version of the case file (`schema` field).
pub const SCHEMA: &str = "case.handed_over.v1";

/// The gRPC method a partner fetches documents with.
pub const DOCUMENT_RPC: &str = "mahnwerk.v1.CollectionService/GetPartnerDocument";

/// A stored event this version cannot read.
#[derive(Debug, thiserror::Error)]
#[error("event {version} ({event_type}): {reason}")]
pub struct Unreadable {
    pub version: u64,
    pub event_type: String,
    pub reason: String,
}

/// The payload of a collection event (the engine's event without its tag).
pub fn payload(event: &Event) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("event");
    }
    v
}

fn tag(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "collection.approval_requested.v1" => "approval_requested",
        "collection.held.v1" => "held",
        "case.handed_over.v1" => "handed_over",
        "collection.status_reported.v1" => "reported",
        "collection.recalled.v1" => "recalled",
        "collection.costs_waived.v1" => "costs_waived",
        "case.closed.v1" => "closed",
        _ => return None,
    })
}

/// Read a collection event back; `Ok(None)` for other types.
pub fn from_parts(event_type: &str, payload: &Value) -> Result<Option<Event>, serde_json::Error> {
    let Some(tag) = tag(event_type) else {
        return Ok(None);
    };
    let mut p = payload.clone();
    if let Value::Object(m) = &mut p {
        m.insert("event".into(), Value::String(tag.into()));
    }
    serde_json::from_value(p).map(Some)
}

/// A case stream, folded.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub events: Vec<RecordedEvent>,
    pub dunning: Option<DunningCase>,
    pub collection: CollectionState,
    /// Collection events with their stream version.
    pub collection_events: Vec<(u64, Event)>,
}

impl CaseView {
    pub fn of(events: Vec<RecordedEvent>) -> Result<CaseView, Unreadable> {
        let mut dunning = None;
        let mut collection = CollectionState::default();
        let mut collection_events = Vec::new();
        for e in &events {
            let bad = |reason: String| Unreadable {
                version: e.version,
                event_type: e.event_type.clone(),
                reason,
            };
            if let Some(d) = DunningEvent::from_parts(&e.event_type, &e.payload)
                .map_err(|x| bad(x.to_string()))?
            {
                dunning = evolve(dunning, &d);
            } else if let Some(c) =
                from_parts(&e.event_type, &e.payload).map_err(|x| bad(x.to_string()))?
            {
                collection = engine::evolve(collection, &c);
                collection_events.push((e.version, c));
            }
        }
        Ok(CaseView {
            events,
            dunning,
            collection,
            collection_events,
        })
    }

    pub fn version(&self) -> u64 {
        self.events.last().map_or(0, |e| e.version)
    }

    /// The invoice as issued.
    pub fn invoice(&self) -> Option<&Value> {
        self.events
            .iter()
            .find(|e| e.event_type == "invoice.issued.v1")
            .and_then(|e| e.payload.get("invoice"))
    }

    /// Debtor kind and country of the case, from the dunning facts and the invoice.
    pub fn debtor_country(&self) -> String {
        self.invoice()
            .and_then(|i| i.pointer("/debtor/address/country"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether this case was ever handed over to `partner_id`.
    pub fn handed_to(&self, partner_id: &str) -> bool {
        self.collection_events
            .iter()
            .any(|(_, e)| matches!(e, Event::HandedOver { partner_id: p, .. } if p == partner_id))
    }

    /// The last hand-over event (to anyone).
    pub fn last_handover(&self) -> Option<&RecordedEvent> {
        self.events
            .iter()
            .rev()
            .find(|e| e.event_type == "case.handed_over.v1")
    }

    /// Whether the case file names this document (a letter's PDF).
    pub fn names_document(&self, sha256: &str) -> bool {
        self.events.iter().any(|e| {
            e.event_type.starts_with("letter.")
                && e.payload.get("document_sha256").and_then(Value::as_str) == Some(sha256)
        })
    }
}

fn day(e: &RecordedEvent) -> String {
    e.occurred_at.date_naive().to_string()
}

fn with(mut base: Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(m) = extra {
        base.extend(m);
    }
    Value::Object(base)
}

/// The `case.handed_over.v1` payload: the engine's fields and the complete case file.
pub fn handover_payload(
    view: &CaseView,
    tenant: &str,
    case_id: &str,
    partner: &Partner,
    handed_over_on: NaiveDate,
    claim: &Claim,
    event: &Event,
) -> Value {
    let invoice = view.invoice().cloned().unwrap_or(Value::Null);
    let debtor = invoice.get("debtor").cloned().unwrap_or(Value::Null);
    let mut payments = Vec::new();
    let mut credits = Vec::new();
    let mut steps = Vec::new();
    let mut disputes: Vec<Value> = Vec::new();
    let mut letters: Vec<Value> = Vec::new();
    let mut index = Vec::new();
    for e in &view.events {
        index.push(json!({
            "version": e.version, "event_id": e.event_id.to_string(), "type": e.event_type,
            "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
            "actor": e.metadata.actor, "hash": e.hash,
        }));
        let p = &e.payload;
        match e.event_type.as_str() {
            "payment.applied.v1" | "payment.reversed.v1" => payments.push(with(
                Map::from_iter([
                    ("type".into(), json!(e.event_type)),
                    ("version".into(), json!(e.version)),
                ]),
                p.clone(),
            )),
            "invoice.credited.v1" => credits.push(with(
                Map::from_iter([
                    ("version".into(), json!(e.version)),
                    ("date".into(), json!(day(e))),
                ]),
                p.clone(),
            )),
            "dunning.step_reached.v1" => steps.push(json!({
                "version": e.version,
                "number": p.get("number"), "title": p.get("title"), "date": p.get("date"),
                "channels": p.get("channels"), "fee": p.get("fee"), "lump_sum": p.get("lump_sum"),
                "fee_offset": p.get("fee_offset"), "interest_charged": p.get("interest_charged"),
                "deadline": p.pointer("/deadline/deadline").or_else(|| p.get("deadline")),
                "balance": p.get("balance"),
            })),
            "invoice.disputed.v1" => disputes.push(json!({
                "version": e.version, "opened_on": day(e), "reason": p.get("reason"),
                "outcome": null, "resolved_on": null, "note": null,
            })),
            "dispute.resolved.v1" => {
                if let Some(open) = disputes
                    .iter_mut()
                    .rev()
                    .find(|d| d.get("outcome").is_some_and(Value::is_null))
                {
                    open["outcome"] = p.get("outcome").cloned().unwrap_or(Value::Null);
                    open["resolved_on"] = json!(day(e));
                    open["note"] = p.get("note").cloned().unwrap_or(Value::Null);
                }
            }
            t if t.starts_with("letter.") => {
                let Some(letter_id) = p.get("letter_id").and_then(Value::as_str) else {
                    continue;
                };
                let idx = match letters
                    .iter()
                    .position(|l| l.get("letter_id").and_then(Value::as_str) == Some(letter_id))
                {
                    Some(i) => i,
                    None => {
                        letters.push(json!({
                            "letter_id": letter_id, "step": p.get("step"), "kind": null,
                            "date": day(e), "document_sha256": null, "document": null,
                            "dispatches": [], "events": [],
                        }));
                        letters.len() - 1
                    }
                };
                let l = &mut letters[idx];
                if let Some(k) = p.get("kind") {
                    l["kind"] = k.clone();
                }
                if let Some(sha) = p.get("document_sha256").and_then(Value::as_str)
                    && l["document_sha256"].is_null()
                {
                    l["document_sha256"] = json!(sha);
                    l["document"] = json!({
                        "sha256": sha, "content_type": "application/pdf",
                        "fetch": {"grpc": DOCUMENT_RPC, "case_id": case_id, "sha256": sha},
                    });
                }
                if t == "letter.dispatched.v1"
                    && let Some(arr) = l["dispatches"].as_array_mut()
                {
                    {
                        arr.push(json!({
                            "channel": p.get("channel"), "date": day(e),
                            "registered": p.get("registered"),
                        }));
                    }
                }
                if let Some(arr) = l["events"].as_array_mut() {
                    arr.push(json!({"version": e.version, "type": t}));
                }
            }
            _ => {}
        }
    }
    let last = view.events.last();
    let file = json!({
        "schema": SCHEMA,
        "tenant": tenant,
        "case_id": case_id,
        "partner": {"id": partner.id, "name": partner.name, "subject_token": partner.subject_token},
        "invoice": invoice,
        "debtor": debtor,
        "payments": payments,
        "credits": credits,
        "dunning_steps": steps,
        "letters": letters,
        "disputes": disputes,
        "claim": claim,
        "events": index,
        "hash_chain": {
            "stream": format!("{tenant}/case/{case_id}"),
            "version": last.map_or(0, |e| e.version),
            "head": last.map(|e| e.hash.clone()),
        },
        "handed_over_on": handed_over_on,
    });
    let mut out = payload(event);
    if let (Value::Object(o), Value::Object(f)) = (&mut out, file) {
        o.extend(f);
    }
    out
}
