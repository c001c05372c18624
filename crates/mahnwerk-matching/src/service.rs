//! `PaymentService` over gRPC. Each call: authenticate, take the tenant from the key, convert at
//! the edge, then record and apply through [`crate::apply`].

use crate::apply::{
    CHUNK, Incoming, LoadBuckets, Plan, PriorRequest, Processed, apply_to_case, check_request_id,
    chunkable, fold_entry, manual_payment_id, process, process_chunk, read_all, request_id_reused,
    reverse_on_case,
};
use crate::engine::{OpenItem, OpenItems, Outcome, Rule, Settings, entry_keys};
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

mod convert;
mod import;
mod review;

use convert::{money_pb, request_metadata, result_pb, transaction_entry};
pub use import::{ImportSummary, StatementCheck, check_statement};

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
    recent: Recent,
}

/// Per tenant: the settings the engine decides with, and the lock that decides one tenant's
/// entries one chunk at a time (two calls never decide on the same balance). The open items are
/// not held: each chunk loads the items its entries can reach ([`Matching::items_for`]).
#[derive(Clone, Default)]
struct ItemCache(Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<TenantItems>>>>>);

#[derive(Default)]
pub struct TenantItems {
    /// The tenant's settings as of the last refresh.
    pub settings: Settings,
    refreshed: Option<Instant>,
}

/// The balances this process applied, by case: laid over the items loaded from the projection,
/// which may not have seen them yet. Bounded ([`RECENT`]); a balance it forgot (or another
/// replica applied) is still caught when the payment is applied: the case stream is checked
/// and the entry goes to review.
#[derive(Clone, Default)]
struct Recent(Arc<std::sync::Mutex<HashMap<String, (Money, Instant)>>>);

/// Cases [`Recent`] holds before it starts over.
const RECENT: usize = 100_000;
/// How long a remembered balance is laid over the projection's (which catches up within
/// moments; an undo or a manual match since is then seen).
const RECENT_FOR: Duration = Duration::from_secs(30);

/// How old the cached settings of a statement import may get before they are read again.
const IMPORT_REFRESH: Duration = Duration::from_secs(1);

impl ItemCache {
    fn tenant(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<TenantItems>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_string()).or_default().clone()
    }
}

impl Matching {
    pub fn new(log: EventLog, keys: KeyStore, pool: AnyPool, settings: Settings) -> Self {
        Self {
            log,
            keys,
            pool,
            settings,
            cache: ItemCache::default(),
            recent: Recent::default(),
        }
    }

    /// Read a tenant's settings again.
    async fn refresh(&self, tenant: &TenantId, t: &mut TenantItems) -> Result<()> {
        t.settings = crate::settings::load(&self.log, tenant)
            .await?
            .effective(self.settings);
        t.refreshed = Some(Instant::now());
        Ok(())
    }

    /// The open items `incoming` can reach by reference or number: those the projection holds
    /// under the entries' `r:` and `n:` lookup keys ([`entry_keys`]), with the balances this
    /// process applied since (the projection may lag behind). A partial set
    /// ([`OpenItems::partial`]): the amount buckets the engine consults are loaded when it asks
    /// ([`Matching::bucket_loader`]), so an entry that names its invoice never loads every open
    /// item of its amount. The engine decides on these exactly as on all open items.
    pub async fn items_for(&self, tenant: &TenantId, incoming: &[Incoming]) -> Result<OpenItems> {
        let mut keys: Vec<String> = incoming
            .iter()
            .flat_map(|i| entry_keys(&i.entry))
            .filter(|k| !k.starts_with("a:"))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut items = OpenItems::partial();
        let found = projection::load_items_for_keys(&self.pool, tenant.as_str(), &keys).await?;
        for item in self.with_recent(found) {
            items.upsert(item);
        }
        Ok(items)
    }

    /// The items of the amount buckets the engine asks for, for [`OpenItems::add_buckets`].
    fn bucket_loader<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> impl Fn(Vec<String>) -> futures::future::BoxFuture<'a, Result<Vec<OpenItem>>> + Send + Sync + 'a
    {
        move |keys| {
            Box::pin(async move {
                let found =
                    projection::load_items_for_keys(&self.pool, tenant.as_str(), &keys).await?;
                Ok(self.with_recent(found))
            })
        }
    }

    /// `found` with the balances this process applied since the projection last saw them
    /// ([`Recent`]).
    fn with_recent(&self, mut found: Vec<OpenItem>) -> Vec<OpenItem> {
        let recent = self.recent.0.lock().unwrap_or_else(|p| p.into_inner());
        for item in &mut found {
            if let Some((open, at)) = recent.get(&item.case_id)
                && at.elapsed() < RECENT_FOR
            {
                item.open = *open;
                if open.minor == 0 {
                    item.cash_discount = None;
                }
            }
        }
        found
    }

    /// Decide, record and apply `incoming` in order, under the tenant's lock: the settings read
    /// again when older than `settings_age`, the items the entries can reach loaded
    /// ([`Matching::items_for`]), then [`Matching::process_entries`].
    pub async fn record(
        &self,
        tenant: &TenantId,
        incoming: &[Incoming],
        metadata: &Metadata,
        settings_age: Duration,
    ) -> Result<Vec<Processed>> {
        let cell = self.cache.tenant(tenant);
        let mut t = cell.lock().await;
        if t.refreshed.is_none_or(|r| r.elapsed() >= settings_age) {
            self.refresh(tenant, &mut t).await?;
        }
        let mut items = self.items_for(tenant, incoming).await?;
        let load = self.bucket_loader(tenant);
        let processed = self
            .process_entries(tenant, &mut items, &t.settings, incoming, metadata, &load)
            .await?;
        self.remember(&processed);
        Ok(processed)
    }

