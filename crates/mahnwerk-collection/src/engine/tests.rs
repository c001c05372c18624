//! Given/when/then tests of the collection engine.

use super::*;
use mahnwerk_domain::Currency;
use mahnwerk_domain::DebtorKind;
use mahnwerk_dunning::dunning_case::DunningCase;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn partner(id: &str, mode: HandoverMode) -> Partner {
    Partner {
        id: id.into(),
        name: format!("Inkasso {id}"),
        subject_token: id.into(),
        min_amount_minor: 5000,
        debtor_kinds: vec![],
        countries: vec!["DE".into()],
        mode,
        waive_costs_if_principal_paid: false,
        active: true,
    }
}

/// given events, when command, then events (or refusal).
fn given_when(given: &[Event], command: Command) -> (CollectionState, Result<Vec<Event>, Refused>) {
    let state = fold(given);
    let out = decide(&state, &command, d("2026-05-01"));
    (state, out)
}

fn handed(p: &str) -> Event {
    Event::HandedOver {
        partner_id: p.into(),
        handed_over_on: d("2026-04-01"),
        principal_open: Money::eur(11900),
    }
}

fn report(p: &str, r: Report) -> Command {
    Command::Report {
        partner_id: p.into(),
        report: r,
        waive_costs_if_principal_paid: false,
    }
}

fn accepted(p: &str) -> Event {
    Event::Reported {
        partner_id: p.into(),
        report: Report::Accepted,
        costs_waived: false,
    }
}

#[test]
fn selection_respects_amount_kind_and_country() {
    let mut b2b = partner("b-only", HandoverMode::Auto);
    b2b.debtor_kinds = vec![DebtorKind::Business];
    let mut at = partner("a-at", HandoverMode::Auto);
    at.countries = vec!["AT".into()];
    let mut big = partner("c-big", HandoverMode::Auto);
    big.min_amount_minor = 100_000;
    let mut off = partner("0-off", HandoverMode::Auto);
    off.active = false;
    let all = vec![big.clone(), b2b.clone(), at.clone(), off];
    assert_eq!(
        select_partner(&all, DebtorKind::Business, "DE", 20000).map(|p| p.id.as_str()),
        Some("b-only")
    );
    assert_eq!(
        select_partner(&all, DebtorKind::Consumer, "DE", 200_000).map(|p| p.id.as_str()),
        Some("c-big")
    );
    assert_eq!(
        select_partner(&all, DebtorKind::Consumer, "DE", 20000),
        None
    );
    assert_eq!(
        select_partner(&all, DebtorKind::Consumer, "AT", 5000).map(|p| p.id.as_str()),
        Some("a-at")
    );
    assert_eq!(select_partner(&all, DebtorKind::Consumer, "AT", 4999), None);
}

#[test]
fn partner_validation_names_the_field() {
    let mut p = partner("ok", HandoverMode::Auto);
    assert_eq!(p.validate(), Ok(()));
    p.countries = vec!["de".into()];
    assert!(matches!(p.validate(), Err(Refused::Invalid { field, .. }) if field == "countries[0]"));
    p.subject_token = "a.b".into();
    assert!(
        matches!(p.validate(), Err(Refused::Invalid { field, .. }) if field == "subject_token")
    );
}

#[test]
fn escalation_hands_over_in_auto_mode_and_waits_in_approval_mode() {
    let (_, out) = given_when(
        &[],
        Command::Escalated {
            partner: Some(partner("p1", HandoverMode::Auto)),
            principal_open: Money::eur(11900),
        },
    );
    assert_eq!(
        out.unwrap(),
        vec![Event::HandedOver {
            partner_id: "p1".into(),
            handed_over_on: d("2026-05-01"),
            principal_open: Money::eur(11900),
        }]
    );
    let (_, out) = given_when(
        &[],
        Command::Escalated {
            partner: Some(partner("p1", HandoverMode::Approval)),
            principal_open: Money::eur(11900),
        },
    );
    assert_eq!(
        out.unwrap()[0].event_type(),
        "collection.approval_requested.v1"
    );
    // No partner: nothing; a redelivered escalation after the hand-over: nothing.
    let (_, out) = given_when(
        &[],
        Command::Escalated {
            partner: None,
            principal_open: Money::eur(11900),
        },
    );
    assert_eq!(out.unwrap(), vec![]);
    let (_, out) = given_when(
        &[handed("p1")],
        Command::Escalated {
            partner: Some(partner("p1", HandoverMode::Auto)),
            principal_open: Money::eur(11900),
        },
    );
    assert_eq!(out.unwrap(), vec![]);
}

