//! The crate's error type: every error names where (file position) and why.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the input an error was found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// The XML element path (`Document/BkToCstmrStmt/Stmt/Ntry[3]/Amt`), the MT940 tag (`:61:`)
    /// or the CSV column, when known.
    pub element: Option<String>,
}

impl Position {
    pub fn line(line: u64) -> Self {
        Self {
            line: Some(line),
            element: None,
        }
    }

    pub fn at(line: u64, element: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            element: Some(element.into()),
        }
    }

    pub fn element(element: impl Into<String>) -> Self {
        Self {
            line: None,
            element: Some(element.into()),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.line, &self.element) {
            (Some(l), Some(e)) => write!(f, "line {l}, {e}"),
            (Some(l), None) => write!(f, "line {l}"),
            (None, Some(e)) => write!(f, "{e}"),
            (None, None) => f.write_str("unknown position"),
        }
    }
}

/// Errors of this crate. `Display` is the full message for an operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not well-formed or violates the format (bad XML, unknown MT940 tag layout,
    /// a 30 February, an amount with letters). Not retryable: the file must be fixed.
    #[error("{position}: {reason}")]
    Syntax { position: Position, reason: String },
    /// The input is well-formed but fails a check (balances do not add up, currencies differ).
    #[error("{position}: check failed: {reason}")]
    Check { position: Position, reason: String },
    /// A limit that protects memory was exceeded (nesting depth, element size, entry count).
    #[error("{position}: limit exceeded: {reason}")]
    Limit { position: Position, reason: String },
    /// A value given to a builder (EPC payload, RF reference) is invalid; names the field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The input is of a kind this crate does not read (unknown XML root, not a PDF with XML).
    #[error("unsupported input: {0}")]
    Unsupported(String),
    /// Reading the underlying bytes failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn syntax(position: Position, reason: impl Into<String>) -> Self {
        Self::Syntax {
            position,
            reason: reason.into(),
        }
    }

    pub fn check(position: Position, reason: impl Into<String>) -> Self {
        Self::Check {
            position,
            reason: reason.into(),
        }
    }

    pub fn limit(position: Position, reason: impl Into<String>) -> Self {
        Self::Limit {
            position,
            reason: reason.into(),
        }
    }
}
