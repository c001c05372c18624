//! Dunning policies: a tenant's ordered steps, plain data (serde) so they can be stored as events
//! and edited over gRPC, with validation that names the field at fault.
//!
//! A [`PolicyBook`] holds the tenant's policy and overrides per debtor group and per debtor;
//! [`PolicyBook::resolve`] picks the most specific one. Every policy carries a `version` that
//! increases with each edit; a case keeps the snapshot it was opened with.

use crate::error::{DunningError, Result};
use crate::law::calendar::{FederalState, add_business_days};
use crate::law::interest::DayCount;
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::{Currency, DebtorKind, FieldErrors, Money};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Template ids the letters crate ships (`mahnwerk-letters`: `templates/{id}.{lang}.j2`, one per
/// letter kind); a step naming any other template is refused.
pub const KNOWN_TEMPLATES: &[&str] = &[
    "reminder",
    "first_notice",
    "last_notice",
    "consolidated_notice",
];

/// How a letter sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Friendly,
    Neutral,
    Firm,
}

/// Where a letter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Post,
    Sms,
    Portal,
}

/// Calendar days or business days (Monday–Friday without the state's public holidays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    #[default]
    Calendar,
    Business,
}

/// What a step's offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    DueDate,
    PreviousStep,
}

/// When a step is due: `days` after its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offset {
    pub days: i32,
    pub after: Anchor,
    #[serde(default)]
    pub kind: DayKind,
}

/// One step of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// "Zahlungserinnerung", "1. Mahnung", "Letzte Mahnung" or the tenant's own.
    pub title: String,
    pub tone: Tone,
    pub template_id: String,
    pub channels: Vec<Channel>,
    pub offset: Offset,
    /// A friendly reminder before (or on) the due date; only such steps may lie before it.
    #[serde(default)]
    pub pre_due: bool,
    /// Calendar days from the letter date to the payment deadline printed on it (moved per § 193).
    pub payment_deadline_days: u32,
    /// Fee for this letter (never charged for a letter that itself creates default).
    pub fee: Money,
    /// Whether statutory default interest is charged with this letter.
    pub charge_interest: bool,
    /// The letter goes out only while the open balance is at least this much.
    pub min_open: Money,
}

/// What follows the last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum AfterLast {
    /// Hand the case over to collection `after_days` calendar days after the last step.
    Collection { after_days: u32 },
    /// Stop dunning; the case stays open for payments.
    Stop,
}

/// The smallest payment that re-anchors the schedule (gives the debtor the full gap again
/// before the next letter). Smaller payments still count against the balance, but a stream of
/// micro-payments cannot stall dunning forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReanchorMinimum {
    /// At least `percent` % of the balance open before the payment.
    Share { percent: u32 },
    /// At least `amount` (in the policy's currency).
    Fixed { amount: Money },
}

impl Default for ReanchorMinimum {
    fn default() -> Self {
        ReanchorMinimum::Share { percent: 10 }
    }
}

impl ReanchorMinimum {
    /// Whether a payment of `paid` (minor units) against `open_before` re-anchors.
    pub fn reanchors(&self, paid: i64, open_before: i64) -> bool {
        match self {
            ReanchorMinimum::Share { percent } => {
                i128::from(paid) * 100 >= i128::from(*percent) * i128::from(open_before.max(0))
            }
            ReanchorMinimum::Fixed { amount } => paid >= amount.minor,
        }
    }
}

/// Who starts dunning a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The policy runs by itself.
    #[default]
    Automatic,
    /// When the first step is due, taking the case over is offered to the creditor
    /// (`dunning.offered`): approved, the policy runs; declined, the creditor gets the letters
    /// as drafts to send itself and nothing is sent or handed over in its name.
    Creditor,
}

