//! Consolidation: a debtor's cases due for a step on the same day become one letter when the
//! policy asks for it.
//!
//! Cases group by debtor key and currency (amounts in different currencies never add up). The
//! letter takes the title and tone of its most advanced step and the latest payment deadline
//! of its lines, so no case's deadline is shortened; each line keeps its own step and amounts.

use crate::case::StepReached;
use crate::policy::Tone;
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Money};
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
    /// Sum of the lines' balances.
    pub total: Money,
    pub lines: Vec<DueStep>,
}

fn letter(lines: Vec<DueStep>) -> Option<Letter> {
    let top = lines.iter().max_by_key(|l| (l.step.number, l.step.tone))?;
    let currency: Currency = top.step.balance.currency;
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
        total: Money::new(lines.iter().map(|l| l.step.balance.minor).sum(), currency),
        lines,
    })
}

/// Group due steps into letters: one per debtor and currency for cases whose policy
/// consolidates, one per case otherwise. Output is ordered by debtor key, then case id.
pub fn consolidate(due: Vec<DueStep>) -> Vec<Letter> {
    let mut groups: BTreeMap<(String, String, String), Vec<DueStep>> = BTreeMap::new();
    for item in due {
        let key = if item.consolidate {
            (
                item.debtor_key.clone(),
                item.step.balance.currency.to_string(),
                String::new(),
            )
        } else {
            (
                item.debtor_key.clone(),
                item.step.balance.currency.to_string(),
                item.case_id.clone(),
            )
        };
        groups.entry(key).or_default().push(item);
    }
    groups
        .into_values()
        .filter_map(|mut lines| {
            lines.sort_by(|a, b| a.case_id.cmp(&b.case_id));
            letter(lines)
        })
        .collect()
}
