//! `PaymentService` over gRPC. Each call: authenticate, take the tenant from the key, convert at
//! the edge, then record and apply through [`crate::apply`].

use crate::apply::{
    Incoming, Plan, PriorRequest, Processed, apply_to_case, check_request_id, fold_entry,
    manual_payment_id, process, read_all, request_id_reused, reverse_on_case,
};
use crate::engine::{OpenItems, Outcome, Rule, Settings};
use crate::entry::{account_of, bank_entry, entry_id, statement_reader};
use crate::error::{Error, Result};
use crate::events::{
    ENTRY_KIND, EntryEvent, ManualPart, MarkedNotOurs, MatchUndone, MatchedManually,
    RecordedDecision, UnmatchedPayload,
};
use crate::projection;
use mahnwerk_auth::{Caller, KeyStore};
use mahnwerk_domain::{Currency, Money, StreamId, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_formats::csv::CsvMapping;
use mahnwerk_formats::statement::{BalanceCheck, Entry, ParseOptions, StatementItem};
use mahnwerk_proto::v1 as pb;
use pb::payment_service_server::PaymentService;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status, Streaming};

/// Largest statement file accepted by `ImportStatement`.
const MAX_STATEMENT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Most transactions per `RecordTransactions` call.
const MAX_TRANSACTIONS: usize = 1000;

/// The service's shared state.
#[derive(Clone)]
pub struct Matching {
    pub log: EventLog,
    pub keys: KeyStore,
    pub pool: AnyPool,
    pub settings: Settings,
    cache: ItemCache,
}

/// The open items of each tenant in memory, refreshed from the projection by position (only rows
/// changed since the last refresh are read). One lock per tenant: entries of one tenant are
/// decided one at a time, so two calls never decide on the same balance.
#[derive(Clone, Default)]
struct ItemCache(Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<TenantItems>>>>>);

#[derive(Default)]
pub struct TenantItems {
    pub items: OpenItems,
    position: i64,
    refreshed: Option<Instant>,
}

/// How old the cached items of a statement import may get before they are refreshed.
const IMPORT_REFRESH: Duration = Duration::from_secs(1);

impl ItemCache {
    fn tenant(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<TenantItems>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_string()).or_default().clone()
    }
}

fn request_metadata<T>(req: &Request<T>, caller: &Caller) -> Metadata {
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id").unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    Metadata {
        correlation_id: Some(header("x-correlation-id").unwrap_or_else(|| request_id.clone())),
        causation_id: Some(format!("request:{request_id}")),
        actor: caller.actor(),
        traceparent: header("traceparent"),
    }
}

fn money_pb(m: Money) -> pb::Money {
    pb::Money {
        minor: m.minor,
        currency: m.currency.to_string(),
    }
}

fn result_pb(p: &Processed) -> pb::EntryResult {
    let d = &p.decision;
    pb::EntryResult {
        entry_id: p.entry_id.clone(),
        decision: d.outcome.as_str().to_owned(),
        allocations: d
            .allocations
            .iter()
            .map(|a| pb::Allocation {
                case_id: a.case_id.clone(),
                amount: Some(money_pb(a.amount)),
                open_after: Some(money_pb(a.open_after)),
            })
            .collect(),
        rule: d.rule.as_str().to_owned(),
        confidence: u32::from(d.confidence),
        reason: d.reason.clone(),
        duplicate: p.duplicate,
        overpaid: d.overpayment.map(money_pb),
    }
}

fn date(field: &str, s: &str, required: bool) -> Result<Option<chrono::NaiveDate>> {
    if s.is_empty() {
        return if required {
            Err(Error::invalid(field, "required (YYYY-MM-DD)"))
        } else {
            Ok(None)
        };
    }
    s.parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "must be a date YYYY-MM-DD"))
}

fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A transaction from the API as a statement entry (so both share one identity).
fn transaction_entry(i: usize, t: &pb::Transaction) -> Result<Incoming> {
    let f = |name: &str| format!("transactions[{i}].{name}");
    if t.bank_reference.trim().is_empty() || t.bank_reference.len() > 140 {
        return Err(Error::invalid(
            f("bank_reference"),
            "1 to 140 characters required",
        ));
    }
    if t.account.trim().is_empty() || t.account.len() > 64 {
        return Err(Error::invalid(f("account"), "1 to 64 characters required"));
    }
    let m = t
        .amount
        .as_ref()
        .ok_or_else(|| Error::invalid(f("amount"), "required"))?;
    let currency: Currency = m
        .currency
        .parse()
        .map_err(|_| Error::invalid(f("amount.currency"), "not an ISO 4217 code"))?;
    if m.minor == 0 {
        return Err(Error::invalid(f("amount.minor"), "must not be zero"));
    }
    if t.remittance.chars().count() > 1000 {
        return Err(Error::invalid(f("remittance"), "at most 1000 characters"));
    }
    let mut e = Entry::new(Money::new(m.minor, currency), 0);
    e.booking_date = date(&f("booking_date"), &t.booking_date, true)?;
    e.value_date = date(&f("value_date"), &t.value_date, false)?;
    e.bank_reference = some(&t.bank_reference);
    e.end_to_end_id = some(&t.end_to_end_id);
    e.counterparty.name = some(&t.counterparty_name);
    e.counterparty.iban = some(&t.counterparty_iban);
    e.remittance = some(&t.remittance);
    e.structured_references = t.references.iter().filter_map(|r| some(r)).collect();
    e.reversal = t.reversal;
    e.return_reason = some(&t.return_reason);
    if t.pending {
        e.status = Some("PDNG".into());
    }
    let id = entry_id(t.account.trim(), &e);
    let mut be = bank_entry(id, &e);
    be.ultimate_debtor = some(&t.ultimate_debtor);
    let fingerprint = {
        let v = serde_json::json!([
            t.bank_reference,
            t.account,
            m.minor,
            m.currency,
            t.booking_date,
            t.value_date,
            t.counterparty_name,
            t.counterparty_iban,
            t.remittance,
            t.references,
            t.end_to_end_id,
            t.reversal,
            t.return_reason,
            t.ultimate_debtor,
            t.pending
        ]);
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    };
    Ok(Incoming {
        entry: be,
        charges: None,
        bank_reference: e.bank_reference.clone(),
        source: "api",
        fingerprint: Some(fingerprint),
        end_to_end_id: e.end_to_end_id.clone(),
    })
}

/// Outcome counts of an import.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub statements: u64,
    pub entries: u64,
    pub applied: u64,
    pub partial: u64,
    pub split: u64,
    pub overpaid: u64,
    pub review: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub warnings: Vec<String>,
}

