//! EPC QR code payloads ("GiroCode"), EPC069-12 version 002, character set UTF-8.
//!
//! The payload is the text a QR encoder turns into the code on a letter; the banking app of the
//! debtor reads it into a SEPA credit transfer. Lines, separated by `\n`:
//!
//! | # | content | rule |
//! |---|---|---|
//! | 1 | `BCD` | service tag |
//! | 2 | `002` | version |
//! | 3 | `1` | character set UTF-8 |
//! | 4 | `SCT` | SEPA credit transfer |
//! | 5 | BIC | optional in version 002 |
//! | 6 | beneficiary name | 1–70 characters |
//! | 7 | IBAN | a valid IBAN of a SEPA country |
//! | 8 | `EUR` + amount | 0.01 – 999999999.99, `.` as decimal mark |
//! | 9 | purpose | optional, 4 characters (ISO 20022 purpose code) |
//! | 10 | structured reference | ISO 11649 RF, ≤ 35 — **or** line 11 |
//! | 11 | unstructured text | ≤ 140 |
//! | 12 | note to the payer | ≤ 70 |
//!
//! Trailing empty lines are left out; the whole payload is at most 331 bytes (QR version 13,
//! error correction M).

use crate::error::{Error, Result};
use crate::rf::RfReference;
use mahnwerk_domain::{Bic, Currency, Iban, Money};

/// Largest payload EPC069-12 allows (bytes).
pub const MAX_PAYLOAD_BYTES: usize = 331;
/// Smallest amount in minor units (0.01 EUR).
pub const MIN_AMOUNT_MINOR: i64 = 1;
/// Largest amount in minor units (999 999 999.99 EUR).
pub const MAX_AMOUNT_MINOR: i64 = 99_999_999_999;

/// Country codes of the SEPA scheme area (EPC409-09, 2024), the IBANs an EPC QR code may carry.
const SEPA_COUNTRIES: &[&str] = &[
    "AD", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GI", "GR",
    "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL", "PT", "RO",
    "SE", "SI", "SK", "SM", "VA", "AL", "MD", "ME", "MK", "RS", "GG", "JE", "IM", "PM", "GF", "GP",
    "MQ", "RE", "YT", "BL", "MF", "AX",
];

/// One SEPA credit transfer to be encoded as an EPC QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpcTransfer {
    /// BIC of the beneficiary's bank; optional in version 002.
    pub bic: Option<Bic>,
    /// Beneficiary (account holder) name, 1–70 characters.
    pub name: String,
    /// Beneficiary IBAN.
    pub iban: Iban,
    /// Amount, EUR only, 0.01 – 999 999 999.99.
    pub amount: Money,
    /// ISO 20022 purpose code, four characters such as `GDDS`.
    pub purpose: Option<String>,
    /// ISO 11649 RF creditor reference (line 10). Exclusive with `text`.
    pub reference: Option<String>,
    /// Unstructured remittance text, ≤ 140 characters (line 11). Exclusive with `reference`.
    pub text: Option<String>,
    /// Note shown to the payer, ≤ 70 characters (line 12).
    pub note: Option<String>,
}

