//! Consolidated letters ("Sammelmahnung"): when a case whose policy consolidates reaches a step
//! today, every open case of the same debtor (tenant and debtor key) is decided for today too,
//! and the steps due are grouped by the pure core ([`mahnwerk_dunning::consolidate`]): one
//! letter, one fee, no invoice put into a later step's letter than its own. Each line is still
//! appended to its own case stream with the expected version read; all member streams are
//! appended in one group commit.
//!
//! Two writers (replicas, or two cases of one debtor in one pass) cannot produce two
//! consolidations: the consolidation id is derived from tenant, debtor, day, step and currency
//! ([`consolidation_id`]), the grouping is deterministic, and a member whose append conflicts is
//! re-read and decided alone (where the other writer already appended its step, nothing is
//! left to do; otherwise it gets a letter of its own, and the letters service leaves it out of
//! the consolidated letter, whose members are the cases that carry its id on their stream).

use crate::engine::{Dunning, Reconciled, count_steps};
use crate::error::{Error, Result};
use crate::facts::{Folded, Origin, Plan, plan};
use crate::projection;
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_dunning::consolidate::{DueStep, consolidate};
use mahnwerk_dunning::dunning_case::{DunningEvent, StepReached, evolve, next_action_at};
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::{AppendBatch, ExpectedVersion};
use std::collections::HashMap;

const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x0c5e_7a11_d2b4_4e0f_9a3c_1b6d_58e2_f7a9);

