//! `decide`: every rule of the dunning case, one command at a time.

use super::money::{balance_consequences, due_step, letter};
use super::pauses::{end_pauses, paused};
use super::{
    ApprovalState, DunningCase, DunningCommand, DunningEvent, HoldScope, Pause, PauseKind, Phase,
    Repetition, ResumeReason, evolve,
};
use crate::error::{DunningError, Result};
use crate::policy::Approval;
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use mahnwerk_domain::lifecycle::DisputeOutcome;

fn precondition(msg: impl Into<String>) -> DunningError {
    DunningError::Precondition(msg.into())
}

fn check_currency(state: &DunningCase, amount: Money, field: &str) -> Result<()> {
    if amount.currency != state.currency() {
        return Err(DunningError::CurrencyMismatch(
            state.currency(),
            amount.currency,
        ));
    }
    if amount.minor <= 0 {
        return Err(DunningError::invalid(field, "must be greater than zero"));
    }
    Ok(())
}

/// Every rule of the dunning case lives here. `today` is the business day the command happens.
pub fn decide(
    state: Option<&DunningCase>,
    command: &DunningCommand,
    today: NaiveDate,
) -> Result<Vec<DunningEvent>> {
    let Some(state) = state else {
        return match command {
            DunningCommand::Open { facts, policy } => {
                policy.validate()?;
                if facts.principal.currency != policy.currency {
                    return Err(DunningError::CurrencyMismatch(
                        policy.currency,
                        facts.principal.currency,
                    ));
                }
                if facts.principal.minor <= 0 {
                    return Err(DunningError::invalid(
                        "facts.principal",
                        "must be greater than zero",
                    ));
                }
                if facts.due_date < facts.issue_date {
                    return Err(DunningError::invalid(
                        "facts.due_date",
                        "must not be before issue_date",
                    ));
                }
                let mut out = vec![DunningEvent::Opened {
                    facts: facts.clone(),
                    policy: policy.clone(),
                    opened_on: today,
                }];
                if facts.direct_debit {
                    out.push(paused(Pause::DirectDebit, today));
                }
                Ok(out)
            }
            _ => Err(precondition("case not opened")),
        };
    };
    let mut out = Vec::new();
    match command {
        DunningCommand::Open { facts, .. } => {
            return if *facts == state.facts {
                Ok(vec![])
            } else {
                Err(precondition("case already opened with other facts"))
            };
        }
        DunningCommand::RecordPayment {
            payment_id,
            amount,
            date,
        } => {
            check_currency(state, *amount, "amount")?;
            if let Some(p) = state.payments.iter().find(|p| &p.payment_id == payment_id) {
                return if p.amount == *amount && p.date == *date {
                    Ok(vec![])
                } else {
                    Err(precondition(format!(
                        "payment {payment_id} already recorded with other data"
                    )))
                };
            }
            // Only a payment of at least the policy's minimum gives the debtor the full gap
            // again; smaller ones count, but cannot stall dunning.
            let reanchors = state
                .policy
                .reanchor_minimum
                .reanchors(amount.minor, state.balance().minor);
            out.push(DunningEvent::PaymentRecorded {
                payment_id: payment_id.clone(),
                amount: *amount,
                date: *date,
                reanchors,
            });
        }
        DunningCommand::ReversePayment { payment_id } => {
            let Some(p) = state.payments.iter().find(|p| &p.payment_id == payment_id) else {
                return Err(precondition(format!(
                    "payment {payment_id} is not recorded on this case"
                )));
            };
            if p.reversed {
                return Ok(vec![]);
            }
            out.push(DunningEvent::PaymentReversed {
                payment_id: payment_id.clone(),
                amount: p.amount,
                reversed_on: today,
            });
            // The debit came back: from now on the case is dunned like any other.
            if state.pause(PauseKind::DirectDebit).is_some() {
                out.push(DunningEvent::Resumed {
                    pause: PauseKind::DirectDebit,
                    why: ResumeReason::DirectDebitReturned {
                        payment_id: payment_id.clone(),
                    },
                    resumed_on: today,
                });
            }
        }
        DunningCommand::RecordCredit {
            credit_note,
            amount,
        } => {
            check_currency(state, *amount, "amount")?;
            if state.credits.iter().any(|(n, _)| n == credit_note) {
                return Ok(vec![]);
            }
            if state.phase.is_end() && state.phase != Phase::Settled {
                return Err(precondition("case is closed"));
            }
            if amount.minor > state.principal_owed() {
                return Err(DunningError::invalid(
                    "amount",
                    "credit exceeds the principal still owed",
                ));
            }
            out.push(DunningEvent::CreditRecorded {
                credit_note: credit_note.clone(),
                amount: *amount,
                credited_on: today,
            });
        }
        DunningCommand::ExtendDueDate { new_due_date } => {
            require_open(state)?;
            if *new_due_date <= state.due_date {
                return Err(DunningError::invalid(
                    "new_due_date",
                    "must be after the current due date",
                ));
            }
            out.push(DunningEvent::DueDateExtended {
                previous_due_date: state.due_date,
                new_due_date: *new_due_date,
            });
        }
        DunningCommand::Dispute { reason } => {
            require_open(state)?;
            if state.pause(PauseKind::Dispute).is_some() {
                return Ok(vec![]);
            }
            out.push(paused(
                Pause::Dispute {
                    reason: reason.clone(),
                },
                today,
            ));
        }
        DunningCommand::ResolveDispute { outcome } => {
            require_open(state)?;
            match state.pause(PauseKind::Dispute) {
                Some(Pause::Dispute { .. }) => {}
                _ => return Err(precondition("no open dispute")),
            }
            match outcome {
                DisputeOutcome::Rejected => out.push(DunningEvent::Resumed {
                    pause: PauseKind::Dispute,
                    why: ResumeReason::DisputeRejected,
                    resumed_on: today,
                }),
                DisputeOutcome::Upheld => out.push(paused(Pause::DisputeUpheld, today)),
            }
        }
        DunningCommand::PromiseToPay { until, amount } => {
            require_open(state)?;
            check_currency(state, *amount, "amount")?;
            if *until < today {
                return Err(DunningError::invalid("until", "must not be in the past"));
            }
            out.push(paused(
                Pause::PromiseToPay {
                    until: *until,
                    amount: *amount,
                    since: today,
                },
                today,
            ));
        }
        DunningCommand::AgreePaymentPlan { instalments } => {
            require_open(state)?;
            if instalments.is_empty() {
                return Err(DunningError::invalid(
                    "instalments",
                    "must have at least one instalment",
                ));
            }
            for (i, inst) in instalments.iter().enumerate() {
                check_currency(state, inst.amount, &format!("instalments[{i}].amount"))?;
                if i > 0 && inst.date <= instalments[i - 1].date {
                    return Err(DunningError::invalid(
                        format!("instalments[{i}].date"),
                        "instalment dates must increase",
                    ));
                }
            }
            out.push(paused(
                Pause::PaymentPlan {
                    instalments: instalments.clone(),
                    since: today,
                },
                today,
            ));
        }
        DunningCommand::Hold {
            scope,
            reason,
            until,
        } => {
            require_open(state)?;
            out.push(paused(
                Pause::Hold {
                    scope: *scope,
                    reason: reason.clone(),
                    until: *until,
                },
                today,
            ));
        }
        DunningCommand::Release { scope } => {
            let kind = match scope {
                HoldScope::Case => PauseKind::CaseHold,
                HoldScope::Debtor => PauseKind::DebtorHold,
            };
            if state.pause(kind).is_none() {
                return Ok(vec![]);
            }
            out.push(DunningEvent::Resumed {
                pause: kind,
                why: ResumeReason::HoldReleased,
                resumed_on: today,
            });
        }
        DunningCommand::Cancel { reason } => {
            if state.phase == Phase::Cancelled {
                return Ok(vec![]);
            }
            require_open(state)?;
            out.push(DunningEvent::Cancelled {
                cancelled_on: today,
                reason: reason.clone(),
            });
        }
        DunningCommand::WriteOff { reason } => {
            if state.phase == Phase::WrittenOff {
                return Ok(vec![]);
            }
            require_open(state)?;
            out.push(DunningEvent::WrittenOff {
                written_off_on: today,
                reason: reason.clone(),
                amount: state.balance(),
            });
        }
        DunningCommand::AgreeSettlement { amount, pay_by } => {
            require_open(state)?;
            check_currency(state, *amount, "amount")?;
            let balance = state.balance();
            if amount.minor >= balance.minor {
                return Err(DunningError::invalid(
                    "amount",
                    format!(
                        "must be less than the open balance {balance}: a settlement waives a part of the claim"
                    ),
                ));
            }
            if *pay_by < today {
                return Err(DunningError::invalid("pay_by", "must not be in the past"));
            }
            out.push(paused(
                Pause::Settlement {
                    amount: *amount,
                    pay_by: *pay_by,
                    since: today,
                },
                today,
            ));
        }
        DunningCommand::SkipStep { reason } => {
            require_open(state)?;
            if state.phase == Phase::Escalated {
                return Err(precondition("case is handed over to collection"));
            }
            let k = state.steps.len();
            let Some(step) = state.policy.steps.get(k) else {
                return Err(precondition(
                    "every step of the policy is reached: no step left to skip",
                ));
            };
            out.push(DunningEvent::StepSkipped {
                skipped_step: u32::try_from(k + 1).unwrap_or(u32::MAX),
                title: step.title.clone(),
                skipped_on: today,
                scheduled_for: state.next_step_date().map_or(today, |d| d.max(today)),
                reason: reason.clone(),
            });
        }
        DunningCommand::RepeatStep { reason } => {
            require_open(state)?;
            if state.phase == Phase::Escalated {
                return Err(precondition("case is handed over to collection"));
            }
            if state.is_paused() {
                return Err(precondition("case is paused: nothing is sent while it is"));
            }
            let Some(&(number, _)) = state.steps.last() else {
                return Err(precondition(
                    "no letter has been sent yet: nothing to repeat",
                ));
            };
            if state.last_step_skipped() {
                return Err(precondition(
                    "the last step was skipped: there is no letter to repeat",
                ));
            }
            let k = usize::try_from(number)
                .unwrap_or(usize::MAX)
                .saturating_sub(1);
            if k >= state.policy.steps.len() {
                return Err(precondition("the last step is not in the case's policy"));
            }
            let count = state.repeats.get(&number).copied().unwrap_or(0) + 1;
            out.push(letter(
                state,
                k,
                today,
                Some(Repetition {
                    count,
                    reason: reason.clone(),
                }),
            )?);
        }
        DunningCommand::MovePolicy { policy } => {
            require_open(state)?;
            policy.validate()?;
            if policy.currency != state.currency() {
                return Err(DunningError::invalid(
                    "policy.currency",
                    format!(
                        "{} differs from the case's {}",
                        policy.currency,
                        state.currency()
                    ),
                ));
            }
            if policy == &state.policy {
                return Ok(vec![]);
            }
            out.push(DunningEvent::PolicyMoved {
                from_id: state.policy.id.clone(),
                from_version: state.policy.version,
                policy: policy.clone(),
                moved_on: today,
            });
        }
        DunningCommand::Approve | DunningCommand::Decline => {
            require_open(state)?;
            if state.policy.approval != Approval::Creditor {
                return Err(precondition(
                    "the case's policy runs automatically: there is nothing to approve",
                ));
            }
            let approve = matches!(command, DunningCommand::Approve);
            match state.approval {
                ApprovalState::Approved { .. } if approve => return Ok(vec![]),
                ApprovalState::Declined { .. } if !approve => return Ok(vec![]),
                _ => {}
            }
            out.push(if approve {
                DunningEvent::Approved { approved_on: today }
            } else {
                DunningEvent::Declined { declined_on: today }
            });
        }
        DunningCommand::Advance => {
            if state.phase.is_end() {
                return Ok(vec![]);
            }
            out.extend(end_pauses(state, today));
            let after = fold_onto(state, &out);
            if after.phase == Phase::Active && !after.is_paused() {
                if let Some(step) = due_step(&after, today)? {
                    if !after.awaits_approval() {
                        out.push(step);
                    } else if after.approval == ApprovalState::None {
                        // Approval mode: the first step waits for the creditor's decision.
                        out.push(DunningEvent::Offered {
                            offered_on: today,
                            first_step: after.policy.steps[after.steps.len()].title.clone(),
                            balance: after.balance(),
                        });
                    }
                } else if after.escalation_date().is_some_and(|d| d <= today) {
                    out.push(DunningEvent::Escalated {
                        escalated_on: today,
                        steps_reached: u32::try_from(after.steps.len()).unwrap_or(u32::MAX),
                        principal_open: after.principal_open(),
                        balance: after.balance(),
                    });
                }
            }
        }
    }
    // Consequences of a balance change: settle, reopen, credit out, resume after upheld dispute.
    if matches!(
        command,
        DunningCommand::RecordPayment { .. }
            | DunningCommand::ReversePayment { .. }
            | DunningCommand::RecordCredit { .. }
    ) {
        out.extend(balance_consequences(state, &out, today));
    }
    Ok(out)
}

fn require_open(state: &DunningCase) -> Result<()> {
    if state.phase.is_end() {
        return Err(precondition(
            format!("case is {:?}", state.phase).to_lowercase(),
        ));
    }
    Ok(())
}

pub(super) fn fold_onto(state: &DunningCase, events: &[DunningEvent]) -> DunningCase {
    let mut s = state.clone();
    for e in events {
        s = evolve(Some(s), e).unwrap_or_else(|| state.clone());
    }
    s
}
