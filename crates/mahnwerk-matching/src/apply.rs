//! Recording entries and applying decisions to case streams, exactly once.
//!
//! 1. The entry's stream `{tenant}/statement/{entry id}` is read. If a booked
//!    `bank_transaction.received.v1` is there, the entry was seen before: its recorded decision is
//!    the answer, and its allocations are applied again idempotently (a crash between recording
//!    and applying is repaired on the next delivery).
//! 2. Otherwise the engine decides; the entry and its decision are appended with the expected
//!    version (a concurrent import of the same entry conflicts: re-read, step 1).
//! 3. Each allocation is applied to its case stream: the case is folded, the payment id
//!    (`{entry id}:{case id}`) already there means done; a case that changed since the decision
//!    (closed, another balance) sends the entry to review; else `payment.applied.v1`
//!    (+ `overpayment.recorded.v1`, + `invoice.settled.v1` when the balance reaches zero) is
//!    appended with the expected version, re-reading on conflict.

use crate::engine::{BankEntry, Decision, OpenItem, OpenItems, Outcome, Settings, decide};
use crate::error::{Error, Result};
use crate::events::{
    ENTRY_KIND, EntryEvent, Payer, RecordedAllocation, RecordedDecision, TransactionReceived,
    UnmatchedPayload,
};
use chrono::NaiveDate;
use mahnwerk_domain::lifecycle::CaseEvent;
use mahnwerk_domain::payment::{
    InvoiceSettled, OverpaymentRecorded, PaymentApplied, PaymentEvent, PaymentReversed,
};
use mahnwerk_domain::{CaseId, Money, StreamId, TenantId};
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, RecordedEvent, event_id_now,
};
use std::collections::{HashMap, HashSet};

mod chunk;
pub use chunk::{CHUNK, chunkable, process_chunk};

/// Attempts on a contended stream before giving up with `ABORTED`.
const ATTEMPTS: usize = 8;

/// Loads the open items of amount buckets (`a:` keys) a partial item set
/// ([`OpenItems::partial`]) lacks.
pub type LoadBuckets<'a> =
    dyn Fn(Vec<String>) -> futures::future::BoxFuture<'a, Result<Vec<OpenItem>>> + Send + Sync + 'a;

/// [`decide`], loading every amount bucket the engine asks for that `items` lacks and deciding
/// again, so the decision is the one on all open items. Without `load` the items are taken as
/// complete.
pub async fn decide_loading(
    items: &mut OpenItems,
    entry: &BankEntry,
    settings: &Settings,
    load: Option<&LoadBuckets<'_>>,
) -> Result<Decision> {
    loop {
        let d = decide(items, entry, settings);
        let missing = items.take_missing();
        let Some(load) = load.filter(|_| !missing.is_empty()) else {
            return Ok(d);
        };
        let found = load(missing.clone()).await?;
        items.add_buckets(found, &missing);
    }
}

/// An entry to record: the bank entry, where it came from, what the caller sent.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub entry: BankEntry,
    /// Charges the bank took (a return fee on a returned direct debit).
    pub charges: Option<Money>,
    pub bank_reference: Option<String>,
    pub source: &'static str,
    pub fingerprint: Option<String>,
    pub end_to_end_id: Option<String>,
}

/// What happened to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub entry_id: String,
    pub decision: RecordedDecision,
    pub duplicate: bool,
}

pub async fn read_all(log: &EventLog, stream: &StreamId) -> Result<Vec<RecordedEvent>> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let batch = log.read_stream(stream, from, 1000).await?;
        let n = batch.len();
        if let Some(last) = batch.last() {
            from = last.version + 1;
        }
        out.extend(batch);
        if n < 1000 {
            return Ok(out);
        }
    }
}

fn new_event(event_type: &str, payload: serde_json::Value, metadata: &Metadata) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.to_owned(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: metadata.clone(),
    }
}

fn expected(version: Option<u64>) -> ExpectedVersion {
    version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
}

/// The entry stream folded: version, the booked receipt, whether a pending one was recorded, the
/// manual matches and undos.
#[derive(Debug, Default)]
pub struct EntryState {
    pub version: Option<u64>,
    pub received: Option<TransactionReceived>,
    pub pending_seen: bool,
    pub manual: Vec<crate::events::MatchedManually>,
    pub undone: HashSet<String>,
    pub not_ours: bool,
    /// The note of the (first) mark as not ours.
    pub not_ours_note: String,
    /// Review actions sent with a `request_id`, by that id: a retry answers from here.
    pub requests: std::collections::HashMap<String, PriorRequest>,
    pub unmatched: Option<UnmatchedPayload>,
    /// Entries whose return was linked to this one.
    pub returned_by: Vec<String>,
}

