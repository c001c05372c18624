//! Given/when/then: one test per rule of the dunning case (see `case` module docs).

mod common;
use common::*;

use mahnwerk_domain::lifecycle::DisputeOutcome;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseStatus, DunningCommand as Cmd, DunningEvent as Ev, HoldScope, Instalment, Phase,
    ResumeReason, decide, next_action_at,
};
use mahnwerk_dunning::law::FederalState;
use mahnwerk_dunning::policy::{AfterLast, Anchor, Offset, Policy};

#[test]
fn given_a_consumer_invoice_when_the_reminder_day_comes_then_the_first_step_is_reached_without_fee()
{
    let mut h = consumer();
    assert_eq!(h.state().status(d("2026-03-10")), CaseStatus::Issued);
    assert_eq!(h.state().status(d("2026-03-15")), CaseStatus::Due);
    assert_eq!(h.state().status(d("2026-03-16")), CaseStatus::Overdue);
    // Due 03-15 + 5 days = 03-20 (a Friday).
    assert_eq!(next_action_at(h.state()), Some(d("2026-03-20")));
    assert!(h.advance("2026-03-19").is_empty());
    let events = h.advance("2026-03-20");
    let s = steps(&events)[0];
    assert_eq!((s.number, s.title.as_str()), (1, "Zahlungserinnerung"));
    assert_eq!(s.fee, Money::eur(0));
    // Consumer without § 286(3) notice: this reminder creates default (received 03-23).
    assert!(s.creates_default);
    assert_eq!(s.default.unwrap().interest_from, d("2026-03-24"));
    // Deadline 03-20 + 10 = 03-30, a Monday.
    assert_eq!(s.deadline.deadline, d("2026-03-30"));
    assert_eq!(
        h.state().status(d("2026-03-20")),
        CaseStatus::Dunning { step: 1 }
    );
}

#[test]
fn given_a_reminder_created_default_when_the_next_step_comes_then_fee_and_interest_are_charged() {
    let mut h = consumer();
    h.advance("2026-03-20");
    // Step 2: 14 days after step 1 = 04-03, Karfreitag; 04-04..04-06 Easter weekend and
    // Ostermontag → dated 04-07. Interest 03-24..04-07 = 15 days on 119.00 at
    // 1.27 + 5 = 6.27 %: 11900 × 627 × 15 / 3,650,000 = 30.66 → 31 cents.
    assert!(h.advance("2026-04-03").is_empty());
    let events = h.advance("2026-04-07");
    let s = steps(&events)[0];
    assert_eq!(s.number, 2);
    assert_eq!(s.fee, Money::eur(250));
    assert_eq!(s.interest_charged, Money::eur(31));
    assert_eq!(s.interest.as_ref().unwrap().periods.len(), 1);
    assert!(!s.creates_default);
    // Balance 119.00 + 2.50 + 0.31 = 121.81.
    assert_eq!(s.balance, Money::eur(12_181));
    assert_eq!(h.state().balance(), Money::eur(12_181));
}

#[test]
fn given_a_reminder_that_creates_default_when_the_policy_has_a_fee_then_the_fee_is_waived() {
    let mut p = Policy::default_consumer(FederalState::NW);
    p.steps[0].fee = Money::eur(300);
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    let ev = h.advance("2026-03-20");
    let s = steps(&ev)[0];
    assert_eq!(s.fee, Money::eur(0));
    assert!(s.fee_waived.as_deref().unwrap().contains("§ 286"));
}

