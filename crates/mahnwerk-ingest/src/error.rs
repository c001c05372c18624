//! The one place where service errors become gRPC statuses.

use mahnwerk_domain::FieldErrors;
use mahnwerk_domain::lifecycle::CaseError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `INVALID_ARGUMENT` with `google.rpc.BadRequest` details; the message names every field too,
/// for clients that do not read details.
pub fn invalid(errs: &FieldErrors) -> Status {
    let violations: Vec<FieldViolation> = errs
        .0
        .iter()
        .map(|e| FieldViolation::new(e.field.clone(), e.reason.clone()))
        .collect();
    Status::with_error_details(
        Code::InvalidArgument,
        errs.to_string(),
        ErrorDetails::with_bad_request(violations),
    )
}

/// `INVALID_ARGUMENT` for one field.
pub fn invalid_field(field: &str, reason: &str) -> Status {
    invalid(&FieldErrors::from(mahnwerk_domain::FieldError::new(
        field, reason,
    )))
}

pub fn case_error(err: CaseError) -> Status {
    match err {
        CaseError::Invalid(e) => invalid(&FieldErrors::from(e)),
        CaseError::NotFound => Status::not_found("invoice not found"),
        CaseError::AlreadyExists(m) => Status::already_exists(m),
        CaseError::Precondition(m) => Status::failed_precondition(m),
    }
}

pub fn log_error(err: mahnwerk_eventlog::Error) -> Status {
    match err {
        mahnwerk_eventlog::Error::Conflict { .. } => {
            Status::aborted("concurrent change to the same case; retry")
        }
        e @ mahnwerk_eventlog::Error::Erased { .. } => Status::failed_precondition(e.to_string()),
        other => {
            tracing::error!(error = %other, "event log failure");
            Status::unavailable("event log unavailable")
        }
    }
}

pub fn db_error(err: sqlx::Error) -> Status {
    tracing::error!(error = %err, "projection query failed");
    Status::unavailable("database unavailable")
}
