//! The dunning case: one invoice under one policy, from due date to settlement or hand-over.
//!
//! `decide(state, command, today)` holds every rule and returns the events to append;
//! `evolve(state, &event)` applies facts and holds none. [`next_action_at`] tells the scheduler
//! when to wake the case (its index on next-action time).
//!
//! # Rules
//! - **Steps** come strictly in order, at most one per [`DunningCommand::Advance`], never twice,
//!   never skipped: step `k` is due `gap(k)` days after its anchor, the later of the day step
//!   `k - 1` was reached (the due date for `k = 0`) and the last *re-anchor day*. Only an
//!   operator skips a step ([`DunningCommand::SkipStep`]: no letter, the next step takes its
//!   place) or repeats the last one ([`DunningCommand::RepeatStep`]: the same step again, new
//!   date and deadline, no second fee; the next step follows its gap after the repetition).
//! - **Re-anchoring**: a payment, a reversal, a credit note, a due-date extension and the end of
//!   the last pause set the re-anchor day, so the debtor gets the full gap before the next letter;
//!   the step level never changes with the balance (the Kill Bill #2297 bug).
//! - **Pauses**: a dispute (until resolved; an upheld dispute stays paused until a credit note,
//!   cancellation or write-off), a promise to pay (until its date; a missed or kept promise
//!   resumes), a payment plan (only a missed instalment resumes), manual holds on the case or the
//!   debtor (until released or their end date), a settlement (Vergleich: until its date; paid,
//!   the case is settled and the rest waived; missed, the whole claim is dunned again). No step
//!   while any pause is active.
//! - **Money**: balance = principal after credit notes + fees + lump sum + interest charged −
//!   payments. Fees are waived on a letter sent while the debtor is not yet in default (that
//!   letter creates default, § 286 Abs. 1); the lump sum (business, € 40) is charged once with the
//!   first letter in default and offset against the fees (§ 288 Abs. 5 S. 3: a fee is charged
//!   only beyond what the lump sum covers); interest is charged with each letter whose step
//!   charges it, as the difference between the interest computed up to the letter date and the
//!   interest charged so far. Interest accrued after the last letter is not claimed by the case.
//!   Payments are credited per § 367 Abs. 1 to costs, then interest, then principal, but only
//!   to amounts that existed on the payment day: a part payment before a letter never pays
//!   that letter's fee or the interest that accrues after it ([`DunningCase::credited`]).
//! - **End states**: settled (balance paid; a reversal reopens it), cancelled, credited (principal
//!   credited to zero), written off.
//!
//! # Layout
//! - [`command`]: the invoice facts and the commands.
//! - [`events`]: the versioned events of the case stream.
//! - [`state`]: the folded state and what the case owes.
//! - [`decide`]: the rules, one command at a time.
//! - [`schedule`]: when the next step and the hand-over are due.
//! - [`money`]: fees, lump sum, interest of a step; consequences of a balance change.
//! - [`pauses`]: pauses and when they end by themselves.
//! - [`evolve`]: applying facts.

mod command;
mod decide;
mod events;
mod evolve;
mod money;
mod pauses;
mod schedule;
mod state;

pub use command::{CaseFacts, DunningCommand, HoldScope, Instalment};
pub use decide::decide;
pub use events::{DunningEvent, Repetition, StepReached};
pub use evolve::evolve;
pub use pauses::{Pause, PauseKind, ResumeReason};
pub use schedule::next_action_at;
pub use state::{ApprovalState, CaseStatus, DunningCase, PaymentRecord, Phase};
