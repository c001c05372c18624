//! The service's IO around the pure [`crate::facts::plan`]: read a case stream, decide, append
//! with the expected version it read (a conflict re-reads and decides again, which may now be
//! nothing), then record the case's next action. The scheduler pass and every intervention go
//! through [`Dunning::reconcile`]; the event handler only observes ([`Dunning::observe`]).

use crate::error::{Error, Result};
use crate::facts::{Folded, Origin, StreamEvent, plan};
use crate::projection::{self, CaseRow};
use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use mahnwerk_clock::{Clock, SharedClock};
use mahnwerk_domain::{CaseId, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::{
    CaseStatus, DunningCase, DunningCommand, DunningEvent, next_action_at,
};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use sqlx::{Any, AnyPool, Transaction};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

/// The actor of events the service writes on its own.
pub const ACTOR: &str = "service:dunning";

/// Cases reconciled at once by a scheduler pass (their appends share group commits).
const PASS_CONCURRENCY: usize = 16;
/// Due cases fetched per query of a pass.
const PASS_BATCH: i64 = 512;

/// The dunning service's shared parts.
#[derive(Clone)]
pub struct Dunning {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub log: EventLog,
    pub pool: AnyPool,
    pub clock: SharedClock,
    /// Federal state of the built-in default policies (place of performance).
    pub state: FederalState,
    /// Woken when a case became due today.
    pub wake: tokio::sync::Notify,
    /// This instance's order of work within a pass.
    pub order: std::collections::hash_map::RandomState,
}

/// What [`Dunning::reconcile`] did.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub tenant: TenantId,
    pub case: CaseId,
    /// Types of the events appended, in order (empty when nothing was due).
    pub appended: Vec<&'static str>,
    /// Stream version after the call.
    pub version: u64,
    pub state: Option<DunningCase>,
    /// The case's next action as recorded.
    pub due_on: Option<NaiveDate>,
    pub today: NaiveDate,
}

/// One case decided on, not yet appended.
struct Decided {
    tenant: TenantId,
    case: CaseId,
    /// The stream version the decision was made on.
    version: u64,
    plan: crate::facts::Plan,
    /// The plan's events, expected at `version` (`None`: nothing to append).
    batch: Option<AppendBatch>,
    advance: bool,
    today: NaiveDate,
}

impl Decided {
    /// The case after the append (`appended`: the stream version it left, `None`: nothing was
    /// appended).
    fn done(self, appended: Option<u64>) -> Reconciled {
        for (e, _) in &self.plan.events {
            let DunningEvent::StepReached(step) = e else {
                continue;
            };
            if appended.is_none() {
                break;
            }
            metrics::counter!("mahnwerk_dunning_steps_total").increment(1);
            if step.interest.as_ref().is_some_and(|i| i.provisional) {
                // The base-rate table needs its next half-year: operators must add it.
                metrics::counter!("mahnwerk_dunning_provisional_interest_total").increment(1);
                tracing::warn!(case = %self.case, step = step.number, "interest charged at a provisional base rate; update the base-rate table");
            }
        }
        let appended_types: Vec<&'static str> = if appended.is_some() {
            self.plan
                .events
                .iter()
                .map(|(e, _)| e.event_type())
                .collect()
        } else {
            Vec::new()
        };
        if appended.is_some() {
            tracing::debug!(case = %self.case, events = appended_types.len(), "dunning events appended");
        }
        let next = self.plan.state.as_ref().and_then(next_action_at);
        // After a pass for `today`, nothing is left for today: the earliest is tomorrow.
        let due_on = if self.advance {
            next.map(|d| d.max(self.today + Duration::days(1)))
        } else {
            next
        };
        Reconciled {
            tenant: self.tenant,
            case: self.case,
            appended: appended_types,
            version: appended.unwrap_or(self.version),
            state: self.plan.state,
            due_on,
            today: self.today,
        }
    }
}

