//! Bank entries from the statement parsers, and their stable identity.
//!
//! The identity of an entry is what stays the same when the bank reports it again (camt.052
//! intraday, then the camt.053 of the day; a re-import): the account, the bank's reference
//! (`AcctSvcrRef`, MT940 bank reference; else the end-to-end id), the booking date, the amount and,
//! for a batch split into its transactions, the index in the batch. Hashed, so the id carries no
//! account number.

use crate::engine::BankEntry;
use mahnwerk_formats::csv::{CsvMapping, CsvReader};
use mahnwerk_formats::mt940::{Mt940Options, Mt940Reader};
use mahnwerk_formats::statement::{Entry, ParseOptions, StatementHeader, StatementItem};
use mahnwerk_formats::{Error, camt::CamtReader};
use sha2::{Digest, Sha256};
use std::io::BufRead;

/// The stable id of an entry on `account` (`e-` and 24 hex digits).
pub fn entry_id(account: &str, e: &Entry) -> String {
    let reference = e
        .bank_reference
        .as_deref()
        .or(e.end_to_end_id.as_deref())
        .filter(|r| !r.is_empty() && *r != "NONREF" && *r != "NOTPROVIDED");
    let mut h = Sha256::new();
    for part in [
        account,
        reference.unwrap_or(""),
        &e.booking_date.map(|d| d.to_string()).unwrap_or_default(),
        &e.amount.minor.to_string(),
        e.amount.currency.as_str(),
        &e.batch
            .as_ref()
            .and_then(|b| b.index)
            .map(|i| i.to_string())
            .unwrap_or_default(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    if reference.is_none() {
        // No reference from the bank: the rest of what the debtor sent tells entries apart.
        for part in [
            e.counterparty.iban.as_deref().unwrap_or(""),
            e.remittance.as_deref().unwrap_or(""),
            e.value_date.map(|d| d.to_string()).as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0x1f]);
        }
    }
    let digest = h.finalize();
    format!("e-{}", hex::encode(&digest[..12]))
}

/// Entry ids of one file, told apart when two entries are identical in everything the identity
/// covers (two transfers of the same amount without a bank reference on one day): the n-th
/// occurrence gets `-n`. The order of entries in a bank's reports of one day is stable, so the
/// camt.053 after a camt.052 gives the same ids.
#[derive(Debug, Default)]
pub struct EntryIds {
    seen: std::collections::HashMap<String, u32>,
}

impl EntryIds {
    pub fn next(&mut self, account: &str, e: &Entry) -> String {
        let id = entry_id(account, e);
        let n = self.seen.entry(id.clone()).or_insert(0);
        *n += 1;
        if *n == 1 { id } else { format!("{id}-{n}") }
    }
}

/// The account a statement is for, as used in entry ids.
pub fn account_of(h: &StatementHeader) -> String {
    h.account_iban
        .clone()
        .or_else(|| h.account.clone())
        .unwrap_or_default()
}

/// The engine's view of a parsed entry.
pub fn bank_entry(id: String, e: &Entry) -> BankEntry {
    BankEntry {
        entry_ref: id,
        amount: Some(e.amount),
        booked_on: e.booking_date.or(e.value_date),
        booked: e.is_booked(),
        counterparty_name: e.counterparty.name.clone(),
        counterparty_iban: e.counterparty.iban.clone(),
        ultimate_debtor: None,
        remittance: e.remittance.clone(),
        references: e.structured_references.clone(),
        reversal: e.reversal,
        return_reason: e.return_reason.clone(),
    }
}

/// Open a statement stream over `input`: CSV when a mapping is given, camt when it starts with
/// XML, else MT940/MT942.
pub fn statement_reader<'a, R: BufRead + 'a>(
    mut input: R,
    csv: Option<&CsvMapping>,
    options: ParseOptions,
) -> Result<Box<dyn Iterator<Item = mahnwerk_formats::Result<StatementItem>> + 'a>, Error> {
    if let Some(m) = csv {
        return Ok(Box::new(CsvReader::new(input, m.clone(), options)?));
    }
    let head = input.fill_buf()?;
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &head[i..]);
    let is_xml = start.starts_with(b"<")
        || start.starts_with(b"\xEF\xBB\xBF<")
        || start.starts_with(b"\xFF\xFE")
        || start.starts_with(b"\xFE\xFF");
    if is_xml {
        Ok(Box::new(CamtReader::new(input, options)?))
    } else {
        Ok(Box::new(Mt940Reader::new(
            input,
            Mt940Options {
                parse: options,
                ..Default::default()
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_domain::Money;

    #[test]
    fn identity_is_stable_and_tells_entries_apart() {
        let mut a = Entry::new(Money::eur(100), 10);
        a.bank_reference = Some("REF1".into());
        a.booking_date = chrono::NaiveDate::from_ymd_opt(2026, 11, 3);
        let mut moved = a.clone();
        moved.line = 99;
        moved.remittance = Some("text reported differently".into());
        assert_eq!(entry_id("DE1", &a), entry_id("DE1", &moved));
        assert_ne!(entry_id("DE1", &a), entry_id("DE2", &a));
        let mut other = a.clone();
        other.amount = Money::eur(101);
        assert_ne!(entry_id("DE1", &a), entry_id("DE1", &other));
        let mut no_ref = a.clone();
        no_ref.bank_reference = None;
        let mut no_ref2 = no_ref.clone();
        no_ref2.remittance = Some("another payment".into());
        assert_ne!(entry_id("DE1", &no_ref), entry_id("DE1", &no_ref2));
        let mut ids = EntryIds::default();
        let first = ids.next("DE1", &no_ref);
        let second = ids.next("DE1", &no_ref);
        assert_eq!(first, entry_id("DE1", &no_ref));
        assert_eq!(second, format!("{first}-2"));
    }
}
