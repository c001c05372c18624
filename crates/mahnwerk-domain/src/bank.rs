//! IBAN (ISO 13616, checked by `iban_validate`) and BIC (ISO 9362).

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A valid IBAN in electronic format (no spaces, upper case).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iban(String);

impl Iban {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Groups of four, as printed on letters: `DE89 3704 0044 0532 0130 00`.
    pub fn to_print_format(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn country(&self) -> &str {
        &self.0[..2]
    }
}

impl FromStr for Iban {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let compact: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        use iban::IbanLike as _;
        // Shortest IBAN (Norway) 15, longest 34: anything else is not a checksum problem.
        let len = compact.chars().count();
        if !(15..=34).contains(&len) {
            return Err(FieldError::new(
                "",
                format!("invalid IBAN: {len} characters, an IBAN has 15 to 34"),
            ));
        }
        match compact.parse::<iban::Iban>() {
            Ok(parsed) => Ok(Iban(parsed.electronic_str().to_owned())),
            Err(iban::ParseIbanError::InvalidBaseIban {
                source: iban::ParseBaseIbanError::InvalidChecksum,
            }) => Err(FieldError::new("", "invalid IBAN checksum")),
            Err(iban::ParseIbanError::InvalidBban(_)) => Err(FieldError::new(
                "",
                "invalid IBAN: account part does not fit the country format",
            )),
            Err(iban::ParseIbanError::UnknownCountry(_)) => {
                Err(FieldError::new("", "invalid IBAN: unknown country code"))
            }
            Err(_) => Err(FieldError::new("", "invalid IBAN format")),
        }
    }
}

impl TryFrom<String> for Iban {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        s.parse()
    }
}

impl From<Iban> for String {
    fn from(i: Iban) -> String {
        i.0
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Masked: a debtor's IBAN is personal data. Country and last four suffice to debug.
        write!(f, "Iban({}…{})", &self.0[..2], &self.0[self.0.len() - 4..])
    }
}

/// A BIC: 8 or 11 characters, `AAAA BB CC [DDD]` (bank, country, location, branch).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bic(String);

impl Bic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Bic {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let s = s.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let ok = (b.len() == 8 || b.len() == 11)
            && b[..4].iter().all(u8::is_ascii_uppercase)
            && b[4..6].iter().all(u8::is_ascii_uppercase)
            && b[6..].iter().all(u8::is_ascii_alphanumeric);
        if ok {
            Ok(Bic(s))
        } else {
            Err(FieldError::new(
                "",
                "invalid BIC: 8 or 11 characters, AAAABBCC[DDD]",
            ))
        }
    }
}

impl TryFrom<String> for Bic {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        s.parse()
    }
}

impl From<Bic> for String {
    fn from(b: Bic) -> String {
        b.0
    }
}

impl fmt::Display for Bic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Bic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bic({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_checks_checksum_and_normalises() {
        let iban: Iban = "de89 3704 0044 0532 0130 00".parse().unwrap();
        assert_eq!(iban.as_str(), "DE89370400440532013000");
        assert_eq!(iban.to_print_format(), "DE89 3704 0044 0532 0130 00");
        assert_eq!(
            "DE88370400440532013000".parse::<Iban>().unwrap_err().reason,
            "invalid IBAN checksum"
        );
        assert!("XX00".parse::<Iban>().is_err());
        // A too-short IBAN is not called a checksum error.
        let short = "DE8937040044".parse::<Iban>().unwrap_err().reason;
        assert_eq!(short, "invalid IBAN: 12 characters, an IBAN has 15 to 34");
        assert!(!format!("{iban:?}").contains("0532"));
    }

    #[test]
    fn bic_format() {
        assert!("COBADEFFXXX".parse::<Bic>().is_ok());
        assert!("COBADEFF".parse::<Bic>().is_ok());
        assert!("COBADE".parse::<Bic>().is_err());
        assert!("1OBADEFF".parse::<Bic>().is_err());
    }
}
