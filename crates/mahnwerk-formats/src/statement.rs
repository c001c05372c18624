//! The one statement model every bank format is read into, and the checks on it.
//!
//! Parsers are iterators of [`StatementItem`]: a [`StatementHeader`], then one [`Entry`] at a
//! time, then a [`StatementEnd`] with the totals and the balance check. [`collect_statements`]
//! gathers them into [`Statement`]s for callers that want everything in memory.

use crate::error::{Error, Position, Result};
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Money};
use serde::Serialize;

/// The file format a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// camt.052: intraday account report.
    Camt052,
    /// camt.053: end-of-day statement.
    Camt053,
    /// camt.054: debit/credit notification.
    Camt054,
    Mt940,
    Mt942,
    Csv,
}

/// A balance: signed amount (debit balances negative) and its date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub amount: Money,
    pub date: Option<NaiveDate>,
    /// `OPBD`, `PRCD`, `CLBD`, `ITBD`… for camt; `F`/`M` (final/intermediate) for MT940.
    pub kind: String,
}

/// What is known about a statement before its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementHeader {
    pub format: SourceFormat,
    /// Message version, e.g. `camt.053.001.08`, `MT940`.
    pub version: String,
    pub message_id: Option<String>,
    /// Statement id (`Stmt/Id`, `:20:`).
    pub statement_id: Option<String>,
    /// Electronic sequence number (`ElctrncSeqNb`) or `:28C:` statement/sequence number.
    pub sequence: Option<String>,
    /// The account's IBAN when the file gives one.
    pub account_iban: Option<String>,
    /// The account as the file names it (IBAN, `BLZ/account`, other id).
    pub account: Option<String>,
    /// Account currency: declared, else the opening balance's, else the first entry's.
    pub currency: Option<Currency>,
    pub opening_balance: Option<Balance>,
    /// Closing balance when it precedes the entries (camt); MT940 gives it in [`StatementEnd`].
    pub closing_balance: Option<Balance>,
    /// Line where the statement starts.
    pub line: u64,
}

/// A batch booking this entry was split out of (or that could not be split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchInfo {
    /// The booked entry amount of the whole batch.
    pub entry_amount: Money,
    /// Number of transactions the bank declares (`NbOfTxs`), if any.
    pub declared_count: Option<u32>,
    /// Transaction details present in the file.
    pub detail_count: u32,
    /// 0-based index of this entry within the batch when it was split.
    pub index: Option<u32>,
    pub payment_information_id: Option<String>,
    /// `false` when the details could not be split (amounts missing or not adding up): the entry
    /// is the whole batch.
    pub split: bool,
}

/// The other party of a booking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counterparty {
    pub name: Option<String>,
    pub iban: Option<String>,
    /// Non-IBAN account number (e.g. German `BLZ/Konto`).
    pub account: Option<String>,
    pub bic: Option<String>,
}

/// One booking as the account holder sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Signed: credits positive, debits negative.
    pub amount: Money,
    pub booking_date: Option<NaiveDate>,
    pub value_date: Option<NaiveDate>,
    /// `BOOK`, `PDNG`, `INFO`; `None` when the format has no status (booked).
    pub status: Option<String>,
    /// The bank's reference (`AcctSvcrRef`, `:61:` bank reference).
    pub bank_reference: Option<String>,
    /// The account owner's reference (`:61:` customer reference).
    pub customer_reference: Option<String>,
    pub end_to_end_id: Option<String>,
    pub mandate_id: Option<String>,
    /// SEPA creditor identifier (`CRED+`, `Cdtr/Id/PrvtId/Othr/Id`).
    pub creditor_id: Option<String>,
    pub counterparty: Counterparty,
    /// Unstructured remittance, lines joined as the bank meant them.
    pub remittance: Option<String>,
    /// First structured creditor reference (`Strd/CdtrRefInf/Ref`, RF or national).
    pub creditor_reference: Option<String>,
    /// Every structured reference of the entry, in order.
    pub structured_references: Vec<String>,
    pub batch: Option<BatchInfo>,
    /// ISO return reason (`AC06`, `MS03`) or the German `?34` code of a return.
    pub return_reason: Option<String>,
    /// The entry reverses an earlier one (`RvslInd`, MT940 `RC`/`RD`).
    pub reversal: bool,
    /// ISO bank transaction code `Domain/Family/SubFamily`, e.g. `PMNT/RDDT/ESDD`.
    pub bank_transaction_code: Option<String>,
    /// Proprietary code as given (`NTRF+168+00931`, MT940 `NTRF`).
    pub proprietary_code: Option<String>,
    /// German business transaction code (Geschäftsvorfallcode, 3 digits).
    pub gvc: Option<String>,
    /// Booking text (`?00`, `AddtlNtryInf`).
    pub posting_text: Option<String>,
    /// Original (instructed) amount before charges, when given.
    pub original_amount: Option<Money>,
    /// Charges taken by the banks, when given (positive).
    pub charges: Option<Money>,
    /// Line where the entry starts.
    pub line: u64,
    /// Problems accepted in lenient mode (e.g. an impossible date).
    pub warnings: Vec<String>,
}