#[test]
fn approval_hold_and_write_off() {
    let waiting = Event::ApprovalRequested {
        partner_id: "p1".into(),
        principal_open: Money::eur(11900),
    };
    let (_, out) = given_when(
        std::slice::from_ref(&waiting),
        Command::Hold {
            reason: "talk first".into(),
        },
    );
    assert_eq!(out.unwrap()[0].event_type(), "collection.held.v1");
    let (_, out) = given_when(
        std::slice::from_ref(&waiting),
        Command::Approve {
            partner: partner("p1", HandoverMode::Approval),
            principal_open: Money::eur(11900),
        },
    );
    assert_eq!(out.unwrap()[0].event_type(), "case.handed_over.v1");
    let (_, out) = given_when(
        &[waiting],
        Command::WriteOff {
            reason: "insolvent".into(),
        },
    );
    assert!(matches!(&out.unwrap()[0], Event::Closed { outcome, .. } if outcome == "written_off"));
    // With a partner: write-off needs a recall first.
    let (_, out) = given_when(&[handed("p1")], Command::WriteOff { reason: "x".into() });
    assert!(matches!(out, Err(Refused::Precondition(_))));
}

#[test]
fn reports_come_in_order() {
    // A payment before acceptance is refused.
    let (_, out) = given_when(
        &[handed("p1")],
        report(
            "p1",
            Report::PaymentCollected {
                principal: Money::eur(100),
                costs: Money::eur(0),
                collected_on: d("2026-04-20"),
            },
        ),
    );
    assert!(matches!(out, Err(Refused::Precondition(_))));
    // Another partner's report is refused.
    let (_, out) = given_when(&[handed("p1")], report("p2", Report::Accepted));
    assert!(matches!(out, Err(Refused::Precondition(_))));
    // Accepted twice is refused.
    let (_, out) = given_when(
        &[handed("p1"), accepted("p1")],
        report("p1", Report::Accepted),
    );
    assert!(matches!(out, Err(Refused::Precondition(_))));
    // Rejected sends it back: no further report from that partner.
    let rejected = Event::Reported {
        partner_id: "p1".into(),
        report: Report::Rejected {
            reason: "too old".into(),
        },
        costs_waived: false,
    };
    let (state, out) = given_when(
        &[handed("p1"), rejected],
        report(
            "p1",
            Report::Closed {
                note: String::new(),
            },
        ),
    );
    assert_eq!(
        state.phase,
        Phase::Rejected {
            partner_id: "p1".into()
        }
    );
    assert!(out.is_err());
}