#[test]
fn given_a_business_debtor_when_the_first_letter_in_default_goes_out_then_the_lump_sum_is_charged_once()
 {
    let mut h = Harness::given(
        facts(DebtorKind::Business, 100_000),
        Policy::default_business(FederalState::NW),
    );
    // Reminder at due + 5 = 03-20, received 03-23: default, interest from 03-24.
    let s1 = h.advance("2026-03-20");
    assert_eq!(steps(&s1)[0].lump_sum, Money::eur(0));
    // Step 2 at 03-30: lump sum 40.00, which covers the 5.00 fee (§ 288 Abs. 5 S. 3: never both
    // in full), interest 03-24..03-30 = 7 days at 1.27 + 9 = 10.27 %:
    // 100000 × 1027 × 7 / 3,650,000 = 196.96 → 197.
    let ev = h.advance("2026-03-30");
    let s = steps(&ev)[0];
    assert_eq!(
        (s.fee, s.fee_offset, s.lump_sum, s.interest_charged),
        (
            Money::eur(0),
            Some(Money::eur(500)),
            Money::eur(4000),
            Money::eur(197)
        )
    );
    assert!(
        s.fee_waived
            .as_deref()
            .unwrap()
            .contains("§ 288 Abs. 5 S. 3")
    );
    assert_eq!(s.balance, Money::eur(104_197));
    // Step 3 at 04-09: no second lump sum; interest now 03-24..04-09 = 17 days:
    // 100000 × 1027 × 17 / 3,650,000 = 478.33 → 478; charged 478 − 197 = 281.
    let ev = h.advance("2026-04-09");
    let s = steps(&ev)[0];
    assert_eq!(
        (s.lump_sum, s.interest_charged),
        (Money::eur(0), Money::eur(281))
    );
    // Its 5.00 fee is covered by what is left of the lump sum (35.00) too.
    assert_eq!(
        (s.fee, s.fee_offset),
        (Money::eur(0), Some(Money::eur(500)))
    );
}

#[test]
fn the_lump_sum_is_offset_against_fees_and_only_fees_beyond_it_are_charged() {
    // Fees of 30.00 per letter: the 1. Mahnung's 30.00 is covered by the 40.00 lump sum, the
    // Letzte Mahnung's 30.00 only up to the remaining 10.00: 20.00 is charged.
    let mut p = Policy::default_business(FederalState::NW);
    p.steps[1].fee = Money::eur(3000);
    p.steps[2].fee = Money::eur(3000);
    let mut h = Harness::given(facts(DebtorKind::Business, 100_000), p);
    h.advance("2026-03-20");
    let s2 = h.advance("2026-03-30");
    let s2 = steps(&s2)[0];
    assert_eq!((s2.fee, s2.lump_sum), (Money::eur(0), Money::eur(4000)));
    let s3 = h.advance("2026-04-09");
    let s3 = steps(&s3)[0];
    assert_eq!(
        (s3.fee, s3.fee_offset),
        (Money::eur(2000), Some(Money::eur(1000)))
    );
    assert_eq!(
        h.state().fees + h.state().lump_sum,
        6000,
        "max(40, 60), not 40 + 60"
    );
}

#[test]
fn given_a_partial_payment_when_the_next_step_was_due_then_it_is_re_anchored_and_never_skipped_kill_bill_2297()
 {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::RecordPayment {
            payment_id: "p1".into(),
            amount: Money::eur(5_000),
            date: d("2026-04-01"),
        },
        "2026-04-01",
    );
    // Next step 14 days after the payment, not 04-05.
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-15")));
    assert!(h.advance("2026-04-05").is_empty());
    let ev = h.advance("2026-04-15");
    assert_eq!(steps(&ev)[0].number, 2);
}

#[test]
fn given_a_late_scheduler_when_several_steps_are_overdue_then_only_the_next_one_is_reached() {
    let mut h = consumer();
    let ev = h.advance("2026-06-30");
    assert_eq!(steps(&ev).iter().map(|s| s.number).collect::<Vec<_>>(), [1]);
    assert!(h.advance("2026-06-30").is_empty());
    assert_eq!(next_action_at(h.state()), Some(d("2026-07-14")));
}

#[test]
fn given_a_dispute_when_steps_fall_due_then_nothing_is_sent_until_it_is_rejected() {
    let mut h = consumer();
    let ev = h.when(
        Cmd::Dispute {
            reason: "goods damaged".into(),
        },
        "2026-03-18",
    );
    assert_eq!(types(&ev), ["dunning.paused.v1"]);
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-04-30").is_empty());
    assert_eq!(h.state().status(d("2026-04-30")), CaseStatus::Paused);
    let ev = h.when(
        Cmd::ResolveDispute {
            outcome: DisputeOutcome::Rejected,
        },
        "2026-05-04",
    );
    assert_eq!(types(&ev), ["dunning.resumed.v1"]);
    // Re-anchored: first step 7 days after the resumption.
    assert_eq!(next_action_at(h.state()), Some(d("2026-05-11")));
}

