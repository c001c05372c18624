//! The open items of one tenant, indexed by case, RF reference, invoice number, amount and IBAN
//! for the ladder.

use super::types::{BankEntry, Decision, OpenItem};
use crate::text;
use mahnwerk_domain::{Currency, Money};
use mahnwerk_formats::rf;
use std::collections::{HashMap, HashSet};

/// The amount buckets a partial item set was asked for and does not hold (see
/// [`OpenItems::partial`]). Interior mutability so that [`crate::engine::decide`] stays a
/// function of `&OpenItems`; a clone starts with none.
#[derive(Debug, Default)]
struct Misses(std::sync::Mutex<Vec<(i64, Currency)>>);

impl Clone for Misses {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The open items of one tenant, indexed for the ladder. Closed and settled items stay indexed
/// by reference and number so that a payment for them is recognised (and sent to review).
#[derive(Debug, Clone, Default)]
pub struct OpenItems {
    pub(super) items: Vec<OpenItem>,
    /// `text::name_tokens` of each item's debtor name.
    pub(super) names: Vec<Vec<String>>,
    pub(super) by_case: HashMap<String, usize>,
    pub(super) by_rf: HashMap<String, Vec<usize>>,
    pub(super) by_number: HashMap<String, Vec<usize>>,
    by_amount: HashMap<(i64, Currency), Vec<usize>>,
    pub(super) by_iban: HashMap<String, Vec<usize>>,
    /// `None`: every item the engine may consult is here. `Some`: only the amount buckets
    /// listed are complete; asking for another is recorded in `misses`.
    complete_amounts: Option<HashSet<(i64, Currency)>>,
    misses: Misses,
}

/// The `a:` lookup key of an amount.
pub fn amount_key(m: Money) -> String {
    format!("a:{}:{}", m.minor, m.currency)
}

/// An `a:` key back to its amount.
fn parse_amount_key(k: &str) -> Option<(i64, Currency)> {
    let (minor, currency) = k.strip_prefix("a:")?.split_once(':')?;
    Some((
        minor.parse().ok()?,
        Currency::parse_historic(currency).ok()?,
    ))
}

/// The lookup keys [`crate::engine::decide`] may consult for `entry` before it knows any item:
/// the RF references it names, every key of every invoice-number candidate in its texts, its
/// amount. (A text cut at the SEPA limit also looks up the rest after the numbers found: a
/// partial item set, [`OpenItems::partial`], reports that bucket when asked.) Empty for entries
/// the engine decides without looking.
pub fn entry_keys(entry: &BankEntry) -> Vec<String> {
    let Some(amount) = entry.amount else {
        return Vec::new();
    };
    if !entry.booked || amount.minor <= 0 || entry.reversal {
        return Vec::new();
    }
    let remittance = entry.remittance.as_deref().unwrap_or("");
    let mut out: Vec<String> = entry
        .references
        .iter()
        .filter_map(|r| text::normalise_rf(r))
        .chain(text::find_rf_references(remittance))
        .map(|r| format!("r:{r}"))
        .collect();
    for c in text::number_candidates(&scanned_text(entry)) {
        if !c.maybe_truncated {
            out.extend(c.keys.iter().map(|k| format!("n:{k}")));
        }
    }
    out.push(amount_key(amount));
    out.sort_unstable();
    out.dedup();
    out
}

/// The text the number rule scans: the remittance and the structured references.
pub(super) fn scanned_text(entry: &BankEntry) -> String {
    let mut scanned = entry.remittance.clone().unwrap_or_default();
    for r in &entry.references {
        scanned.push('\n');
        scanned.push_str(r);
    }
    scanned
}

pub(super) fn norm_iban(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

impl OpenItems {
    pub fn new() -> Self {
        Self::default()
    }

    /// An item set that holds the items of some lookup keys (RF references, numbers) but of no
    /// amount bucket yet: an amount the engine asks for is recorded ([`OpenItems::take_missing`])
    /// so the caller can load that bucket ([`OpenItems::add_buckets`]) and decide again. The
    /// decision on the completed set is the one on all open items: the engine only ever reaches
    /// items through these lookups.
    pub fn partial() -> Self {
        Self {
            complete_amounts: Some(HashSet::new()),
            ..Self::default()
        }
    }

    /// The items whose open (or discounted) amount is `minor` in `currency`.
    pub(super) fn amount_bucket(&self, minor: i64, currency: Currency) -> &[usize] {
        if let Some(complete) = &self.complete_amounts
            && !complete.contains(&(minor, currency))
        {
            let mut m = self.misses.0.lock().unwrap_or_else(|p| p.into_inner());
            if !m.contains(&(minor, currency)) {
                m.push((minor, currency));
            }
        }
        self.by_amount
            .get(&(minor, currency))
            .map_or(&[], Vec::as_slice)
    }

    /// The `a:` keys of the amount buckets asked for since the last call and not held.
    pub fn take_missing(&self) -> Vec<String> {
        let mut m = self.misses.0.lock().unwrap_or_else(|p| p.into_inner());
        m.drain(..)
            .map(|(minor, currency)| amount_key(Money::new(minor, currency)))
            .collect()
    }

    /// Add the items of the amount buckets `keys` (as [`OpenItems::take_missing`] named them)
    /// and mark those buckets complete. An item already held is kept as it is: it may carry a
    /// balance this set applied since it was loaded.
    pub fn add_buckets(&mut self, found: Vec<OpenItem>, keys: &[String]) {
        for item in found {
            if !self.by_case.contains_key(&item.case_id) {
                self.upsert(item);
            }
        }
        if let Some(complete) = &mut self.complete_amounts {
            for k in keys {
                if let Some((minor, currency)) = parse_amount_key(k) {
                    complete.insert((minor, currency));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, case_id: &str) -> Option<&OpenItem> {
        self.by_case.get(case_id).map(|&i| &self.items[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &OpenItem> {
        self.items.iter()
    }

    /// Add an item, or replace the item of the same case.
    pub fn upsert(&mut self, mut item: OpenItem) {
        item.debtor_ibans = item.debtor_ibans.iter().map(|i| norm_iban(i)).collect();
        if let Some(&i) = self.by_case.get(&item.case_id) {
            self.unindex(i);
            if item.debtor_name != self.items[i].debtor_name {
                self.names[i] = text::name_tokens(&item.debtor_name);
            }
            self.items[i] = item;
            self.index(i);
            return;
        }
        let i = self.items.len();
        self.by_case.insert(item.case_id.clone(), i);
        self.names.push(text::name_tokens(&item.debtor_name));
        self.items.push(item);
        self.index(i);
    }

    /// The RF references that name an item: the one its letters print (the invoice's own RF
    /// reference, else one made from the invoice number or case id: the letters service's
    /// derivation, [`rf::for_invoice`]) and any other a letter recorded; and its number keys.
    fn keys(item: &OpenItem) -> (Vec<String>, Vec<String>) {
        let mut rfs: Vec<String> = rf::for_invoice(
            item.payment_reference.as_deref(),
            &item.invoice_number,
            &item.case_id,
        )
        .map(|r| r.as_str().to_owned())
        .into_iter()
        .collect();
        for r in item
            .letter_references
            .iter()
            .filter_map(|r| text::normalise_rf(r))
        {
            if !rfs.contains(&r) {
                rfs.push(r);
            }
        }
        let mut numbers = vec![text::number_key(&item.invoice_number)];
        numbers.extend(text::alternative_keys(&item.invoice_number));
        (rfs, numbers)
    }

    /// The lookup keys of an item, as [`OpenItems`] indexes it: `r:` RF references, `n:` invoice
    /// number keys, `a:` the open amount (and the discounted one) while the item is open. A
    /// store that keeps these can hand the engine every item an entry's lookups could reach
    /// ([`entry_keys`]) without holding all items in memory.
    pub fn item_keys(item: &OpenItem) -> Vec<String> {
        let (rfs, numbers) = Self::keys(item);
        let mut out: Vec<String> = rfs.into_iter().map(|r| format!("r:{r}")).collect();
        out.extend(numbers.into_iter().map(|k| format!("n:{k}")));
        if item.open.minor > 0 && item.closed.is_none() {
            out.push(amount_key(item.open));
            if let Some(d) = item.cash_discount
                && d.amount != item.open
            {
                out.push(amount_key(d.amount));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn index(&mut self, i: usize) {
        let item = &self.items[i];
        let (rfs, numbers) = Self::keys(item);
        for rf in rfs {
            self.by_rf.entry(rf).or_default().push(i);
        }
        for k in numbers {
            self.by_number.entry(k).or_default().push(i);
        }
        if item.open.minor > 0 && item.closed.is_none() {
            self.by_amount
                .entry((item.open.minor, item.open.currency))
                .or_default()
                .push(i);
            if let Some(d) = item.cash_discount
                && d.amount != item.open
            {
                self.by_amount
                    .entry((d.amount.minor, d.amount.currency))
                    .or_default()
                    .push(i);
            }
        }
        for iban in item.debtor_ibans.clone() {
            self.by_iban.entry(iban).or_default().push(i);
        }
    }

    fn unindex(&mut self, i: usize) {
        let item = self.items[i].clone();
        let (rfs, numbers) = Self::keys(&item);
        let drop = |map: &mut HashMap<_, Vec<usize>>, key| {
            if let Some(v) = map.get_mut(&key) {
                v.retain(|&j| j != i);
                if v.is_empty() {
                    map.remove(&key);
                }
            }
        };
        for rf in rfs {
            drop(&mut self.by_rf, rf);
        }
        for k in numbers {
            drop(&mut self.by_number, k);
        }
        let mut drop_amount = |key: (i64, Currency)| {
            if let Some(v) = self.by_amount.get_mut(&key) {
                v.retain(|&j| j != i);
                if v.is_empty() {
                    self.by_amount.remove(&key);
                }
            }
        };
        drop_amount((item.open.minor, item.open.currency));
        if let Some(d) = item.cash_discount {
            drop_amount((d.amount.minor, d.amount.currency));
        }
        for iban in item.debtor_ibans {
            if let Some(v) = self.by_iban.get_mut(&iban) {
                v.retain(|&j| j != i);
            }
        }
    }

    /// Record what a decision applied: open balances go down, the payer's IBAN becomes known
    /// for the debtor.
    pub fn apply(&mut self, entry: &BankEntry, decision: &Decision) {
        if !decision.outcome.applies() {
            return;
        }
        for a in &decision.allocations {
            let Some(&i) = self.by_case.get(&a.case_id) else {
                continue;
            };
            let mut item = self.items[i].clone();
            item.open = a.open_after;
            if a.open_after.minor == 0 {
                item.cash_discount = None;
            }
            if let Some(iban) = entry.counterparty_iban.as_deref().map(norm_iban)
                && !iban.is_empty()
                && !item.debtor_ibans.contains(&iban)
            {
                item.debtor_ibans.push(iban);
            }
            self.upsert(item);
        }
    }

    /// Set an item's open balance and closed state to what its case stream holds (undoes what
    /// [`OpenItems::apply`] assumed for a decision that was not applied after all).
    pub fn set_balance(&mut self, case_id: &str, open: Money, closed: Option<String>) {
        let Some(&i) = self.by_case.get(case_id) else {
            return;
        };
        if self.items[i].open == open && self.items[i].closed == closed {
            return;
        }
        let mut item = self.items[i].clone();
        item.open = open;
        item.closed = closed;
        self.upsert(item);
    }

    pub(super) fn lookup_numbers(&self, text: &str) -> (Vec<usize>, Vec<text::Candidate>) {
        let cands = text::number_candidates(text);
        // (first token, last token, item)
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        let mut truncated = Vec::new();
        for c in &cands {
            if c.maybe_truncated {
                truncated.push(c.clone());
                continue;
            }
            for k in &c.keys {
                if let Some(items) = self.by_number.get(k) {
                    for &i in items {
                        hits.push((c.first, c.last, i));
                    }
                    break;
                }
            }
        }
        // A match inside a longer match is not a match of its own (`00123` in `2026-00123`).
        let contained = |a: &(usize, usize, usize)| {
            hits.iter().any(|b| {
                b != a && b.0 <= a.0 && a.1 <= b.1 && (b.1 - b.0) > (a.1 - a.0) && b.2 != a.2
            })
        };
        let mut out: Vec<usize> = Vec::new();
        for h in &hits {
            if !contained(h) && !out.contains(&h.2) {
                out.push(h.2);
            }
        }
        (out, truncated)
    }
}
