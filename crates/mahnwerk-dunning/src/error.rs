//! The error type of the dunning core.

use chrono::NaiveDate;
use mahnwerk_domain::{Currency, FieldError, FieldErrors};

/// Why a computation or a command was refused.
///
/// Mapping for callers: `Invalid`/`InvalidPolicy`/`CurrencyMismatch` are rejected input
/// (`INVALID_ARGUMENT`); `Precondition` means the case is in a state where the command does not
/// apply (`FAILED_PRECONDITION`, do not retry); `BaseRateUnknown`/`BaseRateTable` mean the shipped
/// legal data does not cover the date (`FAILED_PRECONDITION`; update `data/base_rates.csv`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DunningError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("invalid policy: {0}")]
    InvalidPolicy(FieldErrors),
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("no base rate known for {0}; update data/base_rates.csv")]
    BaseRateUnknown(NaiveDate),
    #[error("base rate table: {0}")]
    BaseRateTable(String),
    #[error("{0}")]
    Precondition(String),
}

impl DunningError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DunningError::Invalid(FieldError::new(field, reason))
    }
}

pub type Result<T> = std::result::Result<T, DunningError>;
