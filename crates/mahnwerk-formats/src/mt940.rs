//! SWIFT MT940 (statement) and MT942 (interim report), with the German structured `:86:`.
//!
//! [`Mt940Reader`] reads line by line and yields one entry at a time. Rules:
//! - a line starts a new field only when it begins with a known tag (`:20:`, `:25:`, `:28C:`,
//!   `:60F:`, `:61:`, `:86:`, `:62F:`, …), so a wrapped `:86:` line such as `:12:11` stays
//!   continuation text; header lines outside fields (`940`, `ABNANL2A`, `{1:…}`) are skipped;
//! - `:61:` value date `YYMMDD`, optional entry date `MMDD` (year taken from the value date,
//!   rolled over at the year end), mark `C`/`D`/`RC`/`RD` (reversals: `RC` is a debit, `RD` a
//!   credit — the balances of real files confirm this), optional funds code, decimal comma;
//! - German `:86:` = GVC (3 digits) + `?NN` subfields; line breaks inside are dropped because
//!   banks wrap mid-word; `?20`–`?29`/`?60`–`?63` are joined before the SEPA identifiers
//!   (`EREF+ KREF+ MREF+ CRED+ SVWZ+ ABWA+ …`) are split, so identifiers that continue across
//!   subfields are whole; `?32`+`?33` name, `?30` BIC/BLZ, `?31` IBAN/account, `?34` return code;
//! - Dutch `/KEY/value` `:86:` (`/EREF/ /NAME/ /REMI/ /IBAN/ /BIC/ /MARF/ /CSID/ /RTRN/`);
//! - lines that are not UTF-8 are decoded with [`Mt940Options::fallback_encoding`]
//!   (Windows-1252 by default; Windows-1250 for Polish banks).

use crate::error::{Error, Position, Result};
use crate::rf;
use crate::statement::{
    Balance, Counterparty, Entry, ParseOptions, SourceFormat, StatementHeader, StatementItem,
    Totals, checked_ymd,
};
use chrono::{Datelike, NaiveDate};
use mahnwerk_domain::{Currency, Money};
use std::collections::VecDeque;
use std::io::BufRead;

/// Longest line accepted (bytes).
pub const MAX_LINE: u64 = 64 * 1024;
/// Longest field (a `:86:` with its continuation lines) accepted (bytes).
pub const MAX_FIELD: usize = 64 * 1024;

const TAGS: &[&str] = &[
    "20", "21", "25", "28", "28C", "60F", "60M", "61", "62F", "62M", "64", "65", "86", "13", "13D",
    "34F", "90D", "90C",
];

/// Options for MT940/MT942.
#[derive(Debug, Clone, Copy)]
pub struct Mt940Options {
    pub parse: ParseOptions,
    /// Encoding for lines that are not valid UTF-8.
    pub fallback_encoding: &'static encoding_rs::Encoding,
}

impl Default for Mt940Options {
    fn default() -> Self {
        Self {
            parse: ParseOptions::default(),
            fallback_encoding: encoding_rs::WINDOWS_1252,
        }
    }
}

struct Field {
    tag: String,
    text: String,
    line: u64,
}

struct Current {
    header: StatementHeader,
    emitted: bool,
    totals: Totals,
    pending: Option<Entry>,
    closing: Option<Balance>,
}