/// A tenant's dunning policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: String,
    /// Increases with every edit.
    pub version: u32,
    pub name: String,
    pub currency: Currency,
    pub steps: Vec<Step>,
    pub after_last: AfterLast,
    /// Place of performance: its public holidays move deadlines (§ 193) and count business days.
    pub state: FederalState,
    /// Group a debtor's letters due on the same day into one.
    #[serde(default)]
    pub consolidate: bool,
    /// Fees and interest stay claimable after the principal is paid (ERPNext #58220); when
    /// false, a case is settled once payments cover the principal and the rest is waived.
    #[serde(default = "yes")]
    pub keep_costs_after_principal_paid: bool,
    /// Charge the € 40 lump sum (§ 288 Abs. 5) to business debtors once per invoice.
    #[serde(default = "yes")]
    pub charge_lump_sum: bool,
    #[serde(default)]
    pub day_count: DayCount,
    /// The tenant's contracts fix the payment date by the calendar (§ 286 Abs. 2 Nr. 1).
    #[serde(default)]
    pub calendar_due_date: bool,
    /// Days from sending a document until it is taken to have reached the debtor.
    #[serde(default = "three")]
    pub delivery_days: u32,
    /// Which payments re-anchor the schedule (default: at least 10 % of the open balance).
    #[serde(default)]
    pub reanchor_minimum: ReanchorMinimum,
    /// Whether dunning runs automatically or on the creditor's approval.
    #[serde(default)]
    pub approval: Approval,
}

fn yes() -> bool {
    true
}

fn three() -> u32 {
    3
}

impl Step {
    fn new(
        title: &str,
        tone: Tone,
        template: &str,
        offset: Offset,
        deadline: u32,
        fee: i64,
        interest: bool,
    ) -> Self {
        Step {
            title: title.to_owned(),
            tone,
            template_id: template.to_owned(),
            channels: vec![Channel::Email, Channel::Post],
            offset,
            pre_due: false,
            payment_deadline_days: deadline,
            fee: Money::eur(fee),
            charge_interest: interest,
            min_open: Money::eur(500),
        }
    }
}

fn after_due(days: i32) -> Offset {
    Offset {
        days,
        after: Anchor::DueDate,
        kind: DayKind::Calendar,
    }
}

fn after_previous(days: i32) -> Offset {
    Offset {
        days,
        after: Anchor::PreviousStep,
        kind: DayKind::Calendar,
    }
}

impl Policy {
    /// Default for consumers: a friendly reminder ("Zahlungserinnerung") 5 days after the due
    /// date (it creates default, so no fee; pay within 10 days), "1. Mahnung" 14 days later
    /// (€ 2.50, interest, 10 days), "Letzte Mahnung" 14 days later (€ 5.00, interest, 7 days),
    /// hand-over to collection 8 days after that: 41 days after the due date, once the last
    /// deadline has passed and the invoice is more than 30 days overdue. Each letter comes after
    /// the previous letter's deadline.
    pub fn default_consumer(state: FederalState) -> Self {
        Policy {
            id: "default-consumer".into(),
            version: 1,
            name: "Standard Verbraucher".into(),
            currency: Currency::EUR,
            steps: vec![
                Step::new(
                    "Zahlungserinnerung",
                    Tone::Friendly,
                    "reminder",
                    after_due(5),
                    10,
                    0,
                    false,
                ),
                Step::new(
                    "1. Mahnung",
                    Tone::Neutral,
                    "first_notice",
                    after_previous(14),
                    10,
                    250,
                    true,
                ),
                Step::new(
                    "Letzte Mahnung",
                    Tone::Firm,
                    "last_notice",
                    after_previous(14),
                    7,
                    500,
                    true,
                ),
            ],
            after_last: AfterLast::Collection { after_days: 8 },
            state,
            consolidate: true,
            keep_costs_after_principal_paid: true,
            charge_lump_sum: false,
            day_count: DayCount::Act365,
            calendar_due_date: false,
            delivery_days: 3,
            reanchor_minimum: ReanchorMinimum::default(),
            approval: Approval::Automatic,
        }
    }

