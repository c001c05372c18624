//! The errors of the letters service and their one mapping to gRPC codes.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rejected by the rules; `field` names what to fix.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The request is valid but the case or tenant is not in a state that allows it.
    #[error("{0}")]
    Precondition(String),
    #[error("{0} not found")]
    NotFound(String),
    /// Same idempotency key, different request.
    #[error("{0}")]
    AlreadyExists(String),
    /// Another writer appended to the stream first; re-read and decide again.
    #[error("concurrent change to the same stream")]
    Conflict,
    /// Document store trouble (filesystem or object store).
    #[error("document store: {0}")]
    Storage(String),
    /// A channel (SMTP, spool) failed.
    #[error("channel: {0}")]
    Channel(String),
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
    #[error("event log: {0}")]
    Log(mahnwerk_eventlog::Error),
}

impl From<mahnwerk_eventlog::Error> for Error {
    fn from(e: mahnwerk_eventlog::Error) -> Self {
        match e {
            mahnwerk_eventlog::Error::Conflict { .. } => Error::Conflict,
            other => Error::Log(other),
        }
    }
}

impl From<mahnwerk_docstore::Error> for Error {
    fn from(e: mahnwerk_docstore::Error) -> Self {
        match e {
            mahnwerk_docstore::Error::Invalid { field, reason } => Error::Invalid { field, reason },
            mahnwerk_docstore::Error::Storage(m) => Error::Storage(m),
            // For good: the debtor's key is gone (GDPR Art. 17), no letter can be made or read.
            e @ mahnwerk_docstore::Error::Erased { .. } => Error::Precondition(e.to_string()),
        }
    }
}

impl From<mahnwerk_letters::Error> for Error {
    fn from(e: mahnwerk_letters::Error) -> Self {
        match e {
            mahnwerk_letters::Error::InvalidModel { field, reason } => {
                Error::Invalid { field, reason }
            }
            mahnwerk_letters::Error::Template { name, line, reason } => Error::Invalid {
                field: format!("template {name}, line {line}"),
                reason,
            },
            mahnwerk_letters::Error::Layout(m) => {
                Error::Precondition(format!("layout failed: {m}"))
            }
        }
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Worth retrying later (infrastructure), as opposed to a rule violation.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Conflict
                | Error::Storage(_)
                | Error::Database(_)
                | Error::Log(_)
                | Error::Channel(_)
        )
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: {reason}"),
                ErrorDetails::with_bad_request(vec![FieldViolation::new(field, reason)]),
            ),
            Error::Precondition(m) => Status::failed_precondition(m),
            Error::NotFound(m) => Status::not_found(format!("{m} not found")),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::Conflict => Status::aborted("concurrent change; retry"),
            other => {
                tracing::error!(error = %other, "letters service infrastructure failure");
                Status::unavailable("letters service unavailable")
            }
        }
    }
}

impl From<Error> for mahnwerk_bus::HandlerError {
    fn from(e: Error) -> Self {
        if e.is_transient() {
            mahnwerk_bus::HandlerError::Transient(e.to_string())
        } else {
            mahnwerk_bus::HandlerError::Permanent(e.to_string())
        }
    }
}
