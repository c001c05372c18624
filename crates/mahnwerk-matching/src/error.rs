//! The matching service's errors and their one mapping to gRPC statuses.

use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of the request is malformed: `INVALID_ARGUMENT` naming it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The input breaks a rule (an unbalanced statement): `FAILED_PRECONDITION`.
    #[error("{0}")]
    Rejected(String),
    /// The same idempotency key with other content: `ALREADY_EXISTS`.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    /// Too many concurrent writers on one stream: `ABORTED`, retry.
    #[error("concurrent changes; retry")]
    Contended,
    /// The case changed after the decision (projection behind, another payment): the entry goes
    /// to review instead.
    #[error("{0}")]
    Stale(String),
    #[error("event log: {0}")]
    Log(#[from] mahnwerk_eventlog::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Invalid { field, reason } => {
                use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
                Status::with_error_details(
                    tonic::Code::InvalidArgument,
                    format!("{field}: {reason}"),
                    ErrorDetails::with_bad_request(vec![FieldViolation::new(field, reason)]),
                )
            }
            Error::Rejected(m) | Error::Stale(m) => Status::failed_precondition(m),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::NotFound(m) => Status::not_found(m),
            Error::Contended => Status::aborted("too many concurrent changes; retry"),
            Error::Log(mahnwerk_eventlog::Error::Conflict { .. }) => {
                Status::aborted("concurrent change; retry")
            }
            Error::Log(err) => {
                tracing::error!(error = %err, "event log failure");
                Status::unavailable("event log unavailable")
            }
            Error::Database(err) => {
                tracing::error!(error = %err, "matching database failure");
                Status::unavailable("database unavailable")
            }
        }
    }
}
