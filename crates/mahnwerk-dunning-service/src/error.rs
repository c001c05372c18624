//! The service's error type and its one mapping to gRPC status codes.

use mahnwerk_dunning::DunningError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// What can go wrong. `Rule` is the caller's (rejected by the rules), `Conflict` is retryable,
/// `Log`/`Database` are infrastructure (their text never reaches a caller), `Unreadable` is a
/// stored event this version cannot read (permanent: dead-lettered by the consumer).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rule(#[from] DunningError),
    #[error("too many concurrent changes to the case")]
    Conflict,
    #[error("event log: {0}")]
    Log(#[from] mahnwerk_eventlog::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Unreadable(#[from] crate::facts::FoldError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `INVALID_ARGUMENT` naming one field.
pub fn invalid_field(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {reason}"),
        ErrorDetails::with_bad_request(vec![FieldViolation::new(field, reason)]),
    )
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::Rule(rule) => match rule {
                DunningError::Invalid(e) => invalid_field(&e.field, &e.reason),
                DunningError::InvalidPolicy(errs) => {
                    let violations: Vec<FieldViolation> = errs
                        .0
                        .iter()
                        .map(|e| FieldViolation::new(e.field.clone(), e.reason.clone()))
                        .collect();
                    Status::with_error_details(
                        Code::InvalidArgument,
                        format!("invalid policy: {errs}"),
                        ErrorDetails::with_bad_request(violations),
                    )
                }
                DunningError::CurrencyMismatch(a, b) => invalid_field(
                    "amount.currency",
                    &format!("{b} differs from the case's {a}"),
                ),
                other @ (DunningError::Precondition(_)
                | DunningError::BaseRateUnknown(_)
                | DunningError::BaseRateTable(_)) => Status::failed_precondition(other.to_string()),
            },
            Error::Conflict => Status::aborted("concurrent change to the same case; retry"),
            Error::Log(mahnwerk_eventlog::Error::Conflict { .. }) => {
                Status::aborted("concurrent change; retry")
            }
            Error::Log(e) => {
                tracing::error!(error = %e, "event log failure");
                Status::unavailable("event log unavailable")
            }
            Error::Database(e) => {
                tracing::error!(error = %e, "database failure");
                Status::unavailable("database unavailable")
            }
            Error::Unreadable(e) => {
                tracing::error!(error = %e, "unreadable case stream");
                Status::internal("the case stream holds an event this version cannot read")
            }
        }
    }
}

impl From<Error> for mahnwerk_bus::HandlerError {
    fn from(err: Error) -> Self {
        match err {
            Error::Unreadable(e) => mahnwerk_bus::HandlerError::Permanent(e.to_string()),
            other => mahnwerk_bus::HandlerError::Transient(other.to_string()),
        }
    }
}