    /// Remember the balances `processed` left on their cases.
    fn remember(&self, processed: &[Processed]) {
        let mut recent = self.recent.0.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > RECENT {
            recent.retain(|_, (_, at)| at.elapsed() < RECENT_FOR);
            if recent.len() > RECENT {
                recent.clear();
            }
        }
        let now = Instant::now();
        for p in processed.iter().filter(|p| !p.duplicate) {
            if p.decision.outcome.applies() {
                for a in &p.decision.allocations {
                    recent.insert(a.case_id.clone(), (a.open_after, now));
                }
            }
        }
    }

    async fn caller<T>(&self, req: &Request<T>) -> std::result::Result<(Caller, Metadata), Status> {
        let caller = self.keys.authenticate_request(req).await?;
        let metadata = request_metadata(req, &caller);
        Ok((caller, metadata))
    }

    /// Record and apply one entry; a return or reversal (a debit with a return reason or the
    /// reversal flag) reverses the payments of the entry it undoes, or goes to review when that
    /// entry cannot be told.
    pub async fn process_entry(
        &self,
        tenant: &TenantId,
        items: &mut OpenItems,
        settings: &Settings,
        inc: &Incoming,
        metadata: &Metadata,
        load: &LoadBuckets<'_>,
    ) -> Result<Processed> {
        let mut p = process(
            &self.log,
            tenant,
            items,
            settings,
            inc,
            metadata,
            Some(load),
        )
        .await?;
        count_entry(&p);
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

    /// Record and apply `incoming` in order: runs of [`chunkable`] entries in chunks of up to
    /// [`CHUNK`] (two group commits each, [`process_chunk`]), the others one at a time through
    /// [`Matching::process_entry`].
    pub async fn process_entries(
        &self,
        tenant: &TenantId,
        items: &mut OpenItems,
        settings: &Settings,
        incoming: &[Incoming],
        metadata: &Metadata,
        load: &LoadBuckets<'_>,
    ) -> Result<Vec<Processed>> {
        let mut out = Vec::with_capacity(incoming.len());
        let mut rest = incoming;
        while let Some(first) = rest.first() {
            let run = rest.iter().take(CHUNK).take_while(|i| chunkable(i)).count();
            if run == 0 {
                out.push(
                    self.process_entry(tenant, items, settings, first, metadata, load)
                        .await?,
                );
                rest = &rest[1..];
                continue;
            }
            let (chunk, tail) = rest.split_at(run);
            let processed = process_chunk(
                &self.log,
                tenant,
                items,
                settings,
                chunk,
                metadata,
                Some(load),
            )
            .await?;
            for p in processed {
                count_entry(&p);
                out.push(p);
            }
            rest = tail;
        }
        Ok(out)
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
}

fn count_entry(p: &Processed) {
    metrics::counter!(
        "mahnwerk_matching_entries_total",
        "decision" => p.decision.outcome.as_str(),
        "rule" => p.decision.rule.as_str(),
        "duplicate" => if p.duplicate { "true" } else { "false" },
    )
    .increment(1);
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
        let processed = self
            .record(&tenant, &incoming, &metadata, Duration::ZERO)
            .await?;
        let mut results = Vec::with_capacity(processed.len());
        for p in &processed {
            tracing::info!(entry = %p.entry_id, decision = p.decision.outcome.as_str(), rule = p.decision.rule.as_str(), duplicate = p.duplicate, "transaction recorded");
            results.push(result_pb(p));
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

    async fn get_matching_settings(
        &self,
        req: Request<pb::GetMatchingSettingsRequest>,
    ) -> std::result::Result<Response<pb::GetMatchingSettingsResponse>, Status> {
        let (caller, _) = self.caller(&req).await?;
        let tenant = caller.tenant(&req.get_ref().tenant)?;
        let s = crate::settings::load(&self.log, &tenant).await?;
        Ok(Response::new(pb::GetMatchingSettingsResponse {
            settings: Some(self.settings_pb(&s)),
        }))
    }

    async fn put_matching_settings(
        &self,
        req: Request<pb::PutMatchingSettingsRequest>,
    ) -> std::result::Result<Response<pb::PutMatchingSettingsResponse>, Status> {
        let (caller, metadata) = self.caller(&req).await?;
        let r = req.into_inner();
        let tenant = caller.tenant(&r.tenant)?;
        let threshold = crate::settings::validate_threshold(r.threshold)?;
        let s = crate::settings::put(
            &self.log,
            &tenant,
            threshold,
            r.accept_unbalanced,
            &r.request_id,
            &metadata,
        )
        .await?;
        // This replica decides with it from the next entry on; others at their next refresh.
        let cell = self.cache.tenant(&tenant);
        cell.lock().await.settings = s.effective(self.settings);
        tracing::info!(tenant = %tenant, threshold, "matching settings changed");
        Ok(Response::new(pb::PutMatchingSettingsResponse {
            settings: Some(self.settings_pb(&s)),
        }))
    }
}

impl Matching {
    fn settings_pb(&self, s: &crate::settings::TenantSettings) -> pb::MatchingSettings {
        pb::MatchingSettings {
            threshold: u32::from(s.effective(self.settings).threshold),
            is_default: s.threshold.is_none(),
            accept_unbalanced: s.accept_unbalanced,
        }
    }
}