/// Build and validate the EPC069-12 v002 payload. Every error names the field.
pub fn epc_payload(t: &EpcTransfer) -> Result<String> {
    check_text("name", &t.name, 70, true)?;
    if !SEPA_COUNTRIES.contains(&t.iban.country()) {
        return Err(Error::invalid(
            "iban",
            format!(
                "{} is not an IBAN country of the SEPA area",
                t.iban.country()
            ),
        ));
    }
    if t.amount.currency != Currency::EUR {
        return Err(Error::invalid(
            "amount",
            format!("EPC QR codes carry EUR only, got {}", t.amount.currency),
        ));
    }
    if !(MIN_AMOUNT_MINOR..=MAX_AMOUNT_MINOR).contains(&t.amount.minor) {
        return Err(Error::invalid(
            "amount",
            format!(
                "must be between 0.01 and 999999999.99 EUR, got {}",
                t.amount.to_decimal_string()
            ),
        ));
    }
    if let Some(p) = &t.purpose
        && (p.len() != 4
            || !p
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    {
        return Err(Error::invalid(
            "purpose",
            format!("must be a 4-character ISO 20022 purpose code such as GDDS, got {p:?}"),
        ));
    }
    let reference = match &t.reference {
        Some(r) => Some(RfReference::parse(r)?),
        None => None,
    };
    if let Some(text) = &t.text {
        if reference.is_some() {
            return Err(Error::invalid(
                "text",
                "a structured reference and an unstructured text are mutually exclusive",
            ));
        }
        check_text("text", text, 140, false)?;
    }
    if let Some(note) = &t.note {
        check_text("note", note, 70, false)?;
    }
    let lines = [
        "BCD".to_owned(),
        "002".to_owned(),
        "1".to_owned(),
        "SCT".to_owned(),
        t.bic
            .as_ref()
            .map(|b| b.as_str().to_owned())
            .unwrap_or_default(),
        t.name.trim().to_owned(),
        t.iban.as_str().to_owned(),
        format!("EUR{}", t.amount.to_decimal_string()),
        t.purpose.clone().unwrap_or_default(),
        reference.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        t.text
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned(),
        t.note
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned(),
    ];
    let used = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(0);
    let payload = lines[..=used].join("\n");
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid(
            "text",
            format!(
                "the payload has {} bytes, EPC069-12 allows at most {MAX_PAYLOAD_BYTES}",
                payload.len()
            ),
        ));
    }
    Ok(payload)
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<()> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let n = v.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must not contain line breaks or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transfer() -> EpcTransfer {
        EpcTransfer {
            bic: Some("COBADEFFXXX".parse().unwrap()),
            name: "Muster GmbH".into(),
            iban: "DE89370400440532013000".parse().unwrap(),
            amount: Money::eur(12_345),
            purpose: None,
            reference: Some("RF18539007547034".into()),
            text: None,
            note: Some("Rechnung 2026-17".into()),
        }
    }

    #[test]
    fn payload_has_the_twelve_lines_in_order() {
        let p = epc_payload(&transfer()).unwrap();
        assert_eq!(
            p,
            "BCD\n002\n1\nSCT\nCOBADEFFXXX\nMuster GmbH\nDE89370400440532013000\nEUR123.45\n\nRF18539007547034\n\nRechnung 2026-17"
        );
    }

    #[test]
    fn trailing_empty_lines_are_left_out_and_bic_is_optional() {
        let mut t = transfer();
        t.bic = None;
        t.note = None;
        t.reference = None;
        t.text = Some("Rechnung 17".into());
        let p = epc_payload(&t).unwrap();
        assert_eq!(
            p,
            "BCD\n002\n1\nSCT\n\nMuster GmbH\nDE89370400440532013000\nEUR123.45\n\n\nRechnung 17"
        );
        t.text = None;
        assert!(epc_payload(&t).unwrap().ends_with("EUR123.45"));
    }

    #[test]
    fn each_rule_names_its_field() {
        let field = |t: &EpcTransfer| match epc_payload(t).unwrap_err() {
            Error::Invalid { field, .. } => field,
            other => panic!("unexpected {other}"),
        };
        let mut t = transfer();
        t.amount = Money::new(100, "USD".parse().unwrap());
        assert_eq!(field(&t), "amount");
        t.amount = Money::eur(0);
        assert_eq!(field(&t), "amount");
        t.amount = Money::eur(MAX_AMOUNT_MINOR + 1);
        assert_eq!(field(&t), "amount");
        let mut t = transfer();
        t.name = " ".into();
        assert_eq!(field(&t), "name");
        t.name = "x".repeat(71);
        assert_eq!(field(&t), "name");
        let mut t = transfer();
        t.reference = Some("RF19539007547034".into());
        assert_eq!(field(&t), "reference");
        let mut t = transfer();
        t.text = Some("both".into());
        assert_eq!(field(&t), "text");
        let mut t = transfer();
        t.purpose = Some("gdds".into());
        assert_eq!(field(&t), "purpose");
        let mut t = transfer();
        t.note = Some("a\nb".into());
        assert_eq!(field(&t), "note");
        let mut t = transfer();
        t.iban = "BR1500000000000010932840814P2".parse().unwrap();
        assert_eq!(field(&t), "iban");
    }

    #[test]
    fn amount_bounds_are_inclusive() {
        let mut t = transfer();
        t.amount = Money::eur(1);
        assert!(epc_payload(&t).unwrap().contains("\nEUR0.01\n"));
        t.amount = Money::eur(MAX_AMOUNT_MINOR);
        assert!(epc_payload(&t).unwrap().contains("\nEUR999999999.99\n"));
    }

    proptest! {
        #[test]
        fn payload_never_exceeds_331_bytes_and_keeps_fields(
            name in "[A-Za-zÄÖÜäöüß .-]{1,70}",
            text in proptest::option::of("[A-Za-z0-9äöü ./-]{0,140}"),
            note in proptest::option::of("[A-Za-z0-9 ]{0,70}"),
            minor in 1i64..=MAX_AMOUNT_MINOR,
        ) {
            prop_assume!(!name.trim().is_empty());
            let t = EpcTransfer { reference: None, text: text.clone(), note, name: name.clone(), amount: Money::eur(minor), ..transfer() };
            match epc_payload(&t) {
                Ok(p) => {
                    prop_assert!(p.len() <= MAX_PAYLOAD_BYTES);
                    let lines: Vec<&str> = p.split('\n').collect();
                    prop_assert_eq!(lines[5], name.trim());
                    let amount = Money::parse_decimal(lines[7].strip_prefix("EUR").unwrap(), Currency::EUR, false).unwrap();
                    prop_assert_eq!(amount.minor, minor);
                }
                Err(Error::Invalid { field, .. }) => prop_assert_eq!(field, "text"),
                Err(e) => prop_assert!(false, "unexpected {}", e),
            }
        }
    }
}
