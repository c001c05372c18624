//! Payment terms (BT-20) as people write them: the net term, cash-discount (Skonto) terms and
//! the § 286 Abs. 3 BGB notice.
//!
//! The text is cut into clauses at line breaks and at `,`/`;` followed by a space (so "2,0%"
//! stays whole). A clause that mentions Skonto/discount is a discount term when it has a
//! percentage and a period ("innerhalb 10 Tagen", "bis 15.03."); any other clause with a period
//! is a net term; clauses about penalties or default interest are neither. The due date is the
//! **latest** net term, so "2 % Skonto innerhalb 10 Tagen, 30 Tage netto" is due after 30 days and
//! a net date "bis 31.03." wins over an earlier discount date. A date without a year
//! ("31.03.") is the first such day on or after the issue date.

use super::{CashDiscount, DueDateSource};
use chrono::{Datelike, Days, NaiveDate};
use mahnwerk_domain::{Currency, Money};

/// What the payment terms say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Terms {
    /// The net term: its date and whether it was a date or a number of days.
    pub net: Option<(NaiveDate, DueDateSource)>,
    /// Discount terms, earliest first.
    pub discounts: Vec<CashDiscount>,
    /// The § 286 Abs. 3 BGB notice is part of the terms.
    pub default_notice: bool,
}