/// Streaming MT940/MT942 reader: an iterator of [`StatementItem`]s.
pub struct Mt940Reader<R: BufRead> {
    input: R,
    options: Mt940Options,
    line_no: u64,
    field: Option<Field>,
    current: Option<Current>,
    queue: VecDeque<StatementItem>,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> Mt940Reader<R> {
    pub fn new(input: R, options: Mt940Options) -> Self {
        Self {
            input,
            options,
            line_no: 0,
            field: None,
            current: None,
            queue: VecDeque::new(),
            done: false,
            buf: Vec::new(),
        }
    }

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
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(s) => s.to_owned(),
            Err(_) => self
                .options
                .fallback_encoding
                .decode_without_bom_handling(&self.buf)
                .0
                .into_owned(),
        }))
    }

    fn step(&mut self) -> Result<()> {
        let Some(line) = self.read_line()? else {
            self.flush_field()?;
            self.finish_statement();
            self.done = true;
            return Ok(());
        };
        if let Some(tag) = tag_of(&line) {
            self.flush_field()?;
            let text = line[tag.len() + 2..].to_owned();
            self.field = Some(Field {
                tag: tag.to_owned(),
                text,
                line: self.line_no,
            });
        } else if line.trim() == "-" || line.starts_with("-}") || line.starts_with('{') {
            self.flush_field()?;
        } else if let Some(f) = &mut self.field
            && matches!(f.tag.as_str(), "61" | "86")
        {
            if f.text.len() + line.len() > MAX_FIELD {
                return Err(Error::limit(
                    Position::at(f.line, format!(":{}:", f.tag)),
                    "field too long",
                ));
            }
            f.text.push('\n');
            f.text.push_str(&line);
        }
        Ok(())
    }

    fn flush_field(&mut self) -> Result<()> {
        let Some(f) = self.field.take() else {
            return Ok(());
        };
        let lenient = self.options.parse.lenient_dates;
        let at = |f: &Field| Position::at(f.line, format!(":{}:", f.tag));
        match f.tag.as_str() {
            "20" => {
                self.finish_statement();
                self.current = Some(Current {
                    header: StatementHeader {
                        format: SourceFormat::Mt940,
                        version: "MT940".into(),
                        message_id: None,
                        statement_id: Some(f.text.trim().to_owned()),
                        sequence: None,
                        account_iban: None,
                        account: None,
                        currency: None,
                        opening_balance: None,
                        closing_balance: None,
                        line: f.line,
                    },
                    emitted: false,
                    totals: Totals::default(),
                    pending: None,
                    closing: None,
                });
            }
            _ if self.current.is_none() => {
                return Err(Error::syntax(
                    at(&f),
                    "field before the first :20: (statement start)",
                ));
            }
            "25" => {
                let h = self.header_mut();
                let acct = f.text.trim().to_owned();
                let compact: String = acct.chars().filter(|c| !c.is_whitespace()).collect();
                let b = compact.as_bytes();
                if b.len() >= 15
                    && b[..2].iter().all(u8::is_ascii_uppercase)
                    && b[2..4].iter().all(u8::is_ascii_digit)
                {
                    // Some banks append the currency to the IBAN.
                    let n = b.len();
                    let iban = if n > 18
                        && b[n - 3..].iter().all(u8::is_ascii_uppercase)
                        && b[n - 4].is_ascii_digit()
                    {
                        compact[..compact.len() - 3].to_owned()
                    } else {
                        compact.clone()
                    };
                    h.account_iban = Some(iban);
                }
                h.account = Some(acct);
            }
            "28" | "28C" => self.header_mut().sequence = Some(f.text.trim().to_owned()),
            "13" | "13D" | "34F" | "90D" | "90C" => {
                let tag = f.tag.clone();
                let h = self.header_mut();
                h.format = SourceFormat::Mt942;
                h.version = "MT942".into();
                // MT942 has no :60F:; the floor limit (`:34F:EURD0,00`) names the currency.
                if tag == "34F"
                    && h.currency.is_none()
                    && let Some(code) = f.text.trim().get(..3)
                {
                    h.currency = Some(Currency::parse_historic(code).map_err(|e| {
                        Error::syntax(at(&f), format!("currency {code:?}: {}", e.reason))
                    })?);
                }
            }
            "60F" | "60M" => {
                let mut w = Vec::new();
                let bal = balance(&f.text, &f.tag[2..], || at(&f), lenient, &mut w)?;
                let h = self.header_mut();
                if h.currency.is_none() {
                    h.currency = Some(bal.amount.currency);
                }
                h.opening_balance = Some(bal);
            }
            "61" => {
                self.emit_pending();
                self.emit_header();
                let entry = parse_61(&f.text, f.line, self.header_currency(), lenient)?;
                if let Some(cur) = &mut self.current {
                    cur.pending = Some(entry);
                }
            }
            "86" => {
                if let Some(cur) = &mut self.current
                    && let Some(e) = &mut cur.pending
                {
                    apply_86(e, &f.text);
                }
                self.emit_pending();
            }
            "62F" | "62M" => {
                self.emit_pending();
                let mut w = Vec::new();
                let bal = balance(&f.text, &f.tag[2..], || at(&f), lenient, &mut w)?;
                if let Some(cur) = &mut self.current {
                    cur.closing = Some(bal);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn header_mut(&mut self) -> &mut StatementHeader {
        // Only called when a statement is open (checked in flush_field).
        &mut self.current.get_or_insert_with(unreachable_current).header
    }

    fn header_currency(&self) -> Option<Currency> {
        self.current.as_ref().and_then(|c| c.header.currency)
    }

    fn emit_header(&mut self) {
        let Some(cur) = &mut self.current else { return };
        if cur.emitted {
            return;
        }
        cur.emitted = true;
        cur.totals.currency = cur.header.currency;
        self.queue
            .push_back(StatementItem::Header(Box::new(cur.header.clone())));
    }

    fn emit_pending(&mut self) {
        let Some(cur) = &mut self.current else { return };
        if let Some(e) = cur.pending.take() {
            cur.totals.add(&e);
            self.queue.push_back(StatementItem::Entry(Box::new(e)));
        }
    }

    fn finish_statement(&mut self) {
        self.emit_pending();
        self.emit_header();
        if let Some(cur) = self.current.take() {
            let end = cur
                .totals
                .finish(cur.header.opening_balance.as_ref(), cur.closing);
            self.queue.push_back(StatementItem::End(Box::new(end)));
        }
    }
}

fn unreachable_current() -> Current {
    Current {
        header: StatementHeader {
            format: SourceFormat::Mt940,
            version: "MT940".into(),
            message_id: None,
            statement_id: None,
            sequence: None,
            account_iban: None,
            account: None,
            currency: None,
            opening_balance: None,
            closing_balance: None,
            line: 0,
        },
        emitted: false,
        totals: Totals::default(),
        pending: None,
        closing: None,
    }
}

impl<R: BufRead> Iterator for Mt940Reader<R> {
    type Item = Result<StatementItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.step() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

fn tag_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    TAGS.contains(&tag).then_some(tag)
}

fn yymmdd(
    s: &str,
    pos: &dyn Fn() -> Position,
    lenient: bool,
    w: &mut Vec<String>,
) -> Result<Option<NaiveDate>> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::syntax(pos(), format!("not a date (YYMMDD): {s:?}")));
    }
    let yy: i32 = s[..2].parse().unwrap_or(0);
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    checked_ymd(
        year,
        s[2..4].parse().unwrap_or(0),
        s[4..6].parse().unwrap_or(0),
        s,
        pos,
        lenient,
        w,
    )
}

