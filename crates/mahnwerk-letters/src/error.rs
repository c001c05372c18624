//! The errors of the letters crate.

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a letter from being rendered or a template from being saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The letter model is invalid (rejected by the rules; the caller must fix the model).
    /// `field` is a dotted path such as `claims[2].days`.
    #[error("{field}: {reason}")]
    InvalidModel { field: String, reason: String },
    /// A template was rejected when it was saved or loaded: syntax error, unknown variable, missing
    /// block or a render error against the sample letter. `line` is 1-based.
    #[error("template {name}, line {line}: {reason}")]
    Template {
        name: String,
        line: usize,
        reason: String,
    },
    /// Rendering failed although model and templates were accepted. This is a bug in the layout
    /// template or a resource limit, not something the caller can fix.
    #[error("layout failed: {0}")]
    Layout(String),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidModel {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