/// What an earlier review action sent with a `request_id` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorRequest {
    Manual {
        allocations: Vec<crate::events::ManualPart>,
        note: String,
    },
    NotOurs {
        note: String,
    },
    Undo {
        payment_ids: Vec<String>,
        reason: String,
    },
}

/// A review action's `request_id`: optional, at most 128 printable characters.
pub fn check_request_id(id: &str) -> Result<()> {
    if id.chars().count() > 128 || id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "request_id",
            "at most 128 printable characters",
        ));
    }
    Ok(())
}

/// The same `request_id` with a different request.
pub fn request_id_reused() -> Error {
    Error::AlreadyExists("request_id was used for a different request".into())
}

/// Fold an entry stream. An event that does not read back is an error, never skipped: skipping
/// a receipt would apply the entry a second time.
pub fn fold_entry(events: &[RecordedEvent]) -> Result<EntryState> {
    let mut s = EntryState::default();
    for e in events {
        s.version = Some(e.version);
        let parsed = EntryEvent::from_parts(&e.event_type, &e.payload).map_err(|err| {
            Error::Rejected(format!(
                "entry stream {} version {} does not read back: {err}",
                e.stream, e.version
            ))
        });
        match parsed {
            Err(err) => return Err(err),
            Ok(Some(EntryEvent::Received(r))) => {
                if r.booked {
                    s.received = Some(*r);
                } else {
                    s.pending_seen = true;
                }
            }
            Ok(Some(EntryEvent::Unmatched(u))) => s.unmatched = Some(u),
            Ok(Some(EntryEvent::MatchedManually(m))) => {
                if !m.request_id.is_empty() {
                    s.requests.insert(
                        m.request_id.clone(),
                        PriorRequest::Manual {
                            allocations: m.allocations.clone(),
                            note: m.note.clone(),
                        },
                    );
                }
                s.manual.push(m);
            }
            Ok(Some(EntryEvent::MarkedNotOurs(m))) => {
                if !s.not_ours {
                    s.not_ours_note = m.note.clone();
                }
                s.not_ours = true;
                if !m.request_id.is_empty() {
                    s.requests
                        .insert(m.request_id, PriorRequest::NotOurs { note: m.note });
                }
            }
            Ok(Some(EntryEvent::MatchUndone(u))) => {
                if !u.request_id.is_empty() {
                    s.requests.insert(
                        u.request_id,
                        PriorRequest::Undo {
                            payment_ids: u.payment_ids.clone(),
                            reason: u.reason,
                        },
                    );
                }
                s.undone.extend(u.payment_ids);
            }
            Ok(Some(EntryEvent::Returned(r))) => {
                s.undone.extend(r.payment_ids);
                s.returned_by.push(r.return_entry_id);
            }
            Ok(None) => {}
        }
    }
    Ok(s)
}

impl EntryState {
    /// Payment ids of the entry not undone, with their case.
    pub fn live_payments(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(r) = &self.received
            && r.decision.outcome.applies()
        {
            for a in &r.decision.allocations {
                out.push((auto_payment_id(&r.entry_id, &a.case_id), a.case_id.clone()));
            }
        }
        for (n, m) in self.manual.iter().enumerate() {
            for p in &m.allocations {
                out.push((
                    manual_payment_id(&m.entry_id, &p.case_id, n),
                    p.case_id.clone(),
                ));
            }
        }
        out.retain(|(pid, _)| !self.undone.contains(pid));
        out
    }
}

pub fn auto_payment_id(entry_id: &str, case_id: &str) -> String {
    format!("{entry_id}:{case_id}")
}

pub fn manual_payment_id(entry_id: &str, case_id: &str, n: usize) -> String {
    format!("{entry_id}:{case_id}:m{n}")
}

/// A case stream folded for payments.
#[derive(Debug, Default, Clone)]
pub struct CaseBalance {
    pub version: Option<u64>,
    pub open: Option<Money>,
    pub closed: Option<String>,
    pub applied: HashMap<String, Money>,
    pub reversed: HashSet<String>,
}