    /// Default for businesses: reminder 5 days after due (7 days to pay), "1. Mahnung" 10 days
    /// later (€ 5.00, interest, € 40 lump sum, 7 days), "Letzte Mahnung" 10 days later (€ 5.00,
    /// 5 days), hand-over to collection 6 days after that: 31 days after the due date, the first
    /// day the invoice is more than 30 days overdue (later if a deadline moved past a holiday).
    pub fn default_business(state: FederalState) -> Self {
        Policy {
            id: "default-business".into(),
            version: 1,
            name: "Standard Unternehmen".into(),
            currency: Currency::EUR,
            steps: vec![
                Step::new(
                    "Zahlungserinnerung",
                    Tone::Friendly,
                    "reminder",
                    after_due(5),
                    7,
                    0,
                    false,
                ),
                Step::new(
                    "1. Mahnung",
                    Tone::Neutral,
                    "first_notice",
                    after_previous(10),
                    7,
                    500,
                    true,
                ),
                Step::new(
                    "Letzte Mahnung",
                    Tone::Firm,
                    "last_notice",
                    after_previous(10),
                    5,
                    500,
                    true,
                ),
            ],
            after_last: AfterLast::Collection { after_days: 6 },
            state,
            consolidate: true,
            keep_costs_after_principal_paid: true,
            charge_lump_sum: true,
            day_count: DayCount::Act365,
            calendar_due_date: false,
            delivery_days: 3,
            reanchor_minimum: ReanchorMinimum::default(),
            approval: Approval::Automatic,
        }
    }

    /// The default for a kind of debtor.
    pub fn default_for(kind: DebtorKind, state: FederalState) -> Self {
        match kind {
            DebtorKind::Consumer => Self::default_consumer(state),
            DebtorKind::Business => Self::default_business(state),
        }
    }

    /// Nominal offset of each step from the due date (calendar or business days as counted).
    fn nominal_offsets(&self) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let days = i64::from(step.offset.days);
            let nominal = match step.offset.after {
                Anchor::DueDate => days,
                Anchor::PreviousStep => out.last().copied().unwrap_or(0) + days,
            };
            out.push(nominal);
        }
        out
    }

    /// Days between step `k - 1` (or the due date for `k = 0`) and step `k`.
    pub fn gap(&self, k: usize) -> i64 {
        let Some(step) = self.steps.get(k) else {
            return 0;
        };
        match (step.offset.after, k) {
            (Anchor::PreviousStep, _) | (Anchor::DueDate, 0) => i64::from(step.offset.days),
            (Anchor::DueDate, _) => {
                let nominal = self.nominal_offsets();
                nominal[k] - nominal[k - 1]
            }
        }
    }

    /// `anchor` plus the gap of step `k`, counted in the step's kind of days.
    pub fn step_date_from(&self, k: usize, anchor: NaiveDate) -> NaiveDate {
        let gap = self.gap(k);
        match self.steps.get(k).map(|s| s.offset.kind) {
            Some(DayKind::Business) => add_business_days(self.state, anchor, gap),
            _ => anchor + Duration::days(gap),
        }
    }

    /// All rules; errors name the field (`steps[1].offset.days`).
    pub fn check(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        if self.id.trim().is_empty() {
            errs.push("id", "must not be empty");
        }
        if self.name.trim().is_empty() {
            errs.push("name", "must not be empty");
        }
        if self.version == 0 {
            errs.push("version", "must be at least 1");
        }
        if self.steps.is_empty() {
            errs.push("steps", "must have at least one step");
        }
        if self.steps.len() > 12 {
            errs.push("steps", "must have at most 12 steps");
        }
        if self.delivery_days > 14 {
            errs.push("delivery_days", "must be at most 14");
        }
        match self.reanchor_minimum {
            ReanchorMinimum::Share { percent } if percent == 0 || percent > 100 => {
                errs.push("reanchor_minimum.percent", "must be between 1 and 100");
            }
            ReanchorMinimum::Fixed { amount } if amount.currency != self.currency => {
                errs.push(
                    "reanchor_minimum.amount",
                    format!(
                        "currency {} differs from the policy's {}",
                        amount.currency, self.currency
                    ),
                );
            }
            ReanchorMinimum::Fixed { amount } if amount.minor <= 0 => {
                errs.push("reanchor_minimum.amount", "must be greater than zero");
            }
            _ => {}
        }
        if self.after_last == (AfterLast::Collection { after_days: 0 }) {
            errs.push("after_last.after_days", "must be at least 1");
        }
        let nominal = self.nominal_offsets();
        let mut seen_post_due = false;
        for (i, step) in self.steps.iter().enumerate() {
            let f = |name: &str| format!("steps[{i}].{name}");
            if step.title.trim().is_empty() {
                errs.push(f("title"), "must not be empty");
            }
            if step.template_id.trim().is_empty() {
                errs.push(f("template_id"), "must not be empty");
            } else if !KNOWN_TEMPLATES.contains(&step.template_id.as_str()) {
                errs.push(
                    f("template_id"),
                    format!("unknown template; one of {}", KNOWN_TEMPLATES.join(", ")),
                );
            }
            if step.channels.is_empty() {
                errs.push(f("channels"), "must name at least one channel");
            }
            if step.payment_deadline_days == 0 || step.payment_deadline_days > 90 {
                errs.push(f("payment_deadline_days"), "must be between 1 and 90");
            }
            for (name, amount) in [("fee", step.fee), ("min_open", step.min_open)] {
                if amount.currency != self.currency {
                    errs.push(
                        f(name),
                        format!(
                            "currency {} differs from the policy's {}",
                            amount.currency, self.currency
                        ),
                    );
                }
                if amount.minor < 0 {
                    errs.push(f(name), "must not be negative");
                }
            }
            if i == 0 && step.offset.after == Anchor::PreviousStep {
                errs.push(
                    f("offset.after"),
                    "the first step has no previous step; use due_date",
                );
            }
            if step.pre_due {
                if seen_post_due {
                    errs.push(
                        f("pre_due"),
                        "pre-due reminders must come before all other steps",
                    );
                }
                if nominal[i] > 0 {
                    errs.push(
                        f("offset.days"),
                        "a pre-due reminder must not lie after the due date",
                    );
                }
                if step.fee.minor > 0 {
                    errs.push(
                        f("fee"),
                        "a pre-due reminder cannot carry a fee (no default yet)",
                    );
                }
                if step.charge_interest {
                    errs.push(
                        f("charge_interest"),
                        "a pre-due reminder cannot charge interest (no default yet)",
                    );
                }
            } else {
                seen_post_due = true;
                if nominal[i] <= 0 {
                    errs.push(
                        f("offset.days"),
                        "lies on or before the due date; mark the step pre_due or move it after the due date",
                    );
                }
            }
            if step.offset.after == Anchor::PreviousStep && step.offset.days <= 0 {
                errs.push(
                    f("offset.days"),
                    "must be at least 1 day after the previous step",
                );
            } else if i > 0 && nominal[i] <= nominal[i - 1] {
                errs.push(
                    f("offset.days"),
                    format!(
                        "offsets must increase: {} days after the due date is not after step {}'s {}",
                        nominal[i],
                        i - 1,
                        nominal[i - 1]
                    ),
                );
            }
        }
        errs
    }

    /// [`Policy::check`] as a `Result`.
    pub fn validate(&self) -> Result<()> {
        let errs = self.check();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(DunningError::InvalidPolicy(errs))
        }
    }
}

