//! The service's IO around the pure [`crate::facts::plan`]: read a case stream, decide, append
//! with the expected version it read (a conflict re-reads and decides again, which may now be
//! nothing), then record the case's next action. The scheduler pass and every intervention go
//! through [`Dunning::reconcile`]; the event handler only observes ([`Dunning::observe`]).

use crate::error::{Error, Result};
use crate::facts::{Folded, Origin, StreamEvent, plan};
use crate::projection::{self, CaseRow};
use chrono::{Duration, NaiveDate};
use mahnwerk_clock::{Clock, SharedClock};
use mahnwerk_domain::{CaseId, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::{
    CaseStatus, DunningCase, DunningCommand, DunningEvent, next_action_at,
};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use sqlx::{Any, AnyPool, Transaction};
use std::sync::Arc;

/// The actor of events the service writes on its own.
pub const ACTOR: &str = "service:dunning";

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
        fold(&all)
    }

    pub(crate) async fn policy_for(
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

    /// Record the next actions of reconciled cases in one transaction (multi-row upserts).
    pub async fn record(&self, done: &[Reconciled]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let case_ids: Vec<String> = done.iter().map(|r| r.case.to_string()).collect();
        let rows: Vec<CaseRow<'_>> = done
            .iter()
            .zip(&case_ids)
            .map(|(r, id)| CaseRow {
                tenant: r.tenant.as_str(),
                case_id: id,
                stream_version: r.version,
                state: r.state.as_ref(),
                status: status_name(r.state.as_ref(), r.today),
                due_on: r.due_on,
            })
            .collect();
        // Replicas record overlapping cases at the same time (`record_many` takes the row locks
        // in one order, so they do not deadlock); a busy database or a serialization failure
        // left by another writer is retried.
        let mut attempt = 0;
        loop {
            let tried = async {
                let mut tx = self.inner.pool.begin().await?;
                projection::record_many(&mut tx, &rows).await?;
                tx.commit().await
            }
            .await;
            match tried {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 && projection::is_contention(&e) => {
                    attempt += 1;
                    metrics::counter!("mahnwerk_dunning_record_retries_total").increment(1);
                    tracing::debug!(error = %e, attempt, "recording next actions: retried");
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
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
        self.decide_and_append_from(tenant, case, intervention, advance, today, None)
            .await
    }

    /// [`Dunning::decide_and_append`], starting from a stream already read and its policy.
    pub(crate) async fn decide_and_append_from(
        &self,
        tenant: &TenantId,
        case: CaseId,
        intervention: Option<(&DunningCommand, &Metadata)>,
        advance: bool,
        today: NaiveDate,
        mut first: Option<(Folded, Option<mahnwerk_dunning::policy::Policy>)>,
    ) -> Result<Reconciled> {
        let stream = case.stream(tenant);
        for _ in 0..8 {
            let (folded, policy) = match first.take() {
                Some(read) => read,
                None => {
                    let folded = self.read_case(&stream).await?;
                    let policy = self.policy_for(tenant, &folded).await?;
                    (folded, policy)
                }
            };
            let plan = plan(
                &folded,
                policy.as_ref(),
                intervention.map(|(c, _)| c),
                advance,
                today,
            )?;
            let mut version = folded.version;
            let appended: Vec<&'static str> =
                plan.events.iter().map(|(e, _)| e.event_type()).collect();
            if !plan.events.is_empty() {
                let events = self.new_events(&plan.events, intervention, today);
                let batch = AppendBatch {
                    stream: stream.clone(),
                    expected: if version == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(version)
                    },
                    events,
                };
                match self.inner.log.append(batch).await {
                    Ok(done) => version = done.last_version,
                    Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                        metrics::counter!("mahnwerk_dunning_conflicts_total").increment(1);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                count_steps(case, &plan.events);
                tracing::debug!(case = %case, events = appended.len(), "dunning events appended");
            }
            let next = plan.state.as_ref().and_then(next_action_at);
            // After a pass for `today`, nothing is left for today: the earliest is tomorrow.
            let due_on = if advance {
                next.map(|d| d.max(today + Duration::days(1)))
            } else {
                next
            };
            return Ok(Reconciled {
                tenant: tenant.clone(),
                case,
                appended,
                version,
                state: plan.state,
                due_on,
                today,
            });
        }
        Err(Error::Conflict)
    }

    /// The stored form of a plan's events: metadata per origin (the fact's id, the caller's
    /// intervention, or the clock).
    pub(crate) fn new_events(
        &self,
        events: &[(DunningEvent, Origin)],
        intervention: Option<(&DunningCommand, &Metadata)>,
        today: NaiveDate,
    ) -> Vec<NewEvent> {
        let now = self.inner.clock.now();
        events
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
            .collect()
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

/// Fold the events of one whole case stream, as read from the log.
pub(crate) fn fold(all: &[mahnwerk_eventlog::RecordedEvent]) -> Result<Folded> {
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

/// Metrics (and the operator warning) for the steps just appended to `case`.
pub(crate) fn count_steps(case: CaseId, events: &[(DunningEvent, Origin)]) {
    for (e, _) in events {
        let DunningEvent::StepReached(step) = e else {
            continue;
        };
        metrics::counter!("mahnwerk_dunning_steps_total").increment(1);
        if step.interest.as_ref().is_some_and(|i| i.provisional) {
            // The base-rate table needs its next half-year: operators must add it.
            metrics::counter!("mahnwerk_dunning_provisional_interest_total").increment(1);
            tracing::warn!(case = %case, step = step.number, "interest charged at a provisional base rate; update the base-rate table");
        }
    }
}