#[test]
fn given_an_upheld_dispute_when_a_credit_note_cancels_the_claim_then_the_case_is_credited() {
    let mut h = consumer();
    h.when(
        Cmd::Dispute {
            reason: "never delivered".into(),
        },
        "2026-03-18",
    );
    h.when(
        Cmd::ResolveDispute {
            outcome: DisputeOutcome::Upheld,
        },
        "2026-03-25",
    );
    assert!(h.advance("2026-04-30").is_empty());
    let ev = h.when(
        Cmd::RecordCredit {
            credit_note: "GS-1".into(),
            amount: Money::eur(11_900),
        },
        "2026-05-02",
    );
    assert_eq!(
        types(&ev),
        ["dunning.credit_recorded.v1", "dunning.credited.v1"]
    );
    assert_eq!(h.state().phase, Phase::Credited);
    assert_eq!(next_action_at(h.state()), None);
}

#[test]
fn given_an_upheld_dispute_when_a_partial_credit_leaves_an_amount_then_dunning_resumes() {
    let mut h = consumer();
    h.when(
        Cmd::Dispute {
            reason: "one item missing".into(),
        },
        "2026-03-18",
    );
    h.when(
        Cmd::ResolveDispute {
            outcome: DisputeOutcome::Upheld,
        },
        "2026-03-25",
    );
    let ev = h.when(
        Cmd::RecordCredit {
            credit_note: "GS-1".into(),
            amount: Money::eur(1_900),
        },
        "2026-04-02",
    );
    assert_eq!(
        types(&ev),
        ["dunning.credit_recorded.v1", "dunning.resumed.v1"]
    );
    assert_eq!(h.state().balance(), Money::eur(10_000));
    // Re-anchored on 04-02: the reminder follows 5 days later.
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
}

#[test]
fn given_a_promise_to_pay_when_it_is_missed_then_dunning_resumes() {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::PromiseToPay {
            until: d("2026-04-10"),
            amount: Money::eur(11_900),
        },
        "2026-03-28",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-11")));
    assert!(h.advance("2026-04-10").is_empty());
    let ev = h.advance("2026-04-11");
    assert!(matches!(
        &ev[0],
        Ev::Resumed {
            why: ResumeReason::PromiseMissed { .. },
            ..
        }
    ));
    // Resumed and re-anchored on 04-11: the next step follows 14 days later, not at once
    // (04-25 is a Saturday: the letter is dated Monday 04-27).
    assert_eq!(ev.len(), 1);
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-27")));
}

#[test]
fn given_a_promise_to_pay_when_it_is_kept_then_the_case_is_settled() {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::PromiseToPay {
            until: d("2026-04-10"),
            amount: Money::eur(11_900),
        },
        "2026-03-28",
    );
    let ev = h.when(
        Cmd::RecordPayment {
            payment_id: "p1".into(),
            amount: Money::eur(11_900),
            date: d("2026-04-08"),
        },
        "2026-04-08",
    );
    assert_eq!(
        types(&ev),
        ["dunning.payment_recorded.v1", "dunning.settled.v1"]
    );
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-05-01").is_empty());
}

