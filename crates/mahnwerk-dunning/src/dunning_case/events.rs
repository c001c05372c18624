//! The versioned events of the dunning case stream.

use super::{CaseFacts, Pause, PauseKind, ResumeReason};
use crate::law::calendar::Deadline;
use crate::law::default::DefaultStart;
use crate::law::interest::InterestCalculation;
use crate::policy::{Channel, Policy, Tone};
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use serde::{Deserialize, Serialize};

/// A letter step was reached, with everything the letter prints and how it was derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReached {
    /// 1-based step number.
    pub number: u32,
    pub title: String,
    pub tone: Tone,
    pub template_id: String,
    pub channels: Vec<Channel>,
    pub date: NaiveDate,
    /// Fee charged with this letter (zero when waived).
    pub fee: Money,
    /// Why the policy's fee was not charged.
    pub fee_waived: Option<String>,
    /// § 288 Abs. 5 lump sum charged with this letter (zero when none).
    pub lump_sum: Money,
    /// The part of the policy's fee not charged because the lump sum already covers it
    /// (§ 288 Abs. 5 S. 3 BGB: the lump sum is offset against later dunning costs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_offset: Option<Money>,
    /// Interest added with this letter.
    pub interest_charged: Money,
    /// Full interest derivation up to the letter date, when interest is charged.
    pub interest: Option<InterestCalculation>,
    /// Default start as known on the letter date (may be this letter).
    pub default: Option<DefaultStart>,
    /// This letter itself puts the debtor in default.
    pub creates_default: bool,
    /// Payment deadline printed on the letter (§ 193 applied).
    pub deadline: Deadline,
    pub principal_open: Money,
    /// Balance after this letter.
    pub balance: Money,
    /// The creditor declined to let dunning run: this letter is a draft for the creditor to
    /// send itself, never dispatched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
    /// This step is one line of a consolidated letter ("Sammelmahnung", see
    /// [`crate::consolidate`]): the letter's id, its cases and what it prints as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<crate::consolidate::Consolidation>,
    /// This letter repeats the case's last step on an operator's request (`RepeatStep`): the
    /// same step again, with a new date and deadline and no second fee. Absent for the first
    /// sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repetition>,
}

/// Which sending of a repeated step a letter is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repetition {
    /// 1 for the first repetition, 2 for the second, ...
    pub count: u32,
    pub reason: String,
}

/// Events of the dunning case stream. Past tense, versioned (see [`DunningEvent::event_type`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DunningEvent {
    Opened {
        facts: CaseFacts,
        policy: Policy,
        opened_on: NaiveDate,
    },
    PaymentRecorded {
        payment_id: String,
        amount: Money,
        date: NaiveDate,
        /// The payment was at least the policy's `reanchor_minimum`, so the debtor gets the
        /// full gap again before the next letter (absent in events written before the rule:
        /// every payment re-anchored then).
        #[serde(default = "yes")]
        reanchors: bool,
    },
    PaymentReversed {
        payment_id: String,
        amount: Money,
        reversed_on: NaiveDate,
    },
    CreditRecorded {
        credit_note: String,
        amount: Money,
        credited_on: NaiveDate,
    },
    DueDateExtended {
        previous_due_date: NaiveDate,
        new_due_date: NaiveDate,
    },
    StepReached(Box<StepReached>),
    Paused {
        pause: Pause,
        paused_on: NaiveDate,
    },
    Resumed {
        pause: PauseKind,
        why: ResumeReason,
        resumed_on: NaiveDate,
    },
    Escalated {
        escalated_on: NaiveDate,
        steps_reached: u32,
        principal_open: Money,
        balance: Money,
    },
    Settled {
        settled_on: NaiveDate,
        overpaid: Money,
        waived: Money,
    },
    Reopened {
        reopened_on: NaiveDate,
        balance: Money,
    },
    Cancelled {
        cancelled_on: NaiveDate,
        reason: String,
    },
    Credited {
        credited_on: NaiveDate,
        waived: Money,
    },
    WrittenOff {
        written_off_on: NaiveDate,
        reason: String,
        amount: Money,
    },
    /// The case's next step was passed over without a letter (an operator's request).
    StepSkipped {
        /// The step passed over (1-based).
        skipped_step: u32,
        title: String,
        skipped_on: NaiveDate,
        /// The day the step would have gone out (never before `skipped_on`): it keeps this
        /// place in the schedule, so the step after it is due then.
        scheduled_for: NaiveDate,
        reason: String,
    },
    /// The case was moved to another policy version explicitly (an operator's request).
    PolicyMoved {
        from_id: String,
        from_version: u32,
        policy: Policy,
        moved_on: NaiveDate,
    },
    /// Approval mode: the first step is due; the creditor is offered to let dunning run.
    Offered {
        offered_on: NaiveDate,
        /// The step that waits for the decision.
        first_step: String,
        balance: Money,
    },
    Approved {
        approved_on: NaiveDate,
    },
    Declined {
        declined_on: NaiveDate,
    },
}

impl DunningEvent {
    /// The versioned event type, e.g. `dunning.step_reached.v1`.
    pub fn event_type(&self) -> &'static str {
        match self {
            DunningEvent::Opened { .. } => "dunning.case_opened.v1",
            DunningEvent::PaymentRecorded { .. } => "dunning.payment_recorded.v1",
            DunningEvent::PaymentReversed { .. } => "dunning.payment_reversed.v1",
            DunningEvent::CreditRecorded { .. } => "dunning.credit_recorded.v1",
            DunningEvent::DueDateExtended { .. } => "dunning.due_date_extended.v1",
            DunningEvent::StepReached(_) => "dunning.step_reached.v1",
            DunningEvent::Paused { .. } => "dunning.paused.v1",
            DunningEvent::Resumed { .. } => "dunning.resumed.v1",
            DunningEvent::Escalated { .. } => "dunning.escalated.v1",
            DunningEvent::Settled { .. } => "dunning.settled.v1",
            DunningEvent::Reopened { .. } => "dunning.reopened.v1",
            DunningEvent::Cancelled { .. } => "dunning.cancelled.v1",
            DunningEvent::Credited { .. } => "dunning.credited.v1",
            DunningEvent::WrittenOff { .. } => "dunning.written_off.v1",
            DunningEvent::PolicyMoved { .. } => "dunning.policy_moved.v1",
            DunningEvent::StepSkipped { .. } => "dunning.step_skipped.v1",
            DunningEvent::Offered { .. } => "dunning.offered.v1",
            DunningEvent::Approved { .. } => "dunning.approved.v1",
            DunningEvent::Declined { .. } => "dunning.declined.v1",
        }
    }

    pub fn event_version(&self) -> u32 {
        1
    }

    /// The JSON payload (the public contract of the event type).
    pub fn to_payload(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Read an event back from its type and payload; `Ok(None)` for types this aggregate does
    /// not own. Older versions are upcast here.
    pub fn from_parts(
        event_type: &str,
        payload: &serde_json::Value,
    ) -> std::result::Result<Option<Self>, serde_json::Error> {
        // Untagged variants have disjoint required fields; parse, then check the type matches.
        if !event_type.starts_with("dunning.") {
            return Ok(None);
        }
        let event: DunningEvent = serde_json::from_value(payload.clone())?;
        if event.event_type() != event_type {
            return Ok(None);
        }
        Ok(Some(event))
    }
}

fn yes() -> bool {
    true
}
