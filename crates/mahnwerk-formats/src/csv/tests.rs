use super::*;
use crate::statement::{BalanceCheck, collect_statements};

fn read(bytes: &[u8], mapping: &str) -> Result<Vec<crate::statement::Statement>> {
    let m = CsvMapping::from_json(mapping.as_bytes())?;
    collect_statements(CsvReader::new(bytes, m, ParseOptions::default())?)
}

fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, day)
}

/// Sparkasse "CSV-CAMT V2" export: Windows-1252, `;`, every cell quoted, `dd.mm.yy`.
const SPARKASSE_MAPPING: &str = r#"{
    "separator": ";", "encoding": "windows-1252", "decimal_separator": ",",
    "thousands_separator": ".", "date_format": "%d.%m.%y", "header": true,
    "columns": {
        "account_iban": "Auftragskonto", "booking_date": "Buchungstag",
        "value_date": "Valutadatum", "posting_text": "Buchungstext",
        "remittance": "Verwendungszweck", "creditor_id": "Glaeubiger ID",
        "mandate_id": "Mandatsreferenz", "end_to_end_id": "Kundenreferenz (End-to-End)",
        "counterparty_name": "Beguenstigter/Zahlungspflichtiger",
        "counterparty_iban": "Kontonummer/IBAN", "counterparty_bic": "BIC (SWIFT-Code)",
        "currency": "Waehrung"
    },
    "amount": {"signed": "Betrag"}
}"#;

fn sparkasse_bytes() -> Vec<u8> {
    let text = "\"Auftragskonto\";\"Buchungstag\";\"Valutadatum\";\"Buchungstext\";\"Verwendungszweck\";\"Glaeubiger ID\";\"Mandatsreferenz\";\"Kundenreferenz (End-to-End)\";\"Sammlerreferenz\";\"Lastschrift Ursprungsbetrag\";\"Auslagenersatz Ruecklastschrift\";\"Beguenstigter/Zahlungspflichtiger\";\"Kontonummer/IBAN\";\"BIC (SWIFT-Code)\";\"Betrag\";\"Waehrung\";\"Info\"\r\n\
\"DE89370400440532013000\";\"30.12.25\";\"30.12.25\";\"GUTSCHR. UEBERWEISUNG\";\"RE-2025-0815 Müller; Teilzahlung\";\"\";\"\";\"E2E-4711\";\"\";\"\";\"\";\"Jürgen Müller-Lüdenscheidt\";\"DE02120300000000202051\";\"BYLADEM1001\";\"1.234,56\";\"EUR\";\"Umsatz gebucht\"\r\n\
\"DE89370400440532013000\";\"31.12.25\";\"02.01.26\";\"FOLGELASTSCHRIFT\";\"Beitrag \"\"Q1\"\" 2026\";\"DE98ZZZ09999999999\";\"MANDAT-0042\";\"NOTPROVIDED\";\"\";\"\";\"\";\"Versicherung AG\";\"DE02500105170137075030\";\"INGDDEFFXXX\";\"-89,90\";\"EUR\";\"Umsatz gebucht\"\r\n\
\"DE89370400440532013000\";\"02.01.26\";\"02.01.26\";\"ENTGELT\";\"Kontoführung\";\"\";\"\";\"\";\"\";\"\";\"\";\"\";\"\";\"\";\"-12.345.678,00\";\"EUR\";\"Umsatz vorgemerkt\"\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

#[test]
fn sparkasse_export_windows_1252_signed_amounts() {
    let bytes = sparkasse_bytes();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "umlauts are single bytes"
    );
    let st = read(&bytes, SPARKASSE_MAPPING).unwrap();
    assert_eq!(st.len(), 1);
    let s = &st[0];
    assert_eq!(s.header.format, SourceFormat::Csv);
    assert_eq!(
        s.header.account_iban.as_deref(),
        Some("DE89370400440532013000")
    );
    assert_eq!(s.header.currency, Some(Currency::EUR), "from the first row");
    assert_eq!(s.entries.len(), 3);
    let e = &s.entries[0];
    assert_eq!(e.amount, Money::eur(123_456));
    assert_eq!(e.booking_date, d(2025, 12, 30));
    assert_eq!(
        e.remittance.as_deref(),
        Some("RE-2025-0815 Müller; Teilzahlung")
    );
    assert_eq!(
        e.counterparty.name.as_deref(),
        Some("Jürgen Müller-Lüdenscheidt")
    );
    assert_eq!(
        e.counterparty.iban.as_deref(),
        Some("DE02120300000000202051")
    );
    assert_eq!(e.counterparty.bic.as_deref(), Some("BYLADEM1001"));
    assert_eq!(e.end_to_end_id.as_deref(), Some("E2E-4711"));
    assert_eq!(e.line, 2);
    let e = &s.entries[1];
    assert_eq!(e.amount, Money::eur(-8_990));
    assert_eq!(
        (e.booking_date, e.value_date),
        (d(2025, 12, 31), d(2026, 1, 2))
    );
    assert_eq!(e.remittance.as_deref(), Some("Beitrag \"Q1\" 2026"));
    assert_eq!(e.mandate_id.as_deref(), Some("MANDAT-0042"));
    assert_eq!(e.creditor_id.as_deref(), Some("DE98ZZZ09999999999"));
    assert_eq!(e.end_to_end_id, None, "NOTPROVIDED is no id");
    assert_eq!(e.posting_text.as_deref(), Some("FOLGELASTSCHRIFT"));
    assert_eq!(s.entries[2].amount, Money::eur(-1_234_567_800));
    assert_eq!(s.entries[2].counterparty, Counterparty::default());
    assert_eq!(s.end.entry_count, 3);
    assert_eq!(s.end.credits_total, 123_456);
    assert_eq!(s.end.debits_total, -8_990 - 1_234_567_800);
    assert!(matches!(
        s.end.balance_check,
        BalanceCheck::NotChecked { .. }
    ));
}

