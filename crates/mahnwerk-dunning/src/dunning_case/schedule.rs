//! The schedule: when the next step and the hand-over are due, and when the scheduler wakes a
//! case.

use super::pauses::paid_since;
use super::{ApprovalState, DunningCase, Pause, Phase};
use crate::law::calendar::{deadline, move_to_working_day};
use crate::policy::AfterLast;
use chrono::{Duration, NaiveDate};

impl DunningCase {
    /// The payment deadline printed on the last letter (§ 193 applied), if any: the step's own,
    /// or the later one a consolidated letter printed for all its lines.
    pub fn last_deadline(&self) -> Option<NaiveDate> {
        let (number, date) = *self.letters().last()?;
        let step = self
            .policy
            .steps
            .get(usize::try_from(number).ok()?.checked_sub(1)?)?;
        let own = deadline(
            self.place_of_performance(),
            date,
            i64::from(step.payment_deadline_days),
        )
        .deadline;
        Some(
            self.printed_deadline
                .map_or(own, |printed| printed.max(own)),
        )
    }

    /// The day the next step is due, ignoring pauses and the minimum balance: the policy's gap
    /// after its anchor, but never before the previous letter's deadline (moved per § 193 in the
    /// debtor's state) has passed, and moved to a business day of the policy's state (letters
    /// are dated on the sender's business days).
    pub fn next_step_date(&self) -> Option<NaiveDate> {
        let k = self.steps.len();
        if k >= self.policy.steps.len() {
            return None;
        }
        let prev = self.steps.last().map_or(self.due_date, |(_, d)| *d);
        let anchor = self.anchor_day().map_or(prev, |r| r.max(prev));
        // After a step passed over, the next one takes its place in the schedule (the skipped
        // step's date): the policy's gap was for a letter that was never sent.
        let mut date = if self.last_step_skipped() {
            anchor
        } else {
            self.policy.step_date_from(k, anchor)
        };
        if let Some(last) = self.last_deadline() {
            date = date.max(last + Duration::days(1));
        }
        Some(move_to_working_day(self.policy.state, date).deadline)
    }

    /// The day the case is handed over, once all steps are reached (never after the creditor
    /// declined, never before the last
    /// letter's deadline has passed).
    pub fn escalation_date(&self) -> Option<NaiveDate> {
        if self.steps.len() < self.policy.steps.len()
            || self.escalated_on.is_some()
            || self.declined()
        {
            return None;
        }
        let AfterLast::Collection { after_days } = self.policy.after_last else {
            return None;
        };
        let last = self.steps.last().map_or(self.due_date, |(_, d)| *d);
        let anchor = self.anchor_day().map_or(last, |r| r.max(last));
        let date = anchor + Duration::days(i64::from(after_days));
        Some(match self.last_deadline() {
            Some(deadline) => date.max(deadline + Duration::days(1)),
            None => date,
        })
    }
}

/// When the scheduler should next wake this case with [`DunningCommand::Advance`]; `None` when
/// only an outside event (payment, resolution, release) can move it.
pub fn next_action_at(state: &DunningCase) -> Option<NaiveDate> {
    if state.phase.is_end() {
        return None;
    }
    let day = Duration::days(1);
    let mut candidates: Vec<NaiveDate> = Vec::new();
    for pause in &state.pauses {
        match pause {
            Pause::PromiseToPay { until, .. } => candidates.push(*until + day),
            Pause::Hold {
                until: Some(until), ..
            } => candidates.push(*until + day),
            Pause::Settlement { pay_by, .. } => candidates.push(*pay_by + day),
            Pause::PaymentPlan { instalments, since } => {
                let paid = paid_since(state, *since);
                let mut due = 0;
                let next = instalments
                    .iter()
                    .find(|i| {
                        due += i.amount.minor;
                        paid < due
                    })
                    .or(instalments.last());
                if let Some(i) = next {
                    candidates.push(i.date + day);
                }
            }
            _ => {}
        }
    }
    // Offered to the creditor: only its decision moves the case.
    let waits = state.awaits_approval() && state.approval != ApprovalState::None;
    if !state.is_paused() && state.phase == Phase::Active && !waits {
        if let Some(date) = state.next_step_date() {
            let step = &state.policy.steps[state.steps.len()];
            if state.balance().minor >= step.min_open.minor {
                candidates.push(date);
            }
        } else if let Some(date) = state.escalation_date() {
            candidates.push(date);
        }
    }
    candidates.into_iter().min()
}
