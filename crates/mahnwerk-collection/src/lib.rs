//! # Collection service
//!
//! When letters do not help, the case goes to a collection partner (Inkasso) with its complete
//! file, and the creditor keeps control: partners per tenant, hand-over on `dunning.escalated.v1`
//! (automatically or after an operator's approval), partner reports back, recall, write-off.
//!
//! # Layout
//! - [`engine`]: pure: partner selection, the claim, the hand-over and report state machine.
pub mod engine;