#[test]
fn paying_the_principal_closes_the_case() {
    let given = [handed("p1"), accepted("p1")];
    let (_, out) = given_when(
        &given,
        report(
            "p1",
            Report::PaymentCollected {
                principal: Money::eur(5000),
                costs: Money::eur(1000),
                collected_on: d("2026-04-20"),
            },
        ),
    );
    let events = out.unwrap();
    assert_eq!(events.len(), 1);
    let mut all = given.to_vec();
    all.extend(events);
    let state = fold(&all);
    assert_eq!(state.principal_open, Some(Money::eur(6900)));
    assert_eq!(state.costs_collected, 1000);
    // More than open: refused.
    let out = decide(
        &state,
        &report(
            "p1",
            Report::PaymentCollected {
                principal: Money::eur(7000),
                costs: Money::eur(0),
                collected_on: d("2026-04-21"),
            },
        ),
        d("2026-04-21"),
    );
    assert!(matches!(out, Err(Refused::Invalid { .. })));
    let out = decide(
        &state,
        &Command::Report {
            partner_id: "p1".into(),
            report: Report::PaymentCollected {
                principal: Money::eur(6900),
                costs: Money::eur(0),
                collected_on: d("2026-04-21"),
            },
            waive_costs_if_principal_paid: true,
        },
        d("2026-04-21"),
    )
    .unwrap();
    assert_eq!(
        events_types(&out),
        vec!["collection.status_reported.v1", "case.closed.v1"]
    );
    assert!(matches!(
        &out[0],
        Event::Reported {
            costs_waived: true,
            ..
        }
    ));
    let closed = fold(all.iter().chain(&out));
    assert!(closed.is_closed());
    assert!(decide(&closed, &report("p1", Report::Accepted), d("2026-04-22")).is_err());
}

fn events_types(e: &[Event]) -> Vec<&'static str> {
    e.iter().map(Event::event_type).collect()
}

#[test]
fn court_instalments_uncollectible_and_recall() {
    let given = [handed("p1"), accepted("p1")];
    let (_, out) = given_when(
        &given,
        report(
            "p1",
            Report::CourtProcedureStarted {
                reference: "26-1234567-0-3".into(),
                court: "AG Hagen".into(),
            },
        ),
    );
    assert_eq!(out.unwrap().len(), 1);
    let (_, out) = given_when(
        &given,
        report(
            "p1",
            Report::InstalmentAgreement {
                instalments: 0,
                first_due: d("2026-06-01"),
                note: String::new(),
            },
        ),
    );
    assert!(out.is_err());
    let (_, out) = given_when(
        &given,
        report(
            "p1",
            Report::Uncollectible {
                reason: "insolvency".into(),
            },
        ),
    );
    assert_eq!(
        events_types(&out.unwrap()),
        vec!["collection.status_reported.v1", "case.closed.v1"]
    );
    let (_, out) = given_when(
        &given,
        Command::Recall {
            reason: "settled directly".into(),
        },
    );
    let out = out.unwrap();
    assert_eq!(events_types(&out), vec!["collection.recalled.v1"]);
    let recalled = fold(given.iter().chain(&out));
    assert!(
        decide(
            &recalled,
            &report(
                "p1",
                Report::Closed {
                    note: String::new()
                }
            ),
            d("2026-05-02")
        )
        .is_err()
    );
    // Recalled: may be approved again.
    assert!(
        decide(
            &recalled,
            &Command::Approve {
                partner: partner("p2", HandoverMode::Approval),
                principal_open: Money::eur(11900)
            },
            d("2026-05-02")
        )
        .is_ok()
    );
}

#[test]
fn currency_is_checked() {
    let given = [handed("p1"), accepted("p1")];
    let (_, out) = given_when(
        &given,
        report(
            "p1",
            Report::PaymentCollected {
                principal: Money::new(100, "USD".parse::<Currency>().unwrap()),
                costs: Money::eur(0),
                collected_on: d("2026-04-20"),
            },
        ),
    );
    assert!(matches!(out, Err(Refused::Invalid { .. })));
}

