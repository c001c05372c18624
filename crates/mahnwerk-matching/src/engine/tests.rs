//! Tests of the matching engine (the ladder, the index, and properties).

use super::*;
use chrono::NaiveDate;
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
        letter_references: Vec::new(),
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

/// An invoice without an RF reference of its own: its letters print one made from the invoice
/// number (`rf::for_invoice`, the letters service's derivation). Quoted alone, by a payer who
/// does not look like the debtor, it settles that invoice as any RF reference does.
#[test]
fn the_rf_reference_letters_derive_from_the_invoice_number_applies_exactly() {
    let rf = mahnwerk_formats::rf::for_invoice(None, "RE-2026-0815", "c1").unwrap();
    let items = book(vec![
        item("c1", "RE-2026-0815", "Erika Mustermann", 11900),
        item("c2", "RE-2026-0816", "Max Beispiel", 11900),
    ]);
    let mut structured = credit(11900, "", "Hans Schmidt");
    structured.references = vec![rf.as_str().into()];
    for e in [
        credit(11900, rf.as_str(), "Hans Schmidt"),
        credit(
            11900,
            &format!("Danke {}", rf.to_print_format()),
            "Hans Schmidt",
        ),
        structured,
    ] {
        let d = decide_default(&items, &e);
        assert_eq!(
            (d.outcome, d.rule, d.confidence),
            (Outcome::Applied, Rule::RfReference, 100),
            "{e:?}: {d:?}"
        );
        assert_eq!(cases(&d), [("c1", 11900)]);
    }
    // An invoice with its own RF reference: that one is printed, not one made from the number.
    let mut own = item("c3", "RE-2026-0817", "Erika Mustermann", 11900);
    own.payment_reference = Some(RfReference::create("99887766").unwrap().as_str().into());
    let items = book(vec![own]);
    let made = mahnwerk_formats::rf::for_invoice(None, "RE-2026-0817", "c3").unwrap();
    let d = decide_default(&items, &credit(11900, made.as_str(), "Hans Schmidt"));
    assert_eq!(d.outcome, Outcome::Review, "{d:?}");
}

/// A reference a letter recorded (`letter.rendered.v1`) other than the derived one names its
/// item; replacing the item without it forgets it.
#[test]
fn an_rf_reference_a_letter_recorded_names_its_item() {
    let printed = RfReference::create("LTR4711").unwrap();
    let mut a = item("c1", "RE-1", "Erika Mustermann", 5000);
    a.letter_references = vec![printed.to_print_format()];
    let mut items = book(vec![a.clone()]);
    let e = credit(5000, &format!("Ref {printed}"), "Hans Schmidt");
    let d = decide_default(&items, &e);
    assert_eq!(
        (d.outcome, d.rule, d.confidence),
        (Outcome::Applied, Rule::RfReference, 100),
        "{d:?}"
    );
    a.letter_references.clear();
    items.upsert(a);
    assert_eq!(decide_default(&items, &e).outcome, Outcome::Review);
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