#[test]
fn sparkasse_export_read_as_utf8_fails_naming_the_line() {
    let m = SPARKASSE_MAPPING.replace("windows-1252", "utf-8");
    let err = read(&sparkasse_bytes(), &m).unwrap_err().to_string();
    assert!(err.starts_with("line 2: not valid UTF-8"), "{err}");
    // ISO-8859-1 is a label of windows-1252 in WHATWG: same result as windows-1252.
    let m = SPARKASSE_MAPPING.replace("windows-1252", "ISO-8859-1");
    assert_eq!(
        read(&sparkasse_bytes(), &m).unwrap(),
        read(&sparkasse_bytes(), SPARKASSE_MAPPING).unwrap()
    );
}

/// Volksbank/Raiffeisenbank export: preamble lines, ISO-8859-1, unsigned `Umsatz` plus an
/// `S`/`H` (Soll/Haben) indicator column, a multi-line quoted purpose, a footer.
const VOLKSBANK: &str = "\"Volksbank Musterstadt eG\"\n\
\"Umsatzanzeige\"\n\
\"BLZ:\";\"12345678\";;\"Datum:\";\"05.01.2026\"\n\
\"Konto:\";\"DE44500105175407324931\";;\"Uhrzeit:\";\"10:11:12\"\n\
\n\
\"Buchungstag\";\"Valuta\";\"Auftraggeber/Zahlungsempfänger\";\"Empfänger/Zahlungspflichtiger\";\"Konto-Nr.\";\"IBAN\";\"BLZ\";\"BIC\";\"Vorgang/Verwendungszweck\";\"Kundenreferenz\";\"Währung\";\"Umsatz\";\" \"\n\
\"02.01.2026\";\"02.01.2026\";\"Mahnwerk GmbH\";\"Änne Weiß\";\"\";\"DE75512108001245126199\";\"\";\"SOGEDEFFXXX\";\"Überweisungsgutschr.\nRF18539007547034\nRechnung 2025-117\";\"\";\"EUR\";\"2.500,00\";\"H\"\n\
\"03.01.2026\";\"03.01.2026\";\"Mahnwerk GmbH\";\"Stadtwerke Musterstadt\";\"\";\"DE12500105170648489890\";\"\";\"INGDDEFFXXX\";\"Lastschrift Strom\";\"\";\"EUR\";\"74,10\";\"S\"\n\
\n\
\"05.01.2026\";;;;;;;;;;\"EUR\";\"3.425,90\";\"H\"\n";

