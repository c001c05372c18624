//! Reading references and names out of remittance text: RF references (also printed in groups of
//! four), invoice-number candidates robust to spaces, dashes, line breaks, labels and leading
//! zeros, and a name similarity that treats `ä`/`ae`, `ß`/`ss` and legal forms as the same.
//!
//! Pure functions; no allocation beyond the returned values.

use mahnwerk_formats::rf::RfReference;

/// The SEPA limit of unstructured remittance: a text this long may have been cut off.
pub const SEPA_REMITTANCE_LIMIT: usize = 140;

/// Words that label an invoice number in a transfer text (compact, upper case), longest first
/// so that `RECHNUNGSNR` is stripped before `RECHNUNG` and `RE`.
const LABELS: &[&str] = &[
    "RECHNUNGSNUMMER",
    "RECHNUNGSNR",
    "RECHNUNG",
    "INVOICENUMBER",
    "INVOICENO",
    "INVOICE",
    "RGNR",
    "RENR",
    "INVNO",
    "INV",
    "RNR",
    "NR",
    "NO",
    "RG",
    "RE",
];

/// Fewest characters a number key must have to be trusted when found in free text.
pub const MIN_NUMBER_KEY: usize = 4;

/// Canonical key of an invoice number: letters and digits only, upper case, leading zeros
/// dropped (`RE-0042` and `re 42`… differ, `000123` and `123` do not).
pub fn number_key(text: &str) -> String {
    let compact: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    strip_zeros(&compact).to_owned()
}

fn strip_zeros(s: &str) -> &str {
    let t = s.trim_start_matches('0');
    if t.is_empty() && !s.is_empty() {
        "0"
    } else {
        t
    }
}