impl Entry {
    pub fn new(amount: Money, line: u64) -> Self {
        Self {
            amount,
            booking_date: None,
            value_date: None,
            status: None,
            bank_reference: None,
            customer_reference: None,
            end_to_end_id: None,
            mandate_id: None,
            creditor_id: None,
            counterparty: Counterparty::default(),
            remittance: None,
            creditor_reference: None,
            structured_references: Vec::new(),
            batch: None,
            return_reason: None,
            reversal: false,
            bank_transaction_code: None,
            proprietary_code: None,
            gvc: None,
            posting_text: None,
            original_amount: None,
            charges: None,
            line,
            warnings: Vec::new(),
        }
    }

    /// Whether the entry counts towards the booked balance.
    pub fn is_booked(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "BOOK")
    }
}

/// Result of the balance check: opening + booked entries = closing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum BalanceCheck {
    Balanced,
    /// The sum does not add up; `difference` = closing − (opening + entries).
    Unbalanced {
        difference: i64,
    },
    /// The check could not be made (a balance is missing, currencies differ).
    NotChecked {
        reason: String,
    },
}

impl BalanceCheck {
    /// `Some(true|false)` when checked, `None` when not.
    pub fn balanced(&self) -> Option<bool> {
        match self {
            Self::Balanced => Some(true),
            Self::Unbalanced { .. } => Some(false),
            Self::NotChecked { .. } => None,
        }
    }
}

/// What is known after the last entry: totals and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementEnd {
    pub closing_balance: Option<Balance>,
    pub entry_count: u64,
    /// Sum of credits (≥ 0) and of debits (≤ 0), booked entries only, in minor units.
    pub credits_total: i64,
    pub debits_total: i64,
    pub balance_check: BalanceCheck,
    /// Other check findings (entries in a currency other than the account's).
    pub findings: Vec<String>,
}

/// One item of a statement stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementItem {
    Header(Box<StatementHeader>),
    Entry(Box<Entry>),
    End(Box<StatementEnd>),
}

/// A whole statement in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub header: StatementHeader,
    pub entries: Vec<Entry>,
    pub end: StatementEnd,
}

/// Options shared by the statement parsers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept impossible dates (30 February) as unknown with a warning instead of failing.
    pub lenient_dates: bool,
}

/// Running totals of one statement; produces the [`StatementEnd`].
#[derive(Debug, Default)]
pub(crate) struct Totals {
    pub count: u64,
    pub credits: i64,
    pub debits: i64,
    pub findings: Vec<String>,
    pub currency: Option<Currency>,
    pub overflow: bool,
}

impl Totals {
    pub(crate) fn add(&mut self, e: &Entry) {
        self.count += 1;
        if self.currency.is_none() {
            self.currency = Some(e.amount.currency);
        }
        if Some(e.amount.currency) != self.currency {
            if self.findings.len() < 100 {
                self.findings.push(format!(
                    "line {}: entry in {} on an account in {}",
                    e.line,
                    e.amount.currency,
                    self.currency.map(|c| c.to_string()).unwrap_or_default()
                ));
            }
            return;
        }
        if !e.is_booked() {
            return;
        }
        let slot = if e.amount.minor >= 0 {
            &mut self.credits
        } else {
            &mut self.debits
        };
        match slot.checked_add(e.amount.minor) {
            Some(v) => *slot = v,
            None => self.overflow = true,
        }
    }

    pub(crate) fn finish(
        self,
        opening: Option<&Balance>,
        closing: Option<Balance>,
    ) -> StatementEnd {
        let check = match (opening, &closing) {
            _ if self.overflow => BalanceCheck::NotChecked {
                reason: "sum overflows".into(),
            },
            (None, _) => BalanceCheck::NotChecked {
                reason: "no opening balance".into(),
            },
            (_, None) => BalanceCheck::NotChecked {
                reason: "no closing balance".into(),
            },
            (Some(o), Some(c)) if o.amount.currency != c.amount.currency => {
                BalanceCheck::NotChecked {
                    reason: format!(
                        "opening balance in {} but closing balance in {}",
                        o.amount.currency, c.amount.currency
                    ),
                }
            }
            (Some(o), Some(_)) if self.currency.is_some_and(|cur| cur != o.amount.currency) => {
                BalanceCheck::NotChecked {
                    reason: format!(
                        "balances in {} but entries in {}",
                        o.amount.currency,
                        self.currency.map(|c| c.to_string()).unwrap_or_default()
                    ),
                }
            }
            (Some(o), Some(c)) => {
                let sum = o
                    .amount
                    .minor
                    .checked_add(self.credits)
                    .and_then(|s| s.checked_add(self.debits));
                match sum.and_then(|s| c.amount.minor.checked_sub(s)) {
                    Some(0) => BalanceCheck::Balanced,
                    Some(difference) => BalanceCheck::Unbalanced { difference },
                    None => BalanceCheck::NotChecked {
                        reason: "sum overflows".into(),
                    },
                }
            }
        };
        StatementEnd {
            closing_balance: closing,
            entry_count: self.count,
            credits_total: self.credits,
            debits_total: self.debits,
            balance_check: check,
            findings: self.findings,
        }
    }
}

