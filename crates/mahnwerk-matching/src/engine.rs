//! The pure matching engine: open items and one bank entry in, a [`Decision`] with its rule,
//! confidence and reasons out. No IO, no clock.
//!
//! The ladder, first hit wins:
//! 1. **RF creditor reference** (structured, or found in the text, also printed in groups of four):
//!    check digits make it exact.
//! 2. **Invoice numbers in the text** (robust to separators, labels, leading zeros; several numbers
//!    split the amount by open balance, oldest first per § 366 Abs. 2 BGB; a number cut off by the
//!    140-character SEPA limit is completed only when the rest of the amount fits exactly one
//!    invoice of the same debtor).
//! 3. **Amount + debtor**: the exact open amount and a known IBAN or a similar name give a
//!    confidence; below the tenant's threshold, or when two invoices fit, it goes to review.
//!
//! Precision over recall: whenever the evidence could point at a wrong invoice the entry goes to
//! review — another currency, a cancelled or credited case, invoices of different debtors in one
//! transfer, an amount that does not fit and a payer that does not look like the debtor.

use crate::text;
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Cash discount (Skonto) terms of an invoice: paying `amount` until `until` settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashDiscount {
    /// The discounted amount that settles the invoice.
    pub amount: Money,
    /// Last day the payment may be booked to earn the discount.
    pub until: NaiveDate,
}

/// One invoice as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenItem {
    pub case_id: String,
    pub invoice_number: String,
    pub debtor_name: String,
    /// IBANs this debtor has paid from before (normalised: upper case, no spaces).
    #[serde(default)]
    pub debtor_ibans: Vec<String>,
    /// The debtor's customer number: names the data key their personal data is sealed under
    /// in the projection (ADR 006).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    /// Principal still owed (zero once settled).
    pub open: Money,
    /// The RF (or other) reference printed on the invoice.
    #[serde(default)]
    pub payment_reference: Option<String>,
    pub due_date: NaiveDate,
    #[serde(default)]
    pub cash_discount: Option<CashDiscount>,
    /// `cancelled` or `credited` when the case is closed: payments for it go to review.
    #[serde(default)]
    pub closed: Option<String>,
}

/// A bank entry (statement entry or single transaction) as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BankEntry {
    /// Stable identity of the entry (account + bank reference + booking date + amount).
    pub entry_ref: String,
    /// Signed: credits positive.
    pub amount: Option<Money>,
    pub booked_on: Option<NaiveDate>,
    /// `false` for pending entries (camt `PDNG`): recorded, applied only once booked.
    pub booked: bool,
    pub counterparty_name: Option<String>,
    pub counterparty_iban: Option<String>,
    /// camt `UltmtDbtr`: the party the payment is made for.
    pub ultimate_debtor: Option<String>,
    pub remittance: Option<String>,
    /// Structured references (camt `Strd/CdtrRefInf/Ref`).
    pub references: Vec<String>,
    /// The entry reverses an earlier one (camt `RvslInd`, MT940 `RC`/`RD`).
    pub reversal: bool,
    pub return_reason: Option<String>,
}

/// Tenant settings of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Lowest confidence (0–100) that is applied automatically; below it: review.
    pub threshold: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Self { threshold: 85 }
    }
}

/// What happens to the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Settles one invoice exactly (or within its cash discount).
    Applied,
    /// Reduces one invoice's open balance.
    Partial,
    /// Spread over several invoices.
    Split,
    /// Needs a person.
    Review,
    /// More than was open; the rest is a credit on the debtor.
    Overpaid,
    /// Not a payment of an invoice (debits, returns, pending entries).
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Partial => "partial",
            Outcome::Split => "split",
            Outcome::Review => "review",
            Outcome::Overpaid => "overpaid",
            Outcome::Ignored => "ignored",
        }
    }

    /// Whether money is applied to invoices.
    pub fn applies(self) -> bool {
        matches!(
            self,
            Outcome::Applied | Outcome::Partial | Outcome::Split | Outcome::Overpaid
        )
    }
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    RfReference,
    InvoiceNumber,
    AmountDebtor,
    /// An operator matched it (review queue).
    Manual,
    /// Nothing matched.
    NoMatch,
    /// Not a customer payment (debit, return, reversal, pending).
    NotAPayment,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RfReference => "rf_reference",
            Rule::InvoiceNumber => "invoice_number",
            Rule::AmountDebtor => "amount_debtor",
            Rule::Manual => "manual",
            Rule::NoMatch => "no_match",
            Rule::NotAPayment => "not_a_payment",
        }
    }
}

/// Part of an entry applied to one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub case_id: String,
    /// The part of the entry applied (positive).
    pub amount: Money,
    /// Open balance after it.
    pub open_after: Money,
    /// Cash discount granted (the open balance forgiven), when the discounted amount was paid.
    pub discount: Option<Money>,
}