const VOLKSBANK_MAPPING: &str = r#"{
    "encoding": "iso-8859-1", "thousands_separator": ".", "date_format": "%d.%m.%Y",
    "skip_lines": 5, "account_iban": "DE44 5001 0517 5407 3249 31",
    "ignore_rows_starting_with": ["05.01.2026"],
    "columns": {"booking_date": "Buchungstag", "value_date": "Valuta",
                "counterparty_name": "Empfänger/Zahlungspflichtiger", "counterparty_iban": "IBAN",
                "counterparty_bic": "BIC", "remittance": "Vorgang/Verwendungszweck",
                "currency": "Währung"},
    "amount": {"indicator": {"amount": "Umsatz", "column": 13, "debit": ["S"], "credit": ["H"]}}
}"#;

#[test]
fn volksbank_export_iso_8859_1_with_indicator_column() {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(VOLKSBANK);
    let st = read(&bytes, VOLKSBANK_MAPPING).unwrap();
    assert_eq!(st.len(), 1);
    let s = &st[0];
    assert_eq!(
        s.header.account_iban.as_deref(),
        Some("DE44500105175407324931")
    );
    assert_eq!(s.entries.len(), 2);
    let e = &s.entries[0];
    assert_eq!(e.amount, Money::eur(250_000));
    assert_eq!(e.line, 7);
    assert_eq!(e.counterparty.name.as_deref(), Some("Änne Weiß"));
    assert_eq!(
        e.remittance.as_deref(),
        Some("Überweisungsgutschr.\nRF18539007547034\nRechnung 2025-117")
    );
    let e = &s.entries[1];
    assert_eq!(e.line, 10, "a record's line is where it starts");
    assert_eq!(e.amount, Money::eur(-7_410));
    assert_eq!(e.booking_date, d(2026, 1, 3));
    assert_eq!((s.end.credits_total, s.end.debits_total), (250_000, -7_410));
}

#[test]
fn indicator_errors_name_line_and_column() {
    let m = VOLKSBANK_MAPPING.replace("iso-8859-1", "utf-8");
    let bad = VOLKSBANK.replace("\"74,10\";\"S\"", "\"74,10\";\"X\"");
    let err = read(bad.as_bytes(), &m).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 10, column 13: \"X\" is neither a debit [\"S\"] nor a credit [\"H\"] indicator"
    );
    let bad = bad.replace("\"74,10\";\"X\"", "\"-74,10\";\"S\"");
    let err = read(bad.as_bytes(), &m).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 10, column 12 (Umsatz): signed amount where the mapping declares an indicator column"
    );
}

