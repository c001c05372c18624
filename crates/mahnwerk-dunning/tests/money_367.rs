//! § 367 BGB on the case: payments go to costs, then interest, then principal, but only to the
//! amounts that existed on the payment day (the demo's 1002: a part payment between the
//! reminder and the 1. Mahnung must not pay that letter's fee and interest in advance).

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand as Cmd, DunningEvent as Ev, StepReached, decide, evolve,
};
use mahnwerk_dunning::law::FederalState;
use mahnwerk_dunning::policy::Policy;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

struct Case(Option<DunningCase>);

impl Case {
    /// Consumer, 297.50 EUR, due Sunday 2026-03-15, default consumer policy in NW: reminder
    /// 03-20 (no fee, received 03-23: default, interest from 03-24 at 1.27 + 5 = 6.27 %).
    fn consumer() -> Self {
        let mut c = Case(None);
        c.when(
            Cmd::Open {
                facts: CaseFacts {
                    invoice_number: "RE-2026-367".into(),
                    debtor_key: "K-367".into(),
                    debtor: DebtorKind::Consumer,
                    issue_date: d("2026-03-01"),
                    due_date: d("2026-03-15"),
                    principal: Money::eur(29_750),
                    default_notice: false,
                    calendar_due_date: false,
                    state: None,
                    direct_debit: false,
                },
                policy: Policy::default_consumer(FederalState::NW),
            },
            "2026-03-01",
        );
        c
    }

    fn when(&mut self, cmd: Cmd, day: &str) -> Vec<Ev> {
        let events = decide(self.0.as_ref(), &cmd, d(day)).unwrap();
        for e in &events {
            self.0 = evolve(self.0.take(), e);
        }
        events
    }

    fn pay(&mut self, id: &str, minor: i64, day: &str) {
        self.when(
            Cmd::RecordPayment {
                payment_id: id.into(),
                amount: Money::eur(minor),
                date: d(day),
            },
            day,
        );
    }

    fn step(&mut self, day: &str) -> StepReached {
        let events = self.when(Cmd::Advance, day);
        match events.as_slice() {
            [Ev::StepReached(s)] => (**s).clone(),
            other => panic!("no step on {day}: {other:?}"),
        }
    }

    fn state(&self) -> &DunningCase {
        self.0.as_ref().unwrap()
    }
}

#[test]
fn a_part_payment_before_the_next_letter_does_not_pay_that_letters_fee_and_interest() {
    let mut c = Case::consumer();
    assert_eq!(c.step("2026-03-20").number, 1);
    // 100.00 on 03-23, before the first interest day: nothing but the principal exists.
    c.pay("p1", 10_000, "2026-03-23");
    assert_eq!(c.state().principal_open(), Money::eur(19_750));
    // 1. Mahnung: 03-23 + 14 = Ostermontag 04-06 → Tuesday 04-07. Fee 2.50; interest
    // 03-24..04-07 = 15 days on 197.50: 19750 × 627 × 15 / 3,650,000 = 50.89 → 51 cents.
    let s = c.step("2026-04-07");
    assert_eq!(s.number, 2);
    assert_eq!(
        (s.fee, s.interest_charged),
        (Money::eur(250), Money::eur(51))
    );
    // Before the fix: 297.50 − (100.00 − 2.50 − 0.51) = 200.51.
    assert_eq!(s.principal_open, Money::eur(19_750));
    assert_eq!(s.balance, Money::eur(19_750 + 250 + 51));
    assert_eq!(c.state().principal_open(), Money::eur(19_750));
    let calc = s.interest.as_ref().unwrap();
    assert_eq!(
        calc.principal_open, 19_750,
        "the letter's derivation agrees"
    );
    assert_eq!(calc.allocations[0].to_principal, 10_000);
}

#[test]
fn a_payment_after_interest_began_pays_the_interest_accrued_by_its_day_first() {
    let mut c = Case::consumer();
    c.step("2026-03-20");
    // 100.00 on 03-27: interest 03-24..03-26 = 3 days on 297.50 at 6.27 %:
    // 29750 × 627 × 3 / 3,650,000 = 15.33 → 15 cents; the rest, 99.85, pays principal.
    c.pay("p1", 10_000, "2026-03-27");
    // 1. Mahnung: 03-27 + 14 = 04-10 (Friday).
    let s = c.step("2026-04-10");
    assert_eq!(s.number, 2);
    let calc = s.interest.as_ref().unwrap();
    assert_eq!(
        (
            calc.allocations[0].to_interest,
            calc.allocations[0].to_costs
        ),
        (15, 0),
        "the fee of 04-10 did not exist on 03-27"
    );
    assert_eq!(s.principal_open, Money::eur(29_750 - 9_985));
    assert_eq!(c.state().principal_open(), s.principal_open);
    // The parts add up to the balance.
    let credited = c.state().credited();
    assert_eq!(
        credited.principal_open + credited.costs_open + credited.interest_open,
        s.balance.minor
    );
}

#[test]
fn a_payment_after_a_letter_pays_its_fee_then_its_interest_then_the_principal() {
    let mut c = Case::consumer();
    c.step("2026-03-20");
    let s2 = c.step("2026-04-07");
    // No payment: interest 03-24..04-07 = 15 days on 297.50: 29750 × 627 × 15 / 3,650,000 =
    // 76.65 → 77 cents.
    assert_eq!(
        (s2.fee, s2.interest_charged),
        (Money::eur(250), Money::eur(77))
    );
    assert_eq!(s2.principal_open, Money::eur(29_750));
    // 10.00 on 04-09: 2.50 to the fee, 0.77 to the interest of the letter, 6.73 to principal
    // (interest accrued after the letter is not claimed until the next one computes it).
    c.pay("p1", 1_000, "2026-04-09");
    assert_eq!(c.state().principal_open(), Money::eur(29_750 - 673));
    let credited = c.state().credited();
    assert_eq!(
        (
            credited.allocations[0].to_costs,
            credited.allocations[0].to_interest,
            credited.allocations[0].to_principal
        ),
        (250, 77, 673)
    );
    assert_eq!((credited.costs_open, credited.interest_open), (0, 0));
}
