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

use crate::facts::{Folded, Origin, Plan};
use chrono::NaiveDate;
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_dunning::consolidate::{DueStep, consolidate};
use mahnwerk_dunning::dunning_case::{DunningEvent, StepReached, evolve};
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

/// One case of a debtor decided for today: its stream as read and the plan made on it.
pub(crate) struct Member {
    pub case: CaseId,
    pub folded: Folded,
    pub plan: Plan,
}

/// The step the clock brings `m` today, when its policy consolidates: the case then pulls the
/// debtor's other open cases into its decision. Returns the debtor key.
pub(crate) fn trigger(m: &Member) -> Option<&str> {
    let state = m.plan.state.as_ref()?;
    scheduled_step(&m.plan)?;
    (state.policy.consolidate && !state.facts.debtor_key.is_empty())
        .then_some(state.facts.debtor_key.as_str())
}

/// Group the steps due today of one debtor's cases (all decided for today) into letters: one
/// fee per letter, no invoice in a later step's letter than its own, the consolidation id
/// stamped on every line. Each member's plan is adjusted in place.
pub(crate) fn consolidate_members(
    tenant: &TenantId,
    debtor: &str,
    today: NaiveDate,
    members: &mut [Member],
) {
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
    for m in members.iter_mut() {
        let line = lines.remove(&m.case.to_string());
        if line.is_some() {
            let plan = std::mem::take(&mut m.plan);
            m.plan = adjust(&m.folded, plan, line);
        }
    }
}
