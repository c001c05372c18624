//! Property tests: for any sequence of payments, reversals, credit notes, disputes, promises,
//! plans, settlements, holds, extensions, skipped and repeated steps and time advances:
//! - no step is emitted for a settled, cancelled, credited, written-off, escalated or paused case;
//! - steps come in order, none left out unless an operator skipped it, none twice unless an
//!   operator repeated it (a repetition is the last step again);
//! - the open balance equals principal − credits + fees + lump sum + interest − payments after
//!   every command, recomputed independently from the events;
//! - `Advance` never fails, and no command fails for want of legal data (base rates);
//! - liveness: an unpaid, unpaused case reaches every step and the hand-over, each letter on a
//!   business day, at least its gap after the previous one and after the previous deadline;
//! - the interest calculator's periods tile the interval and its allocations add up.

use chrono::{Duration, NaiveDate};
use mahnwerk_domain::lifecycle::DisputeOutcome;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand as Cmd, DunningEvent as Ev, HoldScope, Instalment,
    Phase, decide, evolve, next_action_at,
};
use mahnwerk_dunning::law::{
    BaseRateTable, DatedAmount, DayCount, FederalState, InterestRequest, compute_interest,
};
use mahnwerk_dunning::policy::Policy;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    Advance,
    Pay(i64),
    Reverse(usize),
    Credit(i64),
    Dispute,
    Resolve(bool),
    Promise(i64, i64),
    Plan(i64),
    Hold(bool, Option<i64>),
    Release(bool),
    Extend(i64),
    Cancel,
    WriteOff,
    Settle(i64, i64),
    Skip,
    Repeat,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Advance),
        3 => (1i64..60_000).prop_map(Op::Pay),
        1 => (0usize..4).prop_map(Op::Reverse),
        1 => (1i64..5_000).prop_map(Op::Credit),
        1 => Just(Op::Dispute),
        1 => any::<bool>().prop_map(Op::Resolve),
        1 => (1i64..20, 1i64..60_000).prop_map(|(d, a)| Op::Promise(d, a)),
        1 => (1i64..30_000).prop_map(Op::Plan),
        1 => (any::<bool>(), proptest::option::of(1i64..20)).prop_map(|(c, u)| Op::Hold(c, u)),
        1 => any::<bool>().prop_map(Op::Release),
        1 => (1i64..20).prop_map(Op::Extend),
        1 => Just(Op::Cancel),
        1 => Just(Op::WriteOff),
        1 => (1i64..60_000, 0i64..30).prop_map(|(a, d)| Op::Settle(a, d)),
        1 => Just(Op::Skip),
        1 => Just(Op::Repeat),
    ]
}

fn command(op: &Op, state: &DunningCase, today: NaiveDate) -> Cmd {
    let eur = Money::eur;
    match op {
        Op::Advance => Cmd::Advance,
        Op::Pay(a) => Cmd::RecordPayment {
            payment_id: format!("p{}", state.payments.len()),
            amount: eur(*a),
            date: today,
        },
        Op::Reverse(i) => Cmd::ReversePayment {
            payment_id: format!("p{i}"),
        },
        Op::Credit(a) => Cmd::RecordCredit {
            credit_note: format!("c{}", state.credits.len()),
            amount: eur(*a),
        },
        Op::Dispute => Cmd::Dispute { reason: "r".into() },
        Op::Resolve(upheld) => Cmd::ResolveDispute {
            outcome: if *upheld {
                DisputeOutcome::Upheld
            } else {
                DisputeOutcome::Rejected
            },
        },
        Op::Promise(days, a) => Cmd::PromiseToPay {
            until: today + Duration::days(*days),
            amount: eur(*a),
        },
        Op::Plan(a) => Cmd::AgreePaymentPlan {
            instalments: vec![
                Instalment {
                    date: today + Duration::days(10),
                    amount: eur(*a),
                },
                Instalment {
                    date: today + Duration::days(40),
                    amount: eur(*a),
                },
            ],
        },
        Op::Hold(case, until) => Cmd::Hold {
            scope: if *case {
                HoldScope::Case
            } else {
                HoldScope::Debtor
            },
            reason: "h".into(),
            until: until.map(|u| today + Duration::days(u)),
        },
        Op::Release(case) => Cmd::Release {
            scope: if *case {
                HoldScope::Case
            } else {
                HoldScope::Debtor
            },
        },
        Op::Extend(days) => Cmd::ExtendDueDate {
            new_due_date: state.due_date + Duration::days(*days),
        },
        Op::Cancel => Cmd::Cancel { reason: "c".into() },
        Op::WriteOff => Cmd::WriteOff { reason: "w".into() },
        Op::Settle(a, days) => Cmd::AgreeSettlement {
            amount: eur(*a),
            pay_by: today + Duration::days(*days),
        },
        Op::Skip => Cmd::SkipStep { reason: "s".into() },
        Op::Repeat => Cmd::RepeatStep { reason: "r".into() },
    }
}