/// Other keys an invoice number may be written as: without its alphabetic prefix
/// (`RE-2026-0042` → `20260042`), when what is left is long enough to be specific.
pub fn alternative_keys(number: &str) -> Vec<String> {
    let key = number_key(number);
    let digits_start = key.find(|c: char| c.is_ascii_digit());
    match digits_start {
        Some(i) if i > 0 => {
            let rest = strip_zeros(&key[i..]);
            if rest.len() >= 5 && rest.chars().all(|c| c.is_ascii_digit()) {
                vec![rest.to_owned()]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// An alphanumeric run of the text, upper-cased, with its character offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let mut n = 0;
    for (i, c) in text.chars().enumerate() {
        n = i + 1;
        if c.is_alphanumeric() {
            if cur.is_empty() {
                start = i;
            }
            cur.extend(c.to_uppercase());
        } else if !cur.is_empty() {
            out.push(Token {
                text: std::mem::take(&mut cur),
                start,
                end: i,
            });
        }
    }
    if !cur.is_empty() {
        out.push(Token {
            text: cur,
            start,
            end: n,
        });
    }
    out
}

/// A candidate for an invoice number: consecutive tokens `first..=last` joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub first: usize,
    pub last: usize,
    /// Keys to look up: the joined tokens, and the same without a label word in front.
    pub keys: Vec<String>,
    /// The window ends at the end of a text that may have been truncated.
    pub maybe_truncated: bool,
}

/// Longest run of tokens joined into one candidate (`2026 - 00 123`).
const MAX_WINDOW: usize = 4;

/// Every window of up to four consecutive tokens, as candidate keys.
pub fn number_candidates(text: &str) -> Vec<Candidate> {
    let toks = tokens(text);
    let chars: Vec<char> = text.chars().collect();
    let truncated = chars.len() >= SEPA_REMITTANCE_LIMIT;
    let total = chars.len();
    // joinable[k]: token k may continue the number of token k-1.
    let joinable: Vec<bool> = (0..toks.len())
        .map(|k| {
            k > 0
                && joins(
                    &toks[k - 1],
                    &toks[k],
                    &chars[toks[k - 1].end..toks[k].start],
                )
        })
        .collect();
    let mut out = Vec::new();
    for first in 0..toks.len() {
        let mut joined = String::new();
        for (last, tok) in toks.iter().enumerate().skip(first).take(MAX_WINDOW) {
            if last > first && !joinable[last] {
                break;
            }
            joined.push_str(&tok.text);
            if joined.len() > 35 {
                break;
            }
            let mut keys = Vec::with_capacity(2);
            let full = strip_zeros(&joined).to_owned();
            if full.chars().any(|c| c.is_ascii_digit()) {
                keys.push(full);
            }
            if let Some(rest) = strip_label(&joined) {
                let rest = strip_zeros(rest).to_owned();
                if rest.chars().any(|c| c.is_ascii_digit()) && !keys.contains(&rest) {
                    keys.push(rest);
                }
            }
            keys.retain(|k| k.len() >= MIN_NUMBER_KEY);
            if keys.is_empty() {
                continue;
            }
            out.push(Candidate {
                first,
                last,
                keys,
                maybe_truncated: truncated && tok.end >= total,
            });
        }
    }
    out
}

/// Whether two tokens may be parts of one number: separated by at most three spaces, line
/// breaks, dashes, slashes or dots, and not by a dot between digits (dates, amounts) nor by a
/// comma or colon.
fn joins(a: &Token, b: &Token, sep: &[char]) -> bool {
    let digits = |t: &Token| t.text.bytes().all(|c| c.is_ascii_digit());
    sep.len() <= 3
        && sep
            .iter()
            .all(|c| matches!(c, ' ' | '\n' | '\r' | '\t' | '-' | '/' | '_' | '.'))
        && !(sep.contains(&'.') && digits(a) && digits(b))
}

fn strip_label(joined: &str) -> Option<&str> {
    LABELS
        .iter()
        .find_map(|l| joined.strip_prefix(l))
        .filter(|rest| !rest.is_empty())
}

/// Valid RF references in a text, electronic (`RF18539007547034`) or printed in groups
/// (`RF18 5390 0754 7034`), in order of appearance. Words that follow a reference may extend it
/// to another valid reading (1 in 97), so every valid reading of a start is returned, longest
/// first; the caller looks each up.
pub fn find_rf_references(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_ascii_uppercase()
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for i in 0..words.len() {
        let start = &words[i];
        // The reference may follow a label glued with punctuation (`Ref:RF18…`).
        let Some(pos) = start.find("RF") else {
            continue;
        };
        let mut acc = String::new();
        let mut readings = Vec::new();
        for (k, w) in words[i..].iter().enumerate() {
            let part = if k == 0 { &w[pos..] } else { w.as_str() };
            if !part.chars().all(|c| c.is_ascii_alphanumeric()) {
                break;
            }
            acc.push_str(part);
            if acc.len() > 25 {
                break;
            }
            if acc.len() >= 5
                && let Ok(rf) = RfReference::parse(&acc)
            {
                readings.push(rf.as_str().to_owned());
            }
        }
        for rf in readings.into_iter().rev() {
            if !out.contains(&rf) {
                out.push(rf);
            }
        }
    }
    out
}

/// Normalise an RF reference as given in a structured field; `None` when it is not valid.
pub fn normalise_rf(text: &str) -> Option<String> {
    RfReference::parse(text).ok().map(|r| r.as_str().to_owned())
}

/// Legal forms and salutations that say nothing about who a party is.
const NOISE_WORDS: &[&str] = &[
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "ohg",
    "ug",
    "haftungsbeschrankt",
    "co",
    "ek",
    "ev",
    "gbr",
    "se",
    "ltd",
    "limited",
    "inc",
    "llc",
    "plc",
    "sarl",
    "sa",
    "bv",
    "nv",
    "herr",
    "frau",
    "hr",
    "fr",
    "dr",
    "prof",
    "und",
    "and",
    "u",
];

/// Name tokens for comparison: lower case, umlauts folded (`ä`, `ae` → `a`; `ß` → `ss`),
/// accents dropped, legal forms and salutations removed.
pub fn name_tokens(name: &str) -> Vec<String> {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'à' | 'á' | 'â' | 'å' | 'ã' => folded.push('a'),
            'ö' | 'ò' | 'ó' | 'ô' | 'ø' | 'õ' => folded.push('o'),
            'ü' | 'ù' | 'ú' | 'û' => folded.push('u'),
            'é' | 'è' | 'ê' | 'ë' => folded.push('e'),
            'í' | 'ì' | 'î' | 'ï' => folded.push('i'),
            'ç' => folded.push('c'),
            'ñ' => folded.push('n'),
            'ß' => folded.push_str("ss"),
            c if c.is_alphanumeric() => folded.push(c),
            _ => folded.push(' '),
        }
    }
    folded
        .split_whitespace()
        .map(|w| w.replace("ae", "a").replace("oe", "o").replace("ue", "u"))
        .filter(|w| !NOISE_WORDS.contains(&w.as_str()))
        .collect()
}