fn amount(text: &str, currency: Currency, pos: &dyn Fn() -> Position) -> Result<Money> {
    if !text.contains(',') {
        return Err(Error::syntax(
            pos(),
            format!("amount without decimal comma: {text:?}"),
        ));
    }
    Money::parse_decimal(text, currency, true).map_err(|e| Error::syntax(pos(), e.to_string()))
}

fn parse_currency(code: &str, pos: &dyn Fn() -> Position) -> Result<Currency> {
    code.parse::<Currency>()
        .or_else(|_| Currency::parse_historic(code))
        .map_err(|e| Error::syntax(pos(), e.reason))
}

/// `C170914EUR12345,12` → balance.
fn balance(
    text: &str,
    kind: &str,
    pos: impl Fn() -> Position,
    lenient: bool,
    w: &mut Vec<String>,
) -> Result<Balance> {
    let t = text.trim();
    if t.len() < 11 || !t.is_char_boundary(1) || !t.is_char_boundary(7) || !t.is_char_boundary(10) {
        return Err(Error::syntax(pos(), format!("malformed balance {t:?}")));
    }
    let sign = match &t[..1] {
        "C" => 1,
        "D" => -1,
        other => {
            return Err(Error::syntax(
                pos(),
                format!("balance mark must be C or D, got {other:?}"),
            ));
        }
    };
    let date = yymmdd(&t[1..7], &pos, lenient, w)?;
    let ccy = parse_currency(&t[7..10], &pos)?;
    let a = amount(&t[10..], ccy, &pos)?;
    Ok(Balance {
        amount: Money::new(sign * a.minor, ccy),
        date,
        kind: kind.to_owned(),
    })
}

