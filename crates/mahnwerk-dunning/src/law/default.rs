//! When the debtor is in default (§ 286 BGB) and from which day interest runs.
//!
//! # Convention
//! Each rule names a *trigger day*; the debtor is in default from the end of that day and the
//! first interest day is the day after it (§ 187 Abs. 1 BGB):
//! - **calendar due date** (Abs. 2 Nr. 1, only when the contract fixed the date): trigger = the
//!   due date itself, interest from the next day;
//! - **reminder** (Abs. 1): trigger = the day a reminder sent *after* the due date reached the
//!   debtor (sent + the policy's delivery days);
//! - **30 days** (Abs. 3): trigger = 30 days after the later of due date and receipt of the
//!   invoice; for a consumer only if the invoice pointed this out (`default_notice`).
//!
//! The earliest trigger wins. The reminder that itself creates default carries no fee: only
//! costs after default are recoverable.
//!
//! § 193 BGB: a calendar due date or the end of the 30 days that falls on a Saturday, Sunday or
//! public holiday at the place of performance (`state`) moves to the next working day, so the
//! debtor who pays then is not late.

use crate::law::calendar::{FederalState, move_to_working_day};
use chrono::{Duration, NaiveDate};
use mahnwerk_domain::DebtorKind;
use serde::{Deserialize, Serialize};

/// The facts of one invoice that decide default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultFacts {
    pub due_date: NaiveDate,
    /// Day the debtor received the invoice.
    pub invoice_received: NaiveDate,
    pub debtor: DebtorKind,
    /// The invoice pointed out the 30-day consequence (§ 286 Abs. 3 Satz 1 Halbsatz 2).
    pub default_notice: bool,
    /// The contract fixed the payment date by the calendar (§ 286 Abs. 2 Nr. 1).
    pub calendar_due_date: bool,
    /// Place of performance: its holidays move the triggers (§ 193).
    pub state: FederalState,
}

/// Which rule of § 286 put the debtor in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRule {
    /// § 286 Abs. 2 Nr. 1.
    CalendarDueDate,
    /// § 286 Abs. 1.
    Reminder,
    /// § 286 Abs. 3.
    ThirtyDays,
}

/// When default starts and from which day interest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultStart {
    pub rule: DefaultRule,
    /// Default begins at the end of this day.
    pub trigger: NaiveDate,
    /// First interest day: `trigger + 1` (§ 187 Abs. 1).
    pub interest_from: NaiveDate,
}

impl DefaultStart {
    fn new(rule: DefaultRule, trigger: NaiveDate) -> Self {
        Self {
            rule,
            trigger,
            interest_from: trigger + Duration::days(1),
        }
    }

    /// Whether the debtor is in default on `date` (the day after the trigger onwards).
    pub fn in_default_on(&self, date: NaiveDate) -> bool {
        date > self.trigger
    }
}

/// Default without any reminder: calendar due date or the 30-day rule, whichever is earlier.
pub fn default_without_reminder(facts: &DefaultFacts) -> Option<DefaultStart> {
    let working = |d: NaiveDate| move_to_working_day(facts.state, d).deadline;
    let calendar = facts
        .calendar_due_date
        .then(|| DefaultStart::new(DefaultRule::CalendarDueDate, working(facts.due_date)));
    let thirty_applies = facts.debtor == DebtorKind::Business || facts.default_notice;
    let thirty = thirty_applies.then(|| {
        let base = facts.due_date.max(facts.invoice_received);
        DefaultStart::new(DefaultRule::ThirtyDays, working(base + Duration::days(30)))
    });
    [calendar, thirty]
        .into_iter()
        .flatten()
        .min_by_key(|d| d.trigger)
}

