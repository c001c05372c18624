//! Operator interventions on a case: a settlement ("Vergleich": a reduced amount accepted, the
//! rest waived once it is paid; not paid in time, the whole claim is dunned again), skipping a
//! step (passed over without a letter, the next step takes its place) and repeating the last
//! one (the same step again, a new date and deadline, no second fee).

mod common;
use common::*;

use mahnwerk_domain::Money;
use mahnwerk_dunning::DunningError;
use mahnwerk_dunning::dunning_case::{
    CaseStatus, DunningCommand as Cmd, DunningEvent as Ev, Pause, Phase, ResumeReason,
    next_action_at,
};

fn pay(h: &mut Harness, id: &str, minor: i64, day: &str) -> Vec<Ev> {
    h.when(
        Cmd::RecordPayment {
            payment_id: id.into(),
            amount: Money::eur(minor),
            date: d(day),
        },
        day,
    )
}

/// The consumer default after its reminder (03-20) and 1. Mahnung (04-07, with a fee and
/// interest), then a settlement of € 100.00 by 04-30 agreed on 04-10.
fn settled_for_100() -> (Harness, Money) {
    let mut h = consumer();
    h.advance("2026-03-20");
    assert_eq!(steps(&h.advance("2026-04-07")).len(), 1);
    let balance = h.state().balance();
    assert!(
        balance.minor > 11_900,
        "fee and interest charged: {balance}"
    );
    let ev = h.when(
        Cmd::AgreeSettlement {
            amount: Money::eur(10_000),
            pay_by: d("2026-04-30"),
        },
        "2026-04-10",
    );
    assert_eq!(types(&ev), ["dunning.paused.v1"]);
    assert!(matches!(
        &ev[0],
        Ev::Paused { pause: Pause::Settlement { amount, pay_by, since }, .. }
            if *amount == Money::eur(10_000) && *pay_by == d("2026-04-30") && *since == d("2026-04-10")
    ));
    (h, balance)
}

#[test]
fn a_settlement_paid_in_time_settles_the_case_and_waives_the_rest() {
    let (mut h, balance) = settled_for_100();
    assert_eq!(h.state().status(d("2026-04-11")), CaseStatus::Paused);
    // The only wake-up is the day after the settlement's date.
    assert_eq!(next_action_at(h.state()), Some(d("2026-05-01")));
    // The Letzte Mahnung would be due now: the settlement holds it.
    assert!(h.advance("2026-04-27").is_empty());
    // A first part leaves the settlement open.
    assert_eq!(
        types(&pay(&mut h, "p1", 6_000, "2026-04-15")),
        ["dunning.payment_recorded.v1"]
    );
    assert_eq!(h.state().phase, Phase::Active);
    // The rest of the agreed amount settles the case; what remains of the claim is waived.
    let ev = pay(&mut h, "p2", 4_000, "2026-04-28");
    assert_eq!(
        types(&ev),
        ["dunning.payment_recorded.v1", "dunning.settled.v1"]
    );
    let Ev::Settled {
        waived, overpaid, ..
    } = &ev[1]
    else {
        unreachable!()
    };
    assert_eq!(*waived, Money::eur(balance.minor - 10_000));
    assert_eq!(*overpaid, Money::eur(0));
    assert_eq!(h.state().phase, Phase::Settled);
    assert_eq!(next_action_at(h.state()), None);
    assert!(h.advance("2026-06-01").is_empty());
}

#[test]
fn a_payment_before_the_settlement_does_not_count_towards_it() {
    let mut h = consumer();
    h.advance("2026-03-20");
    pay(&mut h, "early", 5_000, "2026-03-25");
    h.when(
        Cmd::AgreeSettlement {
            amount: Money::eur(5_000),
            pay_by: d("2026-04-30"),
        },
        "2026-03-26",
    );
    // 50.00 agreed from 03-26 on: the 50.00 of 03-25 was before it.
    assert_eq!(
        types(&pay(&mut h, "p1", 4_999, "2026-04-01")),
        ["dunning.payment_recorded.v1"]
    );
    assert_eq!(
        types(&pay(&mut h, "p2", 1, "2026-04-02")),
        ["dunning.payment_recorded.v1", "dunning.settled.v1"]
    );
}

