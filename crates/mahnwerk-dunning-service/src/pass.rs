//! The scheduler pass: every case due on or before a day, decided and appended in batches.
//!
//! The due cases are read off the next-action index in its order (`due_on, tenant, case_id`)
//! with a keyset cursor, [`PASS_BATCH`] at a time. A batch is decided first: its streams read
//! and folded in parallel, each decided for today by the pure core. A case that reaches a step
//! under a policy that consolidates pulls in every other open case of its debtor (one query for
//! all the batch's debtors; members outside the batch are read too), and the debtor's steps are
//! grouped into letters ([`crate::consolidation`]): a batch therefore always holds whole
//! debtors. Then every decision of the batch is appended in ONE group commit
//! ([`mahnwerk_eventlog::EventLog::append_many`]), each case stream with the expected version it
//! was decided on; a stream another writer changed in between is refused alone (the others
//! commit), re-read and decided again alone (it may now have nothing to do). The next actions
//! are recorded with multi-row upserts. Meanwhile the next batch is read and decided.
//!
//! A sweep that found nothing new ends the pass; cases that became due behind the cursor during
//! a sweep (a fact recorded by the handler) are found by the next sweep.

use crate::consolidation::{Member, consolidate_members, trigger};
use crate::engine::{Dunning, Reconciled, count_steps, fold};
use crate::error::{Error, Result};
use crate::facts::plan;
use crate::projection;
use chrono::{Duration, NaiveDate};
use futures::StreamExt;
use futures::future::BoxFuture;
use mahnwerk_domain::{CaseId, StreamId, TenantId};
use mahnwerk_dunning::dunning_case::next_action_at;
use mahnwerk_eventlog::{AppendBatch, ExpectedVersion};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

/// Case streams per read of the log (one statement) while a batch is decided.
const READ_CHUNK: usize = 64;
/// Chunks read and decided at once.
const READ_CONCURRENCY: usize = 4;
/// Conflicting cases decided again at once.
const PASS_CONCURRENCY: usize = 8;
/// Due cases fetched per query of a pass (a batch; debtors pulled in may add to it).
const PASS_BATCH: i64 = 512;

type Key = (String, String);

/// A case decided for today, with its tenant.
struct Unit {
    tenant: TenantId,
    member: Member,
}

/// What one batch's decision left: the units to append and record, the first error met.
struct Batch {
    units: Vec<Unit>,
    error: Option<Error>,
}

impl Dunning {
    /// One scheduler pass for `today`: reconcile every case due on or before it. Returns the
    /// number of cases it acted on (appended something). Each instance decides a batch in its
    /// own (random) order. A case that fails (an unreadable stream, a database error) does not
    /// stop the others: the pass goes on and returns the first error at its end.
    pub async fn run_due(&self, today: NaiveDate) -> Result<u64> {
        let mut handled: HashSet<Key> = HashSet::new();
        // (tenant, debtor key) whose cases were decided together (consolidation) in this pass.
        let mut debtors_done: HashSet<Key> = HashSet::new();
        let mut acted = 0;
        let mut first_err: Option<Error> = None;
        loop {
            let mut after: Option<(String, String, String)> = None;
            let mut fresh_in_sweep = 0_usize;
            let mut in_flight: Option<BoxFuture<'_, (u64, Option<Error>)>> = None;
            loop {
                let rows =
                    projection::due_after(&self.inner.pool, today, after.as_ref(), PASS_BATCH)
                        .await?;
                let Some(last) = rows.last().cloned() else {
                    break;
                };
                after = Some(last);
                let mut fresh: Vec<Key> = rows
                    .into_iter()
                    .map(|(_, t, c)| (t, c))
                    .filter(|r| !handled.contains(r))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                fresh_in_sweep += fresh.len();
                fresh.sort_by_key(|r| self.inner.order.hash_one(r));
                handled.extend(fresh.iter().cloned());
                let decide = self.decide_batch(fresh, today, &mut handled, &mut debtors_done);
                let previous = async {
                    match in_flight.take() {
                        Some(f) => f.await,
                        None => (0, None),
                    }
                };
                let (batch, (n, err)) = futures::join!(decide, previous);
                acted += n;
                if let Some(e) = err.or(batch.error) {
                    first_err.get_or_insert(e);
                }
                in_flight = Some(Box::pin(self.append_and_record(batch.units, today)));
            }
            if let Some(f) = in_flight.take() {
                let (n, err) = f.await;
                acted += n;
                if let Some(e) = err {
                    first_err.get_or_insert(e);
                }
            }
            if fresh_in_sweep == 0 {
                return match first_err {
                    Some(e) => Err(e),
                    None => Ok(acted),
                };
            }
        }
    }

