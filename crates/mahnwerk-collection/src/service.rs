//! [`Collection`]: the IO around the pure engine. Read a case stream, decide, append with the
//! expected version it read (a conflict re-reads and decides again), and publish hand-overs and
//! recalls on the partner's public subject.

use crate::casefile::{self, CaseView};
use crate::engine::{self, Command, Event, Partner, Refused};
use crate::error::{Error, Result};
use crate::store;
use chrono::{NaiveDate, Utc};
use mahnwerk_bus::BusConfig;
use mahnwerk_clock::SharedClock;
use mahnwerk_docstore::Documents;
use mahnwerk_domain::{CaseId, DebtorKind, Money, StreamId, TenantId};
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, RecordedEvent, event_id_now,
};
use serde_json::Value;
use sqlx::AnyPool;
use std::sync::Arc;

/// The actor of events the service writes on its own.
pub const ACTOR: &str = "service:collection";

/// Attempts of a decide-append round before a conflict is reported.
const ATTEMPTS: usize = 8;

/// The public subjects and the JetStream stream of hand-overs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// `{ns}.collection`
    pub prefix: String,
    /// `{NS}_COLLECTION`
    pub stream: String,
    /// Replicas of the stream: the bus's ([`BusConfig::replicas`]).
    pub replicas: Option<usize>,
}

impl Subjects {
    /// Derived from the bus namespace: `<ns>.events` → `<ns>.collection`, `<NS>_COLLECTION`.
    pub fn of(bus: &BusConfig) -> Self {
        let ns = bus
            .subject_prefix
            .strip_suffix(".events")
            .unwrap_or(&bus.subject_prefix);
        Subjects {
            prefix: format!("{ns}.collection"),
            stream: format!(
                "{}_COLLECTION",
                ns.to_ascii_uppercase().replace(['.', '-'], "_")
            ),
            replicas: bus.replicas,
        }
    }

    /// `{prefix}.{tenant}.{partner token}.{what}` (`handover`, `recall`).
    pub fn subject(&self, tenant: &str, token: &str, what: &str) -> String {
        format!("{}.{tenant}.{token}.{what}", self.prefix)
    }

    /// Create (or keep) the stream, with the bus's replica count (an existing stream with
    /// another count is moved to it).
    pub async fn ensure(&self, js: &async_nats::jetstream::Context) -> Result<()> {
        mahnwerk_bus::ensure_stream(
            js,
            async_nats::jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.prefix)],
                duplicate_window: std::time::Duration::from_secs(120),
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            },
            self.replicas,
        )
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
        Ok(())
    }
}

/// The service's shared parts.
#[derive(Clone)]
pub struct Collection {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    pool: AnyPool,
    clock: SharedClock,
    documents: Documents,
}

/// What an action did.
#[derive(Debug, Clone)]
pub struct Acted {
    pub appended: Vec<&'static str>,
    pub version: u64,
    pub view: CaseView,
}

/// A short name of the collection phase.
pub fn phase_name(state: &engine::CollectionState) -> String {
    use engine::Phase;
    match &state.phase {
        Phase::WithCreditor => "with_creditor".into(),
        Phase::AwaitingApproval { .. } => "awaiting_approval".into(),
        Phase::Held { .. } => "held".into(),
        Phase::HandedOver { .. } => "handed_over".into(),
        Phase::Accepted { .. } => "accepted".into(),
        Phase::Rejected { .. } => "rejected".into(),
        Phase::Recalled { .. } => "recalled".into(),
        Phase::Closed { outcome } => format!("closed:{outcome}"),
    }
}