/// The engine's answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub rule: Rule,
    /// 0–100.
    pub confidence: u8,
    pub allocations: Vec<Allocation>,
    /// Paid beyond the open balances (on the last allocation's case).
    pub overpayment: Option<Money>,
    /// Why, in words an operator reads; no personal data.
    pub reasons: Vec<String>,
    /// Cases the evidence pointed at when the entry went to review.
    pub candidates: Vec<String>,
}

impl Decision {
    fn new(outcome: Outcome, rule: Rule, confidence: u8, reason: impl Into<String>) -> Self {
        Self {
            outcome,
            rule,
            confidence,
            allocations: Vec::new(),
            overpayment: None,
            reasons: vec![reason.into()],
            candidates: Vec::new(),
        }
    }

    fn review(rule: Rule, reason: impl Into<String>, candidates: Vec<String>) -> Self {
        let mut d = Self::new(Outcome::Review, rule, 0, reason);
        d.candidates = candidates;
        d
    }

    pub fn reason(&self) -> String {
        self.reasons.join("; ")
    }
}

/// The open items of one tenant, indexed for the ladder. Closed and settled items stay indexed
/// by reference and number so that a payment for them is recognised (and sent to review).
#[derive(Debug, Clone, Default)]
pub struct OpenItems {
    items: Vec<OpenItem>,
    /// `text::name_tokens` of each item's debtor name.
    names: Vec<Vec<String>>,
    by_case: HashMap<String, usize>,
    by_rf: HashMap<String, Vec<usize>>,
    by_number: HashMap<String, Vec<usize>>,
    by_amount: HashMap<(i64, Currency), Vec<usize>>,
    by_iban: HashMap<String, Vec<usize>>,
}

