//! Consolidated letters: one fee per letter, and no invoice skips to a later step's letter.

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::consolidate::{DueStep, consolidate, consolidate_debtor};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand as Cmd, DunningEvent as Ev, StepReached, decide, evolve,
};
use mahnwerk_dunning::law::FederalState;
use mahnwerk_dunning::policy::Policy;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn facts(number: &str, debtor: DebtorKind, due: &str, principal: i64) -> CaseFacts {
    CaseFacts {
        invoice_number: number.into(),
        debtor_key: "K-1".into(),
        debtor,
        issue_date: d("2026-02-01"),
        due_date: d(due),
        principal: Money::eur(principal),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    }
}

/// The step a case reaches on `day` when it is advanced every day from its due date on.
fn due_on(facts: CaseFacts, policy: &Policy, day: &str) -> DueStep {
    let case_id = facts.invoice_number.clone();
    let open = Cmd::Open {
        facts,
        policy: policy.clone(),
    };
    let mut state: Option<DunningCase> = decide(None, &open, d("2026-02-01"))
        .unwrap()
        .iter()
        .fold(None, evolve);
    let mut on = state.as_ref().unwrap().due_date;
    while on <= d(day) {
        for e in decide(state.as_ref(), &Cmd::Advance, on).unwrap() {
            if let (Ev::StepReached(s), true) = (&e, on == d(day)) {
                return DueStep {
                    case_id,
                    debtor_key: "K-1".into(),
                    consolidate: policy.consolidate,
                    step: StepReached::clone(s),
                };
            }
            state = evolve(state, &e);
        }
        on = on.succ_opt().unwrap();
    }
    panic!("{case_id}: no step on {day}");
}

/// Consumer default policy in NW; on Tuesday 2026-04-21 RE-A (due 03-15) reaches the Letzte
/// Mahnung (€ 5.00), RE-C (due 04-02) the 1. Mahnung (€ 2.50), RE-B (due 04-16) the reminder.
fn one_debtors_day() -> Vec<DueStep> {
    let p = Policy::default_consumer(FederalState::NW);
    let c = DebtorKind::Consumer;
    vec![
        due_on(facts("RE-A", c, "2026-03-15", 11_900), &p, "2026-04-21"),
        due_on(facts("RE-B", c, "2026-04-16", 5_000), &p, "2026-04-21"),
        due_on(facts("RE-C", c, "2026-04-02", 20_000), &p, "2026-04-21"),
    ]
}

#[test]
fn a_consolidated_letter_charges_one_fee_not_one_per_invoice() {
    let due = one_debtors_day();
    let numbers: Vec<u32> = due.iter().map(|l| l.step.number).collect();
    assert_eq!(numbers, [3, 1, 2]);
    assert_eq!(due[0].step.fee, Money::eur(500));
    assert_eq!(due[2].step.fee, Money::eur(250));
    let c_balance = due[2].step.balance;
    let letters = consolidate_debtor(due);
    let last = letters
        .iter()
        .find(|l| l.title == "Letzte Mahnung")
        .unwrap();
    let ids: Vec<&str> = last.lines.iter().map(|l| l.case_id.as_str()).collect();
    assert_eq!(ids, ["RE-A", "RE-C"]);
    // One fee, the letter's: 5.00, not 5.00 + 2.50.
    assert_eq!(last.fee, Money::eur(500));
    assert_eq!(last.lines[0].step.fee, Money::eur(500));
    let c = &last.lines[1].step;
    assert_eq!(c.fee, Money::eur(0));
    assert_eq!(
        c.balance,
        Money::new(c_balance.minor - 250, c_balance.currency)
    );
    assert!(
        c.fee_waived
            .as_deref()
            .unwrap()
            .contains("one fee per consolidated letter: charged with RE-A")
    );
    assert!(
        c.interest_charged.minor > 0,
        "interest stays with each claim"
    );
    assert_eq!(
        last.total.minor,
        last.lines.iter().map(|l| l.step.balance.minor).sum::<i64>()
    );
}

#[test]
fn an_invoice_that_never_had_an_earlier_step_is_not_put_into_a_letzte_mahnung() {
    let letters = consolidate_debtor(one_debtors_day());
    assert_eq!(letters.len(), 2);
    let titles: Vec<&str> = letters.iter().map(|l| l.title.as_str()).collect();
    assert_eq!(titles, ["Zahlungserinnerung", "Letzte Mahnung"]);
    let reminder = &letters[0];
    assert_eq!(reminder.lines.len(), 1);
    assert_eq!(reminder.lines[0].case_id, "RE-B");
    assert_eq!(reminder.lines[0].step.number, 1);
    // Its deadline is its own, not shortened or lengthened by the others.
    assert_eq!(reminder.deadline, reminder.lines[0].step.deadline.deadline);
    assert!(
        letters[1].lines.iter().all(|l| l.step.number > 1),
        "only invoices that had an earlier letter"
    );
}

