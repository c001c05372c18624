//! The base-rate table as data an operator replaces (`mahnwerk serve --base-rates FILE`,
//! `mahnwerk law interest --base-rates FILE`): with the 2027 rate installed, interest across
//! 2026-12-31 uses it and is no longer provisional; a file
//! that rewrites a published rate or drops one is refused, naming the half-year. Own test binary:
//! the installed table is process-wide.
//!
//! Regression: the table was compiled in only, so on 1 January every interest line stayed
//! provisional until a new build.

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::cli::{LawCommand, run_law};
use mahnwerk_dunning::law::BaseRateTable;
use mahnwerk_dunning::law::interest::{DayCount, InterestRequest, compute_interest};
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn request() -> InterestRequest {
    InterestRequest {
        principal: Money::eur(100_000),
        from: d("2026-12-01"),
        to: d("2027-01-31"),
        debtor: DebtorKind::Business,
        payments: vec![],
        costs: vec![],
        day_count: DayCount::Act365,
    }
}

#[test]
fn an_installed_table_with_the_new_half_year_ends_the_provisional_rate() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = mahnwerk_dunning::law::base_rate::GERMAN_BASE_RATES_CSV;

    // Refused: a published rate rewritten, a published half-year dropped, a malformed line.
    let rewritten = shipped.replace("2024-07-01,3.37,", "2024-07-01,3.47,");
    let path = dir.path().join("rewritten.csv");
    std::fs::write(&path, rewritten).unwrap();
    let err = BaseRateTable::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("2024-07-01") && err.contains("3.37"), "{err}");
    let dropped: String = shipped
        .lines()
        .filter(|l| !l.starts_with("2025-01-01"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.path().join("dropped.csv");
    std::fs::write(&path, dropped).unwrap();
    let err = BaseRateTable::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("2025-01-01") && err.contains("missing"),
        "{err}"
    );
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, format!("{shipped}2027-01-01,two,verified,x\n")).unwrap();
    let err = BaseRateTable::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.csv") && err.contains("line"), "{err}");
    // Nothing was installed by the refusals: 2027 is still provisional.
    let calc = compute_interest(&request(), &BaseRateTable::in_force()).unwrap();
    assert!(calc.provisional);

    // The operator's file: the 2026-07-01 row verified and the 2027-01-01 rate added.
    let updated = format!(
        "{}2027-01-01,2.00,verified,Deutsche Bundesbank (test)\n",
        shipped.replace("2026-07-01,1.27,to_verify,", "2026-07-01,1.27,verified,")
    );
    let path = dir.path().join("base_rates.csv");
    std::fs::write(&path, updated).unwrap();
    // Through the CLI (the same flag `serve` takes): it installs the table for this process.
    let mut out = Vec::new();
    run_law(
        LawCommand::Interest {
            principal: "1000.00".into(),
            currency: "EUR".into(),
            from: d("2026-12-01"),
            to: d("2027-01-31"),
            consumer: false,
            business: true,
            payments: vec![],
            json: true,
            base_rates: Some(path.clone()),
        },
        &mut out,
    )
    .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let periods = printed["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2, "{printed}");
    assert_eq!(periods[1]["base_rate"], "2.00", "{printed}");

    let table = BaseRateTable::in_force();
    assert_eq!(table.last_day(), d("2027-06-30"));
    let calc = compute_interest(&request(), &table).unwrap();
    assert!(!calc.provisional, "{calc:?}");
    assert_eq!(
        calc.periods[1].base_rate,
        Decimal::from_str("2.00").unwrap()
    );
    // 1,000.00 EUR × (2.00 + 9) % × 31/365, half-up: 9.34 EUR in January (8.72 at 1.27 %).
    assert_eq!(calc.periods[1].interest, 934);
}