#[test]
fn a_settlement_not_paid_in_time_lapses_and_the_whole_claim_is_dunned() {
    let (mut h, balance) = settled_for_100();
    pay(&mut h, "p1", 6_000, "2026-04-15");
    assert!(h.advance("2026-04-30").is_empty());
    let ev = h.advance("2026-05-01");
    let Ev::Resumed { why, .. } = &ev[0] else {
        panic!("the settlement lapses first: {ev:?}")
    };
    assert_eq!(
        *why,
        ResumeReason::SettlementMissed {
            agreed: Money::eur(10_000),
            paid: Money::eur(6_000),
        }
    );
    // Nothing is waived: the next letter asks for the whole rest of the claim.
    let next = next_action_at(h.state()).unwrap();
    let later = h.advance(&next.to_string());
    let s = steps(&later)[0];
    assert_eq!(s.number, 3);
    assert!(
        s.balance.minor >= balance.minor - 6_000,
        "{} after paying 60.00 of {balance}",
        s.balance
    );
}

#[test]
fn a_settled_case_whose_payment_is_reversed_reopens() {
    let (mut h, _) = settled_for_100();
    pay(&mut h, "p1", 10_000, "2026-04-20");
    assert_eq!(h.state().phase, Phase::Settled);
    let ev = h.when(
        Cmd::ReversePayment {
            payment_id: "p1".into(),
        },
        "2026-04-22",
    );
    assert_eq!(
        types(&ev),
        ["dunning.payment_reversed.v1", "dunning.reopened.v1"]
    );
    // Still under the settlement until its date.
    assert_eq!(next_action_at(h.state()), Some(d("2026-05-01")));
}

#[test]
fn a_settlement_must_waive_something_and_be_payable() {
    let mut h = consumer();
    h.advance("2026-03-20");
    let balance = h.state().balance();
    let field = |r: mahnwerk_dunning::Result<Vec<Ev>>| match r {
        Err(DunningError::Invalid(errs)) => errs.to_string(),
        other => panic!("{other:?}"),
    };
    let not_less = field(h.try_when(
        Cmd::AgreeSettlement {
            amount: balance,
            pay_by: d("2026-04-30"),
        },
        "2026-03-25",
    ));
    assert!(not_less.contains("amount"), "{not_less}");
    let past = field(h.try_when(
        Cmd::AgreeSettlement {
            amount: Money::eur(5_000),
            pay_by: d("2026-03-24"),
        },
        "2026-03-25",
    ));
    assert!(past.contains("pay_by"), "{past}");
    let zero = field(h.try_when(
        Cmd::AgreeSettlement {
            amount: Money::eur(0),
            pay_by: d("2026-04-30"),
        },
        "2026-03-25",
    ));
    assert!(zero.contains("amount"), "{zero}");
    assert!(matches!(
        h.try_when(
            Cmd::AgreeSettlement {
                amount: Money::new(5_000, "USD".parse().unwrap()),
                pay_by: d("2026-04-30"),
            },
            "2026-03-25",
        ),
        Err(DunningError::CurrencyMismatch(..))
    ));
    assert!(!h.state().is_paused(), "nothing refused was recorded");
}

#[test]
fn a_skipped_reminder_is_replaced_by_the_first_notice_on_its_day() {
    let mut h = consumer();
    let ev = h.when(
        Cmd::SkipStep {
            reason: "debtor known to ignore reminders".into(),
        },
        "2026-03-18",
    );
    assert_eq!(types(&ev), ["dunning.step_skipped.v1"]);
    let Ev::StepSkipped {
        skipped_step,
        title,
        scheduled_for,
        ..
    } = &ev[0]
    else {
        unreachable!()
    };
    assert_eq!((*skipped_step, title.as_str()), (1, "Zahlungserinnerung"));
    // The reminder was due on 03-20: the 1. Mahnung goes out then, not 14 days after it.
    assert_eq!(*scheduled_for, d("2026-03-20"));
    assert_eq!(next_action_at(h.state()), Some(d("2026-03-20")));
    assert!(h.advance("2026-03-19").is_empty());
    let ev = h.advance("2026-03-20");
    let s = steps(&ev)[0];
    assert_eq!((s.number, s.title.as_str()), (2, "1. Mahnung"));
    // The skipped reminder put no one in default: this letter does (so its fee is waived).
    assert!(s.creates_default, "{s:?}");
    assert_eq!(s.fee, Money::eur(0));
}