/// Deutsche-Bank-like export: separate `Soll`/`Haben` columns (debits written negative),
/// a `Kontostand` footer, UTF-8 with BOM.
#[test]
fn debit_and_credit_columns() {
    let csv = "\u{feff}Buchungstag;Wert;Umsatzart;Begünstigter / Auftraggeber;Verwendungszweck;IBAN;BIC;Kundenreferenz;Mandatsreferenz ;Gläubiger ID;Fremde Gebühren;Betrag;Abweichender Empfänger;Anzahl der Aufträge;Anzahl der Schecks;Soll;Haben;Währung\n\
15.03.2026;15.03.2026;SEPA-Überweisung an;Zoë Østergaard;Miete März;DE02100100100006820101;PBNKDEFFXXX;;;;;;;;;-950,00;;EUR\n\
16.03.2026;16.03.2026;SEPA-Gutschrift;Ölmühle Öhringen KG;RF71 2348 231;DE02300209000106531065;CMCIDEDDXXX;;;;;;;;;;1.000.000,01;EUR\n\
17.03.2026;17.03.2026;Abschluss;;Zinsen;;;;;;;;;;;0,00;;EUR\n\
Kontostand;17.03.2026;;;;;;;;;;;;;;;999.050,01;EUR\n";
    let m = r#"{"thousands_separator": ".", "date_format": "%d.%m.%Y", "currency": "EUR",
        "ignore_rows_starting_with": ["Kontostand"],
        "columns": {"booking_date": "Buchungstag", "value_date": "Wert", "posting_text": "Umsatzart",
                    "counterparty_name": "Begünstigter / Auftraggeber", "remittance": "Verwendungszweck",
                    "counterparty_iban": "IBAN", "counterparty_bic": "BIC", "mandate_id": "Mandatsreferenz"},
        "amount": {"debit_credit": {"debit": "Soll", "credit": "Haben"}}}"#;
    let st = read(csv.as_bytes(), m).unwrap();
    let amounts: Vec<i64> = st[0].entries.iter().map(|e| e.amount.minor).collect();
    assert_eq!(amounts, vec![-95_000, 100_000_001, 0]);
    assert_eq!(
        st[0].entries[0].counterparty.name.as_deref(),
        Some("Zoë Østergaard")
    );
    assert_eq!(
        st[0].entries[1].posting_text.as_deref(),
        Some("SEPA-Gutschrift")
    );
    let both = csv.replace(";-950,00;;EUR", ";-950,00;950,00;EUR");
    let err = read(both.as_bytes(), m).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 2, column 17 (Haben): both column 16 (Soll) and this column hold an amount"
    );
    let none = csv.replace(";-950,00;;EUR", ";;;EUR");
    let err = read(none.as_bytes(), m).unwrap_err().to_string();
    assert!(
        err.starts_with("line 2, column 17 (Haben): no amount"),
        "{err}"
    );
}

#[test]
fn account_column_change_starts_a_new_statement() {
    let csv = "Konto;Datum;Betrag\nDE89370400440532013000;01.02.2026;1,00\nDE89370400440532013000;01.02.2026;-2,00\nDE02120300000000202051;02.02.2026;3,50\n";
    let m = r#"{"date_format": "%d.%m.%Y", "currency": "EUR",
        "columns": {"account_iban": "Konto", "booking_date": "Datum"}, "amount": {"signed": "Betrag"}}"#;
    let st = read(csv.as_bytes(), m).unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].end.entry_count, 2);
    assert_eq!(
        st[1].header.account_iban.as_deref(),
        Some("DE02120300000000202051")
    );
    assert_eq!(st[1].entries[0].amount, Money::eur(350));
}

#[test]
fn dates_and_amounts_are_checked_with_their_position() {
    let m = r#"{"date_format": "%d.%m.%Y", "currency": "EUR", "thousands_separator": ".",
        "columns": {"booking_date": 1, "value_date": 2}, "amount": {"signed": 3}, "header": false}"#;
    let err = read(b"30.01.2026;30.02.2026;1,00\n", m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 2: impossible date \"30.02.2026\""
    );
    let lenient = collect_statements(
        CsvReader::new(
            &b"30.01.2026;30.02.2026;1,00\n"[..],
            CsvMapping::from_json(m.as_bytes()).unwrap(),
            ParseOptions {
                lenient_dates: true,
            },
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(lenient[0].entries[0].value_date, None);
    assert_eq!(lenient[0].entries[0].warnings.len(), 1);
    let err = read(b"30.01.2026;;1.23,00\n", m).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 1, column 3: misplaced thousands separator in amount \"1.23,00\""
    );
    let err = read(b"30.01.2026;;1,001\n", m).unwrap_err().to_string();
    assert!(
        err.starts_with("line 1, column 3: amount \"1,001\" has more fraction"),
        "{err}"
    );
    let err = read(b"2026-01-30;;1,00\n", m).unwrap_err().to_string();
    assert!(
        err.starts_with("line 1, column 1: not a date in format"),
        "{err}"
    );
    let err = read(b"30.01.2026;;1,00\n01.02.2026\n", m)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "line 2, column 3: row has only 1 columns");
    let err = read(b"30.01.2026;\"open;1,00\n", m)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "line 1, column 2: quoted cell not closed before the end of the file"
    );
    // JPY has no minor digits; a trailing minus is a debit.
    let jpy = m.replace("\"EUR\"", "\"JPY\"");
    let st = read(b"30.01.2026;;1.500-\n", &jpy).unwrap();
    assert_eq!(st[0].entries[0].amount.minor, -1500);
}