/// The id of the consolidated letter of `debtor_key`'s cases on `date` at letter step `step`
/// in `currency`: the same for every writer that decides the same day.
pub fn consolidation_id(
    tenant: &TenantId,
    debtor_key: &str,
    date: NaiveDate,
    step: u32,
    currency: &str,
) -> String {
    let name = format!("{tenant}\u{1f}{debtor_key}\u{1f}{date}\u{1f}{step}\u{1f}{currency}");
    uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The step the clock brings in a plan (not a draft: drafts go to the creditor one by one).
fn scheduled_step(p: &Plan) -> Option<&StepReached> {
    p.events.iter().find_map(|(e, origin)| match (e, origin) {
        (DunningEvent::StepReached(s), Origin::Schedule) if !s.draft => Some(&**s),
        _ => None,
    })
}

/// Apply the consolidation's adjustments (fee waived on all lines but one, the consolidation
/// stamped) to the plan's scheduled step, and fold the state again.
fn adjust(folded: &Folded, mut p: Plan, line: Option<StepReached>) -> Plan {
    let Some(line) = line else { return p };
    for (e, origin) in &mut p.events {
        if let (DunningEvent::StepReached(s), Origin::Schedule) = (&mut *e, &*origin)
            && !s.draft
        {
            **s = line;
            break;
        }
    }
    p.state = p
        .events
        .iter()
        .fold(folded.state.clone(), |st, (e, _)| evolve(st, e));
    p
}

struct Member {
    case: CaseId,
    folded: Folded,
    plan: Plan,
}

impl Dunning {
    /// The scheduler's decision for one due case: alone, or with the debtor's other open cases
    /// when it reaches a step today under a policy that consolidates.
    pub(crate) async fn advance_case(
        &self,
        tenant: &TenantId,
        case: CaseId,
        today: NaiveDate,
        debtors_done: &std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    ) -> Result<Vec<Reconciled>> {
        let folded = self.read_case(&case.stream(tenant)).await?;
        let policy = self.policy_for(tenant, &folded).await?;
        let p = plan(&folded, policy.as_ref(), None, true, today)?;
        let debtor = match (&p.state, scheduled_step(&p)) {
            (Some(s), Some(_)) if s.policy.consolidate => s.facts.debtor_key.clone(),
            _ => String::new(),
        };
        if !debtor.is_empty() {
            let key = (tenant.as_str().to_owned(), debtor.clone());
            if debtors_done.lock().is_ok_and(|done| done.contains(&key)) {
                // The debtor's cases were decided together in this pass already: what is left
                // (usually nothing) is decided on a fresh read.
                return Ok(vec![
                    self.decide_and_append_from(tenant, case, None, true, today, None)
                        .await?,
                ]);
            }
            let me = case.to_string();
            let cases =
                projection::open_debtor_cases(self.pool(), tenant.as_str(), &debtor).await?;
            if cases.iter().any(|c| *c != me) {
                let done = self.advance_debtor(tenant, &debtor, cases, today).await?;
                if let Ok(mut set) = debtors_done.lock() {
                    set.insert(key);
                }
                return Ok(done);
            }
        }
        Ok(vec![
            self.decide_and_append_from(tenant, case, None, true, today, Some((folded, policy)))
                .await?,
        ])
    }

    /// Decide today for every open case of one debtor, consolidate the steps due and append
    /// each member's events with the version it was decided on, in one group commit.
    async fn advance_debtor(
        &self,
        tenant: &TenantId,
        debtor: &str,
        cases: Vec<String>,
        today: NaiveDate,
    ) -> Result<Vec<Reconciled>> {
        let mut members = Vec::new();
        for c in cases {
            let Ok(case) = c.parse::<CaseId>() else {
                continue;
            };
            let folded = self.read_case(&case.stream(tenant)).await?;
            let policy: Option<Policy> = self.policy_for(tenant, &folded).await?;
            let plan = plan(&folded, policy.as_ref(), None, true, today)?;
            members.push(Member { case, folded, plan });
        }
        let due: Vec<DueStep> = members
            .iter()
            .filter_map(|m| {
                let state = m.plan.state.as_ref()?;
                let step = scheduled_step(&m.plan)?;
                (state.policy.consolidate && state.facts.debtor_key == debtor).then(|| DueStep {
                    case_id: m.case.to_string(),
                    debtor_key: debtor.to_owned(),
                    consolidate: true,
                    step: step.clone(),
                })
            })
            .collect();
        let mut lines: HashMap<String, StepReached> = HashMap::new();
        for mut letter in consolidate(due) {
            let top = letter
                .lines
                .iter()
                .map(|l| l.step.number)
                .max()
                .unwrap_or(0);
            let id = consolidation_id(
                tenant,
                debtor,
                today,
                top,
                &letter.total.currency.to_string(),
            );
            letter.stamp(&id);
            if letter.lines.len() > 1 {
                tracing::info!(consolidation = %id, cases = letter.lines.len(), step = top, "consolidated letter decided");
            }
            for line in letter.lines {
                lines.insert(line.case_id, line.step);
            }
        }
        let members: Vec<Member> = members
            .into_iter()
            .map(|m| {
                let line = lines.remove(&m.case.to_string());
                let plan = adjust(&m.folded, m.plan, line);
                Member { plan, ..m }
            })
            .collect();
        let writing: Vec<&Member> = members
            .iter()
            .filter(|m| !m.plan.events.is_empty())
            .collect();
        let batches = writing
            .iter()
            .map(|m| AppendBatch {
                stream: m.case.stream(tenant),
                expected: if m.folded.version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(m.folded.version)
                },
                events: self.new_events(&m.plan.events, None, today),
            })
            .collect();
        let results = if writing.is_empty() {
            Vec::new()
        } else {
            self.log().append_many(batches).await?
        };
        let mut appended: HashMap<String, u64> = HashMap::new();
        let mut retry = Vec::new();
        for (m, r) in writing.iter().zip(results) {
            match r {
                Ok(done) => {
                    count_steps(m.case, &m.plan.events);
                    appended.insert(m.case.to_string(), done.last_version);
                }
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => {
                    metrics::counter!("mahnwerk_dunning_conflicts_total").increment(1);
                    retry.push(m.case.to_string());
                }
                Err(e) => return Err(Error::from(e)),
            }
        }
        let mut out = Vec::with_capacity(members.len());
        for m in &members {
            if retry.contains(&m.case.to_string()) {
                // Someone else wrote first: decide again alone on what is there now.
                out.push(
                    self.decide_and_append_from(tenant, m.case, None, true, today, None)
                        .await?,
                );
                continue;
            }
            let version = appended
                .get(&m.case.to_string())
                .copied()
                .unwrap_or(m.folded.version);
            let next = m.plan.state.as_ref().and_then(next_action_at);
            out.push(Reconciled {
                tenant: tenant.clone(),
                case: m.case,
                appended: m.plan.events.iter().map(|(e, _)| e.event_type()).collect(),
                version,
                state: m.plan.state.clone(),
                due_on: next.map(|d| d.max(today + Duration::days(1))),
                today,
            });
        }
        Ok(out)
    }
}
