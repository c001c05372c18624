//! CSV bank statements read with a declared column mapping.
//!
//! Banks export CSV in as many layouts as there are banks, so the layout is not guessed: a
//! [`CsvMapping`] (plain serde data, usually a JSON file) declares the separator, quote,
//! text encoding, decimal and thousands separators, date format, the lines to skip, whether
//! there is a header row, which column holds what, and the sign convention. [`CsvReader`] then
//! streams the file into the same [`StatementItem`]s as camt and MT940: a header, one entry at
//! a time, an end with the totals.
//!
//! # Mapping (JSON)
//! ```json
//! {
//!   "separator": ";", "quote": "\"", "encoding": "windows-1252",
//!   "decimal_separator": ",", "thousands_separator": ".",
//!   "date_format": "%d.%m.%Y", "skip_lines": 0, "header": true,
//!   "currency": "EUR", "account_iban": null,
//!   "columns": {
//!     "account_iban": "Auftragskonto", "booking_date": "Buchungstag",
//!     "value_date": "Valutadatum", "posting_text": "Buchungstext",
//!     "remittance": "Verwendungszweck", "creditor_id": "Glaeubiger ID",
//!     "mandate_id": "Mandatsreferenz", "end_to_end_id": "Kundenreferenz (End-to-End)",
//!     "counterparty_name": "Beguenstigter/Zahlungspflichtiger",
//!     "counterparty_iban": "Kontonummer/IBAN", "counterparty_bic": "BIC (SWIFT-Code)",
//!     "currency": "Waehrung"
//!   },
//!   "amount": {"signed": "Betrag"}
//! }
//! ```
//! - A column is named by its header text (needs `"header": true`) or by its 1-based number.
//! - `amount` is one of `{"signed": COL}` (negative = debit; a trailing minus `12,50-` is
//!   accepted), `{"debit_credit": {"debit": COL, "credit": COL}}` (one of the two is filled;
//!   the debit is booked negative whatever sign it is written with), or
//!   `{"indicator": {"amount": COL, "column": COL, "debit": ["S"], "credit": ["H"]}}`.
//! - `currency` is the fixed currency; a `currency` column overrides it per row; one of the two
//!   is required.
//! - `account_iban` is the account of the whole file; an `account_iban` column gives it per row
//!   and a change of account starts a new statement.
//! - `encoding` is any WHATWG label encoding_rs knows (`utf-8`, `iso-8859-1`, `windows-1252`,
//!   …) as long as it is ASCII-compatible; UTF-8 input may start with a BOM and must be valid.
//! - `date_format` is a chrono format (`%d.%m.%Y`, `%d.%m.%y`, `%Y-%m-%d`); an impossible date
//!   (30.02.) is an error unless [`ParseOptions::lenient_dates`].
//! - `ignore_rows_starting_with`: rows whose first cell starts with one of these strings are
//!   skipped (footers such as `Kontostand`); blank rows are always skipped.
//!
//! CSV has no balances, so the balance check reports `not checked`. Every error names the line
//! (where the record starts) and the column (`column 4 (Betrag)`).

use crate::error::{Error, Position, Result};
use crate::statement::{
    Counterparty, Entry, ParseOptions, SourceFormat, StatementHeader, StatementItem, Totals,
};
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::BufRead;

mod mapping;
pub use mapping::{AmountMapping, ColumnRef, Columns, CsvMapping};

/// Longest physical line accepted (bytes).
pub const MAX_LINE: u64 = 64 * 1024;
/// Longest record (a quoted cell may span lines) accepted (bytes).
pub const MAX_RECORD: usize = 256 * 1024;
/// Most cells in one record.
pub const MAX_CELLS: usize = 1024;

/// Column indexes (0-based) once the header is known.
#[derive(Debug, Default)]
struct Resolved {
    booking_date: Option<usize>,
    value_date: Option<usize>,
    currency: Option<usize>,
    account_iban: Option<usize>,
    counterparty_name: Option<usize>,
    counterparty_iban: Option<usize>,
    counterparty_bic: Option<usize>,
    remittance: Option<usize>,
    creditor_reference: Option<usize>,
    end_to_end_id: Option<usize>,
    mandate_id: Option<usize>,
    creditor_id: Option<usize>,
    bank_reference: Option<usize>,
    customer_reference: Option<usize>,
    posting_text: Option<usize>,
    gvc: Option<usize>,
    amount: ResolvedAmount,
}