#[test]
fn mapping_errors_name_the_field() {
    let base = r#"{"date_format": "%d.%m.%Y", "columns": {"booking_date": "Datum"}, "amount": {"signed": "Betrag"}}"#;
    let m = CsvMapping::from_json(base.as_bytes()).unwrap();
    let err = CsvReader::new(&b""[..], m, ParseOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "mapping.currency: neither a currency nor a currency column is declared"
    );
    let utf16 = base.replace(
        "{\"date",
        "{\"currency\": \"EUR\", \"encoding\": \"utf-16le\", \"date",
    );
    let m = CsvMapping::from_json(utf16.as_bytes()).unwrap();
    let err = CsvReader::new(&b""[..], m, ParseOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "mapping.encoding: UTF-16LE is not ASCII-compatible"
    );
    let err = CsvMapping::from_json(b"{\"separator\": \";\",\n \"colums\": {}}").unwrap_err();
    assert!(
        err.to_string().starts_with("line 2, mapping column"),
        "{err}"
    );
    let eur = base.replace("{\"date", "{\"currency\": \"EUR\", \"date");
    let err = read(b"Datum;Wert\n", &eur).unwrap_err().to_string();
    assert_eq!(
        err,
        "line 1, header: no column \"Betrag\" for amount.signed in the header"
    );
    // A header-only file is an empty statement, not an error.
    let st = read(b"Datum;Betrag\n", &eur).unwrap();
    assert_eq!((st.len(), st[0].end.entry_count), (1, 0));
}

#[test]
fn entries_are_streamed_one_at_a_time() {
    // An endless input: the reader must yield entries without reading to the end.
    struct Endless(u64, Vec<u8>);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                self.0 += 1;
                self.1 = format!("01.01.2026;{},00\n", self.0).into_bytes();
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    let m = r#"{"date_format": "%d.%m.%Y", "currency": "EUR", "header": false,
        "columns": {"booking_date": 1}, "amount": {"signed": 2}}"#;
    let r = CsvReader::new(
        std::io::BufReader::new(Endless(0, Vec::new())),
        CsvMapping::from_json(m.as_bytes()).unwrap(),
        ParseOptions::default(),
    )
    .unwrap();
    let items: Vec<_> = r.take(1001).collect::<Result<_>>().unwrap();
    assert!(matches!(items[0], StatementItem::Header(_)));
    let StatementItem::Entry(last) = &items[1000] else {
        panic!("entry expected")
    };
    assert_eq!(last.amount, Money::eur(100_000));
}

proptest::proptest! {
    #[test]
    fn amounts_round_trip_german_format(minor in -999_999_999_999i64..999_999_999_999) {
        let abs = minor.unsigned_abs();
        let int = (abs / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push('.');
            }
            grouped.push(c);
        }
        let text = format!("{}{grouped},{:02}", if minor < 0 { "-" } else { "" }, abs % 100);
        proptest::prop_assert_eq!(parse_amount(&text, Currency::EUR, ',', Some('.')), Ok(minor));
    }
}