/// Parse the `:61:` statement line (and its supplementary line).
fn parse_61(text: &str, line: u64, currency: Option<Currency>, lenient: bool) -> Result<Entry> {
    let pos = || Position::at(line, ":61:");
    let (first, supplementary) = match text.split_once('\n') {
        Some((a, b)) => (a, Some(b.trim())),
        None => (text, None),
    };
    let s = first.trim_end();
    let b = s.as_bytes();
    let mut warnings = Vec::new();
    if b.len() < 6 || !s.is_char_boundary(6) {
        return Err(Error::syntax(pos(), "statement line too short"));
    }
    let value_date = yymmdd(&s[..6], &pos, lenient, &mut warnings)?;
    let mut i = 6;
    let mut entry_mmdd = None;
    if b.len() >= 10 && b[6..10].iter().all(u8::is_ascii_digit) {
        entry_mmdd = Some((&s[6..8], &s[8..10]));
        i = 10;
    }
    let rest = &s[i..];
    let (reversal, negative, mut j) = if rest.starts_with("RC") {
        (true, true, 2)
    } else if rest.starts_with("RD") {
        (true, false, 2)
    } else if rest.starts_with('C') {
        (false, false, 1)
    } else if rest.starts_with('D') {
        (false, true, 1)
    } else {
        return Err(Error::syntax(
            pos(),
            format!("debit/credit mark must be C, D, RC or RD: {rest:?}"),
        ));
    };
    let rb = rest.as_bytes();
    if rb.get(j).is_some_and(u8::is_ascii_alphabetic) {
        j += 1; // funds code
    }
    let amt_end = rest[j..]
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .map_or(rest.len(), |k| j + k);
    let ccy = currency.ok_or_else(|| {
        Error::syntax(pos(), "entry before the opening balance (currency unknown)")
    })?;
    let a = amount(&rest[j..amt_end], ccy, &pos)?;
    let mut e = Entry::new(
        Money::new(if negative { -a.minor } else { a.minor }, ccy),
        line,
    );
    e.reversal = reversal;
    e.value_date = value_date;
    e.booking_date = match (entry_mmdd, value_date) {
        (Some((mm, dd)), Some(vd)) => {
            let (m, d): (u32, u32) = (mm.parse().unwrap_or(0), dd.parse().unwrap_or(0));
            let mut year = vd.year();
            if m == 12 && vd.month() == 1 {
                year -= 1;
            } else if m == 1 && vd.month() == 12 {
                year += 1;
            }
            checked_ymd(
                year,
                m,
                d,
                &format!("{mm}{dd}"),
                pos,
                lenient,
                &mut warnings,
            )?
        }
        (None, vd) => vd,
        (Some(_), None) => None,
    };
    let tail = &rest[amt_end..];
    if tail.len() >= 4 && tail.is_char_boundary(4) {
        e.proprietary_code = Some(tail[..4].to_owned());
        let refs = &tail[4..];
        let (cust, bank) = match refs.split_once("//") {
            Some((c, b)) => (c, Some(b)),
            None => (refs, None),
        };
        e.customer_reference = Some(cust.trim().to_owned()).filter(|c| !c.is_empty());
        e.bank_reference = bank.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty());
    } else if !tail.trim().is_empty() {
        return Err(Error::syntax(
            pos(),
            format!("malformed transaction type {tail:?}"),
        ));
    }
    if let Some(sup) = supplementary.filter(|s| !s.is_empty()) {
        // Rabobank puts the counter IBAN here; others free text (/OCMT/…).
        let compact: String = sup.chars().filter(|c| !c.is_whitespace()).collect();
        let b = compact.as_bytes();
        if b.len() >= 15
            && b[..2].iter().all(u8::is_ascii_uppercase)
            && b[2..4].iter().all(u8::is_ascii_digit)
        {
            e.counterparty.iban = Some(compact);
        }
    }
    e.warnings = warnings;
    Ok(e)
}

