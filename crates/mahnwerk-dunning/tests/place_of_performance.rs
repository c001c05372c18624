//! § 193 BGB at the place of performance: a money debt is performed at the debtor's domicile
//! (§ 269 Abs. 1, § 270 Abs. 4 BGB), so the holidays of the debtor's federal state move its
//! calendar due date, the end of the 30 days (§ 286 Abs. 3) and the payment deadlines printed
//! on the letters; the tenant's state (the policy's) is the fallback when the debtor's is not
//! known. Letters are dated on the tenant's working days.

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand as Cmd, DunningEvent as Ev, StepReached, decide, evolve,
};
use mahnwerk_dunning::law::FederalState::{self, BE, BY, HH, MV, NI, NW};
use mahnwerk_dunning::law::default::DefaultRule;
use mahnwerk_dunning::policy::Policy;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn facts(debtor: DebtorKind, issue: &str, due: &str, state: Option<FederalState>) -> CaseFacts {
    CaseFacts {
        invoice_number: "RE-193".into(),
        debtor_key: "K-193".into(),
        debtor,
        issue_date: d(issue),
        due_date: d(due),
        principal: Money::eur(50_000),
        default_notice: false,
        calendar_due_date: false,
        state,
        direct_debit: false,
    }
}

fn open(facts: CaseFacts, policy: Policy) -> DunningCase {
    let events = decide(None, &Cmd::Open { facts, policy }, d("2020-01-01")).unwrap();
    events.iter().fold(None, evolve).unwrap()
}

/// The first step, advancing day by day from the due date.
fn first_step(mut case: DunningCase) -> StepReached {
    let mut day = case.due_date;
    for _ in 0..60 {
        for e in decide(Some(&case), &Cmd::Advance, day).unwrap() {
            if let Ev::StepReached(s) = &e {
                return (**s).clone();
            }
            case = evolve(Some(case), &e).unwrap();
        }
        day = day.succ_opt().unwrap();
    }
    panic!("no step within 60 days");
}

#[test]
fn a_calendar_due_date_on_fronleichnam_moves_in_bavaria_but_not_in_berlin() {
    // Thursday 2026-06-04 is Fronleichnam in BY (and NW), a working day in BE.
    let case = |debtor: Option<FederalState>, tenant: FederalState| {
        let mut f = facts(DebtorKind::Consumer, "2026-05-01", "2026-06-04", debtor);
        f.calendar_due_date = true;
        open(f, Policy::default_consumer(tenant)).default().unwrap()
    };
    let by = case(Some(BY), BE);
    assert_eq!(by.rule, DefaultRule::CalendarDueDate);
    assert_eq!(
        (by.trigger, by.interest_from),
        (d("2026-06-05"), d("2026-06-06")),
        "a Bavarian debtor may pay on Friday"
    );
    let be = case(Some(BE), NW);
    assert_eq!(
        be.trigger,
        d("2026-06-04"),
        "the debtor's state, not the tenant's"
    );
    // Unknown debtor state: the tenant's.
    assert_eq!(case(None, NW).trigger, d("2026-06-05"));
    assert_eq!(case(None, BE).trigger, d("2026-06-04"));
}

#[test]
fn the_30_days_ending_on_reformationstag_move_in_the_northern_states_only() {
    // Business, due Wednesday 2025-10-01 (invoice received 09-23): + 30 days = Friday
    // 2025-10-31, Reformationstag in NI and HH since 2018, not in BY, NW or BE.
    let trigger = |debtor: Option<FederalState>, tenant: FederalState| {
        let f = facts(DebtorKind::Business, "2025-09-20", "2025-10-01", debtor);
        let s = open(f, Policy::default_business(tenant)).default_facts();
        mahnwerk_dunning::law::default::default_without_reminder(&s)
            .unwrap()
            .trigger
    };
    assert_eq!(
        trigger(Some(NI), NW),
        d("2025-11-03"),
        "Fri holiday, then the weekend"
    );
    assert_eq!(trigger(Some(HH), BY), d("2025-11-03"));
    assert_eq!(trigger(Some(BY), NI), d("2025-10-31"));
    assert_eq!(trigger(Some(BE), HH), d("2025-10-31"));
    assert_eq!(
        trigger(None, HH),
        d("2025-11-03"),
        "fallback: the tenant's state"
    );
    assert_eq!(trigger(None, NW), d("2025-10-31"));
}