/// A tenant's policy with overrides per debtor group and per debtor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBook {
    pub tenant: Policy,
    #[serde(default)]
    pub groups: BTreeMap<String, Policy>,
    #[serde(default)]
    pub debtors: BTreeMap<String, Policy>,
}

impl PolicyBook {
    pub fn new(tenant: Policy) -> Self {
        Self {
            tenant,
            groups: BTreeMap::new(),
            debtors: BTreeMap::new(),
        }
    }

    /// The debtor's own policy, else its group's, else the tenant's.
    pub fn resolve(&self, debtor: Option<&str>, group: Option<&str>) -> &Policy {
        debtor
            .and_then(|d| self.debtors.get(d))
            .or_else(|| group.and_then(|g| self.groups.get(g)))
            .unwrap_or(&self.tenant)
    }

    /// Every policy's errors, prefixed with where it sits (`groups[key].steps[0].fee`).
    pub fn check(&self) -> FieldErrors {
        let mut all = FieldErrors::default();
        let mut add = |prefix: String, p: &Policy| {
            for e in p.check().0 {
                all.0.push(e.under(&prefix));
            }
        };
        add("tenant".into(), &self.tenant);
        for (k, p) in &self.groups {
            add(format!("groups[{k}]"), p);
        }
        for (k, p) in &self.debtors {
            add(format!("debtors[{k}]"), p);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: &Policy) -> Vec<String> {
        p.check().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_defaults_are_valid() {
        for state in FederalState::ALL {
            assert!(Policy::default_consumer(state).check().is_empty());
            assert!(Policy::default_business(state).check().is_empty());
        }
    }

    #[test]
    fn given_decreasing_offsets_then_validation_names_the_step() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[1].offset = after_due(3); // before step 0 at 5 days
        assert_eq!(fields(&p), ["steps[1].offset.days"]);
        let msg = p.validate().unwrap_err().to_string();
        assert!(
            msg.contains(
                "offsets must increase: 3 days after the due date is not after step 0's 5"
            ),
            "{msg}"
        );
    }

    #[test]
    fn given_a_step_before_the_due_date_then_it_must_be_marked_pre_due() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[0].offset = after_due(-3);
        assert_eq!(fields(&p), ["steps[0].offset.days"]);
        p.steps[0].pre_due = true;
        assert!(p.check().is_empty(), "{:?}", p.check());
    }

