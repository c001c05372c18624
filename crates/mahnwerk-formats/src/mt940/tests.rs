use super::*;
use crate::statement::{BalanceCheck, collect_statements};

fn parse(text: &str, lenient: bool) -> Result<Vec<crate::statement::Statement>> {
    let options = Mt940Options {
        parse: ParseOptions {
            lenient_dates: lenient,
        },
        ..Mt940Options::default()
    };
    collect_statements(Mt940Reader::new(text.as_bytes(), options))
}

#[test]
fn mt942_without_opening_balance_takes_the_currency_from_34f() {
    let text = ":20:INTRADAY\n:25:DE89370400440532013000\n:28C:1/1\n:34F:EURD0,\n:13D:2611031200+0100\n:61:2611031103CR119,00NTRFNONREF//B1\n:86:166?00GUTSCHRIFT?20RE-2026-0001?32Muster GmbH\n:90C:1EUR119,00\n-\n";
    let s = parse(text, false).unwrap();
    assert_eq!(s[0].header.format, SourceFormat::Mt942);
    assert_eq!(s[0].entries[0].amount, Money::eur(11900));
    assert!(
        s[0].end.balance_check.balanced().is_none(),
        "no balances to check"
    );
}

#[test]
fn german_86_identifiers_continue_across_subfields() {
    let text = ":20:X\n:25:12345678/1020304050\n:28C:0\n:60F:C170914EUR100,00\n:61:1709140914D10,00NMSCNONREF\n:86:105?00SEPA-LS?20EREF+E2E 1?21MREF+M1 CRED+DE98ZZ?22Z09999999999 SVWZ+Rechnung R?2317 RF18539007547034?32Muster?33 GmbH?31DE89370400440532013000?34992\n:62F:C170914EUR90,00\n-\n";
    let s = parse(text, false).unwrap();
    let e = &s[0].entries[0];
    assert_eq!(e.amount.minor, -1000);
    assert_eq!(e.end_to_end_id.as_deref(), Some("E2E 1"));
    assert_eq!(e.mandate_id.as_deref(), Some("M1"));
    assert_eq!(e.creditor_id.as_deref(), Some("DE98ZZZ09999999999"));
    assert_eq!(
        e.remittance.as_deref(),
        Some("Rechnung R17 RF18539007547034")
    );
    assert_eq!(e.creditor_reference.as_deref(), Some("RF18539007547034"));
    assert_eq!(e.counterparty.name.as_deref(), Some("Muster GmbH"));
    assert_eq!(
        e.counterparty.iban.as_deref(),
        Some("DE89370400440532013000")
    );
    assert_eq!(e.gvc.as_deref(), Some("105"));
    assert_eq!(e.return_reason, None);
    assert_eq!(s[0].end.balance_check, BalanceCheck::Balanced);
}

#[test]
fn entry_date_rolls_over_the_year_end_and_reversals_flip_sign() {
    let text = ":20:X\n:25:DE89370400440532013000\n:60F:C251231EUR0,00\n:61:2601021231RC5,00NTRFNONREF\n:61:2512310101RD1,50NTRFNONREF\n:62F:D260102EUR3,50\n";
    let s = parse(text, false).unwrap();
    let e = &s[0].entries;
    assert_eq!(e[0].booking_date, NaiveDate::from_ymd_opt(2025, 12, 31));
    assert_eq!(e[0].amount.minor, -500);
    assert!(e[0].reversal);
    assert_eq!(e[1].booking_date, NaiveDate::from_ymd_opt(2026, 1, 1));
    assert_eq!(e[1].amount.minor, 150);
    assert_eq!(
        s[0].header.account_iban.as_deref(),
        Some("DE89370400440532013000")
    );
    assert_eq!(s[0].end.balance_check, BalanceCheck::Balanced);
}

#[test]
fn errors_name_line_and_tag() {
    let err = parse(
        ":20:X\n:60F:C170914EUR100,00\n:61:1702300914D10,00NMSCNONREF\n",
        false,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "line 3, :61:: impossible date \"170230\"");
    let err = parse(
        ":20:X\n:60F:C170914EUR100,00\n:61:170914D10.00NMSCNONREF\n",
        false,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("line 3, :61:"), "{err}");
    let err = parse(":25:X\n", false).unwrap_err();
    assert!(err.to_string().contains("before the first :20:"), "{err}");
}