#[test]
fn a_printed_deadline_on_8_march_moves_in_berlin_and_mecklenburg_vorpommern() {
    // Due Monday 2027-02-22: reminder due + 5 = Saturday 02-27, dated Monday 03-01 (the
    // tenant's working day); 7 days to pay → Monday 2027-03-08, Frauentag in BE and MV.
    let deadline = |debtor: Option<FederalState>, tenant: FederalState| {
        let mut p = Policy::default_business(tenant);
        p.steps[0].payment_deadline_days = 7;
        let s = first_step(open(
            facts(DebtorKind::Business, "2027-02-01", "2027-02-22", debtor),
            p,
        ));
        assert_eq!(s.date, d("2027-03-01"));
        s.deadline
    };
    let be = deadline(Some(BE), HH);
    assert_eq!(be.deadline, d("2027-03-09"));
    assert_eq!(be.unmoved, d("2027-03-08"));
    assert!(
        be.reasons[0].contains("public holiday in BE (Internationaler Frauentag)"),
        "{:?}",
        be.reasons
    );
    assert_eq!(deadline(Some(MV), NW).deadline, d("2027-03-09"));
    assert_eq!(deadline(Some(HH), BE).deadline, d("2027-03-08"));
    assert_eq!(deadline(None, BE).deadline, d("2027-03-09"));
    assert_eq!(deadline(None, NW).deadline, d("2027-03-08"));
}

#[test]
fn the_next_letter_waits_for_the_debtors_deadline_and_is_dated_on_the_tenants_working_day() {
    // Tenant in BE, debtor in BY. Due Wednesday 2026-05-20: reminder due + 5 = Pfingstmontag
    // 05-25 (a holiday everywhere) → dated Tuesday 05-26; 9 days to pay → 06-04, Fronleichnam in
    // BY → deadline Friday 06-05. The 1. Mahnung, 7 days after the reminder, waits until the
    // day after that deadline, Saturday 06-06, and is dated on Monday 06-08.
    let mut p = Policy::default_consumer(BE);
    p.steps[0].payment_deadline_days = 9;
    p.steps[1].offset.days = 7;
    p.validate().unwrap();
    let case = open(
        facts(DebtorKind::Consumer, "2026-05-01", "2026-05-20", Some(BY)),
        p.clone(),
    );
    let s = first_step(case.clone());
    assert_eq!(s.date, d("2026-05-26"));
    assert_eq!(s.deadline.deadline, d("2026-06-05"));
    let after = evolve(Some(case), &Ev::StepReached(Box::new(s))).unwrap();
    assert_eq!(after.next_step_date(), Some(d("2026-06-08")));
    // A Berlin debtor's deadline stays on 06-04: the 1. Mahnung is due Friday 06-05.
    let case = open(
        facts(DebtorKind::Consumer, "2026-05-01", "2026-05-20", Some(BE)),
        p.clone(),
    );
    let s = first_step(case.clone());
    assert_eq!(s.deadline.deadline, d("2026-06-04"));
    let after = evolve(Some(case), &Ev::StepReached(Box::new(s))).unwrap();
    assert_eq!(after.next_step_date(), Some(d("2026-06-05")));
    // A letter falling on a holiday of the debtor's state only is still dated that day: the
    // tenant in BE works on Fronleichnam.
    let mut p = Policy::default_consumer(BE);
    p.steps[0].offset.days = 5;
    let case = open(
        facts(DebtorKind::Consumer, "2026-05-01", "2026-05-30", Some(BY)),
        p,
    );
    assert_eq!(case.next_step_date(), Some(d("2026-06-04")));
}

#[test]
fn the_debtors_state_is_kept_in_the_opened_event_and_old_events_without_it_still_read() {
    let f = facts(DebtorKind::Consumer, "2026-05-01", "2026-05-20", Some(BY));
    let events = decide(
        None,
        &Cmd::Open {
            facts: f.clone(),
            policy: Policy::default_consumer(NW),
        },
        d("2026-05-01"),
    )
    .unwrap();
    let payload = events[0].to_payload();
    assert_eq!(payload["facts"]["state"], "BY");
    let back = Ev::from_parts("dunning.case_opened.v1", &payload).unwrap();
    assert_eq!(back.as_ref(), Some(&events[0]));
    let mut old = payload.clone();
    old["facts"].as_object_mut().unwrap().remove("state");
    let Some(Ev::Opened { facts, .. }) = Ev::from_parts("dunning.case_opened.v1", &old).unwrap()
    else {
        panic!("an event without the field reads");
    };
    assert_eq!(facts.state, None);
    let without = CaseFacts { state: None, ..f };
    assert_eq!(
        serde_json::to_value(&without).unwrap().get("state"),
        None,
        "not written when unknown"
    );
}