    /// Decide cases already read for today.
    async fn decide_read(
        &self,
        cases: Vec<(TenantId, CaseId)>,
        read: Vec<Vec<mahnwerk_eventlog::RecordedEvent>>,
        today: NaiveDate,
    ) -> Vec<Result<Unit>> {
        let mut out = Vec::with_capacity(cases.len());
        for ((tenant, case), events) in cases.into_iter().zip(read) {
            let decided = async {
                let folded = fold(&events)?;
                let policy = self.policy_for(&tenant, &folded).await?;
                let plan = plan(&folded, policy.as_ref(), None, true, today)?;
                Ok::<_, Error>(Unit {
                    tenant,
                    member: Member { case, folded, plan },
                })
            };
            out.push(decided.await);
        }
        out
    }

    /// Read and decide `cases` for today: [`READ_CHUNK`] streams per read of the log, each
    /// chunk decided in a task of its own (the pass's CPU spreads over the runtime's threads).
    /// A chunk whose read fails gives one error for all its cases.
    async fn decide_many(
        &self,
        cases: Vec<(TenantId, CaseId)>,
        today: NaiveDate,
    ) -> Vec<Result<Unit>> {
        let chunks: Vec<Vec<(TenantId, CaseId)>> =
            cases.chunks(READ_CHUNK).map(<[_]>::to_vec).collect();
        let decided: Vec<Vec<Result<Unit>>> = futures::stream::iter(chunks)
            .map(|chunk| {
                let this = self.clone();
                let task = tokio::spawn(async move {
                    let streams: Vec<StreamId> = chunk.iter().map(|(t, c)| c.stream(t)).collect();
                    match this.log().read_streams(&streams).await {
                        Ok(read) => this.decide_read(chunk, read, today).await,
                        Err(e) => vec![Err(Error::from(e))],
                    }
                });
                async move {
                    match task.await {
                        Ok(decided) => decided,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // Cancelled (the runtime shuts down): the cases stay due.
                        Err(_) => Vec::new(),
                    }
                }
            })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        decided.into_iter().flatten().collect()
    }