#[test]
fn equal_fees_are_charged_once_on_the_first_invoice_and_single_letters_keep_theirs() {
    let p = Policy::default_consumer(FederalState::NW);
    let c = DebtorKind::Consumer;
    // Both due 03-15: 1. Mahnung on 04-07 with € 2.50 each.
    let due = vec![
        due_on(facts("RE-2", c, "2026-03-15", 5_000), &p, "2026-04-07"),
        due_on(facts("RE-1", c, "2026-03-15", 11_900), &p, "2026-04-07"),
    ];
    let letters = consolidate(due.clone());
    assert_eq!(letters.len(), 1);
    let fees: Vec<(&str, i64)> = letters[0]
        .lines
        .iter()
        .map(|l| (l.case_id.as_str(), l.step.fee.minor))
        .collect();
    assert_eq!(fees, [("RE-1", 250), ("RE-2", 0)]);
    assert_eq!(letters[0].fee, Money::eur(250));
    // A policy that does not consolidate: a letter per invoice, each with its fee.
    let single: Vec<DueStep> = due
        .into_iter()
        .map(|mut l| {
            l.consolidate = false;
            l
        })
        .collect();
    let letters = consolidate(single);
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l.fee == Money::eur(250)));
}

#[test]
fn the_lump_sum_stays_with_each_business_claim() {
    let p = Policy::default_business(FederalState::NW);
    let b = DebtorKind::Business;
    // Due 03-15: reminder 03-20, 1. Mahnung 03-30 with the € 40 lump sum each (their € 5 fee
    // is offset against it, § 288 Abs. 5 S. 3).
    let due = vec![
        due_on(facts("RE-1", b, "2026-03-15", 100_000), &p, "2026-03-30"),
        due_on(facts("RE-2", b, "2026-03-15", 50_000), &p, "2026-03-30"),
    ];
    let letters = consolidate(due);
    assert_eq!(letters.len(), 1);
    for l in &letters[0].lines {
        assert_eq!(l.step.lump_sum, Money::eur(4_000), "{}", l.case_id);
    }
    assert_eq!(letters[0].fee, Money::eur(0));
}

#[test]
fn a_stamped_letter_carries_its_consolidation_on_every_line_and_a_single_line_stays_plain() {
    let mut letters = consolidate_debtor(one_debtors_day());
    for l in &mut letters {
        l.stamp("c-1");
    }
    let (reminder, last) = (&letters[0], &letters[1]);
    assert!(
        reminder.lines[0].step.consolidation.is_none(),
        "one line: a plain step"
    );
    for line in &last.lines {
        let c = line.step.consolidation.as_ref().expect("stamped");
        assert_eq!(c.id, "c-1");
        assert_eq!(c.cases, ["RE-A", "RE-C"]);
        assert_eq!(c.carrier, "RE-A");
        assert_eq!((c.step, c.title.as_str()), (3, "Letzte Mahnung"));
        assert_eq!((c.fee, c.total), (last.fee, last.total));
        assert_eq!(c.deadline, last.deadline);
        // The stamped step is the event as stored and read back.
        let ev = Ev::StepReached(Box::new(line.step.clone()));
        let back = Ev::from_parts(ev.event_type(), &ev.to_payload()).unwrap();
        assert_eq!(back, Some(ev));
    }
}

/// The case state just before its step on `day`, and that step.
fn state_before(facts: CaseFacts, policy: &Policy, day: &str) -> (DunningCase, StepReached) {
    let open = Cmd::Open {
        facts,
        policy: policy.clone(),
    };
    let mut state: Option<DunningCase> = decide(None, &open, d("2026-02-01"))
        .unwrap()
        .iter()
        .fold(None, evolve);
    let mut on = state.as_ref().unwrap().due_date;
    while on <= d(day) {
        for e in decide(state.as_ref(), &Cmd::Advance, on).unwrap() {
            if let (Ev::StepReached(s), true) = (&e, on == d(day)) {
                return (state.unwrap(), StepReached::clone(s));
            }
            state = evolve(state, &e);
        }
        on = on.succ_opt().unwrap();
    }
    panic!("no step on {day}");
}

/// Regression: a consolidated letter prints the latest deadline of its lines; a line whose own
/// deadline is shorter (the Letzte Mahnung's 7 days beside a 1. Mahnung's 10) must not be
/// handed over before the printed deadline has passed.
#[test]
fn a_line_of_a_consolidated_letter_waits_for_the_deadline_the_letter_printed() {
    let p = Policy::default_consumer(FederalState::NW);
    let c = DebtorKind::Consumer;
    let (before_a, _) = state_before(facts("RE-A", c, "2026-03-15", 11_900), &p, "2026-04-21");
    let mut letters = consolidate_debtor(one_debtors_day());
    let last = letters
        .iter_mut()
        .find(|l| l.title == "Letzte Mahnung")
        .unwrap();
    last.stamp("c-1");
    let line = last.lines.iter().find(|l| l.case_id == "RE-A").unwrap();
    assert!(
        line.step.deadline.deadline < last.deadline,
        "RE-A's own deadline is shorter"
    );
    let plain = evolve(
        Some(before_a.clone()),
        &Ev::StepReached(Box::new(StepReached {
            consolidation: None,
            repeat: None,
            ..line.step.clone()
        })),
    )
    .unwrap();
    let stamped = evolve(
        Some(before_a),
        &Ev::StepReached(Box::new(line.step.clone())),
    )
    .unwrap();
    assert_eq!(stamped.last_deadline(), Some(last.deadline));
    let handover = stamped.escalation_date().unwrap();
    assert!(
        handover > last.deadline,
        "{handover} after {}",
        last.deadline
    );
    assert!(
        plain.escalation_date().unwrap() <= last.deadline,
        "without the rule it was earlier"
    );
}
