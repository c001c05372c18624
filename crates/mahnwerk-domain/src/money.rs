//! Money as integer minor units with an ISO 4217 currency.
//!
//! Arithmetic is checked: mixing currencies or overflowing `i64` is an error, never a silent sum.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Active ISO 4217 codes with their number of minor-unit digits (ISO 4217 list, 2024 amendment).
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// An ISO 4217 currency code known to Mahnwerk, e.g. `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");

    /// Digits after the decimal point (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn minor_digits(self) -> u8 {
        CURRENCIES
            .iter()
            .chain(HISTORIC_CURRENCIES)
            .find(|(code, _)| code.as_bytes() == self.0)
            .map(|(_, digits)| *digits)
            .unwrap_or(2)
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII codes of the table.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

/// Withdrawn ISO 4217 codes of the euro legacy currencies, still found in archived bank
/// statements (e.g. DEM before 2002). Accepted only through [`Currency::parse_historic`].
const HISTORIC_CURRENCIES: &[(&str, u8)] = &[
    ("ATS", 2),
    ("BEF", 0),
    ("DEM", 2),
    ("ESP", 0),
    ("FIM", 2),
    ("FRF", 2),
    ("GRD", 0),
    ("IEP", 2),
    ("ITL", 0),
    ("LUF", 0),
    ("NLG", 2),
    ("PTE", 0),
];

impl Currency {
    /// Parse an active code or a withdrawn euro legacy code (`DEM`, `FRF`…). For reading old
    /// statements only; [`FromStr`] accepts active codes only.
    pub fn parse_historic(s: &str) -> Result<Self, FieldError> {
        match HISTORIC_CURRENCIES.iter().find(|(code, _)| *code == s) {
            Some((code, _)) => {
                let b = code.as_bytes();
                Ok(Currency([b[0], b[1], b[2]]))
            }
            None => s.parse(),
        }
    }
}

impl FromStr for Currency {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match CURRENCIES.iter().find(|(code, _)| *code == s) {
            Some((code, _)) => {
                let b = code.as_bytes();
                Ok(Currency([b[0], b[1], b[2]]))
            }
            None => Err(FieldError::new(
                "",
                format!("unknown ISO 4217 currency code {s:?}"),
            )),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflow")]
    Overflow,
    #[error("invalid amount {0:?}: {1}")]
    Parse(String, &'static str),
}

/// An amount in integer minor units (cents) of one currency. Signed: debits are negative.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units, e.g. 12345 = 123.45 EUR.
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    pub fn eur(minor: i64) -> Self {
        Self::new(minor, Currency::EUR)
    }

    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    fn same(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same(&other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same(&other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_neg().ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Parse a decimal string such as `1234.56`, `-7,00` or `1.234,56` (German grouping is not
    /// accepted; pass `decimal_comma` for `1234,56`). More fraction digits than the currency has
    /// are an error, never rounded.
    pub fn parse_decimal(
        text: &str,
        currency: Currency,
        decimal_comma: bool,
    ) -> Result<Money, MoneyError> {
        let err = |why| MoneyError::Parse(text.to_owned(), why);
        let s = text.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let sep = if decimal_comma { ',' } else { '.' };
        let (int_part, frac_part) = match digits.split_once(sep) {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err("not a decimal number"));
        }
        let scale = u32::from(currency.minor_digits());
        if frac_part.len() > scale as usize {
            return Err(err("more fraction digits than the currency has"));
        }
        let mut minor: i64 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or_else(|| err("too large"))?;
        }
        let pad = scale - u32::try_from(frac_part.len()).map_err(|_| err("too long"))?;
        minor = minor
            .checked_mul(10_i64.pow(pad))
            .ok_or_else(|| err("too large"))?;
        Ok(Money::new(if neg { -minor } else { minor }, currency))
    }

    /// The amount as a plain decimal string with the currency's digits, e.g. `-1234.50`.
    pub fn to_decimal_string(&self) -> String {
        let digits = u32::from(self.currency.minor_digits());
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return format!("{sign}{abs}");
        }
        let factor = 10_u64.pow(digits);
        format!(
            "{sign}{}.{:0width$}",
            abs / factor,
            abs % factor,
            width = digits as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_parse_and_know_their_digits() {
        assert_eq!("EUR".parse::<Currency>().unwrap().minor_digits(), 2);
        assert_eq!("JPY".parse::<Currency>().unwrap().minor_digits(), 0);
        assert_eq!("KWD".parse::<Currency>().unwrap().minor_digits(), 3);
        assert!("EURO".parse::<Currency>().is_err());
        assert!("eur".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let chf = Money::new(100, "CHF".parse().unwrap());
        assert_eq!(
            Money::eur(100).checked_add(chf),
            Err(MoneyError::CurrencyMismatch(Currency::EUR, chf.currency))
        );
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            Money::eur(i64::MAX).checked_add(Money::eur(1)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn parses_decimal_strings() {
        let eur = Currency::EUR;
        assert_eq!(
            Money::parse_decimal("1234.56", eur, false).unwrap().minor,
            123456
        );
        assert_eq!(Money::parse_decimal("-7,5", eur, true).unwrap().minor, -750);
        assert_eq!(Money::parse_decimal("12", eur, false).unwrap().minor, 1200);
        assert_eq!(Money::parse_decimal(".5", eur, false).unwrap().minor, 50);
        assert!(Money::parse_decimal("1.234", eur, false).is_err());
        assert!(Money::parse_decimal("1e3", eur, false).is_err());
        assert!(Money::parse_decimal("", eur, false).is_err());
        assert!(Money::parse_decimal("99999999999999999999", eur, false).is_err());
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(Money::parse_decimal("500", jpy, false).unwrap().minor, 500);
        assert!(Money::parse_decimal("500.1", jpy, false).is_err());
    }

    #[test]
    fn historic_codes_only_through_parse_historic() {
        assert!("DEM".parse::<Currency>().is_err());
        let dem = Currency::parse_historic("DEM").unwrap();
        assert_eq!(dem.as_str(), "DEM");
        assert_eq!(Currency::parse_historic("ITL").unwrap().minor_digits(), 0);
        assert_eq!(Currency::parse_historic("EUR").unwrap(), Currency::EUR);
        assert!(Currency::parse_historic("XXX").is_err());
    }

    proptest! {
        #[test]
        fn decimal_string_round_trips(minor in -10_000_000_000_000_i64..10_000_000_000_000) {
            for code in ["EUR", "JPY", "KWD"] {
                let m = Money::new(minor, code.parse().unwrap());
                let back = Money::parse_decimal(&m.to_decimal_string(), m.currency, false).unwrap();
                prop_assert_eq!(back, m);
            }
        }

        #[test]
        fn add_then_sub_is_identity(a in -1_000_000_000_000_i64..1_000_000_000_000, b in -1_000_000_000_000_i64..1_000_000_000_000) {
            let sum = Money::eur(a).checked_add(Money::eur(b)).unwrap();
            prop_assert_eq!(sum.checked_sub(Money::eur(b)).unwrap(), Money::eur(a));
        }
    }
}