/// A short status name for the projection and ExplainCase.
pub fn status_name(state: Option<&DunningCase>, today: NaiveDate) -> String {
    let Some(s) = state else {
        return "pending".into();
    };
    match s.status(today) {
        CaseStatus::Issued => "issued".into(),
        CaseStatus::Due => "due".into(),
        CaseStatus::Overdue => "overdue".into(),
        CaseStatus::Dunning { step } => format!("dunning:{step}"),
        CaseStatus::Paused => "paused".into(),
        CaseStatus::Escalated => "escalated".into(),
        CaseStatus::Settled => "settled".into(),
        CaseStatus::Cancelled => "cancelled".into(),
        CaseStatus::Credited => "credited".into(),
        CaseStatus::WrittenOff => "written_off".into(),
    }
}

impl Dunning {
    pub fn new(log: EventLog, pool: AnyPool, clock: SharedClock, state: FederalState) -> Self {
        Dunning {
            inner: Arc::new(Inner {
                log,
                pool,
                clock,
                state,
                wake: tokio::sync::Notify::new(),
                order: std::collections::hash_map::RandomState::new(),
            }),
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    pub fn default_state(&self) -> FederalState {
        self.inner.state
    }

    /// Read and fold a whole case stream.
    pub async fn read_case(&self, stream: &StreamId) -> Result<Folded> {
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
        let ids: Vec<String> = all.iter().map(|e| e.event_id.to_string()).collect();
        Ok(Folded::of(all.iter().zip(&ids).map(|(e, id)| {
            StreamEvent {
                version: e.version,
                event_id: id,
                event_type: &e.event_type,
                payload: &e.payload,
            }
        }))?)
    }

    async fn policy_for(
        &self,
        tenant: &TenantId,
        folded: &Folded,
    ) -> Result<Option<mahnwerk_dunning::policy::Policy>> {
        match folded.needs_policy() {
            Some((kind, debtor)) => Ok(Some(
                crate::policies::for_new_case(
                    &self.inner.log,
                    tenant,
                    kind,
                    &debtor,
                    self.inner.state,
                )
                .await?,
            )),
            None => Ok(None),
        }
    }

    /// Decide and append for one case on `today`: pending facts, then `intervention`, then (when
    /// `advance`) what is due today. Retries on a concurrent writer; records the next action.
    pub async fn reconcile(
        &self,
        tenant: &TenantId,
        case: CaseId,
        intervention: Option<(&DunningCommand, &Metadata)>,
        advance: bool,
        today: NaiveDate,
    ) -> Result<Reconciled> {
        let done = self
            .decide_and_append(tenant, case, intervention, advance, today)
            .await?;
        self.record(std::slice::from_ref(&done)).await?;
        Ok(done)
    }

    /// Record the next actions of reconciled cases in one transaction.
    pub async fn record(&self, done: &[Reconciled]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = done.iter().map(|r| r.case.to_string()).collect();
        let rows: Vec<CaseRow<'_>> = done
            .iter()
            .zip(&ids)
            .map(|(r, id)| CaseRow {
                tenant: r.tenant.as_str(),
                case_id: id,
                stream_version: r.version,
                state: r.state.as_ref(),
                status: status_name(r.state.as_ref(), r.today),
                due_on: r.due_on,
            })
            .collect();
        let mut tx = self.inner.pool.begin().await?;
        projection::record_many(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Dunning::reconcile`] without recording the next action.
    async fn decide_and_append(
        &self,
        tenant: &TenantId,
        case: CaseId,
        intervention: Option<(&DunningCommand, &Metadata)>,
        advance: bool,
        today: NaiveDate,
    ) -> Result<Reconciled> {
        for _ in 0..8 {
            let decided = self
                .decide(tenant, case, intervention, advance, today)
                .await?;
            let Some(batch) = decided.batch.clone() else {
                return Ok(decided.done(None));
            };
            match self.inner.log.append(batch).await {
                Ok(done) => return Ok(decided.done(Some(done.last_version))),
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                    metrics::counter!("mahnwerk_dunning_conflicts_total").increment(1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }

    /// Read and fold one case, decide on it: what to append (with the expected version it
    /// read) and what the case looks like after it. Appends nothing.
    async fn decide(
        &self,
        tenant: &TenantId,
        case: CaseId,
        intervention: Option<(&DunningCommand, &Metadata)>,
        advance: bool,
        today: NaiveDate,
    ) -> Result<Decided> {
        let stream = case.stream(tenant);
        let folded = self.read_case(&stream).await?;
        let policy = self.policy_for(tenant, &folded).await?;
        let plan = plan(
            &folded,
            policy.as_ref(),
            intervention.map(|(c, _)| c),
            advance,
            today,
        )?;
        let batch = (!plan.events.is_empty()).then(|| {
            let now = self.inner.clock.now();
            let events = plan
                .events
                .iter()
                .map(|(e, origin)| NewEvent {
                    event_id: event_id_now(),
                    event_type: e.event_type().to_owned(),
                    payload: e.to_payload(),
                    occurred_at: now,
                    metadata: match origin {
                        Origin::Intervention => {
                            intervention.map(|(_, m)| m.clone()).unwrap_or_default()
                        }
                        Origin::Fact(id) => Metadata {
                            causation_id: Some(id.clone()),
                            actor: ACTOR.into(),
                            ..Default::default()
                        },
                        Origin::Schedule => Metadata {
                            causation_id: Some(format!("clock:{today}")),
                            actor: ACTOR.into(),
                            ..Default::default()
                        },
                    },
                })
                .collect();
            AppendBatch {
                stream,
                expected: if folded.version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(folded.version)
                },
                events,
            }
        });
        Ok(Decided {
            tenant: tenant.clone(),
            case,
            version: folded.version,
            plan,
            batch,
            advance,
            today,
        })
    }

    /// The handler's part: fold the case as it is now and record when the scheduler must wake
    /// it (today when a fact is still to be written, e.g. an invoice to open). Writes only
    /// through `tx`; never appends (the consumer's transaction may hold the database's write
    /// lock on SQLite).
    pub async fn observe(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &TenantId,
        case: CaseId,
    ) -> Result<()> {
        let today = self.inner.clock.today();
        let folded = self.read_case(&case.stream(tenant)).await?;
        let policy = self.policy_for(tenant, &folded).await?;
        let plan = plan(&folded, policy.as_ref(), None, false, today)?;
        let due_on = if plan.events.is_empty() {
            plan.state.as_ref().and_then(next_action_at)
        } else {
            Some(today)
        };
        let written = projection::record(
            tx,
            &CaseRow {
                tenant: tenant.as_str(),
                case_id: &case.to_string(),
                stream_version: folded.version,
                state: plan.state.as_ref(),
                status: status_name(plan.state.as_ref(), today),
                due_on,
            },
        )
        .await?;
        if written && due_on.is_some_and(|d| d <= today) {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// One scheduler pass for `today`: reconcile every case due on or before it. Returns the
    /// number of cases it acted on (appended something). Each instance works through a batch in
    /// its own (random) order, so replicas mostly pick different cases first.
    ///
    /// The due cases are read off the index in its order, a batch at a time. A batch is decided
    /// first (its streams read in parallel), then every decision is appended in one group
    /// commit, each case's events with the expected version it was decided on, and the next
    /// actions are recorded; meanwhile the next batch is read and decided. A case another writer
    /// changed in between is refused alone, re-read and decided again (it may now have nothing
    /// to do). A sweep that found nothing new ends the pass; cases that became due behind the
    /// cursor during a sweep are found by the next one.
    pub async fn run_due(&self, today: NaiveDate) -> Result<u64> {
        let mut handled: HashSet<(String, String)> = HashSet::new();
        let mut acted = 0;
        loop {
            let mut after: Option<(String, String, String)> = None;
            let mut fresh_in_sweep = 0_usize;
            let mut in_flight: Option<futures::future::BoxFuture<'_, Result<u64>>> = None;
            loop {
                let rows =
                    projection::due_after(&self.inner.pool, today, after.as_ref(), PASS_BATCH)
                        .await?;
                let Some(last) = rows.last().cloned() else {
                    break;
                };
                after = Some(last);
                let mut fresh: Vec<(String, String)> = rows
                    .into_iter()
                    .map(|(_, t, c)| (t, c))
                    .filter(|r| !handled.contains(r))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                fresh_in_sweep += fresh.len();
                fresh.sort_by_key(|r| self.inner.order.hash_one(r));
                let decide = futures::stream::iter(fresh.iter().cloned())
                    .map(|(tenant, case)| async move {
                        let (Ok(tenant), Ok(case)) =
                            (tenant.parse::<TenantId>(), case.parse::<CaseId>())
                        else {
                            return Ok(None);
                        };
                        self.decide(&tenant, case, None, true, today)
                            .await
                            .map(Some)
                    })
                    .buffered(PASS_CONCURRENCY)
                    .collect::<Vec<Result<Option<Decided>>>>();
                let previous = async {
                    match in_flight.take() {
                        Some(f) => f.await,
                        None => Ok(0),
                    }
                };
                let (decided, previous) = futures::join!(decide, previous);
                acted += previous?;
                handled.extend(fresh);
                let mut decisions = Vec::with_capacity(decided.len());
                for d in decided {
                    if let Some(d) = d? {
                        decisions.push(d);
                    }
                }
                in_flight = Some(Box::pin(self.append_and_record(decisions, today)));
            }
            if let Some(f) = in_flight.take() {
                acted += f.await?;
            }
            if fresh_in_sweep == 0 {
                return Ok(acted);
            }
        }
    }

    /// Append a batch's decisions (one group commit), decide again those another writer got
    /// to first, record every next action. Returns the number of cases that appended.
    async fn append_and_record(&self, decisions: Vec<Decided>, today: NaiveDate) -> Result<u64> {
        let (mut done, retry) = self.append_decided(decisions).await?;
        let mut first_err = None;
        for (tenant, case) in retry {
            match self
                .decide_and_append(&tenant, case, None, true, today)
                .await
            {
                Ok(r) => done.push(r),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let acted =
            u64::try_from(done.iter().filter(|r| !r.appended.is_empty()).count()).unwrap_or(0);
        self.record(&done).await?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(acted),
        }
    }

    /// Append every decision that has events in one group commit. Returns the reconciled
    /// cases and those refused for a concurrent writer (to decide again).
    async fn append_decided(
        &self,
        decisions: Vec<Decided>,
    ) -> Result<(Vec<Reconciled>, Vec<(TenantId, CaseId)>)> {
        let (with, without): (Vec<Decided>, Vec<Decided>) =
            decisions.into_iter().partition(|d| d.batch.is_some());
        let mut done: Vec<Reconciled> = without.into_iter().map(|d| d.done(None)).collect();
        let mut retry = Vec::new();
        if with.is_empty() {
            return Ok((done, retry));
        }
        let batches = with.iter().filter_map(|d| d.batch.clone()).collect();
        let results = self.inner.log.append_many(batches).await?;
        for (d, r) in with.into_iter().zip(results) {
            match r {
                Ok(a) => done.push(d.done(Some(a.last_version))),
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                    metrics::counter!("mahnwerk_dunning_conflicts_total").increment(1);
                    retry.push((d.tenant, d.case));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((done, retry))
    }

    /// Move the simulated clock forward day by day: finish the current day (what became due
    /// during it, e.g. a fact recorded today), then run a full pass for each new day. `None`
    /// when the clock is not simulated.
    pub async fn advance_clock(&self, days: u32) -> Option<Result<(NaiveDate, u64)>> {
        let sim = self.inner.clock.simulated()?.clone();
        let run = async {
            let mut acted = 0;
            for _ in 0..days {
                acted += self.run_due(sim.today()).await?;
                sim.advance(Duration::days(1));
                acted += self.run_due(sim.today()).await?;
            }
            Ok((sim.today(), acted))
        };
        Some(run.await)
    }

    /// The scheduler loop: a pass whenever a case became due (the handler wakes it), and at
    /// least every `tick` (the clock may have moved to a new day) until `shutdown`.
    pub async fn schedule(
        &self,
        tick: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let today = self.inner.clock.today();
            let pass = self.run_due(today);
            tokio::select! {
                () = &mut shutdown => return,
                res = pass => if let Err(err) = res {
                    tracing::warn!(error = %err, "scheduler pass failed, retrying");
                },
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
        }
    }
}
