//! Consolidation: a debtor's cases due for a step on the same day become one letter when the
//! policy asks for it.
//!
//! # Rules ([`consolidate_debtor`])
//! - Cases group by debtor key and currency (amounts in different currencies never add up).
//! - **One letter, one fee**: a consolidated letter costs what one letter costs, so it charges
//!   one fee, the highest fee among its lines, on the line that carries it (ties: the most
//!   advanced step, then the case id); every other line's fee is waived and its balance
//!   lowered by it. The § 288 Abs. 5 lump sum and interest stay per line: they belong to each
//!   claim, not to the letter.
//! - **No skipped escalation**: an invoice at its first step (it never had an earlier letter)
//!   is not put into a letter of a later step such as the "Letzte Mahnung": those lines get a
//!   letter of their own at their own step (with its own one fee).
//! - The letter takes the title and tone of its most advanced step and the latest payment
//!   deadline of its lines, so no case's deadline is shortened; each line keeps its own step,
//!   and its next step or hand-over waits for the printed deadline (`printed_deadline` of the
//!   case state, from the line's [`Consolidation`]).
//!
//! Steps are decided per case ([`crate::dunning_case::decide`]); apply [`consolidate_debtor`] to the
//! steps due on one day for one debtor before they are appended, [`Letter::stamp`] each letter
//! of more than one line with its [`Consolidation`], and append each line's adjusted
//! [`StepReached`] to its own case stream.

use crate::dunning_case::StepReached;
use crate::policy::Tone;
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One case whose step is due, as the dunning service collects them for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueStep {
    pub case_id: String,
    pub debtor_key: String,
    /// Whether this case's policy allows consolidation.
    pub consolidate: bool,
    pub step: StepReached,
}

/// One letter to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    pub debtor_key: String,
    pub title: String,
    pub tone: Tone,
    pub deadline: NaiveDate,
    /// The one fee this letter charges (the sum of its lines' fees after consolidation).
    pub fee: Money,
    /// Sum of the lines' balances.
    pub total: Money,
    /// The lines, by case id, with their steps as they are to be appended.
    pub lines: Vec<DueStep>,
}

/// What every line of a consolidated letter carries (`consolidation` of
/// `dunning.step_reached.v1`): the letter as a whole, so the letters service can write one
/// letter from any of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consolidation {
    /// Deterministic id of the letter (the service derives it from tenant, debtor, date and
    /// step), so two writers deciding the same day produce the same consolidation.
    pub id: String,
    /// The member cases (ids as in their streams), sorted.
    pub cases: Vec<String>,
    /// The case whose line carries the letter's one fee.
    pub carrier: String,
    /// The letter's step number (its most advanced line's).
    pub step: u32,
    pub title: String,
    pub tone: Tone,
    pub template_id: String,
    /// The channels of the most advanced line's step (the letter goes as that step says).
    pub channels: Vec<crate::policy::Channel>,
    /// The latest payment deadline of the lines: the one the letter prints.
    pub deadline: NaiveDate,
    /// The letter's one fee and its total (sum of the lines' balances) as decided.
    pub fee: Money,
    pub total: Money,
}

impl Letter {
    /// Mark the lines of a letter of more than one line as its consolidation `id` (a letter
    /// of one line stays a plain step).
    pub fn stamp(&mut self, id: &str) {
        if self.lines.len() < 2 {
            return;
        }
        let Some(top) = self
            .lines
            .iter()
            .max_by_key(|l| (l.step.number, l.step.tone))
        else {
            return;
        };
        let carrier = self
            .lines
            .iter()
            .find(|l| l.step.fee.minor > 0)
            .unwrap_or(top);
        let c = Consolidation {
            id: id.to_owned(),
            cases: self.lines.iter().map(|l| l.case_id.clone()).collect(),
            carrier: carrier.case_id.clone(),
            step: top.step.number,
            title: self.title.clone(),
            tone: self.tone,
            template_id: top.step.template_id.clone(),
            channels: top.step.channels.clone(),
            deadline: self.deadline,
            fee: self.fee,
            total: self.total,
        };
        for line in &mut self.lines {
            line.step.consolidation = Some(c.clone());
        }
    }
}

/// Why a line's fee was not charged on a consolidated letter.
pub fn fee_waived_reason(carrier: &str) -> String {
    format!("one fee per consolidated letter: charged with {carrier}")
}

fn letter(mut lines: Vec<DueStep>) -> Option<Letter> {
    lines.sort_by(|a, b| a.case_id.cmp(&b.case_id));
    // The line that carries the letter's one fee.
    let carrier = lines
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            (a.step.fee.minor, a.step.number)
                .cmp(&(b.step.fee.minor, b.step.number))
                // Equal: the first case id wins (max_by keeps the last of equals).
                .then_with(|| b.case_id.cmp(&a.case_id))
        })
        .map(|(i, _)| i)?;
    let carrier_id = lines[carrier].case_id.clone();
    for (i, line) in lines.iter_mut().enumerate() {
        let fee = line.step.fee.minor;
        if i != carrier && fee > 0 {
            line.step.fee = Money::new(0, line.step.fee.currency);
            line.step.balance =
                Money::new(line.step.balance.minor - fee, line.step.balance.currency);
            line.step.fee_waived = Some(fee_waived_reason(&carrier_id));
        }
    }
    let top = lines.iter().max_by_key(|l| (l.step.number, l.step.tone))?;
    let currency = top.step.balance.currency;
    Some(Letter {
        debtor_key: top.debtor_key.clone(),
        title: top.step.title.clone(),
        tone: lines
            .iter()
            .map(|l| l.step.tone)
            .max()
            .unwrap_or(top.step.tone),
        deadline: lines
            .iter()
            .map(|l| l.step.deadline.deadline)
            .max()
            .unwrap_or(top.step.date),
        fee: Money::new(lines.iter().map(|l| l.step.fee.minor).sum(), currency),
        total: Money::new(lines.iter().map(|l| l.step.balance.minor).sum(), currency),
        lines,
    })
}

/// The consolidated letters for the steps due on one day for one debtor in one currency (all
/// lines consolidating): usually one letter with one fee; two when some invoices are at their
/// first step while others are further on (the first steps get a letter of their own). Output
/// is ordered by the letters' step, first steps first.
pub fn consolidate_debtor(due: Vec<DueStep>) -> Vec<Letter> {
    let top = due.iter().map(|l| l.step.number).max().unwrap_or(0);
    let (first, later): (Vec<DueStep>, Vec<DueStep>) = if top > 1 {
        due.into_iter().partition(|l| l.step.number == 1)
    } else {
        (Vec::new(), due)
    };
    [first, later]
        .into_iter()
        .filter(|lines| !lines.is_empty())
        .filter_map(letter)
        .collect()
}

/// Group due steps into letters: per debtor and currency for cases whose policy consolidates
/// ([`consolidate_debtor`]), one per case otherwise. Output is ordered by debtor key, then
/// currency, then case id (a consolidated group sorts before single letters).
pub fn consolidate(due: Vec<DueStep>) -> Vec<Letter> {
    let mut groups: BTreeMap<(String, String, String), Vec<DueStep>> = BTreeMap::new();
    for item in due {
        let single = if item.consolidate {
            String::new()
        } else {
            item.case_id.clone()
        };
        groups
            .entry((
                item.debtor_key.clone(),
                item.step.balance.currency.to_string(),
                single,
            ))
            .or_default()
            .push(item);
    }
    groups.into_values().flat_map(consolidate_debtor).collect()
}