    #[test]
    fn given_a_pre_due_reminder_with_a_fee_then_it_is_refused() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[0].offset = after_due(-3);
        p.steps[0].pre_due = true;
        p.steps[0].fee = Money::eur(100);
        assert_eq!(fields(&p), ["steps[0].fee"]);
    }

    #[test]
    fn given_a_negative_fee_or_another_currency_then_it_is_refused() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[1].fee = Money::eur(-1);
        p.steps[2].fee = Money::new(100, "CHF".parse().unwrap());
        assert_eq!(fields(&p), ["steps[1].fee", "steps[2].fee"]);
    }

    #[test]
    fn given_an_unknown_template_then_it_is_refused_and_the_defaults_use_the_letters_ids() {
        for p in [
            Policy::default_consumer(FederalState::NW),
            Policy::default_business(FederalState::NW),
        ] {
            let ids: Vec<&str> = p.steps.iter().map(|s| s.template_id.as_str()).collect();
            assert_eq!(ids, ["reminder", "first_notice", "last_notice"]);
        }
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[1].template_id = "dunning-1".into();
        assert_eq!(fields(&p), ["steps[1].template_id"]);
    }

    #[test]
    fn given_a_first_step_after_the_previous_then_it_is_refused() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[0].offset = after_previous(7);
        assert_eq!(fields(&p), ["steps[0].offset.after"]);
    }

    #[test]
    fn policies_round_trip_as_json_and_reject_unknown_keys() {
        let p = Policy::default_business(FederalState::BY);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["colour"] = serde_json::json!("red");
        assert!(serde_json::from_value::<Policy>(v).is_err());
    }

    #[test]
    fn the_most_specific_policy_wins() {
        let mut book = PolicyBook::new(Policy::default_consumer(FederalState::NW));
        let mut group = Policy::default_consumer(FederalState::NW);
        group.id = "vip".into();
        let mut own = Policy::default_consumer(FederalState::NW);
        own.id = "k-1".into();
        book.groups.insert("vip".into(), group);
        book.debtors.insert("K-1".into(), own);
        assert_eq!(book.resolve(Some("K-1"), Some("vip")).id, "k-1");
        assert_eq!(book.resolve(Some("K-2"), Some("vip")).id, "vip");
        assert_eq!(book.resolve(Some("K-2"), None).id, "default-consumer");
        book.groups.get_mut("vip").unwrap().steps.clear();
        assert_eq!(
            book.check()
                .0
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>(),
            ["groups[vip].steps"]
        );
    }

    #[test]
    fn gaps_follow_the_anchors() {
        let mut p = Policy::default_consumer(FederalState::NW);
        p.steps[2].offset = after_due(40); // nominal: 5, 19, 40
        assert_eq!((p.gap(0), p.gap(1), p.gap(2)), (5, 14, 21));
        p.steps[1].offset.kind = DayKind::Business;
        // 2026-04-01 (Wed) + 14 business days in NW: skips Karfreitag 04-03, Ostermontag 04-06
        // and weekends → 2026-04-23.
        assert_eq!(
            p.step_date_from(1, "2026-04-01".parse().unwrap()),
            "2026-04-23".parse().unwrap()
        );
    }
}