    /// Decide a batch of due cases, pulling in the other open cases of every debtor that
    /// reaches a consolidated step, and group each such debtor's steps into letters.
    async fn decide_batch(
        &self,
        fresh: Vec<Key>,
        today: NaiveDate,
        handled: &mut HashSet<Key>,
        debtors_done: &mut HashSet<Key>,
    ) -> Batch {
        let mut error = None;
        let ids: Vec<(TenantId, CaseId)> = fresh
            .iter()
            .filter_map(|(t, c)| Some((t.parse().ok()?, c.parse().ok()?)))
            .collect();
        let mut units = Vec::with_capacity(ids.len());
        for r in self.decide_many(ids, today).await {
            match r {
                Ok(u) => units.push(u),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        // Debtors reaching a consolidated step today, per tenant, not yet decided in this pass.
        let mut triggers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut trigger_cases: HashMap<Key, Vec<String>> = HashMap::new();
        for u in &units {
            let Some(debtor) = trigger(&u.member) else {
                continue;
            };
            let key = (u.tenant.as_str().to_owned(), debtor.to_owned());
            if debtors_done.contains(&key) {
                // Decided together earlier in this pass (this case was not open then): alone.
                continue;
            }
            let cases = trigger_cases.entry(key).or_default();
            if cases.is_empty() {
                triggers
                    .entry(u.tenant.as_str().to_owned())
                    .or_default()
                    .push(debtor.to_owned());
            }
            cases.push(u.member.case.to_string());
        }
        if triggers.is_empty() {
            return Batch { units, error };
        }
        // Every open case of those debtors (one query per tenant and chunk of debtors).
        let mut open: HashMap<Key, Vec<String>> = HashMap::new();
        for (tenant, debtors) in &triggers {
            let keys: Vec<&str> = debtors.iter().map(String::as_str).collect();
            match projection::open_cases_of_debtors(&self.inner.pool, tenant, &keys).await {
                Ok(rows) => {
                    for (debtor, case) in rows {
                        open.entry((tenant.clone(), debtor)).or_default().push(case);
                    }
                }
                Err(e) => {
                    error.get_or_insert(e.into());
                    // Without the debtors' cases the triggers are decided alone.
                    return Batch { units, error };
                }
            }
        }
        let in_batch: HashSet<Key> = fresh.into_iter().collect();
        // Group key of each case that belongs to a consolidated debtor.
        let mut group_of: HashMap<Key, Key> = HashMap::new();
        let mut outside: Vec<(TenantId, CaseId)> = Vec::new();
        for (key, cases) in &trigger_cases {
            let members: HashSet<&String> = cases
                .iter()
                .chain(open.get(key).into_iter().flatten())
                .collect();
            if members.len() < 2 {
                continue;
            }
            debtors_done.insert(key.clone());
            for case in members {
                let ck = (key.0.clone(), case.clone());
                if in_batch.contains(&ck) {
                    group_of.insert(ck, key.clone());
                } else if handled.insert(ck.clone()) {
                    // An open case of the debtor that is not due itself: decided with it.
                    if let (Ok(t), Ok(c)) = (key.0.parse::<TenantId>(), case.parse::<CaseId>()) {
                        outside.push((t, c));
                    }
                    group_of.insert(ck, key.clone());
                }
                // Else it was decided earlier in this pass, for today: nothing is due for it.
            }
        }
        for r in self.decide_many(outside, today).await {
            match r {
                Ok(u) => units.push(u),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        // Sort the members of each group together and consolidate them.
        let mut groups: HashMap<Key, Vec<Unit>> = HashMap::new();
        let mut alone = Vec::with_capacity(units.len());
        for u in units {
            let ck = (u.tenant.as_str().to_owned(), u.member.case.to_string());
            match group_of.get(&ck) {
                Some(g) => groups.entry(g.clone()).or_default().push(u),
                None => alone.push(u),
            }
        }
        for ((_, debtor), mut group) in groups {
            group.sort_by_key(|u| u.member.case.to_string());
            let tenant = group[0].tenant.clone();
            let mut members: Vec<Member> = group.into_iter().map(|u| u.member).collect();
            consolidate_members(&tenant, &debtor, today, &mut members);
            alone.extend(members.into_iter().map(|member| Unit {
                tenant: tenant.clone(),
                member,
            }));
        }
        Batch {
            units: alone,
            error,
        }
    }

    /// Append a batch's decisions (one group commit), decide again alone those another writer
    /// got to first, record every next action. Returns the number of cases that appended and
    /// the first error met (the other cases are still recorded).
    async fn append_and_record(&self, units: Vec<Unit>, today: NaiveDate) -> (u64, Option<Error>) {
        let mut error: Option<Error> = None;
        let (writing, quiet): (Vec<Unit>, Vec<Unit>) = units
            .into_iter()
            .partition(|u| !u.member.plan.events.is_empty());
        let reconciled = |u: Unit, version: u64| {
            let next = u.member.plan.state.as_ref().and_then(next_action_at);
            Reconciled {
                tenant: u.tenant,
                case: u.member.case,
                appended: u
                    .member
                    .plan
                    .events
                    .iter()
                    .map(|(e, _)| e.event_type())
                    .collect(),
                version,
                state: u.member.plan.state,
                // After a pass for `today`, nothing is left for today: the earliest is tomorrow.
                due_on: next.map(|d| d.max(today + Duration::days(1))),
                today,
            }
        };
        let mut done: Vec<Reconciled> = Vec::with_capacity(writing.len() + quiet.len());
        done.extend(quiet.into_iter().map(|u| {
            let v = u.member.folded.version;
            reconciled(u, v)
        }));
        let mut retry = Vec::new();
        if !writing.is_empty() {
            let batches = writing
                .iter()
                .map(|u| AppendBatch {
                    stream: u.member.case.stream(&u.tenant),
                    expected: if u.member.folded.version == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(u.member.folded.version)
                    },
                    events: self.new_events(&u.member.plan.events, None, today),
                })
                .collect();
            match self.log().append_many(batches).await {
                Ok(results) => {
                    for (u, r) in writing.into_iter().zip(results) {
                        match r {
                            Ok(a) => {
                                tracing::debug!(case = %u.member.case, events = u.member.plan.events.len(), "dunning events appended");
                                count_steps(u.member.case, &u.member.plan.events);
                                done.push(reconciled(u, a.last_version));
                            }
                            Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                                metrics::counter!("mahnwerk_dunning_conflicts_total").increment(1);
                                retry.push((u.tenant, u.member.case));
                            }
                            Err(e) => {
                                error.get_or_insert(e.into());
                            }
                        }
                    }
                }
                Err(e) => {
                    error.get_or_insert(e.into());
                }
            }
        }
        // Someone else wrote first: decide again alone on what is there now.
        let retried: Vec<Result<Reconciled>> = futures::stream::iter(retry)
            .map(|(tenant, case)| async move {
                self.decide_and_append_from(&tenant, case, None, true, today, None)
                    .await
            })
            .buffer_unordered(PASS_CONCURRENCY)
            .collect()
            .await;
        for r in retried {
            match r {
                Ok(r) => done.push(r),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        let acted =
            u64::try_from(done.iter().filter(|r| !r.appended.is_empty()).count()).unwrap_or(0);
        if let Err(e) = self.record(&done).await {
            error.get_or_insert(e);
        }
        (acted, error)
    }
}
