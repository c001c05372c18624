//! ISO 11649 structured creditor references ("RF references").
//!
//! Format: `RF`, two check digits, then 1–21 characters `A–Z0–9`; at most 25 characters in all.
//! The check is ISO 7064 mod 97-10 as for IBANs: move the first four characters to the end,
//! replace letters by numbers (`A`=10 … `Z`=35), the remainder modulo 97 must be 1.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Longest body (the part after `RFnn`) that ISO 11649 allows.
pub const MAX_BODY_LEN: usize = 21;

/// A valid ISO 11649 creditor reference in electronic format (upper case, no spaces).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RfReference(String);

impl RfReference {
    /// Build the reference for `body` (1–21 letters or digits, spaces ignored, case folded),
    /// computing the check digits.
    pub fn create(body: &str) -> Result<Self> {
        let body = normalise(body);
        check_body(&body)?;
        let rem = mod97(body.bytes().chain(*b"RF00"))?;
        let check = 98 - rem;
        Ok(Self(format!("RF{check:02}{body}")))
    }

    /// Validate a reference as printed (`RF18 5390 0754 7034`) or electronic (`RF18539007547034`).
    pub fn parse(text: &str) -> Result<Self> {
        let s = normalise(text);
        let invalid = |reason: &str| Error::invalid("reference", format!("{reason}: {text:?}"));
        if !s.starts_with("RF") {
            return Err(invalid("an RF reference starts with RF"));
        }
        if s.len() < 5 || s.len() > 4 + MAX_BODY_LEN {
            return Err(invalid("an RF reference has 5 to 25 characters"));
        }
        if !s.as_bytes()[2..4].iter().all(u8::is_ascii_digit) {
            return Err(invalid("RF must be followed by two check digits"));
        }
        check_body(&s[4..])?;
        let rem = mod97(s[4..].bytes().chain(s[..4].bytes()))?;
        if rem != 1 {
            return Err(invalid("wrong RF check digits"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `RFnn`, as the creditor chose it.
    pub fn body(&self) -> &str {
        &self.0[4..]
    }

    /// Groups of four, as printed on letters: `RF18 5390 0754 7034`.
    pub fn to_print_format(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 6);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }
}

/// The RF reference of an invoice's case, as its letters print it (GiroCode and remittance
/// line) and as the matching engine recognises it when a debtor pays with it: the invoice's own
/// payment reference when it is a valid RF reference; else one made from the invoice number
/// (its ASCII letters and digits, the last 21); else from the case id (its letters and digits,
/// the last 21). `None` only when neither holds a letter or digit.
///
/// One derivation for both sides: the letters service and the matching engine call this, so a
/// reference printed on a letter is always one the matching knows.
pub fn for_invoice(
    payment_reference: Option<&str>,
    invoice_number: &str,
    case_id: &str,
) -> Option<RfReference> {
    if let Some(rf) = payment_reference.and_then(|r| RfReference::parse(r).ok()) {
        return Some(rf);
    }
    let tail = |s: &str| {
        let body: String = s.chars().filter(char::is_ascii_alphanumeric).collect();
        body[body.len().saturating_sub(MAX_BODY_LEN)..].to_owned()
    };
    RfReference::create(&tail(invoice_number))
        .or_else(|_| RfReference::create(&tail(case_id)))
        .ok()
}

/// The RF reference of a consolidated letter ("Sammelmahnung"), from its id: `S` and the first
/// 20 letters and digits of the id (a UUID: 80 bits). The letters service prints it and records
/// it on every member case (`payment_reference` of `letter.rendered.v1`), so the matching
/// engine finds all the letter's invoices under it and splits a payment over them (§ 366).
/// `None` when the id holds no letter or digit.
pub fn for_consolidation(consolidation_id: &str) -> Option<RfReference> {
    let body: String = consolidation_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(MAX_BODY_LEN - 1)
        .collect();
    if body.is_empty() {
        return None;
    }
    RfReference::create(&format!("S{body}")).ok()
}

/// `true` when `text` is a valid RF reference (spaces allowed).
pub fn is_valid(text: &str) -> bool {
    RfReference::parse(text).is_ok()
}

impl FromStr for RfReference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for RfReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

fn check_body(body: &str) -> Result<()> {
    if body.is_empty() || body.len() > MAX_BODY_LEN {
        return Err(Error::invalid(
            "reference",
            format!(
                "the reference body must have 1 to {MAX_BODY_LEN} characters, got {}",
                body.len()
            ),
        ));
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "reference",
            format!("the reference body may only hold letters A-Z and digits: {body:?}"),
        ));
    }
    Ok(())
}

/// Mod 97 of the digit string that replaces letters by 10..35.
fn mod97(chars: impl Iterator<Item = u8>) -> Result<u32> {
    let mut rem: u32 = 0;
    for b in chars {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => {
                return Err(Error::invalid(
                    "reference",
                    "only letters and digits are allowed",
                ));
            }
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    Ok(rem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_consolidated_letters_reference_is_valid_and_stable_per_id() {
        let id = "3f2a9c1e-7b4d-5e6f-8a9b-0c1d2e3f4a5b";
        let rf = for_consolidation(id).unwrap();
        assert!(is_valid(rf.as_str()));
        assert_eq!(rf.body(), "S3f2a9c1e7b4d5e6f8a9b".to_uppercase());
        assert_eq!(for_consolidation(id), Some(rf));
        assert_ne!(
            for_consolidation("3f2a9c1e-7b4d-5e6f-8a9c-0c1d2e3f4a5b"),
            for_consolidation(id)
        );
        assert_eq!(for_consolidation("--"), None);
    }

    #[test]
    fn known_references_from_the_standard() {
        // ISO 11649 example: body 539007547034 gives RF18.
        let rf = RfReference::create("539007547034").unwrap();
        assert_eq!(rf.as_str(), "RF18539007547034");
        assert_eq!(rf.to_print_format(), "RF18 5390 0754 7034");
        assert!(is_valid("RF18 5390 0754 7034"));
        assert!(is_valid("rf18539007547034"));
        // Another commonly quoted example.
        assert!(is_valid("RF712348231"));
        assert_eq!(
            RfReference::create("2348231").unwrap().as_str(),
            "RF712348231"
        );
    }

    #[test]
    fn rejects_bad_references_with_reason() {
        assert!(!is_valid("RF19539007547034"), "wrong check digits");
        assert!(!is_valid("XX18539007547034"));
        assert!(!is_valid("RF18"));
        assert!(!is_valid("RF1X5390"));
        assert!(!is_valid("RF18-5390"));
        assert!(!is_valid(&format!("RF00{}", "1".repeat(22))));
        assert!(RfReference::create("").is_err());
        assert!(RfReference::create(&"A".repeat(22)).is_err());
        let err = RfReference::parse("RF19539007547034")
            .unwrap_err()
            .to_string();
        assert!(err.contains("check digits"), "{err}");
    }

    #[test]
    fn the_reference_of_an_invoice_is_its_own_rf_else_made_from_number_or_case() {
        let case = "0f8fad5b-d9cb-469f-a165-70867728950e";
        // The invoice's own RF reference, printed or electronic.
        assert_eq!(
            for_invoice(Some("rf18 5390 0754 7034"), "RE-1", case)
                .unwrap()
                .as_str(),
            "RF18539007547034"
        );
        // Not an RF reference (or none): made from the invoice number's letters and digits.
        let made = RfReference::create("RE20260042").unwrap();
        assert_eq!(
            for_invoice(Some("Kd 4711"), "RE-2026/0042", case),
            Some(made.clone())
        );
        assert_eq!(for_invoice(None, "re-2026-0042", case), Some(made));
        // Longer than ISO 11649 allows: the last 21.
        let long = "ACME-INV-2026-000000001234567";
        assert_eq!(
            for_invoice(None, long, case).unwrap().body(),
            "NV2026000000001234567"
        );
        // No letter or digit in the number: from the case id, hyphens or not.
        let by_case = for_invoice(None, "#/-", case).unwrap();
        assert_eq!(by_case.body(), "b469fa16570867728950e".to_ascii_uppercase());
        assert_eq!(
            for_invoice(None, "#/-", &case.replace('-', "")),
            Some(by_case)
        );
        assert_eq!(for_invoice(None, "", ""), None);
    }

    proptest! {
        #[test]
        fn created_references_validate_and_single_errors_are_caught(body in "[A-Z0-9]{1,21}", pos in 0usize..25, sub in 0u8..36) {
            let rf = RfReference::create(&body).unwrap();
            prop_assert!(is_valid(rf.as_str()));
            prop_assert_eq!(rf.body(), body.as_str());
            // Replacing one digit by another or one letter by another is always detected (mod 97
            // catches every single substitution within one class; a letter for a digit changes
            // the length of the digit string and is not guaranteed).
            let mut bytes = rf.as_str().as_bytes().to_vec();
            let i = 2 + pos % (bytes.len() - 2);
            let replacement = if bytes[i].is_ascii_digit() { b'0' + sub % 10 } else { b'A' + sub % 26 };
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(!is_valid(&changed), "{} accepted", changed);
        }
    }
}
