//! The given/when/then harness of the case tests: one case, commands decided and folded.
#![allow(dead_code)]

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand as Cmd, DunningEvent as Ev, StepReached, decide, evolve,
};
use mahnwerk_dunning::law::FederalState;
use mahnwerk_dunning::policy::Policy;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn facts(debtor: DebtorKind, principal: i64) -> CaseFacts {
    CaseFacts {
        invoice_number: "RE-2026-001".into(),
        debtor_key: "K-1".into(),
        debtor,
        issue_date: d("2026-03-01"),
        due_date: d("2026-03-15"),
        principal: Money::eur(principal),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    }
}

pub struct Harness {
    pub state: Option<DunningCase>,
}

impl Harness {
    pub fn given(facts: CaseFacts, policy: Policy) -> Self {
        let mut h = Harness { state: None };
        h.when(Cmd::Open { facts, policy }, "2026-03-01");
        h
    }

    pub fn try_when(&mut self, cmd: Cmd, day: &str) -> mahnwerk_dunning::Result<Vec<Ev>> {
        let events = decide(self.state.as_ref(), &cmd, d(day))?;
        for e in &events {
            self.state = evolve(self.state.take(), e);
        }
        Ok(events)
    }

    pub fn when(&mut self, cmd: Cmd, day: &str) -> Vec<Ev> {
        self.try_when(cmd, day).unwrap()
    }

    pub fn advance(&mut self, day: &str) -> Vec<Ev> {
        self.when(Cmd::Advance, day)
    }

    pub fn state(&self) -> &DunningCase {
        self.state.as_ref().unwrap()
    }
}

pub fn steps(events: &[Ev]) -> Vec<&StepReached> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::StepReached(s) => Some(s.as_ref()),
            _ => None,
        })
        .collect()
}

pub fn types(events: &[Ev]) -> Vec<&'static str> {
    events.iter().map(Ev::event_type).collect()
}

pub fn consumer() -> Harness {
    Harness::given(
        facts(DebtorKind::Consumer, 11_900),
        Policy::default_consumer(FederalState::NW),
    )
}