#[derive(Debug, Default)]
enum ResolvedAmount {
    #[default]
    None,
    Signed(usize),
    DebitCredit(usize, usize),
    Indicator(usize, usize),
}

struct Current {
    account: Option<String>,
    totals: Totals,
}

/// Streaming CSV statement reader: an iterator of [`StatementItem`]s.
pub struct CsvReader<R: BufRead> {
    input: R,
    mapping: CsvMapping,
    options: ParseOptions,
    encoding: &'static encoding_rs::Encoding,
    currency: Option<Currency>,
    line_no: u64,
    buf: Vec<u8>,
    names: Vec<String>,
    cols: Option<Resolved>,
    current: Option<Current>,
    queue: VecDeque<StatementItem>,
    done: bool,
    failed: bool,
}

impl<R: BufRead> CsvReader<R> {
    /// Check the mapping (encoding, currency, separators) and prepare to read `input`.
    pub fn new(input: R, mapping: CsvMapping, options: ParseOptions) -> Result<Self> {
        let bad = |field: &str, why: String| Error::invalid(format!("mapping.{field}"), why);
        let encoding = encoding_rs::Encoding::for_label(mapping.encoding.trim().as_bytes())
            .ok_or_else(|| {
                bad(
                    "encoding",
                    format!("unknown encoding {:?}", mapping.encoding),
                )
            })?;
        if !encoding.is_ascii_compatible() {
            return Err(bad(
                "encoding",
                format!("{} is not ASCII-compatible", encoding.name()),
            ));
        }
        let currency = match &mapping.currency {
            Some(c) => Some(
                c.trim()
                    .parse::<Currency>()
                    .map_err(|e| bad("currency", e.reason))?,
            ),
            None if mapping.columns.currency.is_none() => {
                return Err(bad(
                    "currency",
                    "neither a currency nor a currency column is declared".into(),
                ));
            }
            None => None,
        };
        if matches!(mapping.separator, '\n' | '\r') || mapping.quote == Some(mapping.separator) {
            return Err(bad(
                "separator",
                "must differ from the quote and newline".into(),
            ));
        }
        if mapping.thousands_separator == Some(mapping.decimal_separator)
            || mapping.decimal_separator.is_ascii_digit()
            || matches!(mapping.decimal_separator, '-' | '+')
        {
            return Err(bad(
                "decimal_separator",
                "must differ from the thousands separator and not be a digit or sign".into(),
            ));
        }
        if mapping.columns.booking_date.is_none() {
            return Err(bad("columns.booking_date", "is required".into()));
        }
        if mapping.date_format.trim().is_empty() {
            return Err(bad("date_format", "is empty".into()));
        }
        Ok(Self {
            input,
            mapping,
            options,
            encoding,
            currency,
            line_no: 0,
            buf: Vec::new(),
            names: Vec::new(),
            cols: None,
            current: None,
            queue: VecDeque::new(),
            done: false,
            failed: false,
        })
    }