impl ImportSummary {
    fn count(&mut self, p: &Processed) {
        self.entries += 1;
        if p.duplicate {
            self.duplicates += 1;
            return;
        }
        match p.decision.outcome {
            Outcome::Applied => self.applied += 1,
            Outcome::Partial => self.partial += 1,
            Outcome::Split => self.split += 1,
            Outcome::Overpaid => self.overpaid += 1,
            Outcome::Review => self.review += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }
}

/// First pass over a statement file: every statement must parse and balance (where both
/// balances are given). Returns the number of statements and the warnings.
pub fn check_statement(
    path: &std::path::Path,
    csv: Option<&CsvMapping>,
) -> Result<(u64, Vec<String>)> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Rejected(format!("reading the upload: {e}")))?;
    let reader = statement_reader(
        std::io::BufReader::with_capacity(256 * 1024, file),
        csv,
        ParseOptions::default(),
    )
    .map_err(|e| Error::invalid("chunk", e.to_string()))?;
    let mut statements = 0;
    let mut warnings = Vec::new();
    let mut current: Option<(String, Option<Money>)> = None;
    for item in reader {
        match item.map_err(|e| Error::invalid("chunk", e.to_string()))? {
            StatementItem::Header(h) => {
                current = Some((
                    h.statement_id
                        .clone()
                        .unwrap_or_else(|| format!("at line {}", h.line)),
                    h.opening_balance.as_ref().map(|b| b.amount),
                ));
            }
            StatementItem::Entry(_) => {}
            StatementItem::End(end) => {
                statements += 1;
                let (id, opening) = current.take().unwrap_or_default();
                match &end.balance_check {
                    BalanceCheck::Balanced => {}
                    BalanceCheck::Unbalanced { difference } => {
                        let o = opening.map_or(0, |m| m.minor);
                        let c = end.closing_balance.as_ref().map_or(0, |b| b.amount.minor);
                        return Err(Error::Rejected(format!(
                            "statement {id}: opening balance {o} + credits {} + debits {} = {}, but the closing balance is {c} (difference {difference}, minor units); nothing imported",
                            end.credits_total,
                            end.debits_total,
                            o + end.credits_total + end.debits_total
                        )));
                    }
                    BalanceCheck::NotChecked { reason } => {
                        warnings.push(format!("statement {id}: balance not checked: {reason}"));
                    }
                }
            }
        }
    }
    if statements == 0 {
        return Err(Error::invalid("chunk", "no statement found"));
    }
    Ok((statements, warnings))
}

impl Matching {
    pub fn new(log: EventLog, keys: KeyStore, pool: AnyPool, settings: Settings) -> Self {
        Self {
            log,
            keys,
            pool,
            settings,
            cache: ItemCache::default(),
        }
    }

    /// Bring a tenant's cached items up to the projection.
    async fn refresh(&self, tenant: &TenantId, t: &mut TenantItems) -> Result<()> {
        let (changed, position) =
            projection::load_items_since(&self.pool, tenant.as_str(), t.position).await?;
        for item in changed {
            t.items.upsert(item);
        }
        t.position = position;
        t.refreshed = Some(Instant::now());
        Ok(())
    }

    async fn caller<T>(&self, req: &Request<T>) -> std::result::Result<(Caller, Metadata), Status> {
        let caller = self.keys.authenticate_request(req).await?;
        let metadata = request_metadata(req, &caller);
        Ok((caller, metadata))
    }

