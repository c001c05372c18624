//! Money: what a step charges (fees, the € 40 lump sum and its offset, interest) and what a
//! change of the balance leads to (settled, reopened, credited out).

use super::decide::fold_onto;
use super::pauses::settlement_paid;
use super::{
    DunningCase, DunningEvent, Pause, PauseKind, Phase, Repetition, ResumeReason, StepReached,
};
use crate::error::Result;
use crate::law::BaseRateTable;
use crate::law::calendar::deadline;
use crate::law::interest::{DatedAmount, InterestRequest, compute_interest, lump_sum};
use chrono::NaiveDate;

pub(super) fn balance_consequences(
    state: &DunningCase,
    so_far: &[DunningEvent],
    today: NaiveDate,
) -> Vec<DunningEvent> {
    let after = fold_onto(state, so_far);
    let mut out = Vec::new();
    let balance = after.balance().minor;
    let principal_covered = after.paid() >= after.principal_owed();
    match after.phase {
        Phase::Active | Phase::Escalated => {
            if after.principal_owed() <= 0 {
                out.push(DunningEvent::Credited {
                    credited_on: today,
                    waived: after.money(balance.max(0)),
                });
            } else if balance <= 0
                || (!after.policy.keep_costs_after_principal_paid && principal_covered)
                || settlement_paid(&after)
            {
                out.push(DunningEvent::Settled {
                    settled_on: today,
                    overpaid: after.money((-balance).max(0)),
                    waived: after.money(balance.max(0)),
                });
            } else if matches!(after.pause(PauseKind::Dispute), Some(Pause::DisputeUpheld))
                && so_far
                    .iter()
                    .any(|e| matches!(e, DunningEvent::CreditRecorded { .. }))
            {
                out.push(DunningEvent::Resumed {
                    pause: PauseKind::Dispute,
                    why: ResumeReason::CreditAfterUpheldDispute,
                    resumed_on: today,
                });
            }
        }
        Phase::Settled => {
            let still_settled = balance <= 0
                || (!after.policy.keep_costs_after_principal_paid && principal_covered)
                || settlement_paid(&after);
            if !still_settled {
                out.push(DunningEvent::Reopened {
                    reopened_on: today,
                    balance: after.balance(),
                });
            }
        }
        Phase::Cancelled | Phase::Credited | Phase::WrittenOff => {}
    }
    out
}

/// The step due on `today`, with its money, or `None`.
pub(super) fn due_step(state: &DunningCase, today: NaiveDate) -> Result<Option<DunningEvent>> {
    let Some(date) = state.next_step_date() else {
        return Ok(None);
    };
    let k = state.steps.len();
    let step = &state.policy.steps[k];
    if date > today || state.balance().minor < step.min_open.minor {
        return Ok(None);
    }
    letter(state, k, today, None).map(Some)
}

/// The letter of the policy's step `k` (0-based) dated `today`: the step itself, or a
/// repetition of it (`repeat`: no second fee or lump sum; interest brought up to today).
pub(super) fn letter(
    state: &DunningCase,
    k: usize,
    today: NaiveDate,
    repeat: Option<Repetition>,
) -> Result<DunningEvent> {
    let step = &state.policy.steps[k];
    let number = u32::try_from(k + 1).unwrap_or(u32::MAX);
    let default_before = state.default();
    let in_default = default_before.is_some_and(|d| d.in_default_on(today));
    let creates_default = !in_default && !step.pre_due && repeat.is_none();
    let (fee, fee_waived) = if repeat.is_some() {
        (
            0,
            (step.fee.minor > 0)
                .then(|| "the same step sent again: its fee is not charged twice".to_owned()),
        )
    } else if step.fee.minor == 0 {
        (0, None)
    } else if in_default {
        (step.fee.minor, None)
    } else if step.pre_due {
        (
            0,
            Some("reminder before the due date: the debtor is not in default".to_owned()),
        )
    } else {
        (
            0,
            Some("this letter puts the debtor in default (§ 286 Abs. 1 BGB); its cost is not recoverable".to_owned()),
        )
    };
    let (mut fee, mut fee_waived) = (fee, fee_waived);
    let lump =
        if repeat.is_none() && in_default && state.policy.charge_lump_sum && state.lump_sum == 0 {
            lump_sum(state.facts.debtor, state.currency()).map_or(0, |m| m.minor)
        } else {
            0
        };
    // § 288 Abs. 5 S. 3: the lump sum is offset against the dunning costs of the same claim, so
    // fees are charged only beyond what the lump sum already covers (never both in full).
    let credit = (state.lump_sum + lump - state.lump_sum_offset).max(0);
    let offset = fee.min(credit);
    if offset > 0 {
        fee -= offset;
        if fee == 0 {
            fee_waived = Some(
                "covered by the € 40 lump sum, which is offset against dunning costs (§ 288 Abs. 5 S. 3 BGB)"
                    .to_owned(),
            );
        }
    }
    let mut interest = None;
    let mut interest_charged = 0;
    if let (true, true, Some(def)) = (step.charge_interest, in_default, default_before)
        && def.interest_from <= today
    {
        let mut costs = state.costs.clone();
        if fee + lump > 0 {
            costs.push(DatedAmount::new(today, state.money(fee + lump)));
        }
        let calc = compute_interest(
            &InterestRequest {
                principal: state.money(state.principal_owed()),
                from: def.interest_from,
                to: today,
                debtor: state.facts.debtor,
                payments: state
                    .active_payments()
                    .map(|p| DatedAmount::new(p.date, p.amount))
                    .collect(),
                costs,
                day_count: state.policy.day_count,
            },
            &BaseRateTable::in_force(),
        )?;
        interest_charged = (calc.interest_total - state.interest).max(0);
        interest = Some(calc);
    }
    let mut after = state.clone();
    if repeat.is_some() {
        after.steps.pop();
    }
    after.steps.push((number, today));
    after.fees += fee;
    after.lump_sum += lump;
    after.lump_sum_offset += offset;
    after.interest += interest_charged;
    if interest.is_some() {
        after.interest_until = Some(today);
    }
    let default_after = after.default();
    Ok(DunningEvent::StepReached(Box::new(StepReached {
        number,
        title: step.title.clone(),
        tone: step.tone,
        template_id: step.template_id.clone(),
        channels: step.channels.clone(),
        date: today,
        fee: state.money(fee),
        fee_waived,
        lump_sum: state.money(lump),
        fee_offset: (offset > 0).then(|| state.money(offset)),
        interest_charged: state.money(interest_charged),
        interest,
        default: default_after,
        creates_default: creates_default && default_after != default_before,
        deadline: deadline(
            state.place_of_performance(),
            today,
            i64::from(step.payment_deadline_days),
        ),
        principal_open: after.principal_open(),
        balance: after.balance(),
        draft: state.declined(),
        consolidation: None,
        repeat,
    })))
}