/// The balance recomputed from the events alone.
fn ledger_balance(principal: i64, events: &[Ev]) -> i64 {
    let mut balance = principal;
    let mut payments: HashMap<String, i64> = HashMap::new();
    for e in events {
        match e {
            Ev::PaymentRecorded {
                payment_id, amount, ..
            } => {
                payments.insert(payment_id.clone(), amount.minor);
                balance -= amount.minor;
            }
            Ev::PaymentReversed { payment_id, .. } => balance += payments[payment_id],
            Ev::CreditRecorded { amount, .. } => balance -= amount.minor,
            Ev::StepReached(s) => {
                balance += s.fee.minor + s.lump_sum.minor + s.interest_charged.minor
            }
            _ => {}
        }
    }
    balance
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn case_invariants_hold_for_any_history(
        business in any::<bool>(),
        principal in 1_000i64..100_000,
        notice in any::<bool>(),
        ops in proptest::collection::vec((0i64..9, op()), 1..45),
    ) {
        let debtor = if business { DebtorKind::Business } else { DebtorKind::Consumer };
        let facts = CaseFacts {
            invoice_number: "1".into(),
            debtor_key: "k".into(),
            debtor,
            issue_date: NaiveDate::from_ymd_opt(2025, 1, 10).unwrap(),
            due_date: NaiveDate::from_ymd_opt(2025, 1, 24).unwrap(),
            principal: Money::eur(principal),
            default_notice: notice,
            calendar_due_date: false,
            state: None,
            direct_debit: false,
        };
        let policy = Policy::default_for(debtor, FederalState::BY);
        let mut today = facts.issue_date;
        let mut log = decide(None, &Cmd::Open { facts, policy }, today).unwrap();
        let mut state = DunningCase::fold(&log).unwrap();
        for (delta, op) in ops {
            today += Duration::days(delta);
            let cmd = command(&op, &state, today);
            let events = match decide(Some(&state), &cmd, today) {
                Ok(events) => events,
                // Random commands are often refused by the rules (a credit above the principal,
                // a promise in the past): that is the rules working. Time passing never fails,
                // and legal data never runs out.
                Err(err) => {
                    prop_assert!(!matches!(cmd, Cmd::Advance), "advance failed: {err}");
                    prop_assert!(
                        !matches!(err, mahnwerk_dunning::DunningError::BaseRateUnknown(_) | mahnwerk_dunning::DunningError::BaseRateTable(_)),
                        "{err}"
                    );
                    continue;
                }
            };
            for e in &events {
                if let Ev::StepReached(step) = e {
                    prop_assert_eq!(state.phase, Phase::Active, "step for a case in {:?}", state.phase);
                    prop_assert!(!state.is_paused(), "step for a paused case: {:?}", state.pauses);
                    if step.repeat.is_some() {
                        prop_assert_eq!(Some(step.number), state.steps.last().map(|(n, _)| *n), "a repetition repeats the last step");
                        prop_assert_eq!(step.fee.minor + step.lump_sum.minor, 0, "no second fee");
                    } else {
                        prop_assert_eq!(step.number as usize, state.steps.len() + 1, "step out of order");
                    }
                    prop_assert!(step.fee.minor >= 0 && step.interest_charged.minor >= 0);
                }
                if let Ev::StepSkipped { skipped_step, .. } = e {
                    prop_assert_eq!(*skipped_step as usize, state.steps.len() + 1, "skip out of order");
                }
                if let Ev::Escalated { .. } = e {
                    prop_assert_eq!(state.steps.len(), state.policy.steps.len());
                }
                state = evolve(Some(state), e).unwrap();
            }
            if state.phase.is_end() && matches!(cmd, Cmd::Advance) {
                prop_assert!(events.iter().all(|e| !matches!(e, Ev::StepReached(_))));
            }
            log.extend(events);
            prop_assert_eq!(state.balance().minor, ledger_balance(principal, &log));
            let refolded = DunningCase::fold(&log);
            prop_assert_eq!(refolded.as_ref(), Some(&state));
            if let Some(next) = next_action_at(&state) {
                // A wake-up never lies before the last letter (a skipped step's place in the
                // schedule may lie ahead: a pause can end before it).
                prop_assert!(state.letters().last().is_none_or(|(_, d)| next >= *d));
            }
        }
        // Steps in the log, sent or skipped, are 1, 2, 3, … without gaps; repetitions aside.
        let numbers: Vec<u32> = log.iter().filter_map(|e| match e {
            Ev::StepReached(s) if s.repeat.is_none() => Some(s.number),
            Ev::StepSkipped { skipped_step, .. } => Some(*skipped_step),
            _ => None,
        }).collect();
        let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap()).collect();
        prop_assert_eq!(numbers, expected);
    }

    #[test]
    fn an_unpaid_unpaused_case_reaches_every_step_and_the_hand_over_with_the_minimum_gaps(
        business in any::<bool>(),
        principal in 1_000i64..1_000_000,
        due_offset in 0i64..1100,
        state_ix in 0usize..16,
    ) {
        let debtor = if business { DebtorKind::Business } else { DebtorKind::Consumer };
        let state_of = FederalState::ALL[state_ix];
        // Due dates from 2025 into 2028: weekends, every state's holidays, the base-rate table's end.
        let due = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + Duration::days(due_offset);
        let facts = CaseFacts {
            invoice_number: "1".into(),
            debtor_key: "k".into(),
            debtor,
            issue_date: due - Duration::days(14),
            due_date: due,
            principal: Money::eur(principal),
            default_notice: false,
            calendar_due_date: false,
            state: None,
            direct_debit: false,
        };
        let policy = Policy::default_for(debtor, state_of);
        let mut log = decide(None, &Cmd::Open { facts, policy: policy.clone() }, due - Duration::days(14)).unwrap();
        let mut state = DunningCase::fold(&log).unwrap();
        let mut day = due;
        while day <= due + Duration::days(200) {
            let events = decide(Some(&state), &Cmd::Advance, day);
            prop_assert!(events.is_ok(), "advance on {day} failed: {:?}", events.err());
            for e in events.unwrap() {
                state = evolve(Some(state), &e).unwrap();
                log.push(e);
            }
            day += Duration::days(1);
        }
        let steps: Vec<&mahnwerk_dunning::dunning_case::StepReached> = log.iter().filter_map(|e| match e { Ev::StepReached(s) => Some(s.as_ref()), _ => None }).collect();
        prop_assert_eq!(steps.len(), policy.steps.len(), "every step reached");
        prop_assert_eq!(state.phase, Phase::Escalated, "handed over");
        let mut prev: Option<&mahnwerk_dunning::dunning_case::StepReached> = None;
        for (k, s) in steps.iter().enumerate() {
            prop_assert!(mahnwerk_dunning::law::is_business_day(state_of, s.date), "step {} on {} is not a business day", s.number, s.date);
            let anchor = prev.map_or(due, |p| p.date);
            prop_assert!(s.date >= policy.step_date_from(k, anchor), "step {} before its gap", s.number);
            if let Some(p) = prev {
                prop_assert!(s.date > p.deadline.deadline, "step {} on {} before the previous deadline {}", s.number, s.date, p.deadline.deadline);
            }
            prev = Some(s);
        }
        let escalated = log.iter().find_map(|e| match e { Ev::Escalated { escalated_on, .. } => Some(*escalated_on), _ => None }).unwrap();
        prop_assert!(escalated > prev.unwrap().deadline.deadline);
        prop_assert!((escalated - due).num_days() > 30, "hand-over only when more than 30 days overdue");
    }

    #[test]
    fn interest_periods_tile_the_interval_and_payments_are_fully_allocated(
        business in any::<bool>(),
        principal in 0i64..10_000_000,
        start in 0i64..1400,
        len in 0i64..700,
        payments in proptest::collection::vec((0i64..800, 1i64..5_000_000), 0..5),
        costs in proptest::collection::vec((0i64..800, 1i64..10_000), 0..3),
        act_act in any::<bool>(),
    ) {
        let base = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        let from = base + Duration::days(start);
        let to = (from + Duration::days(len)).min(BaseRateTable::german().last_day());
        prop_assume!(from <= to);
        let req = InterestRequest {
            principal: Money::eur(principal),
            from,
            to,
            debtor: if business { DebtorKind::Business } else { DebtorKind::Consumer },
            payments: payments.iter().map(|(o, a)| DatedAmount::new(from + Duration::days(*o) - Duration::days(30), Money::eur(*a))).collect(),
            costs: costs.iter().map(|(o, a)| DatedAmount::new(from + Duration::days(*o), Money::eur(*a))).collect(),
            day_count: if act_act { DayCount::ActAct } else { DayCount::Act365 },
        };
        let calc = compute_interest(&req, BaseRateTable::german()).unwrap();
        prop_assert_eq!(calc.interest_total, calc.periods.iter().map(|p| p.interest).sum::<i64>());
        for w in calc.periods.windows(2) {
            prop_assert!(w[0].to < w[1].from);
            prop_assert!(w[1].principal <= w[0].principal, "principal never grows");
        }
        for p in &calc.periods {
            prop_assert_eq!(p.days, (p.to - p.from).num_days() + 1);
            prop_assert!(p.interest >= 0 && p.rate >= rust_decimal::Decimal::ZERO);
            prop_assert!(p.from >= from && p.to <= to);
        }
        let paid: i64 = req.payments.iter().map(|p| p.amount.minor).sum();
        let allocated: i64 = calc.allocations.iter().map(|a| a.to_costs + a.to_interest + a.to_principal + a.surplus).sum();
        prop_assert_eq!(paid, allocated);
        // Without payments the periods cover every day from..=to.
        if req.payments.is_empty() && principal > 0 {
            prop_assert_eq!(calc.periods.first().map(|p| p.from), Some(from));
            prop_assert_eq!(calc.periods.last().map(|p| p.to), Some(to));
            let days: i64 = calc.periods.iter().map(|p| p.days).sum();
            prop_assert_eq!(days, (to - from).num_days() + 1);
        }
        prop_assert!(calc.principal_open >= 0 && calc.interest_open >= 0 && calc.costs_open >= 0);
    }
}