    /// Import a statement file from disk: balance check over everything first, then every
    /// entry recorded and applied exactly once. `progress` is called after each entry.
    pub async fn import_file(
        &self,
        tenant: &TenantId,
        path: &std::path::Path,
        csv: Option<CsvMapping>,
        metadata: &Metadata,
        mut progress: impl FnMut(&ImportSummary),
    ) -> Result<ImportSummary> {
        let (p, c) = (path.to_owned(), csv.clone());
        let (statements, warnings) =
            tokio::task::spawn_blocking(move || check_statement(&p, c.as_ref()))
                .await
                .map_err(|e| Error::Rejected(format!("statement check failed: {e}")))??;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(String, Entry)>>(256);
        let p = path.to_owned();
        let reader = tokio::task::spawn_blocking(move || {
            let send = |r| tx.blocking_send(r).is_ok();
            let file = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) => {
                    send(Err(Error::Rejected(format!("reading the upload: {e}"))));
                    return;
                }
            };
            let items = match statement_reader(
                std::io::BufReader::with_capacity(256 * 1024, file),
                csv.as_ref(),
                ParseOptions::default(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    send(Err(Error::invalid("chunk", e.to_string())));
                    return;
                }
            };
            let mut account = String::new();
            for item in items {
                let ok = match item {
                    Ok(StatementItem::Header(h)) => {
                        account = account_of(&h);
                        true
                    }
                    Ok(StatementItem::Entry(e)) => send(Ok((account.clone(), *e))),
                    Ok(StatementItem::End(_)) => true,
                    Err(e) => send(Err(Error::invalid("chunk", e.to_string()))),
                };
                if !ok {
                    return;
                }
            }
        });
        let cell = self.cache.tenant(tenant);
        let mut summary = ImportSummary {
            statements,
            warnings,
            ..Default::default()
        };
        let mut ids = crate::entry::EntryIds::default();
        while let Some(next) = rx.recv().await {
            let (account, e) = next?;
            let id = ids.next(&account, &e);
            let inc = Incoming {
                entry: bank_entry(id, &e),
                charges: e.charges,
                bank_reference: e.bank_reference.clone(),
                source: "statement",
                fingerprint: None,
                end_to_end_id: e.end_to_end_id.clone(),
            };
            let mut t = cell.lock().await;
            if t.refreshed.is_none_or(|r| r.elapsed() >= IMPORT_REFRESH) {
                self.refresh(tenant, &mut t).await?;
            }
            let p = self
                .process_entry(tenant, &mut t.items, &inc, metadata)
                .await?;
            drop(t);
            summary.count(&p);
            progress(&summary);
        }
        let _ = reader.await;
        Ok(summary)
    }

    /// Record and apply one entry; a return or reversal (a debit with a return reason or the
    /// reversal flag) reverses the payments of the entry it undoes, or goes to review when that
    /// entry cannot be told.
    pub async fn process_entry(
        &self,
        tenant: &TenantId,
        items: &mut OpenItems,
        inc: &Incoming,
        metadata: &Metadata,
    ) -> Result<Processed> {
        let mut p = process(&self.log, tenant, items, &self.settings, inc, metadata).await?;
        metrics::counter!(
            "mahnwerk_matching_entries_total",
            "decision" => p.decision.outcome.as_str(),
            "rule" => p.decision.rule.as_str(),
            "duplicate" => if p.duplicate { "true" } else { "false" },
        )
        .increment(1);
        let e = &inc.entry;
        let is_return = e.booked
            && e.amount.is_some_and(|a| a.minor < 0)
            && (e.reversal || e.return_reason.is_some());
        if !is_return {
            return Ok(p);
        }
        let Some(amount) = e.amount else { return Ok(p) };
        let original = Money::new(-amount.minor, amount.currency);
        let candidates = projection::find_original(
            &self.pool,
            tenant.as_str(),
            inc.end_to_end_id.as_deref(),
            e.counterparty_iban.as_deref(),
            original,
        )
        .await?;
        // Skip originals another return already undid.
        let mut open = Vec::new();
        for c in candidates {
            let stream = StreamId::new(tenant, ENTRY_KIND, &c);
            let state = fold_entry(&read_all(&self.log, &stream).await?)?;
            if state.returned_by.contains(&p.entry_id) {
                p.decision.reason = format!("return of entry {c}; its payments are reversed");
                return Ok(p);
            }
            if state.returned_by.is_empty() && !state.live_payments().is_empty() {
                open.push((c, stream, state));
            }
        }
        let this = StreamId::new(tenant, ENTRY_KIND, &p.entry_id);
        if open.len() != 1 {
            if p.duplicate {
                return Ok(p);
            }
            let why = if open.is_empty() {
                "return or reversal of a payment that was not found among applied entries"
            } else {
                "return or reversal fits several applied entries"
            };
            let received = fold_entry(&read_all(&self.log, &this).await?)?;
            if received.unmatched.is_none() {
                let u = EntryEvent::Unmatched(UnmatchedPayload {
                    entry_id: p.entry_id.clone(),
                    amount,
                    booked_on: e.booked_on,
                    reason: why.into(),
                    candidates: open.iter().map(|o| o.0.clone()).collect(),
                    payer: received.received.map(|r| r.payer).unwrap_or_default(),
                });
                self.append_entry(&this, received.version, &[u], metadata)
                    .await?;
            }
            p.decision.outcome = Outcome::Review;
            p.decision.reason = why.into();
            return Ok(p);
        }
        let (orig, stream, state) = open.remove(0);
        let reason = e
            .return_reason
            .clone()
            .unwrap_or_else(|| "reversal".to_owned());
        let on = e
            .booked_on
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let live = state.live_payments();
        let mut ids = Vec::new();
        for (i, (pid, case)) in live.iter().enumerate() {
            // The bank's fee is a cost of the (first) case.
            let fee = if i == 0 { inc.charges } else { None };
            reverse_on_case(&self.log, tenant, case, pid, on, &reason, fee, metadata).await?;
            ids.push(pid.clone());
        }
        let ev = EntryEvent::Returned(crate::events::PaymentReturned {
            entry_id: orig.clone(),
            return_entry_id: p.entry_id.clone(),
            payment_ids: ids,
            reason: reason.clone(),
            return_fee: inc.charges,
        });
        self.append_entry(&stream, state.version, &[ev], metadata)
            .await?;
        tracing::info!(entry = %p.entry_id, original = %orig, "return linked, payments reversed");
        p.decision.reason = format!("return ({reason}) of entry {orig}; its payments are reversed");
        Ok(p)
    }

    async fn append_entry(
        &self,
        stream: &StreamId,
        version: Option<u64>,
        events: &[EntryEvent],
        metadata: &Metadata,
    ) -> Result<()> {
        let batch = AppendBatch {
            stream: stream.clone(),
            expected: version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            events: events
                .iter()
                .map(|e| NewEvent {
                    event_id: event_id_now(),
                    event_type: e.event_type().to_owned(),
                    payload: e.to_payload(),
                    occurred_at: chrono::Utc::now(),
                    metadata: metadata.clone(),
                })
                .collect(),
        };
        match self.log.append(batch).await {
            Ok(_) => Ok(()),
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => Err(Error::Contended),
            Err(e) => Err(e.into()),
        }
    }

    async fn match_manually(
        &self,
        tenant: &TenantId,
        r: &pb::MatchManuallyRequest,
        metadata: &Metadata,
    ) -> Result<Processed> {
        let stream = StreamId::new(tenant, ENTRY_KIND, &r.entry_id);
        let state = fold_entry(&read_all(&self.log, &stream).await?)?;
        let Some(received) = &state.received else {
            return Err(Error::NotFound(format!("entry {} not found", r.entry_id)));
        };
        let amount = received.amount;
        if amount.minor <= 0 {
            return Err(Error::Rejected(
                "only credits can be matched to invoices".into(),
            ));
        }
        check_request_id(&r.request_id)?;
        if r.allocations.is_empty() {
            return Err(Error::invalid("allocations", "at least one required"));
        }
        let mut parts = Vec::new();
        let mut sum = 0i64;
        for (i, a) in r.allocations.iter().enumerate() {
            if a.amount_minor <= 0 {
                return Err(Error::invalid(
                    format!("allocations[{i}].amount_minor"),
                    "must be positive",
                ));
            }
            if parts.iter().any(|p: &ManualPart| p.case_id == a.case_id) {
                return Err(Error::invalid(
                    format!("allocations[{i}].case_id"),
                    "named twice",
                ));
            }
            sum += a.amount_minor;
            parts.push(ManualPart {
                case_id: a.case_id.clone(),
                amount: Money::new(a.amount_minor, amount.currency),
            });
        }
        if sum > amount.minor {
            return Err(Error::invalid(
                "allocations",
                format!("add up to {sum}, more than the entry's {}", amount.minor),
            ));
        }
        if let Some(last) = parts.last_mut() {
            last.amount.minor += amount.minor - sum;
        }
        if let Some(prior) = state.requests.get(&r.request_id) {
            return match prior {
                PriorRequest::Manual { allocations, note }
                    if *allocations == parts && *note == r.note =>
                {
                    Ok(manual_result(&r.entry_id, &parts))
                }
                _ => Err(request_id_reused()),
            };
        }
        if state.not_ours {
            return Err(Error::Rejected("entry was marked as not ours".into()));
        }
        let live = state.live_payments();
        if !live.is_empty() {
            // Idempotent: the same manual match again answers as before.
            if let Some(m) = state.manual.last()
                && m.allocations == parts
            {
                return Ok(manual_result(&r.entry_id, &parts));
            }
            return Err(Error::Rejected(
                "entry is applied already; UndoMatch first".into(),
            ));
        }
        // Every case must exist, be open and in the entry's currency before anything is recorded.
        for (i, part) in parts.iter().enumerate() {
            let field = format!("allocations[{i}].case_id");
            let case: mahnwerk_domain::CaseId = part
                .case_id
                .parse()
                .map_err(|_| Error::invalid(&field, "not a case id"))?;
            let bal = crate::apply::fold_case(&read_all(&self.log, &case.stream(tenant)).await?);
            match (&bal.open, &bal.closed) {
                (None, _) => return Err(Error::invalid(&field, "no such case")),
                (_, Some(why)) => {
                    return Err(Error::Rejected(format!("case {} is {why}", part.case_id)));
                }
                (Some(open), None) if open.currency != amount.currency => {
                    return Err(Error::invalid(
                        &field,
                        format!(
                            "case is in {}, the entry in {}",
                            open.currency, amount.currency
                        ),
                    ));
                }
                _ => {}
            }
        }
        let n = state.manual.len();
        let ev = EntryEvent::MatchedManually(MatchedManually {
            entry_id: r.entry_id.clone(),
            allocations: parts.clone(),
            note: r.note.clone(),
            request_id: r.request_id.clone(),
        });
        self.append_entry(&stream, state.version, &[ev], metadata)
            .await?;
        let booked_on = received
            .booked_on
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        for p in &parts {
            apply_to_case(
                &self.log,
                tenant,
                &p.case_id,
                &manual_payment_id(&r.entry_id, &p.case_id, n),
                &r.entry_id,
                booked_on,
                Rule::Manual.as_str(),
                &Plan::Manual(p.amount),
                None,
                metadata,
            )
            .await?;
        }
        Ok(manual_result(&r.entry_id, &parts))
    }

    async fn undo(
        &self,
        tenant: &TenantId,
        entry: &str,
        reason: &str,
        request_id: &str,
        metadata: &Metadata,
    ) -> Result<Vec<String>> {
        let stream = StreamId::new(tenant, ENTRY_KIND, entry);
        let state = fold_entry(&read_all(&self.log, &stream).await?)?;
        let Some(received) = &state.received else {
            return Err(Error::NotFound(format!("entry {entry} not found")));
        };
        if let Some(prior) = state.requests.get(request_id) {
            return match prior {
                PriorRequest::Undo {
                    payment_ids,
                    reason: was,
                } if was == reason => Ok(payment_ids.clone()),
                _ => Err(request_id_reused()),
            };
        }
        let live = state.live_payments();
        if live.is_empty() {
            return Ok(Vec::new());
        }
        let today = chrono::Utc::now().date_naive();
        let mut undone = Vec::new();
        for (pid, case) in &live {
            reverse_on_case(
                &self.log,
                tenant,
                case,
                pid,
                today,
                &format!("undone: {reason}"),
                None,
                metadata,
            )
            .await?;
            undone.push(pid.clone());
        }
        let events = [
            EntryEvent::MatchUndone(MatchUndone {
                entry_id: entry.to_owned(),
                payment_ids: undone.clone(),
                reason: reason.to_owned(),
                request_id: request_id.to_owned(),
            }),
            EntryEvent::Unmatched(UnmatchedPayload {
                entry_id: entry.to_owned(),
                amount: received.amount,
                booked_on: received.booked_on,
                reason: format!("match undone: {reason}"),
                candidates: live.iter().map(|(_, c)| c.clone()).collect(),
                payer: received.payer.clone(),
            }),
        ];
        self.append_entry(&stream, state.version, &events, metadata)
            .await?;
        Ok(undone)
    }
}

