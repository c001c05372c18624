//! The CSV mapping: which column holds what, and how amounts and dates are written.

use super::*;

/// A column: its header text or its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    Number(usize),
    Name(String),
}

/// Which column holds what. Only the booking date is required (besides the amount).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub booking_date: Option<ColumnRef>,
    pub value_date: Option<ColumnRef>,
    pub currency: Option<ColumnRef>,
    pub account_iban: Option<ColumnRef>,
    pub counterparty_name: Option<ColumnRef>,
    pub counterparty_iban: Option<ColumnRef>,
    pub counterparty_bic: Option<ColumnRef>,
    pub remittance: Option<ColumnRef>,
    pub creditor_reference: Option<ColumnRef>,
    pub end_to_end_id: Option<ColumnRef>,
    pub mandate_id: Option<ColumnRef>,
    pub creditor_id: Option<ColumnRef>,
    pub bank_reference: Option<ColumnRef>,
    pub customer_reference: Option<ColumnRef>,
    pub posting_text: Option<ColumnRef>,
    pub gvc: Option<ColumnRef>,
}

/// How the sign of an amount is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AmountMapping {
    /// One signed column: negative = debit.
    Signed(ColumnRef),
    /// Separate debit and credit columns; one of them is filled per row.
    DebitCredit { debit: ColumnRef, credit: ColumnRef },
    /// An unsigned amount and a column whose value says debit or credit.
    Indicator {
        amount: ColumnRef,
        column: ColumnRef,
        debit: Vec<String>,
        credit: Vec<String>,
    },
}

fn semicolon() -> char {
    ';'
}
fn dquote() -> Option<char> {
    Some('"')
}
fn utf8() -> String {
    "utf-8".into()
}
fn comma() -> char {
    ','
}
fn yes() -> bool {
    true
}

/// The declared layout of a CSV statement export. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvMapping {
    #[serde(default = "semicolon")]
    pub separator: char,
    /// `null` for no quoting.
    #[serde(default = "dquote")]
    pub quote: Option<char>,
    /// WHATWG encoding label.
    #[serde(default = "utf8")]
    pub encoding: String,
    #[serde(default = "comma")]
    pub decimal_separator: char,
    /// Grouping separator inside amounts (`.` in `1.234,56`); `null` when amounts are ungrouped.
    #[serde(default)]
    pub thousands_separator: Option<char>,
    /// chrono format of the date columns.
    pub date_format: String,
    /// Physical lines to skip before the header (or the first row).
    #[serde(default)]
    pub skip_lines: u64,
    /// The first record after the skipped lines names the columns.
    #[serde(default = "yes")]
    pub header: bool,
    /// Currency of every row unless a `currency` column says otherwise.
    #[serde(default)]
    pub currency: Option<String>,
    /// Account of the whole file unless an `account_iban` column says otherwise.
    #[serde(default)]
    pub account_iban: Option<String>,
    #[serde(default)]
    pub ignore_rows_starting_with: Vec<String>,
    pub columns: Columns,
    pub amount: AmountMapping,
}

impl CsvMapping {
    /// Read a mapping from JSON; the error names the JSON line and column.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::syntax(
                Position::at(e.line() as u64, format!("mapping column {}", e.column())),
                e.to_string(),
            )
        })
    }
}