    /// Read one physical line, decoded, without its line end. `None` at end of input.
    fn read_line(&mut self) -> Result<Option<String>> {
        self.buf.clear();
        let n = std::io::Read::take(self.input.by_ref(), MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.len() as u64 > MAX_LINE {
            return Err(Error::limit(
                Position::line(self.line_no),
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        let mut bytes = &self.buf[..];
        if self.line_no == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if self.encoding == encoding_rs::UTF_8 {
            match std::str::from_utf8(bytes) {
                Ok(s) => Ok(Some(s.to_owned())),
                Err(e) => Err(Error::syntax(
                    Position::line(self.line_no),
                    format!(
                        "not valid UTF-8 at byte {} (declare the file's encoding in the mapping)",
                        e.valid_up_to() + 1
                    ),
                )),
            }
        } else {
            Ok(Some(
                self.encoding
                    .decode_without_bom_handling(bytes)
                    .0
                    .into_owned(),
            ))
        }
    }

    /// Read one record (a quoted cell may span lines). Returns its first line and cells.
    fn read_record(&mut self) -> Result<Option<(u64, Vec<String>)>> {
        let Some(first) = self.read_line()? else {
            return Ok(None);
        };
        let start = self.line_no;
        let sep = self.mapping.separator;
        let quote = self.mapping.quote;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut in_quotes = false;
        let mut quoted = false;
        let mut line = first;
        let mut size = 0usize;
        loop {
            size += line.len();
            if size > MAX_RECORD {
                return Err(Error::limit(
                    Position::line(start),
                    format!("record longer than {MAX_RECORD} bytes"),
                ));
            }
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if in_quotes {
                    if Some(c) == quote {
                        if chars.peek().copied() == quote {
                            cell.push(c);
                            chars.next();
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        cell.push(c);
                    }
                } else if c == sep {
                    if cells.len() >= MAX_CELLS {
                        return Err(Error::limit(
                            Position::line(start),
                            format!("more than {MAX_CELLS} cells"),
                        ));
                    }
                    cells.push(finish_cell(&mut cell, quoted));
                    quoted = false;
                } else if Some(c) == quote && cell.trim().is_empty() && !quoted {
                    cell.clear();
                    in_quotes = true;
                    quoted = true;
                } else {
                    cell.push(c);
                }
            }
            if !in_quotes {
                break;
            }
            match self.read_line()? {
                Some(next) => {
                    cell.push('\n');
                    line = next;
                }
                None => {
                    return Err(Error::syntax(
                        Position::at(start, format!("column {}", cells.len() + 1)),
                        "quoted cell not closed before the end of the file",
                    ));
                }
            }
        }
        cells.push(finish_cell(&mut cell, quoted));
        Ok(Some((start, cells)))
    }

    fn resolve(&self, col: &ColumnRef, what: &str, line: u64) -> Result<usize> {
        match col {
            ColumnRef::Number(0) => Err(Error::invalid(
                format!("mapping.{what}"),
                "column numbers start at 1",
            )),
            ColumnRef::Number(n) => Ok(n - 1),
            ColumnRef::Name(name) if !self.mapping.header => Err(Error::invalid(
                format!("mapping.{what}"),
                format!("column {name:?} named but the mapping declares no header row"),
            )),
            ColumnRef::Name(name) => {
                let wanted = name.trim();
                self.names
                    .iter()
                    .position(|n| n.trim() == wanted)
                    .or_else(|| {
                        self.names
                            .iter()
                            .position(|n| n.trim().eq_ignore_ascii_case(wanted))
                    })
                    .ok_or_else(|| {
                        Error::syntax(
                            Position::at(line, "header"),
                            format!("no column {name:?} for {what} in the header"),
                        )
                    })
            }
        }
    }

    fn resolve_all(&self, header_line: u64) -> Result<Resolved> {
        let c = &self.mapping.columns;
        let r = |col: &Option<ColumnRef>, what: &str| -> Result<Option<usize>> {
            col.as_ref()
                .map(|col| self.resolve(col, what, header_line))
                .transpose()
        };
        let amount = match &self.mapping.amount {
            AmountMapping::Signed(a) => {
                ResolvedAmount::Signed(self.resolve(a, "amount.signed", header_line)?)
            }
            AmountMapping::DebitCredit { debit, credit } => ResolvedAmount::DebitCredit(
                self.resolve(debit, "amount.debit_credit.debit", header_line)?,
                self.resolve(credit, "amount.debit_credit.credit", header_line)?,
            ),
            AmountMapping::Indicator {
                amount,
                column,
                debit,
                credit,
            } => {
                if debit.is_empty() || credit.is_empty() {
                    return Err(Error::invalid(
                        "mapping.amount.indicator",
                        "needs at least one debit and one credit value",
                    ));
                }
                ResolvedAmount::Indicator(
                    self.resolve(amount, "amount.indicator.amount", header_line)?,
                    self.resolve(column, "amount.indicator.column", header_line)?,
                )
            }
        };
        Ok(Resolved {
            booking_date: r(&c.booking_date, "columns.booking_date")?,
            value_date: r(&c.value_date, "columns.value_date")?,
            currency: r(&c.currency, "columns.currency")?,
            account_iban: r(&c.account_iban, "columns.account_iban")?,
            counterparty_name: r(&c.counterparty_name, "columns.counterparty_name")?,
            counterparty_iban: r(&c.counterparty_iban, "columns.counterparty_iban")?,
            counterparty_bic: r(&c.counterparty_bic, "columns.counterparty_bic")?,
            remittance: r(&c.remittance, "columns.remittance")?,
            creditor_reference: r(&c.creditor_reference, "columns.creditor_reference")?,
            end_to_end_id: r(&c.end_to_end_id, "columns.end_to_end_id")?,
            mandate_id: r(&c.mandate_id, "columns.mandate_id")?,
            creditor_id: r(&c.creditor_id, "columns.creditor_id")?,
            bank_reference: r(&c.bank_reference, "columns.bank_reference")?,
            customer_reference: r(&c.customer_reference, "columns.customer_reference")?,
            posting_text: r(&c.posting_text, "columns.posting_text")?,
            gvc: r(&c.gvc, "columns.gvc")?,
            amount,
        })
    }

    fn column_name(&self, i: usize) -> String {
        match self.names.get(i) {
            Some(n) if !n.trim().is_empty() => format!("column {} ({})", i + 1, n.trim()),
            _ => format!("column {}", i + 1),
        }
    }

    fn step(&mut self) -> Result<()> {
        if self.cols.is_none() {
            for _ in 0..self.mapping.skip_lines {
                if self.read_line()?.is_none() {
                    break;
                }
            }
            let mut header_line = self.line_no + 1;
            if self.mapping.header {
                match self.read_record()? {
                    Some((line, cells)) => {
                        header_line = line;
                        self.names = cells;
                    }
                    None => {
                        return Err(Error::syntax(
                            Position::line(self.line_no + 1),
                            "no header row",
                        ));
                    }
                }
            }
            self.cols = Some(self.resolve_all(header_line)?);
        }
        let Some((line, cells)) = self.read_record()? else {
            if self.current.is_none() {
                self.start(None, self.line_no + 1, None);
            }
            self.finish();
            self.done = true;
            return Ok(());
        };
        if cells.iter().all(|c| c.trim().is_empty()) {
            return Ok(());
        }
        let first = cells[0].trim();
        if self
            .mapping
            .ignore_rows_starting_with
            .iter()
            .any(|p| !p.is_empty() && first.starts_with(p.as_str()))
        {
            return Ok(());
        }
        let entry = self.entry(line, &cells)?;
        let account = match self.cols.as_ref().and_then(|c| c.account_iban) {
            Some(i) => self.cell(&cells, i, line)?.map(compact),
            None => None,
        };
        let change = match &self.current {
            None => true,
            Some(cur) => account.is_some() && account != cur.account,
        };
        if change {
            if self.current.is_some() {
                self.finish();
            }
            self.start(account, line, Some(entry.amount.currency));
        }
        let cur = self.current.as_mut().expect("statement started");
        cur.totals.add(&entry);
        self.queue.push_back(StatementItem::Entry(Box::new(entry)));
        Ok(())
    }

    /// Begin a statement; its currency is the mapping's, else the first entry's.
    fn start(&mut self, row_account: Option<String>, line: u64, first: Option<Currency>) {
        let account = row_account.or_else(|| self.mapping.account_iban.as_deref().map(compact));
        let is_iban = account.as_deref().is_some_and(looks_like_iban);
        self.queue
            .push_back(StatementItem::Header(Box::new(StatementHeader {
                format: SourceFormat::Csv,
                version: "CSV".into(),
                message_id: None,
                statement_id: None,
                sequence: None,
                account_iban: if is_iban { account.clone() } else { None },
                account: account.clone(),
                currency: self.currency.or(first),
                opening_balance: None,
                closing_balance: None,
                line,
            })));
        self.current = Some(Current {
            account,
            totals: Totals::default(),
        });
    }

    fn finish(&mut self) {
        if let Some(cur) = self.current.take() {
            let end = cur.totals.finish(None, None);
            self.queue.push_back(StatementItem::End(Box::new(end)));
        }
    }

    /// The trimmed cell `i`, `None` when empty; a row too short for a mapped column is an error.
    fn cell<'c>(&self, cells: &'c [String], i: usize, line: u64) -> Result<Option<&'c str>> {
        match cells.get(i) {
            Some(c) => {
                let t = c.trim();
                Ok(if t.is_empty() { None } else { Some(t) })
            }
            None => Err(Error::syntax(
                Position::at(line, self.column_name(i)),
                format!("row has only {} columns", cells.len()),
            )),
        }
    }

    fn text(&self, cells: &[String], i: Option<usize>, line: u64) -> Result<Option<String>> {
        match i {
            Some(i) => Ok(self.cell(cells, i, line)?.map(str::to_owned)),
            None => Ok(None),
        }
    }

    fn date(
        &self,
        cells: &[String],
        i: usize,
        line: u64,
        warnings: &mut Vec<String>,
    ) -> Result<Option<NaiveDate>> {
        let Some(t) = self.cell(cells, i, line)? else {
            return Ok(None);
        };
        let pos = || Position::at(line, self.column_name(i));
        match NaiveDate::parse_from_str(t, &self.mapping.date_format) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == chrono::format::ParseErrorKind::OutOfRange => {
                if self.options.lenient_dates {
                    warnings.push(format!("{}: impossible date {t:?} ignored", pos()));
                    Ok(None)
                } else {
                    Err(Error::syntax(pos(), format!("impossible date {t:?}")))
                }
            }
            Err(e) => Err(Error::syntax(
                pos(),
                format!(
                    "not a date in format {:?}: {t:?} ({e})",
                    self.mapping.date_format
                ),
            )),
        }
    }

    /// Amount cell → (sign-bearing minor units). `None` when empty.
    fn number(
        &self,
        cells: &[String],
        i: usize,
        line: u64,
        currency: Currency,
    ) -> Result<Option<i64>> {
        let Some(t) = self.cell(cells, i, line)? else {
            return Ok(None);
        };
        parse_amount(
            t,
            currency,
            self.mapping.decimal_separator,
            self.mapping.thousands_separator,
        )
        .map(Some)
        .map_err(|why| Error::syntax(Position::at(line, self.column_name(i)), why))
    }

    fn entry(&self, line: u64, cells: &[String]) -> Result<Entry> {
        let cols = self.cols.as_ref().expect("columns resolved");
        let currency = match cols.currency {
            Some(i) => match self.cell(cells, i, line)? {
                Some(code) => code.parse::<Currency>().map_err(|e| {
                    Error::syntax(Position::at(line, self.column_name(i)), e.reason)
                })?,
                None => self.currency.ok_or_else(|| {
                    Error::syntax(
                        Position::at(line, self.column_name(i)),
                        "no currency (and the mapping declares none)",
                    )
                })?,
            },
            None => self.currency.expect("checked in new"),
        };
        let missing =
            |i: usize, why: &str| Error::syntax(Position::at(line, self.column_name(i)), why);
        let minor = match cols.amount {
            ResolvedAmount::Signed(i) => self
                .number(cells, i, line, currency)?
                .ok_or_else(|| missing(i, "no amount"))?,
            ResolvedAmount::DebitCredit(d, c) => {
                let debit = self.number(cells, d, line, currency)?.filter(|v| *v != 0);
                let credit = self.number(cells, c, line, currency)?.filter(|v| *v != 0);
                match (debit, credit) {
                    (Some(_), Some(_)) => {
                        return Err(missing(
                            c,
                            &format!(
                                "both {} and this column hold an amount",
                                self.column_name(d)
                            ),
                        ));
                    }
                    (Some(v), None) => -v.abs(),
                    (None, Some(v)) => v.abs(),
                    (None, None) => {
                        // Both empty or zero: a zero booking if either was written, else missing.
                        let written = self.cell(cells, d, line)?.is_some()
                            || self.cell(cells, c, line)?.is_some();
                        if !written {
                            return Err(missing(
                                c,
                                &format!("no amount here nor in {}", self.column_name(d)),
                            ));
                        }
                        0
                    }
                }
            }
            ResolvedAmount::Indicator(a, ind) => {
                let v = self
                    .number(cells, a, line, currency)?
                    .ok_or_else(|| missing(a, "no amount"))?;
                if v < 0 {
                    return Err(missing(
                        a,
                        "signed amount where the mapping declares an indicator column",
                    ));
                }
                let AmountMapping::Indicator { debit, credit, .. } = &self.mapping.amount else {
                    unreachable!("resolved from the mapping")
                };
                let flag = self.cell(cells, ind, line)?.unwrap_or("");
                if debit.iter().any(|d| d.trim() == flag) {
                    -v
                } else if credit.iter().any(|c| c.trim() == flag) {
                    v
                } else {
                    return Err(missing(
                        ind,
                        &format!(
                            "{flag:?} is neither a debit {debit:?} nor a credit {credit:?} indicator"
                        ),
                    ));
                }
            }
            ResolvedAmount::None => unreachable!("resolved from the mapping"),
        };
        let mut e = Entry::new(Money::new(minor, currency), line);
        let mut warnings = Vec::new();
        if let Some(i) = cols.booking_date {
            e.booking_date = self.date(cells, i, line, &mut warnings)?;
            if e.booking_date.is_none() && warnings.is_empty() {
                return Err(missing(i, "no booking date"));
            }
        }
        if let Some(i) = cols.value_date {
            e.value_date = self.date(cells, i, line, &mut warnings)?;
        }
        e.warnings = warnings;
        e.counterparty = Counterparty {
            name: self.text(cells, cols.counterparty_name, line)?,
            iban: self
                .text(cells, cols.counterparty_iban, line)?
                .map(|s| compact(&s))
                .filter(|s| looks_like_iban(s)),
            account: self
                .text(cells, cols.counterparty_iban, line)?
                .map(|s| compact(&s))
                .filter(|s| !looks_like_iban(s)),
            bic: self.text(cells, cols.counterparty_bic, line)?,
        };
        e.remittance = self.text(cells, cols.remittance, line)?;
        e.creditor_reference = self.text(cells, cols.creditor_reference, line)?;
        if let Some(r) = &e.creditor_reference {
            e.structured_references.push(r.clone());
        }
        e.end_to_end_id = self
            .text(cells, cols.end_to_end_id, line)?
            .filter(|s| s != "NOTPROVIDED");
        e.mandate_id = self.text(cells, cols.mandate_id, line)?;
        e.creditor_id = self.text(cells, cols.creditor_id, line)?;
        e.bank_reference = self.text(cells, cols.bank_reference, line)?;
        e.customer_reference = self.text(cells, cols.customer_reference, line)?;
        e.posting_text = self.text(cells, cols.posting_text, line)?;
        e.gvc = self.text(cells, cols.gvc, line)?;
        Ok(e)
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<StatementItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            if self.done || self.failed {
                return None;
            }
            if let Err(e) = self.step() {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

fn finish_cell(cell: &mut String, quoted: bool) -> String {
    let out = if quoted {
        cell.clone()
    } else {
        cell.trim().to_owned()
    };
    cell.clear();
    out
}

fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn looks_like_iban(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 15
        && b.len() <= 34
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// Parse `-1.234,56`, `1234,56-`, `+12,5` into minor units of `currency`. Grouping must be in
/// threes; more fraction digits than the currency has are an error, never rounded.
pub fn parse_amount(
    text: &str,
    currency: Currency,
    decimal: char,
    thousands: Option<char>,
) -> std::result::Result<i64, String> {
    let t = text.trim();
    let (neg, body) = if let Some(rest) = t.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = t.strip_suffix('-') {
        (true, rest)
    } else {
        (false, t.strip_prefix('+').unwrap_or(t))
    };
    let body = body.trim();
    let (int_part, frac) = match body.split_once(decimal) {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let int_digits: String = match thousands {
        Some(th) if int_part.contains(th) => {
            let groups: Vec<&str> = int_part.split(th).collect();
            let ok = !groups[0].is_empty()
                && groups[0].len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3);
            if !ok {
                return Err(format!("misplaced thousands separator in amount {t:?}"));
            }
            groups.concat()
        }
        _ => int_part.to_owned(),
    };
    if (int_digits.is_empty() && frac.is_empty())
        || !int_digits.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("not an amount: {t:?}"));
    }
    let scale = usize::from(currency.minor_digits());
    if frac.len() > scale {
        return Err(format!(
            "amount {t:?} has more fraction digits than {currency} has ({scale})"
        ));
    }
    let mut minor: i64 = 0;
    for b in int_digits.bytes().chain(frac.bytes()) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| format!("amount {t:?} too large"))?;
    }
    for _ in frac.len()..scale {
        minor = minor
            .checked_mul(10)
            .ok_or_else(|| format!("amount {t:?} too large"))?;
    }
    Ok(if neg { -minor } else { minor })
}

#[cfg(test)]
mod tests;