/// Payment terms texts with each line trimmed and empty lines dropped (indentation in the XML
/// is not part of the text).
pub(super) fn clean_lines(texts: &[&str]) -> Option<String> {
    let lines: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The due date: BT-9 when given, else the net term of the payment terms.
pub(super) fn due(
    explicit: Option<NaiveDate>,
    terms: &Terms,
) -> (Option<NaiveDate>, Option<DueDateSource>) {
    match (explicit, terms.net) {
        (Some(d), _) => (Some(d), Some(DueDateSource::DueDate)),
        (None, Some((d, s))) => (Some(d), Some(s)),
        (None, None) => (None, None),
    }
}

/// Read payment terms text (see the module docs).
pub fn read(text: Option<&str>, issue: NaiveDate, currency: Currency) -> Terms {
    let Some(text) = text else {
        return Terms::default();
    };
    let (discounts, zero_days) = skonto(text, currency);
    let mut out = Terms {
        discounts,
        default_notice: has_default_notice(text),
        net: zero_days
            .and_then(|n| issue.checked_add_days(Days::new(u64::from(n))))
            .map(|d| (d, DueDateSource::PaymentTermsDays)),
    };
    for clause in clauses(text) {
        let lower = clause.to_lowercase();
        if ["verzug", "penalty", "zinsen", "interest", "mahn"]
            .iter()
            .any(|w| lower.contains(w))
        {
            continue;
        }
        let Some(date) = period(clause, issue) else {
            continue;
        };
        let is_discount = ["skonto", "discount", "escompte", "abzug von"]
            .iter()
            .any(|w| lower.contains(w));
        if is_discount {
            if let Some(percent) = percent_in(clause) {
                let days = u32::try_from((date.0 - issue).num_days()).unwrap_or(0);
                out.discounts.push(CashDiscount {
                    days,
                    percent,
                    base_amount: None,
                });
            }
            continue;
        }
        if out.net.is_none_or(|(d, _)| date.0 > d) {
            out.net = Some(date);
        }
    }
    sort_discounts(&mut out.discounts);
    out
}

/// Discounts ordered by period, one per (days, percent): the one with a base amount is kept.
pub(super) fn sort_discounts(d: &mut Vec<CashDiscount>) {
    d.sort_by(|a, b| {
        (a.days, &a.percent, a.base_amount.is_none()).cmp(&(
            b.days,
            &b.percent,
            b.base_amount.is_none(),
        ))
    });
    d.dedup_by(|a, b| a.days == b.days && a.percent == b.percent);
}

/// The terms or notes point out that default starts 30 days after due date and receipt
/// (§ 286 Abs. 3 BGB), or name the paragraph.
pub fn has_default_notice(text: &str) -> bool {
    let t = text.to_lowercase().replace(['\u{a0}', '\n'], " ");
    let paragraph = t.contains("286 abs. 3") || t.contains("286 absatz 3") || t.contains("286(3)");
    let spelled = t.contains("verzug") && (t.contains("30 tage") || t.contains("30 tagen"));
    let english = t.contains("default") && t.contains("30 days") && t.contains("receipt");
    paragraph || spelled || english
}

fn clauses(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut start = 0;
        let b = line.as_bytes();
        for i in 0..b.len() {
            if (b[i] == b',' || b[i] == b';') && b.get(i + 1).is_some_and(u8::is_ascii_whitespace) {
                out.push(&line[start..i]);
                start = i + 1;
            }
        }
        out.push(&line[start..]);
    }
    out.into_iter()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The end of the period a clause names: a date (`31.03.2026`, `31.03.`) or "N Tage/days".
fn period(clause: &str, issue: NaiveDate) -> Option<(NaiveDate, DueDateSource)> {
    let words: Vec<&str> = clause
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    for w in &words {
        if let Some(d) = german_date(w, issue) {
            return Some((d, DueDateSource::PaymentTermsDate));
        }
    }
    for pair in words.windows(2) {
        let unit = pair[1].to_lowercase();
        if (unit.starts_with("tag") || unit.starts_with("day") || unit.starts_with("jours"))
            && let Ok(n) = pair[0].parse::<u64>()
            && n <= 365
        {
            return issue
                .checked_add_days(Days::new(n))
                .map(|d| (d, DueDateSource::PaymentTermsDays));
        }
    }
    None
}

/// `dd.mm.yyyy`, `dd.mm.yy` or `dd.mm.` (the next such day on or after `issue`).
fn german_date(word: &str, issue: NaiveDate) -> Option<NaiveDate> {
    let w = word.trim_end_matches([',', ';', ')', ':']);
    let parts: Vec<&str> = w.split('.').collect();
    let num = |s: &str, len: std::ops::RangeInclusive<usize>| -> Option<u32> {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (day, month, year) = match parts.as_slice() {
        [d, m, y] if !y.is_empty() => {
            let y = num(y, 2..=4)?;
            let y = if y < 100 { 2000 + y } else { y };
            (num(d, 1..=2)?, num(m, 1..=2)?, Some(i32::try_from(y).ok()?))
        }
        // "31.03." only with its final dot: "1.5" is a number, not the 1st of May.
        [d, m, ""] => (num(d, 1..=2)?, num(m, 1..=2)?, None),
        _ => return None,
    };
    match year {
        Some(y) => NaiveDate::from_ymd_opt(y, month, day),
        None => {
            let this = NaiveDate::from_ymd_opt(issue.year(), month, day);
            match this {
                Some(d) if d >= issue => Some(d),
                _ => NaiveDate::from_ymd_opt(issue.year() + 1, month, day),
            }
        }
    }
}

/// "2 %", "2,0%", "1.5 Prozent" → the normalised percentage.
fn percent_in(clause: &str) -> Option<String> {
    let words: Vec<&str> = clause.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if let Some(n) = w.strip_suffix('%')
            && !n.is_empty()
        {
            return normalise_percent(n);
        }
        let next = words.get(i + 1).map(|n| n.to_lowercase());
        if next
            .as_deref()
            .is_some_and(|n| n.starts_with('%') || n.starts_with("prozent") || n == "percent")
            && let Some(p) = normalise_percent(w)
        {
            return Some(p);
        }
    }
    None
}

/// A percentage as a decimal with at least two places (`2` → `2.00`, `2,5` → `2.50`); `None`
/// unless it is a number between 0 and 100 with at most four places.
pub(super) fn normalise_percent(s: &str) -> Option<String> {
    let s = s.trim().replace(',', ".");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if int.is_empty()
        || int.len() > 3
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 4
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = if frac.len() < 2 {
        format!("{frac:0<2}")
    } else {
        frac.to_owned()
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let p = format!("{int}.{frac}");
    let hundredths = percent_scaled(&p)?;
    (hundredths.0 > 0 && hundredths.0 < 100 * 10i128.pow(hundredths.1)).then_some(p)
}

/// A normalised percentage as (mantissa, decimal places).
fn percent_scaled(p: &str) -> Option<(i128, u32)> {
    let (int, frac) = p.split_once('.').unwrap_or((p, ""));
    let places = u32::try_from(frac.len()).ok()?;
    let m: i128 = format!("{int}{frac}").parse().ok()?;
    Some((m, places))
}

/// The discount of `percent` on `base` minor units, rounded half up to a minor unit.
pub fn discount_amount(base: i64, percent: &str) -> Option<i64> {
    let (m, places) = percent_scaled(percent)?;
    let den = 100 * 10i128.pow(places);
    let num = i128::from(base) * m;
    let rounded = (2 * num + den) / (2 * den);
    i64::try_from(rounded).ok()
}

/// `#SKONTO#TAGE=7#PROZENT=2.00#[BASISBETRAG=100.00#]` lines, and the latest line with
/// `PROZENT=0` (a period without discount: the net term) as days.
fn skonto(terms: &str, currency: Currency) -> (Vec<CashDiscount>, Option<u32>) {
    let mut out = Vec::new();
    let mut net: Option<u32> = None;
    for line in terms.lines() {
        let Some(rest) = line.trim().strip_prefix("#SKONTO#") else {
            continue;
        };
        let mut days = None;
        let mut percent = None;
        let mut base = None;
        let mut zero = false;
        for kv in rest.split('#') {
            match kv.split_once('=') {
                Some(("TAGE", v)) => days = v.trim().parse::<u32>().ok(),
                Some(("PROZENT", v)) => {
                    let v = v.trim();
                    if !v.is_empty() && v.bytes().all(|b| b == b'0' || b == b'.') {
                        zero = true;
                    }
                    percent = normalise_percent(v);
                }
                Some(("BASISBETRAG", v)) => {
                    base = Money::parse_decimal(v, currency, false)
                        .ok()
                        .map(|m| m.minor)
                }
                _ => {}
            }
        }
        match (days, percent) {
            (Some(days), Some(percent)) => out.push(CashDiscount {
                days,
                percent,
                base_amount: base,
            }),
            (Some(days), None) if zero => net = net.max(Some(days)),
            _ => {}
        }
    }
    (out, net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn skonto_lines_and_due_dates_from_terms() {
        let (d, net) = skonto(
            "#SKONTO#TAGE=7#PROZENT=2.00#\n#SKONTO#TAGE=14#PROZENT=1.00#BASISBETRAG=100.50#\n#SKONTO#TAGE=30#PROZENT=0.00#\n",
            Currency::EUR,
        );
        assert_eq!((d.len(), net), (2, Some(30)), "a 0 % line is the net term");
        assert_eq!(
            (d[1].days, d[1].percent.as_str(), d[1].base_amount),
            (14, "1.00", Some(10050))
        );
        let issue = date(2026, 3, 1);
        let eur = Currency::EUR;
        assert_eq!(
            read(Some("Zahlbar innerhalb 14 Tagen nach Erhalt"), issue, eur).net,
            Some((date(2026, 3, 15), DueDateSource::PaymentTermsDays))
        );
        assert_eq!(
            read(Some("Bis zum 14.08.2016 ohne Abzug"), issue, eur).net,
            Some((date(2016, 8, 14), DueDateSource::PaymentTermsDate))
        );
        assert_eq!(
            read(Some("#SKONTO#TAGE=7#PROZENT=2.00#"), issue, eur).net,
            None
        );
    }

    /// Regression (issue 15): the first "N Tage" was the due date, so the 10-day discount period
    /// became the due date and the Skonto was lost.
    #[test]
    fn skonto_clause_is_a_discount_and_the_net_term_is_the_due_date() {
        let issue = date(2026, 3, 1);
        let t = read(
            Some("2 % Skonto innerhalb 10 Tagen, 30 Tage netto"),
            issue,
            Currency::EUR,
        );
        assert_eq!(
            t.net,
            Some((date(2026, 3, 31), DueDateSource::PaymentTermsDays))
        );
        assert_eq!(
            t.discounts,
            [CashDiscount {
                days: 10,
                percent: "2.00".into(),
                base_amount: None
            }]
        );
        let t = read(
            Some("Bei Zahlung innerhalb 14 Tagen gewähren wir 2,0% Skonto."),
            issue,
            Currency::EUR,
        );
        assert_eq!((t.net, t.discounts[0].days), (None, 14));
        assert_eq!(t.discounts[0].percent, "2.00");
    }

    /// Regression (issue 15): "bis 31.03." (no year) was not read, and an earlier discount date
    /// was taken as the due date.
    #[test]
    fn a_net_date_without_year_wins_over_an_earlier_discount_date() {
        let issue = date(2026, 3, 2);
        let t = read(
            Some("3 % Skonto bis 12.03.; zahlbar ohne Abzug bis 31.03."),
            issue,
            Currency::EUR,
        );
        assert_eq!(
            t.net,
            Some((date(2026, 3, 31), DueDateSource::PaymentTermsDate))
        );
        assert_eq!(
            (t.discounts[0].days, t.discounts[0].percent.as_str()),
            (10, "3.00")
        );
        // A day before the issue date is next year's.
        let t = read(
            Some("Zahlbar bis 15.01."),
            date(2026, 12, 20),
            Currency::EUR,
        );
        assert_eq!(t.net.map(|n| n.0), Some(date(2027, 1, 15)));
        // Penalties are not terms.
        let t = read(
            Some("2 % discount if paid within 2 days\nPenalty percentage 10% from due date"),
            issue,
            Currency::EUR,
        );
        assert_eq!((t.net, t.discounts.len()), (None, 1));
    }

    #[test]
    fn the_default_notice_is_recognised() {
        assert!(has_default_notice(
            "Sie kommen spätestens 30 Tage nach Fälligkeit und Zugang dieser Rechnung in Verzug."
        ));
        assert!(has_default_notice("Hinweis nach § 286 Abs. 3 BGB"));
        assert!(!has_default_notice("Zahlbar innerhalb 30 Tagen"));
    }

    #[test]
    fn percentages_and_discount_amounts() {
        assert_eq!(normalise_percent("2").as_deref(), Some("2.00"));
        assert_eq!(normalise_percent("2,5").as_deref(), Some("2.50"));
        assert_eq!(normalise_percent("1.125").as_deref(), Some("1.125"));
        assert_eq!(normalise_percent("0"), None);
        assert_eq!(normalise_percent("100"), None);
        assert_eq!(normalise_percent("x"), None);
        assert_eq!(discount_amount(259420, "2.00"), Some(5188));
        assert_eq!(discount_amount(25, "2.00"), Some(1));
        assert_eq!(discount_amount(24, "2.00"), Some(0));
        assert_eq!(discount_amount(10000, "1.125"), Some(113));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The discount is the exact percentage rounded half up: within half a minor unit.
        #[test]
        fn discount_is_within_half_a_minor_unit(base in 0i64..10_000_000_000, hundredths in 1u32..9999) {
            let p = format!("{}.{:02}", hundredths / 100, hundredths % 100);
            let d = discount_amount(base, &p).unwrap();
            let exact = i128::from(base) * i128::from(hundredths); // × 1/10_000
            let diff = (i128::from(d) * 10_000 - exact).abs();
            prop_assert!(diff * 2 <= 10_000, "{base} {p} {d}");
        }
    }
}