pub fn fold_case(events: &[RecordedEvent]) -> CaseBalance {
    let mut b = CaseBalance::default();
    for e in events {
        b.version = Some(e.version);
        if let Ok(Some(ce)) = CaseEvent::from_parts(&e.event_type, &e.payload) {
            match ce {
                CaseEvent::InvoiceIssued(i) => b.open = Some(i.invoice.amount_due()),
                CaseEvent::InvoiceCancelled(_) => b.closed = Some("cancelled".into()),
                CaseEvent::InvoiceCredited(c) => {
                    if let Some(o) = &mut b.open {
                        o.minor = (o.minor - c.amount.minor).max(0);
                    }
                    if c.open_after.is_zero() {
                        b.closed = Some("credited".into());
                    }
                }
                _ => {}
            }
        } else if let Ok(Some(pe)) = PaymentEvent::from_parts(&e.event_type, &e.payload) {
            match pe {
                PaymentEvent::Applied(a) => {
                    b.open = Some(a.open_after);
                    b.applied.insert(a.payment_id, a.amount);
                }
                PaymentEvent::Reversed(r) => {
                    b.open = Some(r.open_after);
                    b.reversed.insert(r.payment_id);
                }
                _ => {}
            }
        }
    }
    b
}

/// How much to apply to a case.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The engine's allocation: applied only if the case's balance is still what it decided on.
    Exact(RecordedAllocation),
    /// An operator's amount: up to the open balance, the rest a credit.
    Manual(Money),
}

