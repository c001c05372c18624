//! # Matching service
//!
//! Bank statements (camt.052/053/054, MT940, CSV) and single transactions come in; each payment
//! is applied to the right invoice's case stream, or goes to review. Precision over recall: a
//! payment applied to a wrong invoice is worse than one left for a person.
//!
//! ## Layout
//! - [`engine`]: the pure matching engine (open items + bank entry → decision with its rule and
//!   reasons). No IO, no clock.
//! - [`text`]: RF references, invoice numbers and names read out of remittance text.
//! - [`entry`]: bank entries from the statement parsers, and their stable identity.
//! - [`cli`]: `mahnwerk match`, the offline dry run of the engine.
//!
//! ## Invariants
//! The engine never applies a payment in another currency, to a closed case, or on evidence below
//! the tenant's threshold. Personal data (names, IBANs, texts) never reaches a log line.

pub mod cli;
pub mod engine;
pub mod entry;
pub mod text;

pub use engine::{BankEntry, Decision, OpenItem, OpenItems, Outcome, Rule, Settings, decide};