fn norm_iban(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

impl OpenItems {
    pub fn new() -> Self {
        Self::default()
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

    fn keys(item: &OpenItem) -> (Option<String>, Vec<String>) {
        let rf = item
            .payment_reference
            .as_deref()
            .and_then(text::normalise_rf);
        let mut numbers = vec![text::number_key(&item.invoice_number)];
        numbers.extend(text::alternative_keys(&item.invoice_number));
        (rf, numbers)
    }

    fn index(&mut self, i: usize) {
        let item = &self.items[i];
        let (rf, numbers) = Self::keys(item);
        if let Some(rf) = rf {
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
        let (rf, numbers) = Self::keys(&item);
        let drop = |map: &mut HashMap<_, Vec<usize>>, key| {
            if let Some(v) = map.get_mut(&key) {
                v.retain(|&j| j != i);
                if v.is_empty() {
                    map.remove(&key);
                }
            }
        };
        if let Some(rf) = rf {
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

    fn lookup_numbers(&self, text: &str) -> (Vec<usize>, Vec<text::Candidate>) {
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

/// Confidence the amount-and-payer rule needs to overrule an invoice number that does not fit
/// (a known IBAN and a similar name).
const FALLBACK_CONFIDENCE: u8 = 97;

/// Decide what to do with one bank entry. Pure: the same items and entry give the same answer.
pub fn decide(items: &OpenItems, entry: &BankEntry, settings: &Settings) -> Decision {
    let Some(amount) = entry.amount else {
        return Decision::review(Rule::NoMatch, "entry has no amount", Vec::new());
    };
    if !entry.booked {
        return Decision::new(
            Outcome::Ignored,
            Rule::NotAPayment,
            100,
            "pending entry: recorded, applied once booked",
        );
    }
    if amount.minor < 0 {
        let why = if entry.reversal || entry.return_reason.is_some() {
            "return or reversal of an earlier payment"
        } else {
            "debit: outgoing payments are not invoice payments"
        };
        return Decision::new(Outcome::Ignored, Rule::NotAPayment, 100, why);
    }
    if amount.minor == 0 {
        return Decision::new(Outcome::Ignored, Rule::NotAPayment, 100, "zero amount");
    }
    if entry.reversal {
        return Decision::new(
            Outcome::Ignored,
            Rule::NotAPayment,
            100,
            "credit reversing an outgoing payment",
        );
    }
    let remittance = entry.remittance.as_deref().unwrap_or("");

    // 1. RF references.
    let mut rfs: Vec<String> = entry
        .references
        .iter()
        .filter_map(|r| text::normalise_rf(r))
        .collect();
    for r in text::find_rf_references(remittance) {
        if !rfs.contains(&r) {
            rfs.push(r);
        }
    }
    let mut rf_hits: Vec<usize> = Vec::new();
    for r in &rfs {
        for &i in items.by_rf.get(r).into_iter().flatten() {
            if !rf_hits.contains(&i) {
                rf_hits.push(i);
            }
        }
    }
    if !rf_hits.is_empty() {
        return resolve(items, entry, amount, rf_hits, Rule::RfReference, settings)
            .unwrap_or_else(|review| review);
    }

    // 2. Invoice numbers (also in non-RF structured references).
    let mut scanned = remittance.to_owned();
    for r in &entry.references {
        scanned.push('\n');
        scanned.push_str(r);
    }
    let (mut hits, truncated) = items.lookup_numbers(&scanned);
    if !hits.is_empty() {
        if remittance.chars().count() >= text::SEPA_REMITTANCE_LIMIT {
            complete_truncated(items, amount, &mut hits, &truncated);
        }
        return match resolve(items, entry, amount, hits, Rule::InvoiceNumber, settings) {
            Ok(d) => d,
            // A number that does not fit (often a typo naming another invoice): the amount and
            // the payer may still name exactly one invoice.
            Err(review) => {
                // Only on the strongest evidence: the payer's IBAN is known for the debtor.
                let mut d = amount_debtor(items, entry, amount, settings);
                if !d.outcome.applies() || d.confidence < FALLBACK_CONFIDENCE {
                    return review;
                }
                d.reasons.insert(0, review.reason());
                d
            }
        };
    }

    // 3. Amount + debtor.
    amount_debtor(items, entry, amount, settings)
}

/// A text cut off by the SEPA limit may have lost the last invoice number (wholly or in part).
/// The rest of the amount is given to one more invoice only if it is the only open invoice of the
/// same debtor whose balance is exactly that rest; when several are, the one whose number starts
/// with the cut-off text, if exactly one does.
fn complete_truncated(
    items: &OpenItems,
    amount: Money,
    hits: &mut Vec<usize>,
    truncated: &[text::Candidate],
) {
    let known: i64 = hits.iter().map(|&i| items.items[i].open.minor).sum();
    let rest = amount.minor - known;
    if rest <= 0 {
        return;
    }
    let debtor = &items.names[hits[0]];
    let mut found: Vec<usize> = Vec::new();
    let mut prefixed: Vec<usize> = Vec::new();
    for &i in items
        .by_amount
        .get(&(rest, amount.currency))
        .into_iter()
        .flatten()
    {
        let it = &items.items[i];
        if hits.contains(&i)
            || found.contains(&i)
            || it.open.minor != rest
            || &items.names[i] != debtor
        {
            continue;
        }
        found.push(i);
        let key = text::number_key(&it.invoice_number);
        if truncated
            .iter()
            .flat_map(|c| &c.keys)
            .any(|k| k.len() >= 6 && k.len() * 3 >= key.len() * 2 && key.starts_with(k.as_str()))
        {
            prefixed.push(i);
        }
    }
    if prefixed.len() == 1 {
        hits.push(prefixed[0]);
    } else if found.len() == 1 {
        hits.push(found[0]);
    }
}

/// The payer of an entry, prepared once for comparing with many items.
struct Payer {
    iban: Option<String>,
    names: Vec<Vec<String>>,
}

impl Payer {
    fn of(entry: &BankEntry) -> Self {
        Self {
            iban: entry.counterparty_iban.as_deref().map(norm_iban),
            names: [&entry.counterparty_name, &entry.ultimate_debtor]
                .into_iter()
                .flatten()
                .map(|n| text::name_tokens(n))
                .collect(),
        }
    }
}

/// Whether the payer's IBAN is known for item `i`'s debtor, and how alike the names are.
fn payer_similarity(items: &OpenItems, i: usize, payer: &Payer) -> (bool, u8) {
    let iban_known = payer
        .iban
        .as_ref()
        .is_some_and(|iban| items.items[i].debtor_ibans.contains(iban));
    let sim = payer
        .names
        .iter()
        .map(|n| text::token_similarity(&items.names[i], n))
        .max()
        .unwrap_or(0);
    (iban_known, sim)
}

/// Another open invoice (not among `hits`) whose balance is exactly `amount` and whose debtor
/// looks like the payer: a mistyped number may have named the wrong one.
fn other_fit(
    items: &OpenItems,
    entry: &BankEntry,
    amount: Money,
    hits: &[usize],
    other_debtors_only: bool,
) -> Option<String> {
    let payer = Payer::of(entry);
    items
        .by_amount
        .get(&(amount.minor, amount.currency))
        .into_iter()
        .flatten()
        .filter(|i| !hits.contains(i))
        .filter(|&&i| !other_debtors_only || hits.iter().all(|&h| items.names[h] != items.names[i]))
        .find(|&&i| {
            let (iban, sim) = payer_similarity(items, i, &payer);
            iban || sim >= 50
        })
        .map(|&i| items.items[i].case_id.clone())
}

/// Turn the invoices a reference named into allocations, or a review. `Err` is a review because
/// the reference does not fit the amount and payer: a weaker rule may still decide.
fn resolve(
    items: &OpenItems,
    entry: &BankEntry,
    amount: Money,
    mut hits: Vec<usize>,
    rule: Rule,
    settings: &Settings,
) -> Result<Decision, Decision> {
    let payer = &Payer::of(entry);
    let cases: Vec<String> = hits
        .iter()
        .map(|&i| items.items[i].case_id.clone())
        .collect();
    let what = match rule {
        Rule::RfReference => "RF reference",
        _ => "invoice number",
    };
    for &i in &hits {
        let it = &items.items[i];
        if let Some(why) = &it.closed {
            return Ok(Decision::review(
                rule,
                format!("{what} names a {why} case"),
                cases,
            ));
        }
        if it.open.currency != amount.currency {
            return Ok(Decision::review(
                rule,
                format!(
                    "paid in {} but the invoice is in {}",
                    amount.currency, it.open.currency
                ),
                cases,
            ));
        }
        if it.open.minor <= 0 {
            // Paid twice, or a mistyped number: a known IBAN and the exact amount of another
            // open invoice may still decide (the caller's fallback).
            return Err(Decision::review(
                rule,
                format!("{what} names an invoice that is already settled"),
                cases,
            ));
        }
    }
    if hits.len() > 1 {
        let first = &items.names[hits[0]];
        if hits.iter().any(|&i| &items.names[i] != first) {
            return Ok(Decision::review(
                rule,
                format!("{what}s of different debtors in one transfer"),
                cases,
            ));
        }
    }
    // Oldest first (§ 366 Abs. 2 BGB), then by invoice number for a stable order.
    hits.sort_by(|&a, &b| {
        let (x, y) = (&items.items[a], &items.items[b]);
        (x.due_date, &x.invoice_number).cmp(&(y.due_date, &y.invoice_number))
    });
    let total: i64 = hits.iter().map(|&i| items.items[i].open.minor).sum();
    let (iban_known, sim) = payer_similarity(items, hits[0], payer);
    let exact_base: u8 = if rule == Rule::RfReference { 100 } else { 95 };

    // One invoice paid with its cash discount.
    if hits.len() == 1 {
        let it = &items.items[hits[0]];
        if let Some(d) = it.cash_discount
            && d.amount == amount
            && amount.minor < it.open.minor
            && entry.booked_on.is_some_and(|b| b <= d.until)
        {
            let mut dec = Decision::new(
                Outcome::Applied,
                rule,
                exact_base,
                format!("{what} and the discounted amount paid within the cash discount period"),
            );
            dec.allocations.push(Allocation {
                case_id: it.case_id.clone(),
                amount,
                open_after: Money::zero(amount.currency),
                discount: Some(Money::new(it.open.minor - amount.minor, amount.currency)),
            });
            return Ok(dec);
        }
    }

    if amount.minor == total
        && rule == Rule::InvoiceNumber
        && !(iban_known || sim >= 90)
        && let Some(other) = other_fit(items, entry, amount, &hits, true)
    {
        // The number names another debtor's invoice of the same amount (common amounts), while
        // an invoice of a debtor who looks like the payer has exactly this balance: a mistyped
        // number is as likely as a third party paying.
        return Err(Decision::review(
            rule,
            "invoice number of another debtor; the amount is exactly the open balance of an invoice of this payer",
            [cases, vec![other]].concat(),
        ));
    }
    if amount.minor != total && rule == Rule::InvoiceNumber {
        // The amount does not fit what the number names (an RF reference's check digits are
        // enough on their own). Another invoice whose open balance is exactly the amount, of a
        // debtor who looks like the payer, makes it ambiguous (a mistyped number); otherwise a
        // payer who looks like the debtor makes it a partial payment or an overpayment.
        let strong = iban_known || sim >= 90;
        if let Some(other) = other_fit(items, entry, amount, &hits, false) {
            let review = Decision::review(
                rule,
                "invoice number found but the amount is exactly the open balance of another invoice of this payer",
                [cases, vec![other]].concat(),
            );
            // The payer is the named invoice's debtor: which of its invoices is meant is for a
            // person to say. Otherwise the number may be mistyped: the amount may decide.
            return if strong { Ok(review) } else { Err(review) };
        }
        if !(iban_known || sim >= 50) {
            return Err(Decision::review(
                rule,
                format!(
                    "{what} found but the amount differs from the open balance and the payer does not look like the debtor"
                ),
                cases,
            ));
        }
    }
    let confidence = if amount.minor == total {
        exact_base
    } else if rule == Rule::RfReference {
        95
    } else {
        90
    };
    if confidence < settings.threshold {
        return Err(Decision::review(
            rule,
            format!(
                "confidence {confidence} below the threshold {}",
                settings.threshold
            ),
            cases,
        ));
    }
    let mut left = amount.minor;
    let mut allocations = Vec::new();
    for &i in &hits {
        if left == 0 {
            break;
        }
        let it = &items.items[i];
        let part = left.min(it.open.minor);
        left -= part;
        allocations.push(Allocation {
            case_id: it.case_id.clone(),
            amount: Money::new(part, amount.currency),
            open_after: Money::new(it.open.minor - part, amount.currency),
            discount: None,
        });
    }
    let (outcome, reason) = if left > 0 {
        (
            Outcome::Overpaid,
            format!("{what}; paid more than was open, the rest is a credit"),
        )
    } else if allocations.len() > 1 {
        if amount.minor == total {
            (
                Outcome::Split,
                format!("{}s, amounts fit the open balances", what),
            )
        } else {
            (
                Outcome::Split,
                format!(
                    "{what}s; amount short of the open balances, applied oldest first (§ 366 Abs. 2 BGB)"
                ),
            )
        }
    } else if amount.minor == total {
        (
            Outcome::Applied,
            format!("{what}, amount equals the open balance"),
        )
    } else {
        (Outcome::Partial, format!("{what}; partial payment"))
    };
    let mut dec = Decision::new(outcome, rule, confidence, reason);
    dec.allocations = allocations;
    if left > 0 {
        dec.overpayment = Some(Money::new(left, amount.currency));
    }
    Ok(dec)
}

fn amount_debtor(
    items: &OpenItems,
    entry: &BankEntry,
    amount: Money,
    settings: &Settings,
) -> Decision {
    let payer = &Payer::of(entry);
    let mut scored: Vec<(u8, usize, bool)> = Vec::new();
    for &i in items
        .by_amount
        .get(&(amount.minor, amount.currency))
        .into_iter()
        .flatten()
    {
        let it = &items.items[i];
        let discounted = it.open != amount;
        if discounted
            && it
                .cash_discount
                .is_none_or(|d| entry.booked_on.is_none_or(|b| b > d.until))
        {
            continue;
        }
        let (iban_known, sim) = payer_similarity(items, i, payer);
        let score = if iban_known {
            if sim >= 50 { 97 } else { 88 }
        } else {
            u8::try_from(u32::from(sim) * 9 / 10).unwrap_or(0)
        };
        if score > 0 {
            scored.push((score, i, discounted));
        }
    }
    if scored.is_empty() {
        return Decision::review(
            Rule::NoMatch,
            "no reference found and no open invoice of this amount from a known payer",
            Vec::new(),
        );
    }
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    let (best, i, discounted) = scored[0];
    let cases: Vec<String> = scored
        .iter()
        .map(|s| items.items[s.1].case_id.clone())
        .collect();
    // A second candidate close to the best (or good enough on its own) makes it ambiguous; a
    // shared surname alone (45) does not compete with a full name (90).
    if scored.len() > 1 && (scored[1].0 + 25 >= best || scored[1].0 >= settings.threshold) {
        let close = scored
            .iter()
            .filter(|s| s.0 + 25 >= best || s.0 >= settings.threshold)
            .count();
        let mut d = Decision::review(
            Rule::AmountDebtor,
            format!("{close} open invoices of this amount fit the payer about equally well"),
            cases,
        );
        d.confidence = best;
        return d;
    }
    if best < settings.threshold {
        let mut d = Decision::review(
            Rule::AmountDebtor,
            format!(
                "amount fits an open invoice but the payer matches only with confidence {best} (threshold {})",
                settings.threshold
            ),
            cases,
        );
        d.confidence = best;
        return d;
    }
    let it = &items.items[i];
    let mut d = Decision::new(
        Outcome::Applied,
        Rule::AmountDebtor,
        best,
        if discounted {
            "no reference; discounted amount and payer fit one open invoice within its cash discount period"
        } else {
            "no reference; amount and payer fit exactly one open invoice"
        },
    );
    d.allocations.push(Allocation {
        case_id: it.case_id.clone(),
        amount,
        open_after: Money::zero(amount.currency),
        discount: discounted.then(|| Money::new(it.open.minor - amount.minor, amount.currency)),
    });
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_formats::rf::RfReference;
    use proptest::prelude::*;

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn item(case: &str, number: &str, name: &str, open: i64) -> OpenItem {
        OpenItem {
            case_id: case.into(),
            invoice_number: number.into(),
            debtor_name: name.into(),
            debtor_ibans: Vec::new(),
            customer_number: None,
            open: Money::eur(open),
            payment_reference: None,
            due_date: date(1),
            cash_discount: None,
            closed: None,
        }
    }

    fn credit(amount: i64, text: &str, name: &str) -> BankEntry {
        BankEntry {
            entry_ref: "e1".into(),
            amount: Some(Money::eur(amount)),
            booked_on: Some(date(10)),
            booked: true,
            counterparty_name: Some(name.into()),
            remittance: Some(text.into()),
            ..Default::default()
        }
    }

    fn book(list: Vec<OpenItem>) -> OpenItems {
        let mut items = OpenItems::new();
        for i in list {
            items.upsert(i);
        }
        items
    }

    fn decide_default(items: &OpenItems, e: &BankEntry) -> Decision {
        decide(items, e, &Settings::default())
    }

    fn cases(d: &Decision) -> Vec<(&str, i64)> {
        d.allocations
            .iter()
            .map(|a| (a.case_id.as_str(), a.amount.minor))
            .collect()
    }

    #[test]
    fn rf_in_text_in_groups_of_four_applies_exactly() {
        let rf = RfReference::create("2026000042").unwrap();
        let mut a = item("c1", "2026-0042", "Erika Mustermann", 11900);
        a.payment_reference = Some(rf.as_str().into());
        let items = book(vec![a, item("c2", "2026-0043", "Hans Schmidt", 11900)]);
        let e = credit(
            11900,
            &format!("Zahlung {} Danke", rf.to_print_format()),
            "Someone Else",
        );
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Applied);
        assert_eq!(d.rule, Rule::RfReference);
        assert_eq!(d.confidence, 100);
        assert_eq!(cases(&d), [("c1", 11900)]);
        assert_eq!(d.allocations[0].open_after, Money::eur(0));
    }

    #[test]
    fn structured_rf_partial_and_overpaid() {
        let rf = RfReference::create("77").unwrap();
        let mut a = item("c1", "77", "Erika Mustermann", 10000);
        a.payment_reference = Some(rf.to_print_format());
        let items = book(vec![a]);
        let mut e = credit(4000, "", "X");
        e.references = vec![rf.as_str().into()];
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Partial);
        assert_eq!(d.allocations[0].open_after, Money::eur(6000));
        e.amount = Some(Money::eur(10500));
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Overpaid);
        assert_eq!(cases(&d), [("c1", 10000)]);
        assert_eq!(d.overpayment, Some(Money::eur(500)));
    }

    #[test]
    fn several_invoice_numbers_split_oldest_first() {
        let mut a = item("c1", "RE-2026-00101", "Müller GmbH", 5000);
        a.due_date = date(5);
        let mut b = item("c2", "RE-2026-00102", "Müller GmbH", 3000);
        b.due_date = date(2);
        let items = book(vec![a, b, item("c3", "RE-2026-00103", "Other AG", 3000)]);
        let e = credit(8000, "RE 2026-00101, RE 2026-00 102", "Mueller GmbH");
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Split);
        assert_eq!(cases(&d), [("c2", 3000), ("c1", 5000)]);
        // Short: the older one is paid in full, the newer one partly.
        let e = credit(4000, "Rg.-Nr. 202600101 und 202600102", "Mueller GmbH");
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Split);
        assert_eq!(cases(&d), [("c2", 3000), ("c1", 1000)]);
        assert!(d.reason().contains("366"), "{}", d.reason());
    }

    #[test]
    fn numbers_of_different_debtors_go_to_review() {
        let items = book(vec![
            item("c1", "RE-2026-00101", "Müller GmbH", 5000),
            item("c3", "RE-2026-00103", "Other AG", 3000),
        ]);
        let d = decide_default(
            &items,
            &credit(8000, "RE-2026-00101 RE-2026-00103", "Müller"),
        );
        assert_eq!(d.outcome, Outcome::Review);
        assert_eq!(d.candidates.len(), 2);
    }

    #[test]
    fn mistyped_number_falls_back_to_amount_and_payer_only_with_a_known_iban() {
        let mut meant = item("c2", "RE-2026-00110", "Erika Mustermann", 7000);
        meant.debtor_ibans = vec!["DE02120300000000202051".into()];
        let items = book(vec![
            item("c1", "RE-2026-00101", "Hans Schmidt", 5000),
            meant,
        ]);
        // Meant c2 (7000), typed c1's number (another debtor's invoice).
        let mut e = credit(7000, "RE-2026-00101", "Erika Mustermann");
        let d = decide_default(&items, &e);
        assert_eq!(
            d.outcome,
            Outcome::Review,
            "no IBAN: a namesake could have paid: {d:?}"
        );
        e.counterparty_iban = Some("DE02120300000000202051".into());
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Applied, "{d:?}");
        assert_eq!(d.rule, Rule::AmountDebtor);
        assert_eq!(cases(&d), [("c2", 7000)]);
        assert!(d.reason().contains("another invoice"), "{}", d.reason());
    }

    #[test]
    fn a_mistyped_number_of_another_debtors_invoice_with_the_same_amount_is_not_applied() {
        let mut meant = item("c2", "RE-2026-00110", "Erika Mustermann", 4900);
        meant.debtor_ibans = vec!["DE02120300000000202051".into()];
        let items = book(vec![
            item("c1", "RE-2026-00101", "Hans Schmidt", 4900),
            meant,
        ]);
        let mut e = credit(4900, "RE-2026-00101", "Erika Mustermann");
        assert_eq!(decide_default(&items, &e).outcome, Outcome::Review);
        e.counterparty_iban = Some("DE02120300000000202051".into());
        let d = decide_default(&items, &e);
        assert_eq!(cases(&d), [("c2", 4900)], "{d:?}");
        // A third party paying Hans Schmidt's invoice, nobody else with that amount: applied.
        let items = book(vec![item("c1", "RE-2026-00101", "Hans Schmidt", 4900)]);
        let d = decide_default(&items, &credit(4900, "RE-2026-00101", "Steuerbüro Klein"));
        assert_eq!(cases(&d), [("c1", 4900)]);
    }

    #[test]
    fn a_number_of_the_payers_own_invoice_with_another_invoices_amount_goes_to_review() {
        let items = book(vec![
            item("c1", "RE-2026-00101", "Erika Mustermann", 5000),
            item("c2", "RE-2026-00110", "Erika Mustermann", 7000),
        ]);
        let d = decide_default(&items, &credit(7000, "RE-2026-00101", "Erika Mustermann"));
        assert_eq!(d.outcome, Outcome::Review, "{d:?}");
        assert_eq!(d.candidates, ["c1", "c2"]);
    }

    #[test]
    fn a_number_inside_a_longer_number_is_not_matched() {
        let items = book(vec![
            item("short", "00123456", "A", 1000),
            item("long", "2026-00123456", "B", 1000),
        ]);
        let d = decide_default(&items, &credit(1000, "Rechnung 2026-00123456", "B"));
        assert_eq!(cases(&d), [("long", 1000)]);
    }

    #[test]
    fn amount_mismatch_with_foreign_payer_goes_to_review() {
        let items = book(vec![item("c1", "RE-4711", "Erika Mustermann", 10000)]);
        let d = decide_default(&items, &credit(2500, "RE-4711", "Hans Schmidt"));
        assert_eq!(d.outcome, Outcome::Review);
        let d = decide_default(&items, &credit(2500, "RE-4711", "E. Mustermann"));
        assert_eq!(d.outcome, Outcome::Partial);
    }

    #[test]
    fn truncated_last_number_is_completed_only_by_an_exact_rest() {
        let items = book(vec![
            item("c1", "RE-2026-000111", "Weiß KG", 1000),
            item("c2", "RE-2026-000222", "Weiß KG", 2000),
            item("c3", "RE-2026-000333", "Weiß KG", 2500),
            item("c4", "RE-2026-000444", "Weiß KG", 2000),
            item("x", "RE-2026-000555", "Other AG", 1700),
        ]);
        let cut = |tail: &str| format!("Sammelzahlung {}{tail}", "x".repeat(140 - 14 - tail.len()));
        let text = cut("RE-2026-000111 RE-2026-0002");
        assert_eq!(text.chars().count(), 140);
        // Two invoices of the debtor have the rest open; the cut-off number says which.
        let d = decide_default(&items, &credit(3000, &text, "Weiss KG"));
        assert_eq!(d.outcome, Outcome::Split, "{d:?}");
        assert_eq!(cases(&d), [("c1", 1000), ("c2", 2000)]);
        // Too little is left of the number to tell c2 from c4: only the full number counts.
        let d = decide_default(
            &items,
            &credit(3000, &cut("RE-2026-000111 RE-20"), "Weiss KG"),
        );
        assert_eq!(d.outcome, Outcome::Overpaid);
        assert_eq!(cases(&d), [("c1", 1000)]);
        // The rest is exactly one invoice of the debtor: the cut-off number was that one.
        let d = decide_default(
            &items,
            &credit(3500, &cut("RE-2026-000111 RE-"), "Weiss KG"),
        );
        assert_eq!(cases(&d), [("c1", 1000), ("c3", 2500)]);
        // The rest fits another debtor's invoice only: not taken.
        let d = decide_default(&items, &credit(2700, &text, "Weiss KG"));
        assert_eq!(cases(&d), [("c1", 1000)]);
        // A text that was not cut is never completed.
        let d = decide_default(&items, &credit(3500, "RE-2026-000111", "Weiss KG"));
        assert_eq!(cases(&d), [("c1", 1000)]);
    }

    #[test]
    fn other_currency_and_closed_cases_go_to_review() {
        let mut closed = item("c2", "RE-0002", "Erika Mustermann", 10000);
        closed.closed = Some("cancelled".into());
        let items = book(vec![
            item("c1", "RE-0001", "Erika Mustermann", 10000),
            closed,
        ]);
        let mut e = credit(10000, "RE-0001", "Erika Mustermann");
        e.amount = Some(Money::new(10000, "USD".parse().unwrap()));
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Review);
        assert!(d.reason().contains("USD"));
        let d = decide_default(&items, &credit(10000, "RE-0002", "Erika Mustermann"));
        assert_eq!(d.outcome, Outcome::Review);
        assert!(d.reason().contains("cancelled"));
    }

    #[test]
    fn debits_and_pending_are_ignored() {
        let items = book(vec![item("c1", "RE-0001", "A", 100)]);
        let mut e = credit(-100, "RE-0001", "A");
        assert_eq!(decide_default(&items, &e).outcome, Outcome::Ignored);
        e.return_reason = Some("MD06".into());
        assert!(decide_default(&items, &e).reason().contains("return"));
        let mut e = credit(100, "RE-0001", "A");
        e.booked = false;
        assert_eq!(decide_default(&items, &e).outcome, Outcome::Ignored);
    }

    #[test]
    fn amount_and_debtor_by_iban_or_name() {
        let mut a = item("c1", "A-1", "Jürgen Weiß", 4242);
        a.debtor_ibans = vec!["DE89 3704 0044 0532 0130 00".into()];
        let items = book(vec![a, item("c2", "A-2", "Hans Schmidt", 4242)]);
        let mut e = credit(4242, "Danke", "Juergen Weiss");
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Applied, "{d:?}");
        assert_eq!(d.rule, Rule::AmountDebtor);
        assert_eq!(cases(&d), [("c1", 4242)]);
        e.counterparty_name = Some("J. Weiss".into());
        assert_eq!(decide_default(&items, &e).outcome, Outcome::Review);
        e.counterparty_iban = Some("DE89370400440532013000".into());
        assert_eq!(decide_default(&items, &e).outcome, Outcome::Applied);
        // Below a stricter tenant threshold.
        let strict = Settings { threshold: 99 };
        assert_eq!(decide(&items, &e, &strict).outcome, Outcome::Review);
    }

    #[test]
    fn two_invoices_of_the_same_amount_and_payer_go_to_review() {
        let items = book(vec![
            item("c1", "A-1", "Erika Mustermann", 999),
            item("c2", "A-2", "Erika Mustermann", 999),
        ]);
        let d = decide_default(&items, &credit(999, "Abo", "Erika Mustermann"));
        assert_eq!(d.outcome, Outcome::Review);
        assert_eq!(d.candidates.len(), 2);
    }

    #[test]
    fn cash_discount_settles_within_the_period_only() {
        let mut a = item("c1", "RE-5000", "Erika Mustermann", 10000);
        a.cash_discount = Some(CashDiscount {
            amount: Money::eur(9800),
            until: date(10),
        });
        let mut items = book(vec![a]);
        let e = credit(9800, "RE-5000", "Erika Mustermann");
        let d = decide_default(&items, &e);
        assert_eq!(d.outcome, Outcome::Applied);
        assert_eq!(d.allocations[0].discount, Some(Money::eur(200)));
        assert_eq!(d.allocations[0].open_after, Money::eur(0));
        let mut late = e.clone();
        late.booked_on = Some(date(11));
        assert_eq!(decide_default(&items, &late).outcome, Outcome::Partial);
        // Without reference, by amount and name.
        let mut no_ref = e.clone();
        no_ref.remittance = None;
        assert_eq!(decide_default(&items, &no_ref).outcome, Outcome::Applied);
        items.apply(&e, &d);
        assert_eq!(items.get("c1").unwrap().open, Money::eur(0));
        let again = decide_default(&items, &e);
        assert_eq!(again.outcome, Outcome::Review, "already settled");
    }

    #[test]
    fn applying_reduces_the_open_balance_and_learns_the_iban() {
        let mut items = book(vec![item("c1", "RE-7777", "Erika Mustermann", 10000)]);
        let mut e = credit(4000, "RE-7777", "Erika Mustermann");
        e.counterparty_iban = Some("DE02120300000000202051".into());
        let d = decide_default(&items, &e);
        items.apply(&e, &d);
        let it = items.get("c1").unwrap();
        assert_eq!(it.open, Money::eur(6000));
        assert_eq!(it.debtor_ibans, ["DE02120300000000202051"]);
        // Now the rest is found by amount and IBAN alone.
        let mut rest = credit(6000, "", "E M");
        rest.counterparty_iban = e.counterparty_iban.clone();
        assert_eq!(decide_default(&items, &rest).outcome, Outcome::Applied);
    }

    proptest! {
        /// Allocations never exceed the entry, never exceed an item's open balance, and the
        /// decision only names cases that the reference pointed at.
        #[test]
        fn allocations_add_up(opens in proptest::collection::vec(1i64..1_000_000, 1..6), paid in 1i64..3_000_000, pick in proptest::collection::vec(any::<bool>(), 6)) {
            let list: Vec<OpenItem> = opens.iter().enumerate().map(|(i, o)| {
                let mut it = item(&format!("c{i}"), &format!("RE-2026-{:05}", 10000 + i), "Erika Mustermann", *o);
                it.due_date = date(1 + u32::try_from(i).unwrap());
                it
            }).collect();
            let items = book(list.clone());
            let named: Vec<&OpenItem> = list.iter().zip(&pick).filter(|(_, p)| **p).map(|(i, _)| i).collect();
            prop_assume!(!named.is_empty());
            let text = named.iter().map(|i| i.invoice_number.clone()).collect::<Vec<_>>().join(" ");
            let d = decide_default(&items, &credit(paid, &text, "Erika Mustermann"));
            prop_assert!(d.outcome.applies(), "{:?}", d);
            let sum: i64 = d.allocations.iter().map(|a| a.amount.minor).sum();
            prop_assert_eq!(sum + d.overpayment.map_or(0, |m| m.minor), paid);
            for a in &d.allocations {
                let it = items.get(&a.case_id).unwrap();
                prop_assert!(named.iter().any(|n| n.case_id == a.case_id));
                prop_assert!(a.amount.minor > 0 && a.amount.minor <= it.open.minor);
                prop_assert_eq!(a.open_after.minor, it.open.minor - a.amount.minor);
            }
        }
    }
}
