//! Locale formatting for letters: amounts, dates, rates, country names, fixed labels.
//!
//! Amounts are formatted from integer minor units (never through a float): German
//! `1.234,56 €`, English `€1,234.56`; other currencies carry their ISO code
//! (`1.234,56 USD`, `USD 1,234.56`). Dates: German `16.03.2026` (DIN 5008 numeric form),
//! English `16 March 2026`.

use crate::model::Language;
use chrono::{Datelike, NaiveDate};
use mahnwerk_domain::{Currency, Money};
use rust_decimal::Decimal;

/// Format an amount for a letter in `lang`.
pub fn money(m: Money, lang: Language) -> String {
    let digits = usize::from(m.currency.minor_digits());
    let plain = m.to_decimal_string();
    let (sign, plain) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest.to_owned()),
        None => ("", plain),
    };
    let (int_part, frac) = match plain.split_once('.') {
        Some((i, f)) => (i.to_owned(), f.to_owned()),
        None => (plain.clone(), String::new()),
    };
    let (group, decimal) = match lang {
        Language::De => ('.', ','),
        Language::En => (',', '.'),
    };
    let grouped = group_thousands(&int_part, group);
    let number = if digits == 0 {
        grouped
    } else {
        format!("{grouped}{decimal}{frac}")
    };
    let eur = m.currency == Currency::EUR;
    match (lang, eur) {
        (Language::De, true) => format!("{sign}{number}\u{a0}€"),
        (Language::De, false) => format!("{sign}{number}\u{a0}{}", m.currency),
        (Language::En, true) => format!("{sign}€{number}"),
        (Language::En, false) => format!("{sign}{}\u{a0}{number}", m.currency),
    }
}

fn group_thousands(digits: &str, sep: char) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Format a date for a letter in `lang`.
pub fn date(d: NaiveDate, lang: Language) -> String {
    match lang {
        Language::De => d.format("%d.%m.%Y").to_string(),
        Language::En => {
            let month = MONTHS_EN
                .get(usize::try_from(d.month0()).unwrap_or(0))
                .copied()
                .unwrap_or("");
            format!("{} {month} {}", d.day(), d.year())
        }
    }
}

/// Format an interest rate in percent per year: `10,27 %` / `10.27%`.
pub fn rate(r: Decimal, lang: Language) -> String {
    let s = r.normalize().to_string();
    match lang {
        Language::De => format!("{}\u{a0}%", s.replace('.', ",")),
        Language::En => format!("{s}%"),
    }
}

/// Country name for the last address line (DIN 5008: in capitals, in the sender's language).
/// Unknown codes are printed as given.
pub fn country_name(code: &str, lang: Language) -> String {
    const NAMES: &[(&str, &str, &str)] = &[
        ("AT", "Österreich", "Austria"),
        ("BE", "Belgien", "Belgium"),
        ("CH", "Schweiz", "Switzerland"),
        ("CZ", "Tschechien", "Czechia"),
        ("DE", "Deutschland", "Germany"),
        ("DK", "Dänemark", "Denmark"),
        ("ES", "Spanien", "Spain"),
        ("FR", "Frankreich", "France"),
        ("GB", "Vereinigtes Königreich", "United Kingdom"),
        ("IT", "Italien", "Italy"),
        ("LI", "Liechtenstein", "Liechtenstein"),
        ("LU", "Luxemburg", "Luxembourg"),
        ("NL", "Niederlande", "Netherlands"),
        ("PL", "Polen", "Poland"),
        ("SE", "Schweden", "Sweden"),
        ("US", "Vereinigte Staaten", "United States"),
    ];
    let up = code.to_ascii_uppercase();
    NAMES
        .iter()
        .find(|(c, _, _)| *c == up)
        .map(|(_, de, en)| match lang {
            Language::De => (*de).to_owned(),
            Language::En => (*en).to_owned(),
        })
        .unwrap_or(up)
}