/// Gather a stream of items into whole statements.
pub fn collect_statements(
    items: impl Iterator<Item = Result<StatementItem>>,
) -> Result<Vec<Statement>> {
    let mut out = Vec::new();
    let mut current: Option<(StatementHeader, Vec<Entry>)> = None;
    for item in items {
        match item? {
            StatementItem::Header(h) => current = Some((*h, Vec::new())),
            StatementItem::Entry(e) => match &mut current {
                Some((_, entries)) => entries.push(*e),
                None => {
                    return Err(Error::syntax(
                        Position::line(e.line),
                        "entry before a statement",
                    ));
                }
            },
            StatementItem::End(end) => {
                let Some((header, entries)) = current.take() else {
                    return Err(Error::syntax(
                        Position::default(),
                        "statement end without start",
                    ));
                };
                out.push(Statement {
                    header,
                    entries,
                    end: *end,
                });
            }
        }
    }
    Ok(out)
}

/// Parse `YYYY-MM-DD` (optionally followed by a time) strictly; an impossible date is an error
/// at `pos` unless `lenient`, then `Ok(None)` and a warning.
pub(crate) fn iso_date(
    text: &str,
    pos: impl Fn() -> Position,
    lenient: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<NaiveDate>> {
    let t = text.trim();
    let d = t.get(..10).unwrap_or(t);
    let parts: Vec<&str> = d.split('-').collect();
    let ok_shape = parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok_shape {
        return Err(Error::syntax(
            pos(),
            format!("not a date (YYYY-MM-DD): {t:?}"),
        ));
    }
    let (y, m, dd) = (
        parts[0].parse::<i32>().unwrap_or(0),
        parts[1].parse::<u32>().unwrap_or(0),
        parts[2].parse::<u32>().unwrap_or(0),
    );
    checked_ymd(y, m, dd, t, pos, lenient, warnings)
}

pub(crate) fn checked_ymd(
    y: i32,
    m: u32,
    d: u32,
    raw: &str,
    pos: impl Fn() -> Position,
    lenient: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<NaiveDate>> {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(date) => Ok(Some(date)),
        None if lenient => {
            warnings.push(format!("{}: impossible date {raw:?} ignored", pos()));
            Ok(None)
        }
        None => Err(Error::syntax(pos(), format!("impossible date {raw:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bal(minor: i64) -> Balance {
        Balance {
            amount: Money::eur(minor),
            date: None,
            kind: "X".into(),
        }
    }

    #[test]
    fn check_reports_missing_and_mismatched_balances() {
        let t = Totals::default();
        assert!(matches!(
            t.finish(None, Some(bal(1))).balance_check,
            BalanceCheck::NotChecked { .. }
        ));
        let mut t = Totals::default();
        t.add(&Entry::new(Money::eur(-53), 1));
        let end = t.finish(Some(&bal(100)), Some(bal(100)));
        assert_eq!(
            end.balance_check,
            BalanceCheck::Unbalanced { difference: 53 }
        );
        let sek = Balance {
            amount: Money::new(0, "SEK".parse().unwrap()),
            date: None,
            kind: "X".into(),
        };
        let end = Totals::default().finish(Some(&bal(0)), Some(sek));
        assert!(
            matches!(end.balance_check, BalanceCheck::NotChecked { ref reason } if reason.contains("SEK"))
        );
    }

    #[test]
    fn impossible_dates_fail_unless_lenient() {
        let mut w = Vec::new();
        let err = iso_date("2016-02-30", || Position::line(7), false, &mut w).unwrap_err();
        assert_eq!(err.to_string(), "line 7: impossible date \"2016-02-30\"");
        assert_eq!(
            iso_date("2016-02-30", || Position::line(7), true, &mut w).unwrap(),
            None
        );
        assert_eq!(w.len(), 1);
        assert_eq!(
            iso_date(
                "2016-02-29T10:00:00+01:00",
                || Position::line(1),
                false,
                &mut w
            )
            .unwrap(),
            NaiveDate::from_ymd_opt(2016, 2, 29)
        );
        assert!(iso_date("29.02.2016", || Position::line(1), false, &mut w).is_err());
    }

    proptest! {
        #[test]
        fn totals_balance_whatever_the_entries(opening in -1_000_000_000i64..1_000_000_000, amounts in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 0..50)) {
            let mut t = Totals::default();
            for a in &amounts {
                t.add(&Entry::new(Money::eur(*a), 1));
            }
            let closing = opening + amounts.iter().sum::<i64>();
            let credits: i64 = amounts.iter().filter(|a| **a >= 0).sum();
            let end = t.finish(Some(&bal(opening)), Some(bal(closing)));
            prop_assert_eq!(end.balance_check, BalanceCheck::Balanced);
            prop_assert_eq!(end.credits_total, credits);
            prop_assert_eq!(end.credits_total + end.debits_total, closing - opening);
        }
    }
}