#[test]
fn given_a_payment_plan_when_instalments_are_paid_then_it_stays_paused_and_a_missed_one_resumes() {
    let mut h = consumer();
    h.advance("2026-03-20");
    let inst = |date: &str, amount| Instalment {
        date: d(date),
        amount: Money::eur(amount),
    };
    h.when(
        Cmd::AgreePaymentPlan {
            instalments: vec![
                inst("2026-04-15", 4_000),
                inst("2026-05-15", 4_000),
                inst("2026-06-15", 3_900),
            ],
        },
        "2026-04-01",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-16")));
    h.when(
        Cmd::RecordPayment {
            payment_id: "i1".into(),
            amount: Money::eur(4_000),
            date: d("2026-04-14"),
        },
        "2026-04-14",
    );
    assert!(h.advance("2026-04-16").is_empty());
    assert_eq!(next_action_at(h.state()), Some(d("2026-05-16")));
    let ev = h.advance("2026-05-16");
    assert!(matches!(
        &ev[0],
        Ev::Resumed {
            why: ResumeReason::InstalmentMissed { .. },
            ..
        }
    ));
    assert!(!h.state().is_paused());
}

#[test]
fn given_a_hold_on_the_debtor_when_it_is_released_then_dunning_resumes() {
    let mut h = consumer();
    h.when(
        Cmd::Hold {
            scope: HoldScope::Debtor,
            reason: "key account review".into(),
            until: None,
        },
        "2026-03-20",
    );
    assert!(h.advance("2026-03-22").is_empty());
    h.when(
        Cmd::Hold {
            scope: HoldScope::Case,
            reason: "checking".into(),
            until: Some(d("2026-04-01")),
        },
        "2026-03-25",
    );
    let ev = h.when(
        Cmd::Release {
            scope: HoldScope::Debtor,
        },
        "2026-03-30",
    );
    assert_eq!(types(&ev), ["dunning.resumed.v1"]);
    assert!(h.state().is_paused(), "the case hold still applies");
    let ev = h.advance("2026-04-02");
    assert!(matches!(
        &ev[0],
        Ev::Resumed {
            why: ResumeReason::HoldExpired,
            ..
        }
    ));
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
}

#[test]
fn given_a_settled_case_when_the_payment_is_reversed_then_it_reopens_and_continues_with_the_next_step()
 {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::RecordPayment {
            payment_id: "p1".into(),
            amount: Money::eur(11_900),
            date: d("2026-03-30"),
        },
        "2026-03-30",
    );
    assert_eq!(h.state().phase, Phase::Settled);
    let ev = h.when(
        Cmd::ReversePayment {
            payment_id: "p1".into(),
        },
        "2026-04-03",
    );
    assert_eq!(
        types(&ev),
        ["dunning.payment_reversed.v1", "dunning.reopened.v1"]
    );
    // The returned payment gives no extra time: step 2 is due 14 days after step 1 (04-03,
    // Good Friday, so the Tuesday after Easter Monday), not 14 days after the return.
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
    let ev = h.advance("2026-04-07");
    assert_eq!(steps(&ev)[0].number, 2);
}

#[test]
fn micro_payments_do_not_stall_dunning_only_a_payment_of_the_minimum_re_anchors() {
    let mut h = consumer();
    h.advance("2026-03-20");
    // One cent every day: each counts against the balance, none moves the schedule.
    for (i, day) in ["2026-03-25", "2026-03-30", "2026-04-01"]
        .iter()
        .enumerate()
    {
        let ev = h.when(
            Cmd::RecordPayment {
                payment_id: format!("cent{i}"),
                amount: Money::eur(1),
                date: d(day),
            },
            day,
        );
        assert!(matches!(
            &ev[0],
            Ev::PaymentRecorded {
                reanchors: false,
                ..
            }
        ));
    }
    assert_eq!(h.state().balance(), Money::eur(11_897));
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
    // 10 % of the open balance re-anchors (the policy's default minimum).
    let ev = h.when(
        Cmd::RecordPayment {
            payment_id: "tenth".into(),
            amount: Money::eur(1_190),
            date: d("2026-04-02"),
        },
        "2026-04-02",
    );
    assert!(matches!(
        &ev[0],
        Ev::PaymentRecorded {
            reanchors: true,
            ..
        }
    ));
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-16")));
}

#[test]
fn a_fixed_reanchor_minimum_is_the_policys_choice_and_validated() {
    use mahnwerk_dunning::policy::ReanchorMinimum;
    let mut policy = Policy::default_consumer(FederalState::NW);
    policy.reanchor_minimum = ReanchorMinimum::Fixed {
        amount: Money::eur(2_000),
    };
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), policy.clone());
    h.advance("2026-03-20");
    h.when(
        Cmd::RecordPayment {
            payment_id: "p".into(),
            amount: Money::eur(1_999),
            date: d("2026-04-01"),
        },
        "2026-04-01",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
    policy.reanchor_minimum = ReanchorMinimum::Fixed {
        amount: Money::eur(0),
    };
    let err = policy.validate().unwrap_err().to_string();
    assert!(err.contains("reanchor_minimum.amount"), "{err}");
    policy.reanchor_minimum = ReanchorMinimum::Share { percent: 101 };
    let err = policy.validate().unwrap_err().to_string();
    assert!(err.contains("reanchor_minimum.percent"), "{err}");
}

