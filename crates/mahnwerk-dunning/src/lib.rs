//! # Mahnwerk dunning core
//!
//! Pure domain code for dunning German receivables: tenant policies, the German default law
//! and the dunning case state machine. The dunning service wraps it; this crate never does IO,
//! never reads the clock (every function takes the date it acts on) and never touches a
//! database, prost, tonic, sqlx or NATS. Money is integer minor units; decimals are used only for
//! rates, with one rounding rule ([`law::ROUNDING_RULE`]).
//!
//! # Layout
//! - [`law`]: base rates as dated data (`data/base_rates.csv`), § 286 default start, § 288
//!   interest per period with § 367 crediting, the € 40 lump sum, § 193 deadlines with the public
//!   holidays of each federal state.
//! - [`policy`]: the policy model ([`policy::Policy`], [`policy::PolicyBook`]), defaults for
//!   consumers and businesses, validation with field paths.
//! - [`dunning_case`]: the dunning case state machine (one invoice's dunning, not the invoice
//!   lifecycle of `mahnwerk_domain::lifecycle`): [`dunning_case::decide`], [`dunning_case::evolve`],
//!   [`dunning_case::next_action_at`], its commands and versioned events
//!   (`dunning.step_reached.v1`, …), split into schedule, money and pauses.
//! - [`consolidate`]: one letter per debtor for the cases due on the same day.
//! - [`preview`]: run a policy over cases to a future date without side effects.
//! - [`cli`]: the `mahnwerk law interest|deadline` and `mahnwerk policy check|simulate`
//!   subcommands the workspace binary embeds (the only module that reads files).
//! - [`error`]: the error type, [`DunningError`].
//!
//! # Invariants
//! - No IO (except [`cli`] reading the files named on the command line), no clock reads, no
//!   floats for money.
//! - Every amount carries its derivation (periods, days, rates) so letters can print it.

pub mod cli;
pub mod consolidate;
pub mod dunning_case;
pub mod error;
pub mod law;
pub mod policy;
pub mod preview;

pub use error::{DunningError, Result};
