//! The CLI calculators, consolidation and preview, driven directly.

use chrono::NaiveDate;
use clap::Parser;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::cli::{LawCommand, PolicyCommand, run_law, run_policy};
use mahnwerk_dunning::consolidate::{DueStep, consolidate};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCommand, DunningEvent, StepReached, decide, evolve,
};
use mahnwerk_dunning::law::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_dunning::preview::{PreviewCase, Scheduled, preview};
use std::path::PathBuf;

#[derive(Parser)]
struct Law {
    #[command(subcommand)]
    cmd: LawCommand,
}

#[derive(Parser)]
struct Pol {
    #[command(subcommand)]
    cmd: PolicyCommand,
}

fn law(args: &[&str]) -> Result<String, String> {
    let parsed = Law::try_parse_from(std::iter::once("law").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run_law(parsed.cmd, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

fn policy(args: &[&str]) -> Result<String, String> {
    let parsed = Pol::try_parse_from(std::iter::once("policy").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    run_policy(parsed.cmd, &mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(out).unwrap())
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mahnwerk-dunning-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn law_interest_json_has_the_documented_shape() {
    // Reference case 3: business 5000.00 across 2025-07-01 → 4632 + 4361 = 8993, lump sum 4000.
    let out = law(&[
        "interest",
        "--principal",
        "5000.00",
        "--currency",
        "EUR",
        "--from",
        "2025-06-01",
        "--to",
        "2025-07-31",
        "--business",
        "--json",
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "periods": [
                {"from": "2025-06-01", "to": "2025-06-30", "days": 30, "base_rate": "2.27", "rate": "11.27", "principal": 500000, "interest": 4632},
                {"from": "2025-07-01", "to": "2025-07-31", "days": 31, "base_rate": "1.27", "rate": "10.27", "principal": 500000, "interest": 4361}
            ],
            "interest_total": 8993,
            "lump_sum": 4000
        })
    );
}

#[test]
fn law_interest_with_a_payment_prints_the_periods_and_the_crediting() {
    // Reference case 10 (consumer, 500.00 paid on 2025-07-16): 2.58 + 1.38 = 3.96.
    let out = law(&[
        "interest",
        "--principal",
        "1000",
        "--from",
        "2025-07-01",
        "--to",
        "2025-07-31",
        "--consumer",
        "--payment",
        "2025-07-16:500.00",
    ])
    .unwrap();
    assert!(
        out.contains(
            "2025-07-16  2025-07-31     16      1.27%   6.27%          502.58        1.38"
        ),
        "{out}"
    );
    assert!(
        out.contains("payment 2025-07-16 of 500.00: costs 0.00, interest 2.58, principal 497.42"),
        "{out}"
    );
    assert!(out.contains("Interest total: 3.96 EUR"), "{out}");
    assert!(out.contains("Lump sum: none"), "{out}");
}

#[test]
fn law_interest_refuses_floats_and_needs_a_party() {
    let err = law(&[
        "interest",
        "--principal",
        "12.345",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
        "--consumer",
    ])
    .unwrap_err();
    assert!(err.contains("--principal"), "{err}");
    assert!(
        law(&[
            "interest",
            "--principal",
            "1",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-02"
        ])
        .is_err()
    );
    assert!(
        law(&[
            "interest",
            "--principal",
            "1",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-02",
            "--consumer",
            "--business"
        ])
        .is_err()
    );
    // Past the base-rate table: the last published rate, marked provisional (not an error).
    let out = law(&[
        "interest",
        "--principal",
        "1000",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
        "--consumer",
    ])
    .unwrap();
    assert!(out.contains("1.27%   6.27%"), "{out}");
    assert!(out.contains("(provisional)"), "{out}");
    let err = law(&[
        "interest",
        "--principal",
        "1",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
        "--consumer",
        "--payment",
        "x",
    ])
    .unwrap_err();
    assert!(err.contains("expected DATE:AMOUNT"), "{err}");
}

#[test]
fn law_deadline_json_and_text() {
    let out = law(&[
        "deadline",
        "--from",
        "2026-03-20",
        "--days",
        "14",
        "--state",
        "BY",
        "--json",
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deadline"], "2026-04-07");
    assert_eq!(v["unmoved"], "2026-04-03");
    assert_eq!(
        v["reasons"][0],
        "2026-04-03 is a public holiday in BY (Karfreitag)"
    );
    assert_eq!(v.as_object().unwrap().len(), 3);
    let text = law(&[
        "deadline",
        "--from",
        "2026-05-21",
        "--days",
        "14",
        "--state",
        "BE",
    ])
    .unwrap();
    assert!(text.contains("Deadline: 2026-06-04"), "{text}");
    assert!(
        law(&[
            "deadline",
            "--from",
            "2026-05-21",
            "--days",
            "14",
            "--state",
            "XX"
        ])
        .is_err()
    );
}

#[test]
fn policy_check_accepts_the_defaults_and_lists_every_error() {
    let good = tmp(
        "good.json",
        &serde_json::to_string_pretty(&Policy::default_business(FederalState::NW)).unwrap(),
    );
    let out = policy(&["check", good.to_str().unwrap()]).unwrap();
    assert!(
        out.contains("ok (policy default-business version 1 with 3 step(s))"),
        "{out}"
    );
    let mut bad = Policy::default_consumer(FederalState::NW);
    bad.steps[1].fee = Money::eur(-5);
    bad.steps[2].offset.days = 0;
    let bad = tmp("bad.json", &serde_json::to_string(&bad).unwrap());
    let err = policy(&["check", bad.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("steps[1].fee: must not be negative"), "{err}");
    assert!(
        err.contains("steps[2].offset.days: must be at least 1 day after the previous step"),
        "{err}"
    );
    let err = policy(&["check", "/nonexistent/policy.json"]).unwrap_err();
    assert!(
        err.starts_with("cannot read /nonexistent/policy.json"),
        "{err}"
    );
}

fn consumer_facts() -> CaseFacts {
    CaseFacts {
        invoice_number: "RE-1".into(),
        debtor_key: "K-1".into(),
        debtor: DebtorKind::Consumer,
        issue_date: d("2026-03-01"),
        due_date: d("2026-03-15"),
        principal: Money::eur(11_900),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    }
}

#[test]
fn policy_simulate_prints_the_steps_a_case_would_take() {
    let pol = tmp(
        "sim-policy.json",
        &serde_json::to_string(&Policy::default_consumer(FederalState::NW)).unwrap(),
    );
    let inv = tmp(
        "sim-invoice.json",
        &serde_json::to_string(&consumer_facts()).unwrap(),
    );
    let events = tmp(
        "sim-events.json",
        r#"[{"date":"2026-04-01","command":{"type":"record_payment","payment_id":"p1","amount":{"minor":5000,"currency":"EUR"},"date":"2026-04-01"}}]"#,
    );
    let out = policy(&[
        "simulate",
        pol.to_str().unwrap(),
        "--invoice",
        inv.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--until",
        "2026-06-30",
    ])
    .unwrap();
    // Step 1 on 03-20; payment on 04-01 re-anchors step 2 to 04-15; step 3 on 04-29; hand-over
    // 8 days later on 05-07 (the last deadline, 05-06, has passed).
    assert!(
        out.contains("2026-03-20  step 1 Zahlungserinnerung"),
        "{out}"
    );
    assert!(out.contains("2026-04-15  step 2 1. Mahnung"), "{out}");
    assert!(out.contains("2026-04-29  step 3 Letzte Mahnung"), "{out}");
    assert!(out.contains("2026-05-07  dunning.escalated.v1"), "{out}");
    assert!(out.contains("3 step(s), 1 escalation(s)"), "{out}");
}

#[test]
fn preview_reports_steps_fees_and_interest_without_side_effects() {
    let policy = Policy::default_business(FederalState::NW);
    let mut facts = consumer_facts();
    facts.debtor = DebtorKind::Business;
    facts.principal = Money::eur(100_000);
    let paid = PreviewCase {
        case_id: "B".into(),
        facts: facts.clone(),
        events: vec![Scheduled {
            date: d("2026-03-25"),
            command: DunningCommand::RecordPayment {
                payment_id: "p".into(),
                amount: Money::eur(100_000),
                date: d("2026-03-25"),
            },
        }],
    };
    let open = PreviewCase {
        case_id: "A".into(),
        facts,
        events: vec![],
    };
    let report = preview(&policy, &[open, paid], d("2026-04-09")).unwrap();
    // Case A: steps on 03-20, 03-30 (lump 40.00, which covers both 5.00 fees, § 288 Abs. 5
    // S. 3; interest 1.97), 04-09 (interest 2.81; see case_rules). Case B: step 1 on 03-20,
    // then settled on 03-25.
    assert_eq!(report.steps, 4);
    assert_eq!(report.fees, Money::eur(0));
    assert_eq!(report.lump_sums, Money::eur(4_000));
    assert_eq!(report.interest, Money::eur(197 + 281));
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.case_id == "B" && l.event_type == "dunning.settled.v1")
    );
}

fn step_for(facts: CaseFacts, policy: Policy, day: &str) -> StepReached {
    let mut state = None;
    for (cmd, on) in [
        (DunningCommand::Open { facts, policy }, "2026-03-01"),
        (DunningCommand::Advance, day),
    ] {
        for e in decide(state.as_ref(), &cmd, d(on)).unwrap() {
            state = evolve(state, &e);
            if let DunningEvent::StepReached(s) = e {
                return *s;
            }
        }
    }
    panic!("no step on {day}");
}

#[test]
fn given_consolidation_then_a_debtors_cases_due_the_same_day_share_one_letter() {
    let policy = Policy::default_consumer(FederalState::NW);
    let mut f2 = consumer_facts();
    f2.invoice_number = "RE-2".into();
    f2.principal = Money::eur(5_000);
    let mut f3 = consumer_facts();
    f3.debtor_key = "K-2".into();
    let due = vec![
        DueStep {
            case_id: "RE-2".into(),
            debtor_key: "K-1".into(),
            consolidate: true,
            step: step_for(f2, policy.clone(), "2026-03-22"),
        },
        DueStep {
            case_id: "RE-1".into(),
            debtor_key: "K-1".into(),
            consolidate: true,
            step: step_for(consumer_facts(), policy.clone(), "2026-03-22"),
        },
        DueStep {
            case_id: "RE-3".into(),
            debtor_key: "K-2".into(),
            consolidate: true,
            step: step_for(f3, policy.clone(), "2026-03-22"),
        },
    ];
    let letters = consolidate(due.clone());
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].debtor_key, "K-1");
    assert_eq!(
        letters[0]
            .lines
            .iter()
            .map(|l| l.case_id.as_str())
            .collect::<Vec<_>>(),
        ["RE-1", "RE-2"]
    );
    assert_eq!(letters[0].total, Money::eur(16_900));
    assert_eq!(letters[0].title, "Zahlungserinnerung");
    // Without consolidation every case gets its own letter.
    let single: Vec<DueStep> = due
        .into_iter()
        .map(|mut d| {
            d.consolidate = false;
            d
        })
        .collect();
    assert_eq!(consolidate(single).len(), 3);
}

#[test]
fn the_shipped_example_files_check_and_simulate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples-data");
    let p = dir.join("policy-consumer.json");
    let out = policy(&["check", p.to_str().unwrap()]).unwrap();
    assert!(
        out.contains(": ok (policy acme-consumer version 1 with 3 step(s))"),
        "{out}"
    );
    let out = policy(&[
        "simulate",
        p.to_str().unwrap(),
        "--invoice",
        dir.join("invoice.json").to_str().unwrap(),
        "--events",
        dir.join("events.json").to_str().unwrap(),
        "--until",
        "2026-06-30",
        "--json",
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Step 1 due on Sunday 03-22, dated Monday 03-23 (letters go out on business days), payment 04-01 re-anchors step 2 to 04-15, promise 04-20..05-05 pauses,
    // missed on 05-06 → resumes, step 3 14 days later on 05-20, hand-over 06-03.
    let types: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "dunning.case_opened.v1",
            "dunning.step_reached.v1",
            "dunning.payment_recorded.v1",
            "dunning.step_reached.v1",
            "dunning.paused.v1",
            "dunning.resumed.v1",
            "dunning.step_reached.v1",
            "dunning.escalated.v1"
        ]
    );
    let dates: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["date"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2026-03-01",
            "2026-03-23",
            "2026-04-01",
            "2026-04-15",
            "2026-04-20",
            "2026-05-06",
            "2026-05-20",
            "2026-06-03"
        ]
    );
    assert_eq!(v["steps"], 3);
}
