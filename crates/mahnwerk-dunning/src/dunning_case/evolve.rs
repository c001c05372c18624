//! `evolve`: apply a fact to the case state. No rules here.

use super::{ApprovalState, DunningCase, DunningEvent, PaymentRecord, Phase};
use crate::law::interest::DatedAmount;
use chrono::NaiveDate;
use mahnwerk_domain::Money;

/// Apply a fact. No rules here: `decide` already checked them.
pub fn evolve(state: Option<DunningCase>, event: &DunningEvent) -> Option<DunningCase> {
    if let DunningEvent::Opened { facts, policy, .. } = event {
        return Some(DunningCase {
            facts: facts.clone(),
            policy: policy.clone(),
            due_date: facts.due_date,
            phase: Phase::Active,
            steps: Vec::new(),
            escalated_on: None,
            payments: Vec::new(),
            credits: Vec::new(),
            costs: Vec::new(),
            fees: 0,
            lump_sum: 0,
            lump_sum_offset: 0,
            interest: 0,
            interest_until: None,
            pauses: Vec::new(),
            reanchor: None,
            approval: ApprovalState::None,
            printed_deadline: None,
            skipped: Vec::new(),
            repeats: Default::default(),
        });
    }
    let mut s = state?;
    let reanchor = |s: &mut DunningCase, d: NaiveDate| {
        s.reanchor = Some(s.reanchor.map_or(d, |r| r.max(d)));
    };
    match event {
        DunningEvent::Opened { .. } => {}
        DunningEvent::PaymentRecorded {
            payment_id,
            amount,
            date,
            reanchors,
        } => {
            s.payments.push(PaymentRecord {
                payment_id: payment_id.clone(),
                amount: *amount,
                date: *date,
                reversed: false,
                reanchors: *reanchors,
            });
        }
        DunningEvent::PaymentReversed { payment_id, .. } => {
            if let Some(p) = s.payments.iter_mut().find(|p| &p.payment_id == payment_id) {
                p.reversed = true;
            }
        }
        DunningEvent::CreditRecorded {
            credit_note,
            amount,
            credited_on,
        } => {
            s.credits.push((credit_note.clone(), *amount));
            reanchor(&mut s, *credited_on);
        }
        DunningEvent::DueDateExtended { new_due_date, .. } => {
            s.due_date = *new_due_date;
            reanchor(&mut s, *new_due_date);
        }
        DunningEvent::StepReached(step) => {
            if let Some(r) = &step.repeat {
                // The same step again: it now dates from the repetition.
                s.steps.pop();
                s.repeats.insert(step.number, r.count);
            }
            s.steps.push((step.number, step.date));
            s.printed_deadline = step.consolidation.as_ref().map(|c| c.deadline);
            s.fees += step.fee.minor;
            s.lump_sum += step.lump_sum.minor;
            s.lump_sum_offset += step.fee_offset.map_or(0, |m| m.minor);
            s.interest += step.interest_charged.minor;
            if step.interest.is_some() {
                s.interest_until = Some(step.date);
            }
            let cost = step.fee.minor + step.lump_sum.minor;
            if cost > 0 {
                s.costs.push(DatedAmount::new(
                    step.date,
                    Money::new(cost, step.fee.currency),
                ));
            }
        }
        DunningEvent::Paused { pause, .. } => {
            let kind = pause.kind();
            s.pauses.retain(|p| p.kind() != kind);
            s.pauses.push(pause.clone());
        }
        DunningEvent::Resumed {
            pause, resumed_on, ..
        } => {
            s.pauses.retain(|p| p.kind() != *pause);
            if s.pauses.is_empty() {
                reanchor(&mut s, *resumed_on);
            }
        }
        DunningEvent::Escalated { escalated_on, .. } => {
            s.phase = Phase::Escalated;
            s.escalated_on = Some(*escalated_on);
        }
        DunningEvent::Settled { .. } => s.phase = Phase::Settled,
        DunningEvent::Reopened { .. } => {
            s.phase = if s.escalated_on.is_some() {
                Phase::Escalated
            } else {
                Phase::Active
            };
        }
        DunningEvent::Cancelled { .. } => s.phase = Phase::Cancelled,
        DunningEvent::Credited { .. } => s.phase = Phase::Credited,
        DunningEvent::WrittenOff { .. } => s.phase = Phase::WrittenOff,
        DunningEvent::PolicyMoved { policy, .. } => s.policy = policy.clone(),
        DunningEvent::StepSkipped {
            skipped_step,
            scheduled_for,
            ..
        } => {
            s.steps.push((*skipped_step, *scheduled_for));
            s.skipped.push(*skipped_step);
        }
        DunningEvent::Offered { offered_on, .. } => {
            s.approval = ApprovalState::Offered { on: *offered_on };
        }
        DunningEvent::Approved { approved_on } => {
            s.approval = ApprovalState::Approved { on: *approved_on };
        }
        DunningEvent::Declined { declined_on } => {
            s.approval = ApprovalState::Declined { on: *declined_on };
        }
    }
    Some(s)
}
