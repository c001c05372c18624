#![no_main]
//! CSV statements. Input = `MAPPING_JSON \0 CSV`; without a NUL (or with a mapping that does
//! not parse) the first byte picks one of the built-in mappings and the rest is the CSV.
use libfuzzer_sys::fuzz_target;
use mahnwerk_formats::csv::{CsvMapping, CsvReader};
use mahnwerk_formats::statement::ParseOptions;

const MAPPINGS: [&str; 3] = [
    include_str!("../../tests/fixtures/csv/sparkasse_csv-camt-v2.mapping.json"),
    r#"{"encoding": "iso-8859-1", "thousands_separator": ".", "date_format": "%d.%m.%Y",
        "skip_lines": 2, "account_iban": "DE44500105175407324931",
        "ignore_rows_starting_with": ["Kontostand"],
        "columns": {"booking_date": "Buchungstag", "value_date": 2, "currency": "Währung",
                    "counterparty_iban": "IBAN", "remittance": "Vorgang/Verwendungszweck"},
        "amount": {"indicator": {"amount": "Umsatz", "column": 13, "debit": ["S"], "credit": ["H"]}}}"#,
    r#"{"separator": ",", "decimal_separator": ".", "thousands_separator": ",", "header": false,
        "date_format": "%Y-%m-%d", "currency": "EUR",
        "columns": {"booking_date": 1, "account_iban": 2, "counterparty_name": 3},
        "amount": {"debit_credit": {"debit": 4, "credit": 5}}}"#,
];

fuzz_target!(|data: &[u8]| {
    let (mapping, csv) = match data.iter().position(|b| *b == 0) {
        Some(i) => match CsvMapping::from_json(&data[..i]) {
            Ok(m) => (m, &data[i + 1..]),
            Err(_) => return,
        },
        None => {
            let Some((first, rest)) = data.split_first() else {
                return;
            };
            let m = MAPPINGS[usize::from(*first) % MAPPINGS.len()];
            (
                CsvMapping::from_json(m.as_bytes()).expect("built-in mapping"),
                rest,
            )
        }
    };
    let lenient_dates = data.len() % 2 == 1;
    if let Ok(r) = CsvReader::new(csv, mapping, ParseOptions { lenient_dates }) {
        for item in r {
            if item.is_err() {
                break;
            }
        }
    }
});