const SEPA_KEYS: &[&str] = &[
    "EREF+", "KREF+", "MREF+", "CRED+", "DEBT+", "SVWZ+", "ABWA+", "ABWE+", "IBAN+", "BIC+",
    "COAM+", "OAMT+",
];

/// German GVCs of returns (Rücklastschrift, Retoure) whose `?34` is the return reason.
const RETURN_GVC: &[&str] = &[
    "108", "109", "159", "160", "161", "162", "163", "184", "185",
];

/// Apply the `:86:` information to an entry.
fn apply_86(e: &mut Entry, text: &str) {
    let text = text.trim_start();
    let b = text.as_bytes();
    if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3].is_ascii_punctuation() {
        apply_german_86(e, &text.replace(['\n', '\r'], ""), char::from(b[3]));
    } else if text.trim_start().starts_with('/') {
        apply_slash_86(e, &text.replace(['\n', '\r'], ""));
    } else {
        let joined = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !joined.is_empty() {
            e.remittance = Some(joined);
        }
    }
    if e.creditor_reference.is_none()
        && let Some(r) = e.remittance.as_deref().and_then(find_rf)
    {
        e.creditor_reference = Some(r.clone());
        e.structured_references.push(r);
    }
}

/// The first valid ISO 11649 reference in a text.
pub fn find_rf(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 5 && w.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("RF")))
        .find(|w| rf::is_valid(w))
        .map(str::to_ascii_uppercase)
}

