//! Preview: run a policy over a set of cases up to a future date and report the steps, fees and
//! interest it would produce. No side effects: it folds events in memory and discards them.
//!
//! Each case starts on its issue date; its scheduled commands are applied on their dates and
//! the case is advanced whenever [`next_action_at`] says so, exactly as the dunning service
//! would (one wake-up per day at most).

use crate::dunning_case::{
    CaseFacts, DunningCase, DunningCommand, DunningEvent, decide, evolve, next_action_at,
};
use crate::error::{DunningError, Result};
use crate::policy::Policy;
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// A command to apply on a given day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduled {
    pub date: NaiveDate,
    pub command: DunningCommand,
}

/// One case to preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewCase {
    pub case_id: String,
    pub facts: CaseFacts,
    #[serde(default)]
    pub events: Vec<Scheduled>,
}

/// One thing that would happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewLine {
    pub case_id: String,
    pub date: NaiveDate,
    /// Event type, e.g. `dunning.step_reached.v1`.
    pub event_type: String,
    /// Step number and title for steps.
    pub step: Option<u32>,
    pub title: Option<String>,
    pub fee: Money,
    pub lump_sum: Money,
    pub interest: Money,
    /// Balance after the event.
    pub balance: Money,
}

/// What the policy would produce up to `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewReport {
    pub until: NaiveDate,
    pub lines: Vec<PreviewLine>,
    pub steps: u32,
    pub escalations: u32,
    pub fees: Money,
    pub lump_sums: Money,
    pub interest: Money,
}

const MAX_WAKEUPS: usize = 10_000;

/// Simulate one case; returns its lines.
pub fn simulate(policy: &Policy, case: &PreviewCase, until: NaiveDate) -> Result<Vec<PreviewLine>> {
    let open = DunningCommand::Open {
        facts: case.facts.clone(),
        policy: policy.clone(),
    };
    let mut state: Option<DunningCase> = None;
    let mut lines = Vec::new();
    let mut apply =
        |state: &mut Option<DunningCase>, cmd: &DunningCommand, day: NaiveDate| -> Result<()> {
            for e in decide(state.as_ref(), cmd, day)? {
                *state = evolve(state.take(), &e);
                if let Some(s) = state.as_ref() {
                    lines.push(line(&case.case_id, day, &e, s));
                }
            }
            Ok(())
        };
    apply(&mut state, &open, case.facts.issue_date)?;
    let mut scheduled = case.events.clone();
    scheduled.sort_by_key(|s| s.date);
    let mut pending = scheduled.into_iter().peekable();
    let mut day = case.facts.issue_date;
    for _ in 0..MAX_WAKEUPS {
        let Some(s) = state.as_ref() else { break };
        let wake = next_action_at(s).map(|w| w.max(day));
        let next_cmd = pending.peek().map(|p| p.date);
        let Some(next) = [wake, next_cmd].into_iter().flatten().min() else {
            break;
        };
        if next > until {
            break;
        }
        day = next;
        while pending.peek().is_some_and(|p| p.date == day) {
            if let Some(p) = pending.next() {
                apply(&mut state, &p.command, day)?;
            }
        }
        apply(&mut state, &DunningCommand::Advance, day)?;
        // Never wake twice on the same day.
        if state
            .as_ref()
            .and_then(next_action_at)
            .is_some_and(|w| w <= day)
            && pending.peek().is_none_or(|p| p.date > day)
        {
            day += Duration::days(1);
        }
    }
    Ok(lines)
}

fn line(case_id: &str, day: NaiveDate, e: &DunningEvent, s: &DunningCase) -> PreviewLine {
    let zero = Money::zero(s.currency());
    let (step, title, fee, lump, interest) = match e {
        DunningEvent::StepReached(st) => (
            Some(st.number),
            Some(st.title.clone()),
            st.fee,
            st.lump_sum,
            st.interest_charged,
        ),
        _ => (None, None, zero, zero, zero),
    };
    PreviewLine {
        case_id: case_id.to_owned(),
        date: day,
        event_type: e.event_type().to_owned(),
        step,
        title,
        fee,
        lump_sum: lump,
        interest,
        balance: s.balance(),
    }
}

/// Run `policy` over `cases` up to `until` (inclusive). All cases must share the policy's
/// currency.
pub fn preview(policy: &Policy, cases: &[PreviewCase], until: NaiveDate) -> Result<PreviewReport> {
    policy.validate()?;
    let mut lines = Vec::new();
    for case in cases {
        if case.facts.principal.currency != policy.currency {
            return Err(DunningError::CurrencyMismatch(
                policy.currency,
                case.facts.principal.currency,
            ));
        }
        lines.extend(simulate(policy, case, until)?);
    }
    let sum = |f: fn(&PreviewLine) -> i64| Money::new(lines.iter().map(f).sum(), policy.currency);
    let count = |t: &str| {
        u32::try_from(lines.iter().filter(|l| l.event_type == t).count()).unwrap_or(u32::MAX)
    };
    Ok(PreviewReport {
        until,
        steps: count("dunning.step_reached.v1"),
        escalations: count("dunning.escalated.v1"),
        fees: sum(|l| l.fee.minor),
        lump_sums: sum(|l| l.lump_sum.minor),
        interest: sum(|l| l.interest.minor),
        lines,
    })
}
