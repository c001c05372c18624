//! The base rate (Basiszinssatz, § 247 BGB) as dated data.
//!
//! The table is `data/base_rates.csv`, compiled into the crate with `include_str!`, one row per
//! half-year with its source and status. The row of 2026-07-01 is *to verify* (carried forward;
//! the Bundesbank publishes the rate at the end of June): [`BaseRate::to_verify`] marks it, and
//! every interest period computed with it says so. [`BaseRateTable::on`] refuses dates after the
//! last row's half-year ([`crate::DunningError::BaseRateUnknown`]); interest uses
//! [`BaseRateTable::on_or_last`], which keeps the last published rate for them and marks it
//! *provisional*, so that a table not yet updated for a new half-year does not stop every
//! interest-charging letter (the derivation says so, and the service tells the operator).

use crate::error::{DunningError, Result};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::OnceLock;

/// The shipped table, `data/base_rates.csv`.
pub const GERMAN_BASE_RATES_CSV: &str = include_str!("../../data/base_rates.csv");

/// One published base rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRate {
    pub valid_from: NaiveDate,
    /// Percent per year, e.g. `-0.88` or `1.27`.
    pub rate: Decimal,
    /// True when the value is carried forward and still has to be checked against the Bundesbank.
    pub to_verify: bool,
    pub source: String,
}

/// Base rates ordered by `valid_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRateTable {
    rates: Vec<BaseRate>,
    /// First day no row covers (end of the last row's half-year + 1 day).
    valid_until_excl: NaiveDate,
}

/// The first day of the half-year after the one `date` is in.
pub fn next_half_year(date: NaiveDate) -> NaiveDate {
    let (y, m) = if date.month() <= 6 {
        (date.year(), 7)
    } else {
        (date.year() + 1, 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MAX)
}

impl BaseRateTable {
    /// Parse a table in the CSV format of `data/base_rates.csv` (lines starting with `#` and the
    /// header are skipped).
    pub fn parse_csv(text: &str) -> Result<Self> {
        let bad =
            |line: usize, why: &str| DunningError::BaseRateTable(format!("line {line}: {why}"));
        let mut rates: Vec<BaseRate> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("valid_from") {
                continue;
            }
            let mut cols = line.splitn(4, ',');
            let (Some(from), Some(rate), Some(status), source) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                return Err(bad(i + 1, "expected valid_from,rate_percent,status,source"));
            };
            let valid_from = NaiveDate::from_str(from.trim())
                .map_err(|_| bad(i + 1, "valid_from is not an ISO date"))?;
            let rate = Decimal::from_str(rate.trim())
                .map_err(|_| bad(i + 1, "rate_percent is not a decimal"))?;
            let to_verify = match status.trim() {
                "verified" => false,
                "to_verify" => true,
                _ => return Err(bad(i + 1, "status must be verified or to_verify")),
            };
            if rates
                .last()
                .is_some_and(|prev| valid_from <= prev.valid_from)
            {
                return Err(bad(i + 1, "rows must be in increasing date order"));
            }
            rates.push(BaseRate {
                valid_from,
                rate,
                to_verify,
                source: source.unwrap_or("").trim().to_owned(),
            });
        }
        let Some(last) = rates.last() else {
            return Err(DunningError::BaseRateTable("no rows".into()));
        };
        let valid_until_excl = next_half_year(last.valid_from);
        Ok(Self {
            rates,
            valid_until_excl,
        })
    }

    /// The shipped German table (parsed once).
    pub fn german() -> &'static BaseRateTable {
        static TABLE: OnceLock<BaseRateTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The shipped file is checked by a unit test; an empty table would refuse every date.
            BaseRateTable::parse_csv(GERMAN_BASE_RATES_CSV).unwrap_or(BaseRateTable {
                rates: Vec::new(),
                valid_until_excl: NaiveDate::MIN,
            })
        })
    }

    pub fn rows(&self) -> &[BaseRate] {
        &self.rates
    }

    /// The rate valid on `date`.
    pub fn on(&self, date: NaiveDate) -> Result<&BaseRate> {
        if date >= self.valid_until_excl {
            return Err(DunningError::BaseRateUnknown(date));
        }
        self.rates
            .iter()
            .rev()
            .find(|r| r.valid_from <= date)
            .ok_or(DunningError::BaseRateUnknown(date))
    }

    /// The rate for `date`, and whether it is provisional: past the table's end, the last
    /// published rate (until the next half-year's rate is added to the table).
    pub fn on_or_last(&self, date: NaiveDate) -> Result<(&BaseRate, bool)> {
        if date >= self.valid_until_excl
            && let Some(last) = self.rates.last()
        {
            return Ok((last, true));
        }
        self.on(date).map(|r| (r, false))
    }

    /// The dates in `(after, until]` on which a new row starts.
    pub fn changes_between(&self, after: NaiveDate, until: NaiveDate) -> Vec<NaiveDate> {
        self.rates
            .iter()
            .map(|r| r.valid_from)
            .filter(|d| *d > after && *d <= until)
            .collect()
    }

    /// The last day covered by the table.
    pub fn last_day(&self) -> NaiveDate {
        self.valid_until_excl.pred_opt().unwrap_or(NaiveDate::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_shipped_table_parses_and_has_the_rates_of_law_md() {
        let t = BaseRateTable::parse_csv(GERMAN_BASE_RATES_CSV).unwrap();
        assert_eq!(t.on(d("2016-07-01")).unwrap().rate, dec!(-0.88));
        assert_eq!(t.on(d("2022-12-31")).unwrap().rate, dec!(-0.88));
        assert_eq!(t.on(d("2023-01-01")).unwrap().rate, dec!(1.62));
        assert_eq!(t.on(d("2023-07-01")).unwrap().rate, dec!(3.12));
        assert_eq!(t.on(d("2024-01-01")).unwrap().rate, dec!(3.62));
        assert_eq!(t.on(d("2024-07-01")).unwrap().rate, dec!(3.37));
        assert_eq!(t.on(d("2025-01-01")).unwrap().rate, dec!(2.27));
        assert_eq!(t.on(d("2025-07-01")).unwrap().rate, dec!(1.27));
        assert_eq!(t.on(d("2026-06-30")).unwrap().rate, dec!(1.27));
        assert!(!t.on(d("2026-06-30")).unwrap().to_verify);
        assert!(t.on(d("2026-07-01")).unwrap().to_verify);
        assert_eq!(t.last_day(), d("2026-12-31"));
        assert_eq!(
            t.on(d("2027-01-01")),
            Err(DunningError::BaseRateUnknown(d("2027-01-01")))
        );
        assert!(t.on(d("2016-06-30")).is_err());
        assert_eq!(BaseRateTable::german(), &t);
    }

    #[test]
    fn every_row_starts_a_half_year() {
        for r in BaseRateTable::german().rows() {
            assert_eq!(r.valid_from.day(), 1);
            assert!(r.valid_from.month() == 1 || r.valid_from.month() == 7);
            assert!(!r.source.is_empty());
        }
    }

    #[test]
    fn malformed_tables_are_refused_with_the_line() {
        let err = BaseRateTable::parse_csv("2024-01-01,abc,verified,x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "base rate table: line 1: rate_percent is not a decimal"
        );
        assert!(
            BaseRateTable::parse_csv("2024-01-01,1,verified,x\n2023-01-01,1,verified,x").is_err()
        );
        assert!(BaseRateTable::parse_csv("2024-01-01,1,maybe,x").is_err());
        assert!(BaseRateTable::parse_csv("# nothing").is_err());
    }
}