/// Fixed labels of the layout (information block, claim table, payment block) per language.
/// Wording that tenants edit lives in the templates; these are the form's field names.
pub struct Labels {
    pub your_sign: &'static str,
    pub our_sign: &'static str,
    pub customer_number: &'static str,
    pub case_reference: &'static str,
    pub contact_name: &'static str,
    pub date: &'static str,
    pub position: &'static str,
    pub period: &'static str,
    pub amount: &'static str,
    pub total: &'static str,
    pub invoice: &'static str,
    pub invoice_of: &'static str,
    pub due: &'static str,
    pub fee: &'static str,
    pub interest: &'static str,
    pub interest_on: &'static str,
    pub days: &'static str,
    pub per_year: &'static str,
    pub lump_sum: &'static str,
    pub payment_received: &'static str,
    pub payment_heading: &'static str,
    pub payee: &'static str,
    pub iban: &'static str,
    pub bic: &'static str,
    pub reference: &'static str,
    pub pay_until: &'static str,
    pub qr_caption: &'static str,
    pub page: &'static str,
    pub of: &'static str,
    pub bank: &'static str,
    pub instalment: &'static str,
    pub instalments_heading: &'static str,
}

pub const DE: Labels = Labels {
    your_sign: "Ihr Zeichen",
    our_sign: "Unser Zeichen",
    customer_number: "Kundennummer",
    case_reference: "Vorgang",
    contact_name: "Ansprechpartner",
    date: "Datum",
    position: "Position",
    period: "Datum / Zeitraum",
    amount: "Betrag",
    total: "Gesamtbetrag",
    invoice: "Rechnung",
    invoice_of: "vom",
    due: "fällig am",
    fee: "Mahngebühr",
    interest: "Verzugszinsen",
    interest_on: "auf",
    days: "Tage",
    per_year: "p. a.",
    lump_sum: "Verzugspauschale nach § 288 Abs. 5 BGB",
    payment_received: "Zahlungseingang",
    payment_heading: "Zahlungsinformationen",
    payee: "Empfänger",
    iban: "IBAN",
    bic: "BIC",
    reference: "Verwendungszweck",
    pay_until: "Zahlbar bis",
    qr_caption: "Bezahlen mit GiroCode: QR-Code mit der Banking-App scannen",
    page: "Seite",
    of: "von",
    bank: "Bank",
    instalment: "Rate",
    instalments_heading: "Vereinbarte Raten",
};

pub const EN: Labels = Labels {
    your_sign: "Your reference",
    our_sign: "Our reference",
    customer_number: "Customer no.",
    case_reference: "Case",
    contact_name: "Contact",
    date: "Date",
    position: "Item",
    period: "Date / period",
    amount: "Amount",
    total: "Total due",
    invoice: "Invoice",
    invoice_of: "of",
    due: "due",
    fee: "Dunning fee",
    interest: "Default interest",
    interest_on: "on",
    days: "days",
    per_year: "p.a.",
    lump_sum: "Late payment compensation under § 288(5) BGB",
    payment_received: "Payment received",
    payment_heading: "Payment details",
    payee: "Payee",
    iban: "IBAN",
    bic: "BIC",
    reference: "Reference",
    pay_until: "Pay by",
    qr_caption: "Pay with GiroCode: scan the QR code with your banking app",
    page: "Page",
    of: "of",
    bank: "Bank",
    instalment: "Instalment",
    instalments_heading: "Agreed instalments",
};

/// The labels of `lang`.
pub fn labels(lang: Language) -> &'static Labels {
    match lang {
        Language::De => &DE,
        Language::En => &EN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_from_minor_units() {
        assert_eq!(money(Money::eur(171_030), Language::De), "1.710,30\u{a0}€");
        assert_eq!(money(Money::eur(171_030), Language::En), "€1,710.30");
        assert_eq!(money(Money::eur(5), Language::De), "0,05\u{a0}€");
        assert_eq!(
            money(Money::eur(-123_456_789), Language::De),
            "-1.234.567,89\u{a0}€"
        );
        let jpy = Money::new(1_234_567, "JPY".parse().expect("jpy"));
        assert_eq!(money(jpy, Language::En), "JPY\u{a0}1,234,567");
    }

    #[test]
    fn dates_and_rates() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 6).expect("date");
        assert_eq!(date(d, Language::De), "06.03.2026");
        assert_eq!(date(d, Language::En), "6 March 2026");
        assert_eq!(rate(Decimal::new(1027, 2), Language::De), "10,27\u{a0}%");
        assert_eq!(rate(Decimal::new(9000, 3), Language::En), "9%");
    }
}