/// A business case run by the dunning core to its escalation, with a partial payment.
fn escalated_business_case() -> DunningCase {
    use mahnwerk_dunning::dunning_case::{
        CaseFacts, DunningCommand, DunningEvent, decide as dd, evolve as de,
    };
    use mahnwerk_dunning::law::calendar::FederalState;
    use mahnwerk_dunning::policy::Policy;
    let facts = CaseFacts {
        invoice_number: "RE-1".into(),
        debtor_key: "K1".into(),
        debtor: DebtorKind::Business,
        issue_date: d("2026-01-02"),
        due_date: d("2026-01-16"),
        principal: Money::eur(119_000),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    };
    let mut state = None;
    let apply = |state: &mut Option<DunningCase>, cmd: DunningCommand, day: NaiveDate| {
        let events: Vec<DunningEvent> = dd(state.as_ref(), &cmd, day).unwrap();
        for e in &events {
            *state = de(state.take(), e);
        }
    };
    apply(
        &mut state,
        DunningCommand::Open {
            facts,
            policy: Policy::default_business(FederalState::NW),
        },
        d("2026-01-02"),
    );
    let mut day = d("2026-01-03");
    let mut paid = false;
    while state.as_ref().unwrap().escalated_on.is_none() {
        apply(&mut state, DunningCommand::Advance, day);
        if !paid && state.as_ref().unwrap().steps.len() >= 2 {
            apply(
                &mut state,
                DunningCommand::RecordPayment {
                    payment_id: "p1".into(),
                    amount: Money::eur(20_000),
                    date: day,
                },
                day,
            );
            paid = true;
        }
        day = day.succ_opt().unwrap();
        assert!(day < d("2026-12-31"), "never escalated");
    }
    state.unwrap()
}

#[test]
fn claim_breaks_down_principal_costs_and_interest_to_the_handover_date() {
    let case = escalated_business_case();
    let on = case.escalated_on.unwrap() + chrono::Duration::days(3);
    let c = claim(&case, on).unwrap();
    // The business lump sum is charged once and the fees are offset against it.
    assert_eq!(c.lump_sum, Money::eur(4000));
    assert_eq!(
        c.dunning_fees.minor + c.lump_sum_offset.minor > 0,
        case.fees + case.lump_sum_offset > 0
    );
    assert_eq!(c.paid, Money::eur(20_000));
    let calc = c.interest.as_ref().expect("in default: interest");
    assert!(!calc.periods.is_empty());
    assert_eq!(calc.periods.last().unwrap().to, on);
    assert!(calc.periods.iter().all(
        |p| p.margin == mahnwerk_dunning::law::interest::statutory_margin(DebtorKind::Business)
    ));
    assert!(
        c.interest_total.minor > case.interest,
        "interest runs on to the hand-over date"
    );
    // § 367: the payment went to costs and interest first, the rest to the principal.
    assert!(c.principal_open.minor > 119_000 - 20_000);
    assert_eq!(
        c.total_open.minor,
        c.principal_open.minor + c.costs_open.minor + c.interest_open.minor
    );
    // Earlier hand-over date, less interest.
    let earlier = claim(&case, case.escalated_on.unwrap()).unwrap();
    assert!(earlier.interest_total.minor < c.interest_total.minor);
}

#[test]
fn a_per_case_waiver_marks_the_closing_payment() {
    let given = [handed("p1"), accepted("p1")];
    let (_, out) = given_when(
        &given,
        Command::WaiveCosts {
            reason: "good customer".into(),
        },
    );
    let waived = out.unwrap();
    assert_eq!(events_types(&waived), vec!["collection.costs_waived.v1"]);
    let state = fold(given.iter().chain(&waived));
    assert!(state.costs_waived);
    // Twice: nothing more.
    assert_eq!(
        decide(
            &state,
            &Command::WaiveCosts { reason: "x".into() },
            d("2026-05-01")
        )
        .unwrap(),
        vec![]
    );
    let out = decide(
        &state,
        &report(
            "p1",
            Report::PaymentCollected {
                principal: Money::eur(11900),
                costs: Money::eur(0),
                collected_on: d("2026-05-01"),
            },
        ),
        d("2026-05-01"),
    )
    .unwrap();
    assert!(matches!(
        &out[0],
        Event::Reported {
            costs_waived: true,
            ..
        }
    ));
    // Not with a partner: refused.
    let (_, out) = given_when(&[], Command::WaiveCosts { reason: "x".into() });
    assert!(out.is_err());
}