fn apply_german_86(e: &mut Entry, text: &str, sep: char) {
    e.gvc = Some(text[..3].to_owned());
    let mut fields: Vec<(u8, String)> = Vec::new();
    for part in text[4..].split(sep) {
        if part.len() >= 2
            && part.is_char_boundary(2)
            && part.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        {
            fields.push((part[..2].parse().unwrap_or(0), part[2..].to_owned()));
        } else if let Some(last) = fields.last_mut() {
            last.1.push(sep);
            last.1.push_str(part);
        } else if !text[4..].starts_with(sep) {
            fields.push((0, part.to_owned()));
        }
    }
    let get = |n: u8| fields.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    e.posting_text = get(0).filter(|v| !v.trim().is_empty());
    let purpose: String = fields
        .iter()
        .filter(|(k, _)| (20..=29).contains(k) || (60..=63).contains(k))
        .map(|(_, v)| v.as_str())
        .collect();
    let name: String = fields
        .iter()
        .filter(|(k, _)| *k == 32 || *k == 33)
        .map(|(_, v)| v.as_str())
        .collect();
    let some = |s: String| {
        let t = s.trim().to_owned();
        (!t.is_empty()).then_some(t)
    };
    e.counterparty = Counterparty {
        name: some(name),
        iban: None,
        account: None,
        bic: get(30).and_then(some),
    };
    if let Some(acct) = get(31).and_then(some) {
        if acct.len() >= 15 && acct.as_bytes()[..2].iter().all(u8::is_ascii_uppercase) {
            e.counterparty.iban = Some(acct);
        } else {
            e.counterparty.account = Some(acct);
        }
    }
    if let Some(code) = get(34).and_then(some)
        && e.gvc.as_deref().is_some_and(|g| RETURN_GVC.contains(&g))
    {
        e.return_reason = Some(code);
    }
    // Split the joined purpose at SEPA identifiers.
    let mut marks: Vec<(usize, &str)> = Vec::new();
    for key in SEPA_KEYS {
        let mut from = 0;
        while let Some(k) = purpose[from..].find(key) {
            marks.push((from + k, key));
            from += k + key.len();
        }
    }
    marks.sort_unstable();
    if marks.is_empty() {
        e.remittance = some(purpose);
        return;
    }
    let mut free = purpose[..marks[0].0].to_owned();
    for (i, (start, key)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(purpose.len(), |m| m.0);
        let value = some(purpose[start + key.len()..end].to_owned());
        match *key {
            "EREF+" => e.end_to_end_id = value.filter(|v| v != "NOTPROVIDED"),
            "KREF+" => {
                if e.customer_reference
                    .as_deref()
                    .is_none_or(|c| c == "NONREF")
                {
                    e.customer_reference = value;
                }
            }
            "MREF+" => e.mandate_id = value,
            "CRED+" => e.creditor_id = value,
            "SVWZ+" => e.remittance = value,
            "IBAN+" => {
                if e.counterparty.iban.is_none() {
                    e.counterparty.iban = value;
                }
            }
            "BIC+" => {
                if e.counterparty.bic.is_none() {
                    e.counterparty.bic = value;
                }
            }
            "COAM+" | "OAMT+" | "ABWA+" | "ABWE+" | "DEBT+" => {}
            _ => free.push_str(&purpose[*start..end]),
        }
    }
    if e.remittance.is_none() {
        e.remittance = some(free);
    }
}

const SLASH_KEYS: &[&str] = &[
    "TRTP", "IBAN", "BIC", "NAME", "REMI", "EREF", "MARF", "CSID", "BENM", "ORDP", "ISDT", "RTRN",
    "CNTP", "PREF", "ULTD", "ULTB", "ULTC", "PURP", "OCMT", "CHGS", "ADDR",
];

/// Dutch `/KEY/value/KEY/value` structure (Rabobank, ABN AMRO SEPA).
fn apply_slash_86(e: &mut Entry, text: &str) {
    let mut marks: Vec<(usize, &str)> = Vec::new();
    for key in SLASH_KEYS {
        let pat = format!("/{key}/");
        let mut from = 0;
        while let Some(k) = text[from..].find(&pat) {
            marks.push((from + k, key));
            from += k + pat.len() - 1;
        }
    }
    marks.sort_unstable();
    marks.dedup_by_key(|m| m.0);
    for (i, (start, key)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(text.len(), |m| m.0);
        let vstart = (start + key.len() + 2).min(end);
        let value = text[vstart..end].trim_matches('/').trim().to_owned();
        let value = (!value.is_empty()).then_some(value);
        match *key {
            "EREF" => e.end_to_end_id = value.filter(|v| v != "NOTPROVIDED"),
            "MARF" => e.mandate_id = value,
            "CSID" => e.creditor_id = value,
            "REMI" => e.remittance = value,
            "NAME" => e.counterparty.name = value,
            "IBAN" => e.counterparty.iban = value,
            "BIC" => e.counterparty.bic = value,
            "RTRN" => e.return_reason = value,
            "TRTP" => e.posting_text = value,
            _ => {}
        }
    }
    if marks.is_empty() {
        e.remittance = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    }
}

#[cfg(test)]
mod tests;