/// Apply one allocation to a case stream. `Ok(true)` when appended now, `Ok(false)` when the
/// payment id was already there.
#[allow(clippy::too_many_arguments)]
pub async fn apply_to_case(
    log: &EventLog,
    tenant: &TenantId,
    case_id: &str,
    payment_id: &str,
    entry_id: &str,
    booked_on: NaiveDate,
    rule: &str,
    plan: &Plan,
    overpayment: Option<Money>,
    metadata: &Metadata,
) -> Result<bool> {
    let case: CaseId = case_id
        .parse()
        .map_err(|_| Error::Stale(format!("case {case_id} does not exist")))?;
    let stream = case.stream(tenant);
    for _ in 0..ATTEMPTS {
        let bal = fold_case(&read_all(log, &stream).await?);
        if bal.applied.contains_key(payment_id) {
            return Ok(false);
        }
        let Some(open) = bal.open else {
            return Err(Error::Stale(format!("case {case_id} does not exist")));
        };
        if let Some(why) = &bal.closed {
            return Err(Error::Stale(format!("case {case_id} is {why}")));
        }
        let (amount, open_after, overpaid, discount) = match plan {
            Plan::Exact(a) => {
                check_assumed(case_id, open, a)?;
                (a.amount, a.open_after, overpayment, a.discount)
            }
            Plan::Manual(m) => {
                if open.currency != m.currency {
                    return Err(Error::invalid(
                        "allocations",
                        format!(
                            "case {case_id} is in {}, the entry in {}",
                            open.currency, m.currency
                        ),
                    ));
                }
                let part = m.minor.min(open.minor);
                let rest = m.minor - part;
                (
                    Money::new(part, m.currency),
                    Money::new(open.minor - part, m.currency),
                    (rest > 0).then(|| Money::new(rest, m.currency)),
                    None,
                )
            }
        };
        let applied = PaymentApplied {
            payment_id: payment_id.to_owned(),
            entry_id: entry_id.to_owned(),
            amount,
            booked_on,
            rule: rule.to_owned(),
            open_after,
            discount,
        };
        let batch = AppendBatch {
            stream: stream.clone(),
            expected: expected(bal.version),
            events: payment_events(applied, overpaid, open, metadata),
        };
        match log.append(batch).await {
            Ok(_) => return Ok(true),
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended)
}

/// A [`Plan::Exact`] allocation applies only to the balance the engine decided on.
pub(crate) fn check_assumed(case_id: &str, open: Money, a: &RecordedAllocation) -> Result<()> {
    let assumed = a.amount.minor + a.open_after.minor + a.discount.map_or(0, |d| d.minor);
    if open.currency != a.amount.currency || open.minor != assumed {
        return Err(Error::Stale(format!(
            "the open balance of case {case_id} changed since the decision"
        )));
    }
    Ok(())
}

/// The events of one payment on a case stream: `payment.applied.v1`, the overpayment if any,
/// `invoice.settled.v1` when it brings an open balance to zero.
pub(crate) fn payment_events(
    applied: PaymentApplied,
    overpaid: Option<Money>,
    open_before: Money,
    metadata: &Metadata,
) -> Vec<NewEvent> {
    let (payment_id, booked_on, open_after) = (
        applied.payment_id.clone(),
        applied.booked_on,
        applied.open_after,
    );
    let mut events = vec![PaymentEvent::Applied(applied)];
    if let Some(over) = overpaid {
        events.push(PaymentEvent::Overpaid(OverpaymentRecorded {
            payment_id: payment_id.clone(),
            amount: over,
            booked_on,
        }));
    }
    if open_after.minor == 0 && open_before.minor > 0 {
        events.push(PaymentEvent::Settled(InvoiceSettled {
            settled_on: booked_on,
            by: payment_id,
        }));
    }
    events
        .iter()
        .map(|e| new_event(e.event_type(), e.to_payload(), metadata))
        .collect()
}

/// Reverse one payment on its case stream (operator undo, bank return). `Ok(None)` when it was
/// never applied or is already reversed.
#[allow(clippy::too_many_arguments)]
pub async fn reverse_on_case(
    log: &EventLog,
    tenant: &TenantId,
    case_id: &str,
    payment_id: &str,
    reversed_on: NaiveDate,
    reason: &str,
    return_fee: Option<Money>,
    metadata: &Metadata,
) -> Result<Option<Money>> {
    let Ok(case) = case_id.parse::<CaseId>() else {
        return Ok(None);
    };
    let stream = case.stream(tenant);
    for _ in 0..ATTEMPTS {
        let bal = fold_case(&read_all(log, &stream).await?);
        let Some(&amount) = bal.applied.get(payment_id) else {
            return Ok(None);
        };
        if bal.reversed.contains(payment_id) {
            return Ok(None);
        }
        let open = bal.open.unwrap_or(Money::zero(amount.currency));
        let ev = PaymentEvent::Reversed(PaymentReversed {
            payment_id: payment_id.to_owned(),
            amount,
            reversed_on,
            reason: reason.to_owned(),
            return_fee,
            open_after: Money::new(open.minor + amount.minor, amount.currency),
        });
        let batch = AppendBatch {
            stream: stream.clone(),
            expected: expected(bal.version),
            events: vec![new_event(ev.event_type(), ev.to_payload(), metadata)],
        };
        match log.append(batch).await {
            Ok(_) => return Ok(Some(amount)),
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended)
}

fn payer_of(inc: &Incoming) -> Payer {
    let e = &inc.entry;
    Payer {
        name: e.counterparty_name.clone(),
        iban: e.counterparty_iban.clone(),
        ultimate_debtor: e.ultimate_debtor.clone(),
        remittance: e.remittance.clone(),
        references: e.references.clone(),
        end_to_end_id: inc.end_to_end_id.clone(),
    }
}

/// Apply a recorded decision's allocations; a case that changed sends the entry to review.
pub(crate) async fn apply_recorded(
    log: &EventLog,
    tenant: &TenantId,
    r: &TransactionReceived,
    metadata: &Metadata,
) -> Result<std::result::Result<(), String>> {
    let booked_on = r
        .booked_on
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let last = r.decision.allocations.len().saturating_sub(1);
    for (i, a) in r.decision.allocations.iter().enumerate() {
        let over = if i == last {
            r.decision.overpayment
        } else {
            None
        };
        match apply_to_case(
            log,
            tenant,
            &a.case_id,
            &auto_payment_id(&r.entry_id, &a.case_id),
            &r.entry_id,
            booked_on,
            r.decision.rule.as_str(),
            &Plan::Exact(a.clone()),
            over,
            metadata,
        )
        .await
        {
            Ok(_) => {}
            Err(Error::Stale(why)) => return Ok(Err(why)),
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// Record one entry and apply what the engine decides, exactly once (see the module docs).
/// `items` is updated with what was applied, for the next entry of the same batch.
pub async fn process(
    log: &EventLog,
    tenant: &TenantId,
    items: &mut OpenItems,
    settings: &Settings,
    inc: &Incoming,
    metadata: &Metadata,
    load: Option<&LoadBuckets<'_>>,
) -> Result<Processed> {
    let id = inc.entry.entry_ref.clone();
    let stream = StreamId::new(tenant, ENTRY_KIND, &id);
    for _ in 0..ATTEMPTS {
        let state = fold_entry(&read_all(log, &stream).await?)?;
        if let Some(r) = state.received {
            if let (Some(a), Some(b)) = (&inc.fingerprint, &r.fingerprint)
                && a != b
            {
                return Err(Error::AlreadyExists(format!(
                    "entry {id} (same bank reference, booking date and amount) was recorded with other content"
                )));
            }
            if r.decision.outcome.applies() && state.undone.is_empty() {
                // Repairs a crash between recording and applying; a no-op otherwise.
                let _ = apply_recorded(log, tenant, &r, metadata).await?;
            }
            return Ok(Processed {
                entry_id: id,
                decision: r.decision,
                duplicate: true,
            });
        }
        let d = decide_loading(items, &inc.entry, settings, load).await?;
        if !inc.entry.booked && state.pending_seen {
            return Ok(Processed {
                entry_id: id,
                decision: (&d).into(),
                duplicate: true,
            });
        }
        let (received, batch) = record_batch(tenant, inc, &d, expected(state.version), metadata)?;
        match log.append(batch).await {
            Ok(_) => {}
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut decision = received.decision.clone();
        if d.outcome.applies() {
            if let Err(why) = apply_recorded(log, tenant, &received, metadata).await? {
                to_review(log, &stream, inc, &received, &why, metadata).await?;
                decision.outcome = Outcome::Review;
                decision.reason = why;
            } else {
                items.apply(&inc.entry, &d);
            }
        }
        return Ok(Processed {
            entry_id: id,
            decision,
            duplicate: false,
        });
    }
    Err(Error::Contended)
}

/// The receipt of an entry with the engine's decision, and the batch that records it on the
/// entry's stream (with `payment.unmatched.v1` when the decision is review).
pub(crate) fn record_batch(
    tenant: &TenantId,
    inc: &Incoming,
    d: &crate::engine::Decision,
    expected: ExpectedVersion,
    metadata: &Metadata,
) -> Result<(TransactionReceived, AppendBatch)> {
    let id = &inc.entry.entry_ref;
    let amount = inc
        .entry
        .amount
        .ok_or_else(|| Error::invalid("amount", "required"))?;
    let received = TransactionReceived {
        entry_id: id.clone(),
        source: inc.source.to_owned(),
        bank_reference: inc.bank_reference.clone(),
        amount,
        booked_on: inc.entry.booked_on,
        booked: inc.entry.booked,
        reversal: inc.entry.reversal,
        return_reason: inc.entry.return_reason.clone(),
        fingerprint: inc.fingerprint.clone(),
        payer: payer_of(inc),
        decision: d.into(),
    };
    let mut events = vec![EntryEvent::Received(Box::new(received.clone()))];
    if d.outcome == Outcome::Review {
        events.push(EntryEvent::Unmatched(UnmatchedPayload {
            entry_id: id.clone(),
            amount,
            booked_on: inc.entry.booked_on,
            reason: d.reason(),
            candidates: d.candidates.clone(),
            payer: payer_of(inc),
        }));
    }
    let batch = AppendBatch {
        stream: StreamId::new(tenant, ENTRY_KIND, id),
        expected,
        events: events
            .iter()
            .map(|e| new_event(e.event_type(), e.to_payload(), metadata))
            .collect(),
    };
    Ok((received, batch))
}

/// A recorded entry whose case changed before its payment was applied goes to review.
pub(crate) async fn to_review(
    log: &EventLog,
    stream: &StreamId,
    inc: &Incoming,
    received: &TransactionReceived,
    why: &str,
    metadata: &Metadata,
) -> Result<()> {
    tracing::warn!(entry = %received.entry_id, "case changed before the payment was applied; to review");
    let u = EntryEvent::Unmatched(UnmatchedPayload {
        entry_id: received.entry_id.clone(),
        amount: received.amount,
        booked_on: inc.entry.booked_on,
        reason: why.to_owned(),
        candidates: received
            .decision
            .allocations
            .iter()
            .map(|a| a.case_id.clone())
            .collect(),
        payer: payer_of(inc),
    });
    log.append(AppendBatch {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![new_event(u.event_type(), u.to_payload(), metadata)],
    })
    .await?;
    Ok(())
}