fn manual_result(entry_id: &str, parts: &[ManualPart]) -> Processed {
    Processed {
        entry_id: entry_id.to_owned(),
        decision: RecordedDecision {
            outcome: if parts.len() > 1 {
                Outcome::Split
            } else {
                Outcome::Applied
            },
            rule: Rule::Manual,
            confidence: 100,
            reason: "matched by an operator".into(),
            allocations: Vec::new(),
            overpayment: None,
            candidates: parts.iter().map(|p| p.case_id.clone()).collect(),
        },
        duplicate: false,
    }
}

#[tonic::async_trait]
impl PaymentService for Matching {
    async fn record_transactions(
        &self,
        req: Request<pb::RecordTransactionsRequest>,
    ) -> std::result::Result<Response<pb::RecordTransactionsResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        if r.transactions.len() > MAX_TRANSACTIONS {
            return Err(Error::invalid(
                "transactions",
                format!("at most {MAX_TRANSACTIONS} per call"),
            )
            .into());
        }
        let incoming: Vec<Incoming> = r
            .transactions
            .iter()
            .enumerate()
            .map(|(i, t)| transaction_entry(i, t))
            .collect::<Result<_>>()?;
        let cell = self.cache.tenant(&tenant);
        let mut t = cell.lock().await;
        self.refresh(&tenant, &mut t).await?;
        let items = &mut t.items;
        let mut results = Vec::with_capacity(incoming.len());
        for inc in &incoming {
            let p = self.process_entry(&tenant, items, inc, &metadata).await?;
            tracing::info!(entry = %p.entry_id, decision = p.decision.outcome.as_str(), rule = p.decision.rule.as_str(), duplicate = p.duplicate, "transaction recorded");
            results.push(result_pb(&p));
        }
        Ok(Response::new(pb::RecordTransactionsResponse { results }))
    }

    async fn import_statement(
        &self,
        req: Request<Streaming<pb::ImportStatementRequest>>,
    ) -> std::result::Result<Response<pb::ImportStatementResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let mut stream = req.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Error::invalid("chunk", "empty upload").into());
        };
        let tenant = caller.tenant(&first.tenant)?;
        let csv = match first.csv_mapping.trim() {
            "" => None,
            m => Some(
                CsvMapping::from_json(m.as_bytes())
                    .map_err(|e| Error::invalid("csv_mapping", e.to_string()))?,
            ),
        };
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| Status::unavailable(format!("no temporary space: {e}")))?;
        let mut size = 0u64;
        let mut write = |chunk: &[u8]| -> std::result::Result<(), Status> {
            size += chunk.len() as u64;
            if size > MAX_STATEMENT_BYTES {
                return Err(Error::invalid("chunk", "statement larger than 4 GiB").into());
            }
            file.write_all(chunk)
                .map_err(|e| Status::unavailable(format!("writing the upload: {e}")))
        };
        write(&first.chunk)?;
        while let Some(m) = stream.message().await? {
            write(&m.chunk)?;
        }
        file.flush()
            .map_err(|e| Status::unavailable(format!("writing the upload: {e}")))?;
        let summary = self
            .import_file(&tenant, file.path(), csv, &metadata, |_| {})
            .await?;
        tracing::info!(
            entries = summary.entries,
            applied = summary.applied,
            review = summary.review,
            duplicates = summary.duplicates,
            "statement imported"
        );
        Ok(Response::new(pb::ImportStatementResponse {
            statements: summary.statements,
            entries: summary.entries,
            applied: summary.applied,
            partial: summary.partial,
            split: summary.split,
            overpaid: summary.overpaid,
            review: summary.review,
            ignored: summary.ignored,
            duplicates: summary.duplicates,
            warnings: summary.warnings,
        }))
    }

    async fn list_unmatched(
        &self,
        req: Request<pb::ListUnmatchedRequest>,
    ) -> std::result::Result<Response<pb::ListUnmatchedResponse>, Status> {
        let (caller, _) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        let size = match r.page_size {
            0 => 100,
            n => i64::from(n.min(500)),
        };
        let after: i64 = match r.page_token.as_str() {
            "" => 0,
            t => t
                .parse()
                .map_err(|_| Error::invalid("page_token", "not a token from this API"))?,
        };
        let rows = projection::list_unmatched(&self.pool, tenant.as_str(), after, size)
            .await
            .map_err(Error::from)?;
        let next = if rows.len() as i64 == size {
            rows.last().map(|(_, p)| p.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let entries = rows
            .into_iter()
            .map(|(u, _)| pb::UnmatchedEntry {
                entry_id: u.entry_id,
                amount: Some(money_pb(u.amount)),
                booking_date: u.booked_on.map(|d| d.to_string()).unwrap_or_default(),
                counterparty_name: u.payer.name.unwrap_or_default(),
                counterparty_iban: u.payer.iban.unwrap_or_default(),
                remittance: u.payer.remittance.unwrap_or_default(),
                references: u.payer.references,
                reason: u.reason,
                candidate_case_ids: u.candidates,
            })
            .collect();
        Ok(Response::new(pb::ListUnmatchedResponse {
            entries,
            next_page_token: next,
        }))
    }

    async fn match_manually(
        &self,
        req: Request<pb::MatchManuallyRequest>,
    ) -> std::result::Result<Response<pb::MatchManuallyResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        let p = Matching::match_manually(self, &tenant, &r, &metadata).await?;
        Ok(Response::new(pb::MatchManuallyResponse {
            result: Some(result_pb(&p)),
        }))
    }

    async fn mark_not_ours(
        &self,
        req: Request<pb::MarkNotOursRequest>,
    ) -> std::result::Result<Response<pb::MarkNotOursResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        let stream = StreamId::new(&tenant, ENTRY_KIND, &r.entry_id);
        let state = fold_entry(&read_all(&self.log, &stream).await?)?;
        if state.received.is_none() {
            return Err(Error::NotFound(format!("entry {} not found", r.entry_id)).into());
        }
        check_request_id(&r.request_id)?;
        if let Some(prior) = state.requests.get(&r.request_id) {
            return match prior {
                PriorRequest::NotOurs { note } if *note == r.note => {
                    Ok(Response::new(pb::MarkNotOursResponse {}))
                }
                _ => Err(request_id_reused().into()),
            };
        }
        if state.not_ours {
            // A repeat is OK; another note for the same entry is a different request.
            if state.not_ours_note != r.note {
                return Err(Error::AlreadyExists(
                    "entry was marked as not ours with another note".into(),
                )
                .into());
            }
            return Ok(Response::new(pb::MarkNotOursResponse {}));
        }
        if !state.live_payments().is_empty() {
            return Err(
                Error::Rejected("entry is applied to invoices; UndoMatch first".into()).into(),
            );
        }
        let ev = EntryEvent::MarkedNotOurs(MarkedNotOurs {
            entry_id: r.entry_id.clone(),
            note: r.note,
            request_id: r.request_id,
        });
        self.append_entry(&stream, state.version, &[ev], &metadata)
            .await?;
        Ok(Response::new(pb::MarkNotOursResponse {}))
    }

    async fn undo_match(
        &self,
        req: Request<pb::UndoMatchRequest>,
    ) -> std::result::Result<Response<pb::UndoMatchResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        if r.reason.trim().is_empty() || r.reason.chars().count() > 500 {
            return Err(Error::invalid("reason", "1 to 500 characters required").into());
        }
        check_request_id(&r.request_id)?;
        let payment_ids = self
            .undo(
                &tenant,
                &r.entry_id,
                r.reason.trim(),
                &r.request_id,
                &metadata,
            )
            .await?;
        Ok(Response::new(pb::UndoMatchResponse { payment_ids }))
    }
}