#[test]
fn a_returned_direct_debit_gives_no_extra_time() {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::RecordPayment {
            payment_id: "sdd".into(),
            amount: Money::eur(5_000),
            date: d("2026-04-01"),
        },
        "2026-04-01",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-15")));
    h.when(
        Cmd::ReversePayment {
            payment_id: "sdd".into(),
        },
        "2026-04-06",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
    let ev = h.advance("2026-04-07");
    assert_eq!(steps(&ev)[0].number, 2);
}

#[test]
fn given_an_overpayment_then_the_case_is_settled_with_the_surplus() {
    let mut h = consumer();
    let ev = h.when(
        Cmd::RecordPayment {
            payment_id: "p1".into(),
            amount: Money::eur(12_000),
            date: d("2026-03-10"),
        },
        "2026-03-10",
    );
    assert!(matches!(&ev[1], Ev::Settled { overpaid, .. } if *overpaid == Money::eur(100)));
}

#[test]
fn given_a_due_date_extension_before_the_first_step_then_the_schedule_moves() {
    let mut h = consumer();
    h.when(
        Cmd::ExtendDueDate {
            new_due_date: d("2026-04-15"),
        },
        "2026-03-10",
    );
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-20")));
    assert!(h.advance("2026-03-22").is_empty());
}

#[test]
fn given_a_pre_due_reminder_then_it_goes_out_before_the_due_date_without_fee() {
    let mut p = Policy::default_consumer(FederalState::NW);
    let mut pre = p.steps[0].clone();
    pre.title = "Zahlungshinweis".into();
    pre.pre_due = true;
    pre.offset = Offset {
        days: -3,
        after: Anchor::DueDate,
        kind: Default::default(),
    };
    p.steps.insert(0, pre);
    p.validate().unwrap();
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    let ev = h.advance("2026-03-12");
    let s = steps(&ev)[0];
    assert_eq!(
        (s.number, s.fee, s.creates_default),
        (1, Money::eur(0), false)
    );
    // The next (post-due) step is nominally 5 days after due (03-20), but never before the
    // pre-due letter's deadline has passed: 03-12 + 10 = Sunday 03-22 → Monday 03-23, so 03-24.
    assert_eq!(next_action_at(h.state()), Some(d("2026-03-24")));
}

#[test]
fn given_all_steps_reached_when_the_collection_delay_passes_then_the_case_is_escalated() {
    let mut h = consumer();
    h.advance("2026-03-20");
    h.advance("2026-04-07");
    h.advance("2026-04-21");
    // 04-21 + 8 days; the last deadline (04-28) has passed.
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-29")));
    let ev = h.advance("2026-04-29");
    assert_eq!(types(&ev), ["dunning.escalated.v1"]);
    assert_eq!(h.state().phase, Phase::Escalated);
    assert_eq!(next_action_at(h.state()), None);
    // Payments still settle an escalated case.
    let bal = h.state().balance();
    let ev = h.when(
        Cmd::RecordPayment {
            payment_id: "p".into(),
            amount: bal,
            date: d("2026-05-10"),
        },
        "2026-05-10",
    );
    assert_eq!(types(&ev)[1], "dunning.settled.v1");
}

#[test]
fn given_a_policy_that_stops_after_the_last_step_then_nothing_follows() {
    let mut p = Policy::default_consumer(FederalState::NW);
    p.after_last = AfterLast::Stop;
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    h.advance("2026-03-20");
    h.advance("2026-04-07");
    h.advance("2026-04-21");
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-12-31").is_empty());
}

#[test]
fn given_a_balance_below_the_minimum_then_no_letter_goes_out() {
    let mut h = consumer();
    h.when(
        Cmd::RecordPayment {
            payment_id: "p".into(),
            amount: Money::eur(11_500),
            date: d("2026-03-14"),
        },
        "2026-03-14",
    );
    // 4.00 open < 5.00 minimum.
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-04-30").is_empty());
}

#[test]
fn given_costs_are_not_kept_when_the_principal_is_paid_then_the_case_is_settled_and_the_rest_waived()
 {
    let mut p = Policy::default_consumer(FederalState::NW);
    p.keep_costs_after_principal_paid = false;
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    h.advance("2026-03-20");
    h.advance("2026-04-07"); // fee 2.50 + interest 0.31
    let ev = h.when(
        Cmd::RecordPayment {
            payment_id: "p".into(),
            amount: Money::eur(11_900),
            date: d("2026-04-08"),
        },
        "2026-04-08",
    );
    assert!(matches!(&ev[1], Ev::Settled { waived, .. } if *waived == Money::eur(281)));
}

#[test]
fn given_a_cancelled_or_written_off_case_then_no_step_follows_and_commands_are_refused() {
    let mut h = consumer();
    h.when(
        Cmd::Cancel {
            reason: "issued in error".into(),
        },
        "2026-03-10",
    );
    assert!(h.advance("2026-04-30").is_empty());
    assert!(
        h.try_when(Cmd::Dispute { reason: "x".into() }, "2026-04-30")
            .is_err()
    );
    assert!(
        h.when(
            Cmd::Cancel {
                reason: "again".into()
            },
            "2026-04-30"
        )
        .is_empty()
    );
    let mut h = consumer();
    h.advance("2026-03-20");
    let ev = h.when(
        Cmd::WriteOff {
            reason: "insolvent".into(),
        },
        "2026-04-01",
    );
    assert!(matches!(&ev[0], Ev::WrittenOff { amount, .. } if *amount == Money::eur(11_900)));
    assert_eq!(next_action_at(h.state()), None);
}

#[test]
fn given_the_same_payment_twice_then_it_is_recorded_once() {
    let mut h = consumer();
    let cmd = Cmd::RecordPayment {
        payment_id: "p".into(),
        amount: Money::eur(100),
        date: d("2026-03-14"),
    };
    assert_eq!(h.when(cmd.clone(), "2026-03-14").len(), 1);
    assert!(h.when(cmd, "2026-03-14").is_empty());
    assert!(
        h.try_when(
            Cmd::RecordPayment {
                payment_id: "p".into(),
                amount: Money::eur(200),
                date: d("2026-03-14")
            },
            "2026-03-14"
        )
        .is_err()
    );
}

#[test]
fn every_event_round_trips_through_its_type_and_payload() {
    let mut h = consumer();
    let mut all = decide(
        None,
        &Cmd::Open {
            facts: facts(DebtorKind::Consumer, 11_900),
            policy: Policy::default_consumer(FederalState::NW),
        },
        d("2026-03-01"),
    )
    .unwrap();
    all.extend(h.advance("2026-03-22"));
    all.extend(h.when(Cmd::Dispute { reason: "r".into() }, "2026-03-23"));
    all.extend(h.when(
        Cmd::ResolveDispute {
            outcome: DisputeOutcome::Rejected,
        },
        "2026-03-24",
    ));
    all.extend(h.when(
        Cmd::RecordCredit {
            credit_note: "GS".into(),
            amount: Money::eur(900),
        },
        "2026-03-25",
    ));
    all.extend(h.when(
        Cmd::RecordPayment {
            payment_id: "p".into(),
            amount: Money::eur(11_000),
            date: d("2026-03-26"),
        },
        "2026-03-26",
    ));
    all.extend(h.when(
        Cmd::ReversePayment {
            payment_id: "p".into(),
        },
        "2026-03-27",
    ));
    all.extend(h.when(
        Cmd::ExtendDueDate {
            new_due_date: d("2026-04-01"),
        },
        "2026-03-28",
    ));
    all.extend(h.when(Cmd::WriteOff { reason: "w".into() }, "2026-03-29"));
    assert_eq!(all.len(), 11, "{:?}", types(&all));
    for e in &all {
        let back = Ev::from_parts(e.event_type(), &e.to_payload()).unwrap();
        assert_eq!(back.as_ref(), Some(e), "{}", e.event_type());
    }
    assert_eq!(
        Ev::from_parts("invoice.issued.v1", &serde_json::json!({})).unwrap(),
        None
    );
}

#[test]
fn the_next_letter_is_never_sent_before_the_previous_letters_deadline_has_passed() {
    // The old consumer default: reminder 7 days after due with 14 days to pay, next letter 14
    // days later, sent two days before the reminder's deadline (moved over Easter to 04-07).
    let mut p = Policy::default_consumer(FederalState::NW);
    p.steps[0].offset.days = 7;
    p.steps[0].payment_deadline_days = 14;
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    let ev = h.advance("2026-03-23");
    assert_eq!(steps(&ev)[0].deadline.deadline, d("2026-04-07"));
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-08")));
    assert!(h.advance("2026-04-06").is_empty());
    assert!(h.advance("2026-04-07").is_empty());
    assert_eq!(steps(&h.advance("2026-04-08"))[0].number, 2);
}

#[test]
fn letters_are_dated_on_business_days() {
    // Reminder nominally on Sunday 03-22 (due 03-15 + 7): the letter goes out Monday 03-23.
    let mut p = Policy::default_consumer(FederalState::NW);
    p.steps[0].offset.days = 7;
    let h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    assert_eq!(next_action_at(h.state()), Some(d("2026-03-23")));
}

#[test]
fn a_letter_dated_after_the_base_rate_tables_end_still_charges_interest_provisionally() {
    // Due 2026-12-01: reminder 12-07, 1. Mahnung 12-21, Letzte Mahnung Monday 2027-01-04, which
    // needs a rate the table does not have yet.
    let mut f = facts(DebtorKind::Consumer, 11_900);
    f.issue_date = d("2026-11-01");
    f.due_date = d("2026-12-01");
    let mut h = Harness::given(f, Policy::default_consumer(FederalState::NW));
    let mut reached = Vec::new();
    let mut day = d("2026-12-01");
    while day <= d("2027-01-31") {
        for e in h.advance(&day.to_string()) {
            if let Ev::StepReached(s) = e {
                reached.push(*s);
            }
        }
        day = day.succ_opt().unwrap();
    }
    let last = reached
        .iter()
        .find(|s| s.number == 3)
        .expect("the Letzte Mahnung went out");
    assert_eq!(last.date, d("2027-01-04"));
    let interest = last.interest.as_ref().unwrap();
    assert!(interest.provisional);
    assert!(interest.periods.last().unwrap().provisional);
    assert!(last.interest_charged.minor > 0);
}

#[test]
fn a_pre_due_reminder_that_arrives_after_the_due_date_is_not_a_mahnung() {
    // Pre-due reminder the day before the due date (03-14), received 03-17, after the due date.
    // It must not put the debtor in default: the first post-due letter does, and carries no fee.
    let mut p = Policy::default_consumer(FederalState::NW);
    let mut pre = p.steps[0].clone();
    pre.title = "Zahlungshinweis".into();
    pre.pre_due = true;
    pre.payment_deadline_days = 3;
    pre.offset = Offset {
        days: -1,
        after: Anchor::DueDate,
        kind: Default::default(),
    };
    p.steps.insert(0, pre);
    p.steps[1].fee = Money::eur(300);
    p.validate().unwrap();
    let mut h = Harness::given(facts(DebtorKind::Consumer, 11_900), p);
    let ev = h.advance("2026-03-13");
    assert!(ev.is_empty());
    let ev = h.advance("2026-03-16");
    // 03-14 is a Saturday: the pre-due letter is dated Monday 03-16 — after the due date, but
    // still a pre-due reminder, not a Mahnung.
    let s = steps(&ev)[0];
    assert_eq!((s.number, s.creates_default), (1, false));
    assert_eq!(h.state().default(), None);
    // The next letter keeps its 6-day gap from the pre-due one: Sunday 03-22 → Monday 03-23.
    let ev = h.advance("2026-03-23");
    let s = steps(&ev)[0];
    assert_eq!(s.number, 2);
    assert!(s.creates_default, "the first real reminder creates default");
    assert_eq!(s.fee, Money::eur(0));
    assert_eq!(s.default.unwrap().interest_from, d("2026-03-27"));
}

#[test]
fn a_calendar_due_date_is_a_fact_of_the_invoice_not_only_of_the_policy() {
    // The policy does not say so, this invoice does: default from the day after the due date
    // (Sunday 03-15 → Monday 03-16 per § 193), so the first reminder already carries its fee.
    let mut f = facts(DebtorKind::Consumer, 11_900);
    f.calendar_due_date = true;
    let mut p = Policy::default_consumer(FederalState::NW);
    p.steps[0].fee = Money::eur(300);
    assert!(!p.calendar_due_date);
    let mut h = Harness::given(f, p);
    let s = h.advance("2026-03-20");
    let s = steps(&s)[0];
    assert_eq!(s.default.unwrap().interest_from, d("2026-03-17"));
    assert!(!s.creates_default);
    assert_eq!(s.fee, Money::eur(300));
}

fn approval_case() -> Harness {
    let mut policy = Policy::default_consumer(FederalState::NW);
    policy.approval = mahnwerk_dunning::policy::Approval::Creditor;
    Harness::given(facts(DebtorKind::Consumer, 11_900), policy)
}

#[test]
fn given_approval_mode_when_the_first_step_is_due_then_it_is_offered_and_waits_for_the_creditor() {
    let mut h = approval_case();
    let ev = h.advance("2026-03-20");
    assert_eq!(types(&ev), ["dunning.offered.v1"]);
    assert!(matches!(&ev[0], Ev::Offered { first_step, .. } if first_step == "Zahlungserinnerung"));
    // Waiting: no wake-up, no step however late, no second offer.
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-05-30").is_empty());
    let ev = h.when(Cmd::Approve, "2026-03-23");
    assert_eq!(types(&ev), ["dunning.approved.v1"]);
    assert!(h.when(Cmd::Approve, "2026-03-23").is_empty(), "idempotent");
    assert_eq!(next_action_at(h.state()), Some(d("2026-03-20")));
    let ev = h.advance("2026-03-23");
    let s = steps(&ev);
    assert_eq!((s[0].number, s[0].draft), (1, false));
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-07")));
}

#[test]
fn given_approval_mode_when_the_creditor_declines_then_steps_are_drafts_and_nothing_is_handed_over()
{
    let mut h = approval_case();
    h.advance("2026-03-20");
    assert_eq!(
        types(&h.when(Cmd::Decline, "2026-03-21")),
        ["dunning.declined.v1"]
    );
    let mut numbers = Vec::new();
    let mut day = d("2026-03-21");
    while day < d("2026-07-01") {
        for s in steps(&h.advance(&day.to_string())) {
            assert!(s.draft, "step {} must be a draft", s.number);
            numbers.push(s.number);
        }
        day += chrono::Duration::days(1);
    }
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(h.state().phase, Phase::Active, "never escalated");
    assert_eq!(next_action_at(h.state()), None);
}

#[test]
fn given_an_automatic_policy_then_approve_and_decline_are_refused_and_steps_are_never_drafts() {
    let mut h = consumer();
    let err = h.try_when(Cmd::Approve, "2026-03-16").unwrap_err();
    assert!(err.to_string().contains("automatically"), "{err}");
    let ev = h.advance("2026-03-20");
    assert!(!steps(&ev)[0].draft);
    // A payload without `draft` (written before approval mode) reads as not a draft.
    let mut payload = ev[0].to_payload();
    assert!(payload.get("draft").is_none());
    payload.as_object_mut().unwrap().remove("draft");
    let back = Ev::from_parts("dunning.step_reached.v1", &payload)
        .unwrap()
        .unwrap();
    assert_eq!(back, ev[0]);
}

#[test]
fn moving_a_case_to_another_policy_is_an_event_and_the_next_steps_follow_it() {
    let mut h = consumer();
    h.advance("2026-03-20");
    let mut strict = Policy::default_consumer(FederalState::NW);
    strict.id = "strict".into();
    strict.version = 2;
    strict.steps[1].offset.days = 12;
    strict.steps[1].payment_deadline_days = 5;
    let ev = h.when(
        Cmd::MovePolicy {
            policy: strict.clone(),
        },
        "2026-03-21",
    );
    assert_eq!(types(&ev), ["dunning.policy_moved.v1"]);
    assert!(
        matches!(&ev[0], Ev::PolicyMoved { from_id, from_version: 1, .. } if from_id == "default-consumer")
    );
    assert!(
        h.when(
            Cmd::MovePolicy {
                policy: strict.clone()
            },
            "2026-03-22"
        )
        .is_empty(),
        "idempotent"
    );
    assert_eq!(h.state().policy, strict);
    // Step 1 (reached under the old policy) stays; step 2 follows the new gap, still never
    // before the deadline printed on step 1 (03-30).
    assert_eq!(h.state().steps.len(), 1);
    assert_eq!(next_action_at(h.state()), Some(d("2026-04-01")));
    let ev = h.advance("2026-04-01");
    assert_eq!(steps(&ev)[0].number, 2);
    assert_eq!(steps(&ev)[0].deadline.unmoved, d("2026-04-06"));
    // A policy in another currency is refused.
    let mut chf = strict.clone();
    chf.currency = "CHF".parse().unwrap();
    for s in &mut chf.steps {
        s.fee.currency = chf.currency;
        s.min_open.currency = chf.currency;
    }
    assert!(
        h.try_when(Cmd::MovePolicy { policy: chf }, "2026-04-02")
            .is_err()
    );
}