/// Default considering also a reminder received on `reminder_received` (ignored unless it
/// arrived after the due date).
pub fn default_start(
    facts: &DefaultFacts,
    reminder_received: Option<NaiveDate>,
) -> Option<DefaultStart> {
    let by_reminder = reminder_received
        .filter(|r| *r > facts.due_date)
        .map(|r| DefaultStart::new(DefaultRule::Reminder, r));
    [default_without_reminder(facts), by_reminder]
        .into_iter()
        .flatten()
        .min_by_key(|d| d.trigger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn facts(debtor: DebtorKind) -> DefaultFacts {
        DefaultFacts {
            due_date: d("2026-03-15"),
            invoice_received: d("2026-03-04"),
            debtor,
            default_notice: false,
            calendar_due_date: false,
            state: FederalState::NW,
        }
    }

    #[test]
    fn section_193_moves_a_calendar_due_date_and_the_30_day_trigger_off_holidays() {
        // Calendar due date Sunday 03-15: paying on Monday 03-16 is in time; interest from 03-17.
        let mut f = facts(DebtorKind::Consumer);
        f.calendar_due_date = true;
        let s = default_without_reminder(&f).unwrap();
        assert_eq!(
            (s.trigger, s.interest_from),
            (d("2026-03-16"), d("2026-03-17"))
        );
        // Business, due Friday 03-06: + 30 days = Easter Sunday 04-05, Ostermontag 04-06 in
        // NW → the 30 days end Tuesday 04-07.
        let mut f = facts(DebtorKind::Business);
        f.due_date = d("2026-03-06");
        f.invoice_received = d("2026-03-01");
        let s = default_without_reminder(&f).unwrap();
        assert_eq!(
            (s.rule, s.trigger),
            (DefaultRule::ThirtyDays, d("2026-04-07"))
        );
    }

    #[test]
    fn given_a_business_debtor_when_no_reminder_then_default_starts_30_days_after_due_date() {
        // 2026-03-15 + 30 = 2026-04-14 (trigger); interest from 2026-04-15.
        let s = default_without_reminder(&facts(DebtorKind::Business)).unwrap();
        assert_eq!(s.rule, DefaultRule::ThirtyDays);
        assert_eq!(s.trigger, d("2026-04-14"));
        assert_eq!(s.interest_from, d("2026-04-15"));
    }

    #[test]
    fn given_a_consumer_without_notice_when_no_reminder_then_there_is_no_default() {
        assert_eq!(default_without_reminder(&facts(DebtorKind::Consumer)), None);
    }

    #[test]
    fn given_a_consumer_with_notice_then_the_30_day_rule_applies() {
        let mut f = facts(DebtorKind::Consumer);
        f.default_notice = true;
        assert_eq!(
            default_without_reminder(&f).unwrap().trigger,
            d("2026-04-14")
        );
    }

    #[test]
    fn given_late_receipt_then_30_days_count_from_receipt() {
        let mut f = facts(DebtorKind::Business);
        f.invoice_received = d("2026-03-20");
        // max(03-15, 03-20) + 30 = Sunday 2026-04-19 → Monday 04-20 (§ 193).
        assert_eq!(
            default_without_reminder(&f).unwrap().trigger,
            d("2026-04-20")
        );
    }

    #[test]
    fn given_a_calendar_due_date_then_default_starts_after_it() {
        let mut f = facts(DebtorKind::Consumer);
        f.calendar_due_date = true;
        f.due_date = d("2026-03-13"); // a Friday
        let s = default_without_reminder(&f).unwrap();
        assert_eq!(s.rule, DefaultRule::CalendarDueDate);
        assert_eq!(s.interest_from, d("2026-03-14"));
        assert!(!s.in_default_on(d("2026-03-13")));
        assert!(s.in_default_on(d("2026-03-14")));
    }

    #[test]
    fn given_a_reminder_after_due_date_then_it_puts_the_debtor_in_default_on_receipt() {
        let s = default_start(&facts(DebtorKind::Consumer), Some(d("2026-03-23"))).unwrap();
        assert_eq!(s.rule, DefaultRule::Reminder);
        assert_eq!(s.interest_from, d("2026-03-24"));
    }

    #[test]
    fn given_a_reminder_before_due_date_then_it_has_no_effect() {
        assert_eq!(
            default_start(&facts(DebtorKind::Consumer), Some(d("2026-03-15"))),
            None
        );
    }

    #[test]
    fn the_earliest_rule_wins() {
        // Business: 30-day trigger 04-14, reminder received 05-01 → 30-day rule.
        let s = default_start(&facts(DebtorKind::Business), Some(d("2026-05-01"))).unwrap();
        assert_eq!(s.rule, DefaultRule::ThirtyDays);
        // Reminder received 03-25 is earlier.
        let s = default_start(&facts(DebtorKind::Business), Some(d("2026-03-25"))).unwrap();
        assert_eq!(s.rule, DefaultRule::Reminder);
    }
}
