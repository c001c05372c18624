//! Personal data of debtors, masked wherever it could be logged.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A value that is personal data (a name, an address, an email, a debtor's IBAN).
///
/// `Debug` and `Display` print `***`, so a log line or a tracing span field cannot leak it;
/// read the value with [`Personal::expose`] where it is really needed (a letter, an API answer).
/// Serialises transparently: the event payloads group personal data so it can be encrypted with a
/// per-debtor key (crypto-shredding) without changing their shape.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_masked() {
        let name = Personal::new("Erika Mustermann".to_owned());
        assert_eq!(format!("{name:?} {name}"), "*** ***");
        assert_eq!(name.expose(), "Erika Mustermann");
        assert_eq!(
            serde_json::to_string(&name).unwrap(),
            "\"Erika Mustermann\""
        );
    }
}