impl Collection {
    /// `documents`: the document store shared with letters and ingest (filesystem or S3).
    pub fn new(log: EventLog, pool: AnyPool, clock: SharedClock, documents: Documents) -> Self {
        Collection {
            inner: Arc::new(Inner {
                log,
                pool,
                clock,
                documents,
            }),
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub fn today(&self) -> NaiveDate {
        self.inner.clock.today()
    }

    /// Read and fold a whole case stream.
    pub async fn read_case(&self, stream: &StreamId) -> Result<CaseView> {
        let mut all = Vec::new();
        let mut from = 1;
        loop {
            let page = self.inner.log.read_stream(stream, from, 1000).await?;
            let n = page.len();
            if let Some(last) = page.last() {
                from = last.version + 1;
            }
            all.extend(page);
            if n < 1000 {
                break;
            }
        }
        Ok(CaseView::of(all)?)
    }

    // ---- partners ----

    fn partner_stream(tenant: &TenantId, id: &str) -> StreamId {
        StreamId::new(tenant, "partner", id)
    }

    /// Store a partner version (idempotent by content). Returns the partner stream's version.
    pub async fn put_partner(
        &self,
        tenant: &TenantId,
        partner: Partner,
        meta: &Metadata,
    ) -> Result<u64> {
        partner.validate()?;
        let stream = Self::partner_stream(tenant, &partner.id);
        for _ in 0..ATTEMPTS {
            let page = self.inner.log.read_stream(&stream, 1, 10_000).await?;
            let version = page.last().map_or(0, |e| e.version);
            let current: Option<Partner> = page
                .last()
                .and_then(|e| e.payload.get("partner"))
                .and_then(|p| serde_json::from_value(p.clone()).ok());
            if current.as_ref() == Some(&partner) {
                self.project_partner(tenant, &partner, version).await?;
                return Ok(version);
            }
            let event = NewEvent {
                event_id: event_id_now(),
                event_type: "collection.partner_put.v1".into(),
                payload: serde_json::json!({ "partner": partner }),
                occurred_at: Utc::now(),
                metadata: meta.clone(),
            };
            match self
                .inner
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected: ExpectedVersion::Exact(version),
                    events: vec![event],
                })
                .await
            {
                Ok(done) => {
                    self.project_partner(tenant, &partner, done.last_version)
                        .await?;
                    return Ok(done.last_version);
                }
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }

    async fn project_partner(&self, tenant: &TenantId, p: &Partner, version: u64) -> Result<()> {
        let json = serde_json::to_string(p).unwrap_or_default();
        store::put_partner(&self.inner.pool, tenant.as_str(), &p.id, version, &json).await?;
        Ok(())
    }

    /// The tenant's partners with their versions, by id.
    pub async fn partners(&self, tenant: &TenantId) -> Result<Vec<(u64, Partner)>> {
        let rows = store::partners(&self.inner.pool, tenant.as_str()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(v, j)| serde_json::from_str(&j).ok().map(|p| (v, p)))
            .collect())
    }

    pub async fn partner(&self, tenant: &TenantId, id: &str) -> Result<Option<Partner>> {
        Ok(self
            .partners(tenant)
            .await?
            .into_iter()
            .map(|(_, p)| p)
            .find(|p| p.id == id))
    }

    // ---- cases ----

    /// Decide `command` (built from the current view) on the case and append what it decides,
    /// with the expected version it read; a conflict re-reads and decides again.
    pub async fn act<F>(
        &self,
        tenant: &TenantId,
        case: CaseId,
        today: NaiveDate,
        meta: &Metadata,
        mut command: F,
    ) -> Result<Acted>
    where
        F: FnMut(&CaseView, &[Partner]) -> std::result::Result<Option<Command>, Error>,
    {
        let stream = case.stream(tenant);
        let partners: Vec<Partner> = self
            .partners(tenant)
            .await?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        for _ in 0..ATTEMPTS {
            let view = self.read_case(&stream).await?;
            if view.version() == 0 {
                return Err(Error::NotFound("case"));
            }
            let Some(cmd) = command(&view, &partners)? else {
                return Ok(Acted {
                    appended: vec![],
                    version: view.version(),
                    view,
                });
            };
            let decided = engine::decide(&view.collection, &cmd, today)?;
            if decided.is_empty() {
                return Ok(Acted {
                    appended: vec![],
                    version: view.version(),
                    view,
                });
            }
            let mut events = Vec::with_capacity(decided.len());
            for e in &decided {
                let payload = match e {
                    Event::HandedOver {
                        partner_id,
                        handed_over_on,
                        ..
                    } => {
                        let partner = partners
                            .iter()
                            .find(|p| &p.id == partner_id)
                            .ok_or(Error::NotFound("partner"))?;
                        let dunning = view.dunning.as_ref().ok_or_else(|| {
                            Refused::Precondition("the dunning case is not open".into())
                        })?;
                        let claim = engine::claim(dunning, *handed_over_on)?;
                        casefile::handover_payload(
                            &view,
                            tenant.as_str(),
                            &case.to_string(),
                            partner,
                            *handed_over_on,
                            &claim,
                            e,
                        )
                    }
                    // Events the partner is told of carry its subject token (the handler
                    // publishes them on the partner's public subject).
                    Event::Recalled { partner_id, .. }
                    | Event::Reported { partner_id, .. }
                    | Event::CostsWaived { partner_id, .. }
                    | Event::Closed {
                        partner_id: Some(partner_id),
                        ..
                    } => {
                        let mut p = casefile::payload(e);
                        let token = partners
                            .iter()
                            .find(|x| &x.id == partner_id)
                            .map(|x| x.subject_token.clone());
                        p["subject_token"] = token.map_or(Value::Null, Value::String);
                        p
                    }
                    other => casefile::payload(other),
                };
                events.push(NewEvent {
                    event_id: event_id_now(),
                    event_type: e.event_type().into(),
                    payload,
                    occurred_at: Utc::now(),
                    metadata: meta.clone(),
                });
            }
            match self
                .inner
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected: ExpectedVersion::Exact(view.version()),
                    events,
                })
                .await
            {
                Ok(done) => {
                    let appended = decided.iter().map(Event::event_type).collect();
                    let view = self.read_case(&stream).await?;
                    tracing::info!(case = %case, events = ?appended, "collection events appended");
                    return Ok(Acted {
                        appended,
                        version: done.last_version,
                        view,
                    });
                }
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }

    /// The dunning case escalated on `escalated_on`: select a partner and hand over (auto) or
    /// ask for approval. Idempotent on the case state.
    pub async fn on_escalated(
        &self,
        tenant: &TenantId,
        case: CaseId,
        escalated_on: NaiveDate,
        meta: &Metadata,
    ) -> Result<Acted> {
        self.act(tenant, case, escalated_on, meta, |view, partners| {
            let Some(d) = view.dunning.as_ref() else {
                return Ok(None);
            };
            let open = engine::claim(d, escalated_on)?.principal_open;
            let partner = select(partners, d.facts.debtor, &view.debtor_country(), open);
            Ok(Some(Command::Escalated {
                partner: partner.cloned(),
                principal_open: open,
            }))
        })
        .await
    }

    /// Decide the hand-over of every pending escalation (recorded by the handler), until
    /// `shutdown`. Decisions are idempotent on the case stream, so replicas may race.
    pub async fn work(
        &self,
        wake: Arc<tokio::sync::Notify>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            match self.work_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "collection pass failed; retrying"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
            }
        }
    }

    /// One pass over the pending escalations; returns how many were decided.
    pub async fn work_once(&self) -> Result<usize> {
        let rows = store::pending(&self.inner.pool, 64).await?;
        let mut done = 0;
        for (tenant, case_id, on, event_id) in rows {
            let (Ok(t), Ok(c), Ok(d)) = (
                tenant.parse::<TenantId>(),
                case_id.parse::<CaseId>(),
                on.parse::<NaiveDate>(),
            ) else {
                store::done_pending(&self.inner.pool, &tenant, &case_id).await?;
                continue;
            };
            let meta = Metadata {
                correlation_id: None,
                causation_id: Some(event_id),
                actor: ACTOR.into(),
                traceparent: None,
            };
            match self.on_escalated(&t, c, d, &meta).await {
                Ok(_) => {}
                Err(Error::Refused(r)) => {
                    tracing::warn!(case = %c, reason = %r, "hand-over not decided");
                }
                Err(Error::Unreadable(e)) => {
                    tracing::error!(case = %c, error = %e, "unreadable case stream; hand-over skipped");
                }
                Err(e) => return Err(e),
            }
            store::done_pending(&self.inner.pool, &tenant, &case_id).await?;
            done += 1;
        }
        Ok(done)
    }

    /// The case export archive (see [`crate::archive`]): every event, every letter PDF and the
    /// original invoice document when there is one (an imported e-invoice).
    pub async fn export(&self, tenant: &TenantId, case: CaseId) -> Result<Vec<u8>> {
        let view = self.read_case(&case.stream(tenant)).await?;
        if view.version() == 0 {
            return Err(Error::NotFound("case"));
        }
        let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut erased: Vec<String> = Vec::new();
        for e in &view.events {
            let named = match e.payload.get("document_sha256").and_then(Value::as_str) {
                Some(s) if e.event_type.starts_with("letter.") => {
                    Some((s, format!("documents/{s}.pdf")))
                }
                _ => crate::archive::original_of(e),
            };
            let Some((s, name)) = named else { continue };
            if docs.iter().any(|(d, _)| *d == name) || erased.contains(&name) {
                continue;
            }
            let bytes = match self.document(s).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return Err(Error::Documents(format!(
                        "document {s} is not in the store"
                    )));
                }
                // The debtor was erased: their documents are unreadable and left out, listed
                // in the manifest (the events still name them by hash).
                Err(Error::Erased(_)) => {
                    erased.push(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            docs.push((name, bytes));
        }
        // `case.json` carries the events as stored and hashed (personal data sealed when a
        // master key is configured), so `verify --archive` recomputes the chain; the summary
        // is made from the opened events.
        let stored = self.read_case_stored(&case.stream(tenant)).await?;
        let today = self.inner.clock.today();
        let claim = view
            .dunning
            .as_ref()
            .and_then(|d| engine::claim(d, today).ok());
        let engine = summary_engine();
        let events = view.events.clone();
        let status = phase_name(&view.collection);
        let summary = tokio::task::spawn_blocking(move || {
            crate::summary::render(engine, &events, claim.as_ref(), &status, today)
        })
        .await
        .map_err(|e| Error::Documents(format!("summary: {e}")))?
        .map_err(Error::Documents)?;
        Ok(crate::archive::build(
            &stored,
            Some(&summary.pdf),
            &docs,
            &erased,
        ))
    }

    async fn read_case_stored(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>> {
        let mut all = Vec::new();
        loop {
            let from = all.len() as u64 + 1;
            let page = self
                .inner
                .log
                .read_stream_stored(stream, from, 1000)
                .await?;
            let n = page.len();
            all.extend(page);
            if n < 1000 {
                return Ok(all);
            }
        }
    }

    /// Bytes of a document from the document store (opened when sealed), verified against its
    /// hash; [`Error::Erased`] when its debtor was erased.
    pub async fn document(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        match self.inner.documents.get(sha256).await {
            Ok(bytes) => Ok(bytes.map(Vec::from)),
            Err(e @ mahnwerk_docstore::Error::Erased { .. }) => Err(Error::Erased(e.to_string())),
            Err(e) => Err(Error::Documents(e.to_string())),
        }
    }
}

/// The typst engine of the export summary, built once (fonts and layout loaded).
fn summary_engine() -> &'static mahnwerk_letters::document::DocumentEngine {
    static ENGINE: std::sync::OnceLock<mahnwerk_letters::document::DocumentEngine> =
        std::sync::OnceLock::new();
    ENGINE.get_or_init(|| mahnwerk_letters::document::DocumentEngine::new(crate::summary::LAYOUT))
}

/// The partner the rules select for a case.
pub fn select<'a>(
    partners: &'a [Partner],
    kind: DebtorKind,
    country: &str,
    principal_open: Money,
) -> Option<&'a Partner> {
    engine::select_partner(partners, kind, country, principal_open.minor)
}
