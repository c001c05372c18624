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
//!
//! The table in force ([`BaseRateTable::in_force`]) is the shipped one unless an operator
//! installed another ([`BaseRateTable::install`]: `mahnwerk serve --base-rates FILE`, the same
//! CSV format), e.g. with the rate the Bundesbank published for a half-year this build does not
//! know yet. An installed table must keep every verified rate of the shipped one: it may add
//! half-years and settle rows still to verify, never rewrite published law.

use crate::error::{DunningError, Result};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

/// The table an operator installed in this process, if any.
static INSTALLED: RwLock<Option<Arc<BaseRateTable>>> = RwLock::new(None);

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

    /// The table interest is computed with: the one installed, else the shipped one.
    pub fn in_force() -> Arc<BaseRateTable> {
        static SHIPPED: OnceLock<Arc<BaseRateTable>> = OnceLock::new();
        let installed = INSTALLED.read().unwrap_or_else(|p| p.into_inner()).clone();
        installed.unwrap_or_else(|| {
            SHIPPED
                .get_or_init(|| Arc::new(Self::german().clone()))
                .clone()
        })
    }

    /// Put `table` in force for this process, after checking it keeps every verified rate of
    /// the shipped table (same half-years, same rates). Refused with the half-year at fault.
    pub fn install(table: BaseRateTable) -> Result<()> {
        table.keeps(Self::german())?;
        *INSTALLED.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(table));
        Ok(())
    }

    /// Read and check a table file for [`BaseRateTable::install`].
    pub fn from_file(path: &std::path::Path) -> Result<BaseRateTable> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DunningError::BaseRateTable(format!("{}: {e}", path.display())))?;
        let table = Self::parse_csv(&text).map_err(|e| match e {
            DunningError::BaseRateTable(why) => {
                DunningError::BaseRateTable(format!("{}: {why}", path.display()))
            }
            other => other,
        })?;
        table.keeps(Self::german())?;
        Ok(table)
    }

    /// Whether this table keeps every verified row of `shipped`.
    fn keeps(&self, shipped: &BaseRateTable) -> Result<()> {
        for row in shipped.rates.iter().filter(|r| !r.to_verify) {
            match self.rates.iter().find(|r| r.valid_from == row.valid_from) {
                Some(r) if r.rate == row.rate => {}
                Some(r) => {
                    return Err(DunningError::BaseRateTable(format!(
                        "the half-year from {} has the published rate {} %, not {} %",
                        row.valid_from, row.rate, r.rate
                    )));
                }
                None => {
                    return Err(DunningError::BaseRateTable(format!(
                        "the published half-year from {} ({} %) is missing",
                        row.valid_from, row.rate
                    )));
                }
            }
        }
        Ok(())
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