#[test]
fn a_step_skipped_late_makes_the_next_one_due_at_once_but_not_before_the_printed_deadline() {
    let mut h = consumer();
    h.advance("2026-03-20");
    // Reminder of 03-20, deadline 03-30. The 1. Mahnung (due 04-07) is passed over on 04-09.
    h.when(
        Cmd::SkipStep {
            reason: "straight to the last notice".into(),
        },
        "2026-04-09",
    );
    let ev = h.advance("2026-04-09");
    let s = steps(&ev)[0];
    assert_eq!((s.number, s.title.as_str()), (3, "Letzte Mahnung"));
    // Skipped before the reminder's deadline: the next letter waits for it.
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(Cmd::SkipStep { reason: "x".into() }, "2026-03-23");
    let ev = h.advance("2026-03-23");
    assert!(
        ev.is_empty(),
        "the reminder's deadline 03-30 has not passed: {ev:?}"
    );
    let next = next_action_at(h.state()).unwrap();
    assert!(next > d("2026-03-30"), "{next}");
}

#[test]
fn skipping_needs_a_step_left() {
    let mut h = consumer();
    for _ in 0..3 {
        h.when(Cmd::SkipStep { reason: "x".into() }, "2026-03-18");
    }
    assert!(matches!(
        h.try_when(Cmd::SkipStep { reason: "x".into() }, "2026-03-18"),
        Err(DunningError::Precondition(_))
    ));
    // Every step passed over, none sent: the case is still handed over after the last one's
    // place in the schedule, as the policy says.
    assert!(next_action_at(h.state()).is_some());
    assert_eq!(h.state().letters().count(), 0);
}

#[test]
fn a_repeated_step_is_the_same_letter_again_with_a_new_deadline_and_no_second_fee() {
    let mut h = consumer();
    h.advance("2026-03-20");
    let first = steps(&h.advance("2026-04-07"))[0].clone();
    assert_eq!(first.number, 2);
    assert!(
        first.fee.minor > 0,
        "the 1. Mahnung charges its fee: {first:?}"
    );
    let before = h.state().balance();
    let planned = next_action_at(h.state()).unwrap();
    // The letter came back undeliverable; sent again on 04-10.
    let ev = h.when(
        Cmd::RepeatStep {
            reason: "returned undeliverable".into(),
        },
        "2026-04-10",
    );
    assert_eq!(types(&ev), ["dunning.step_reached.v1"]);
    let again = steps(&ev)[0];
    assert_eq!(
        (again.number, again.title.as_str()),
        (2, first.title.as_str())
    );
    assert_eq!(again.repeat.as_ref().map(|r| r.count), Some(1));
    assert_eq!(again.date, d("2026-04-10"));
    assert_eq!(again.fee, Money::eur(0));
    assert!(again.fee_waived.is_some());
    assert_eq!(again.lump_sum, Money::eur(0));
    assert!(!again.creates_default);
    assert!(again.deadline.deadline > first.deadline.deadline);
    // Interest runs on to the repetition; nothing else is added.
    assert_eq!(
        again.balance.minor,
        before.minor + again.interest_charged.minor
    );
    // The next step follows its gap after the repetition, not after the first sending.
    let next = next_action_at(h.state()).unwrap();
    assert!(next > planned, "{next} after {planned}");
    assert_eq!(h.state().steps.len(), 2, "a repetition is no new step");
    // Again: the second repetition.
    let ev = h.when(Cmd::RepeatStep { reason: "x".into() }, "2026-04-14");
    assert_eq!(steps(&ev)[0].repeat.as_ref().map(|r| r.count), Some(2));
    let third = steps(&h.advance(&next_action_at(h.state()).unwrap().to_string()))[0].clone();
    assert_eq!(third.number, 3);
    assert!(third.repeat.is_none());
}

#[test]
fn a_step_is_repeated_only_when_a_letter_was_sent_and_the_case_may_be_dunned() {
    let refused = |h: &mut Harness, day: &str| {
        matches!(
            h.try_when(Cmd::RepeatStep { reason: "x".into() }, day),
            Err(DunningError::Precondition(_))
        )
    };
    let mut h = consumer();
    assert!(refused(&mut h, "2026-03-18"), "no letter yet");
    h.when(Cmd::SkipStep { reason: "x".into() }, "2026-03-18");
    assert!(
        refused(&mut h, "2026-03-18"),
        "the last step printed nothing"
    );
    let mut h = consumer();
    h.advance("2026-03-20");
    h.when(
        Cmd::Hold {
            scope: mahnwerk_dunning::dunning_case::HoldScope::Case,
            reason: "call".into(),
            until: None,
        },
        "2026-03-22",
    );
    assert!(refused(&mut h, "2026-03-23"), "paused");
}
