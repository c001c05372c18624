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

mod items;
mod types;

use items::norm_iban;
pub use items::{OpenItems, amount_key, entry_keys};
pub use types::{Allocation, BankEntry, CashDiscount, Decision, OpenItem, Outcome, Rule, Settings};

use crate::text;
use mahnwerk_domain::Money;

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
    for &i in items.amount_bucket(rest, amount.currency) {
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
        .amount_bucket(amount.minor, amount.currency)
        .iter()
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
    for &i in items.amount_bucket(amount.minor, amount.currency) {
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
mod tests;