/// How much of `a`'s tokens `b` covers, in percent: exact tokens count fully, a token one edit
/// away (both at least 4 letters) counts fully, an initial (`E.` for `Erika`) counts half.
fn coverage(a: &[String], b: &[String]) -> u32 {
    if a.is_empty() {
        return 0;
    }
    let mut score = 0u32;
    for t in a {
        let s = b
            .iter()
            .map(|u| {
                if u == t
                    || (t.chars().count() >= 4
                        && u.chars().count() >= 4
                        && edit_distance_at_most_one(t, u))
                {
                    2
                } else if (u.chars().count() == 1 && t.starts_with(u.as_str()))
                    || (t.chars().count() == 1 && u.starts_with(t.as_str()))
                {
                    1
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0);
        score += s;
    }
    score * 50 / u32::try_from(a.len()).unwrap_or(u32::MAX)
}

/// Similarity of two party names, 0–100: the smaller coverage of the two directions, so a
/// shared surname alone (`Max` vs `Erika Mustermann`) is not enough.
pub fn name_similarity(a: &str, b: &str) -> u8 {
    token_similarity(&name_tokens(a), &name_tokens(b))
}

/// [`name_similarity`] of names already split by [`name_tokens`].
pub fn token_similarity(ta: &[String], tb: &[String]) -> u8 {
    let s = coverage(ta, tb).min(coverage(tb, ta));
    u8::try_from(s.min(100)).unwrap_or(100)
}

/// Levenshtein distance ≤ 1 (one substitution, insertion or deletion), or one swap of
/// neighbours.
fn edit_distance_at_most_one(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return true;
    }
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if la == lb {
        if a[prefix + 1..] == b[prefix + 1..] {
            return true;
        }
        // Transposition of neighbours.
        prefix + 1 < la
            && a[prefix] == b[prefix + 1]
            && a[prefix + 1] == b[prefix]
            && a[prefix + 2..] == b[prefix + 2..]
    } else if la > lb {
        a[prefix + 1..] == b[prefix..]
    } else {
        a[prefix..] == b[prefix + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_keys(text: &str) -> Vec<String> {
        number_candidates(text)
            .into_iter()
            .flat_map(|c| c.keys)
            .collect()
    }

    #[test]
    fn invoice_numbers_survive_spaces_dashes_breaks_labels_and_zeros() {
        let key = number_key("RE-2026-00123");
        for text in [
            "Rechnung RE-2026-00123 vielen Dank",
            "RE 2026 00123",
            "re-2026-\n00123",
            "RE2026-00 123",
        ] {
            assert!(
                all_keys(text).contains(&key),
                "{text}: {:?}",
                all_keys(text)
            );
        }
        let plain = number_key("0004711");
        assert_eq!(plain, "4711");
        for text in [
            "Rg.-Nr. 4711",
            "Rechnung 0004711",
            "Invoice 4711",
            "Inv.4711",
            "RE4711",
        ] {
            assert!(
                all_keys(text).contains(&plain),
                "{text}: {:?}",
                all_keys(text)
            );
        }
        assert_eq!(alternative_keys("RE-2026-00123"), ["202600123"]);
        assert!(alternative_keys("4711").is_empty());
        assert!(alternative_keys("RE-12").is_empty());
    }

    #[test]
    fn dates_and_amounts_are_not_glued_into_numbers() {
        let keys = all_keys("Rechnung 4711 vom 03.11.2026, Betrag 123,45 EUR");
        assert!(keys.contains(&"4711".to_owned()));
        for bad in ["12345", "3112026", "47110311"] {
            assert!(!keys.iter().any(|k| k == bad), "{bad} in {keys:?}");
        }
    }

    #[test]
    fn short_numbers_are_not_candidates() {
        let keys = all_keys("Rechnung 123 vom 3.");
        assert!(!keys.iter().any(|k| k == "123" || k == "3"), "{keys:?}");
    }

    #[test]
    fn rf_found_in_text_printed_or_electronic() {
        let rf = "RF18539007547034";
        assert_eq!(
            find_rf_references("Zahlung RF18 5390 0754 7034 danke"),
            [rf]
        );
        assert!(find_rf_references("RF47 F396 5L mxbibcw").contains(&"RF47F3965L".to_owned()));
        assert_eq!(find_rf_references("Ref:RF18539007547034."), [rf]);
        assert_eq!(find_rf_references("rf18 5390 0754 7034"), [rf]);
        assert!(find_rf_references("RF19 5390 0754 7034").is_empty());
        assert!(find_rf_references("RF18 5390 0754").is_empty(), "truncated");
    }

    #[test]
    fn names_with_umlaut_spellings_and_legal_forms_match() {
        assert_eq!(name_similarity("Jürgen Müller", "Juergen Mueller"), 100);
        assert_eq!(name_similarity("Jürgen Müller", "JUERGEN MULLER"), 100);
        assert_eq!(
            name_similarity("Straßenbau Weiß GmbH", "Strassenbau Weiss"),
            100
        );
        assert_eq!(name_similarity("Müller, Jürgen", "Jurgen Muller"), 100);
        assert_eq!(name_similarity("Erika Mustermann", "Erika Musterman"), 100);
        assert_eq!(name_similarity("Erika Mustermann", "E. Mustermann"), 75);
        assert!(name_similarity("Erika Mustermann", "Max Mustermann") <= 50);
        assert_eq!(name_similarity("Erika Mustermann", "Hans Schmidt"), 0);
        assert_eq!(name_similarity("", "Hans"), 0);
    }

    #[test]
    fn edit_distance_one() {
        assert!(edit_distance_at_most_one("schmidt", "schmitt"));
        assert!(edit_distance_at_most_one("schmidt", "schmid"));
        assert!(edit_distance_at_most_one("schmidt", "scmhidt"));
        assert!(!edit_distance_at_most_one("schmidt", "schmuck"));
    }

    proptest! {
        #[test]
        fn any_rf_in_print_format_is_found(body in "[A-Z0-9]{4,21}", pre in "[a-z ]{0,20}", post in "[a-z ]{0,20}") {
            let rf = RfReference::create(&body).unwrap();
            let text = format!("{pre} {} {post}", rf.to_print_format());
            let found = find_rf_references(&text);
            prop_assert!(found.contains(&rf.as_str().to_owned()), "{text}: {found:?}");
        }

        #[test]
        fn any_number_with_separators_is_a_candidate(digits in "[1-9][0-9]{4,9}", cut in 1usize..4, sep in "[ \\-/\n]{1,2}") {
            let cut = cut.min(digits.len() - 1);
            let text = format!("Rechnung {}{sep}{}", &digits[..cut], &digits[cut..]);
            prop_assert!(all_keys(&text).contains(&number_key(&digits)));
        }
    }
}
