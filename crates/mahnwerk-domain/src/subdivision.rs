//! Country subdivisions of a postal address (ISO 3166-2, e.g. `DE-BY`): for a German debtor the
//! federal state, whose public holidays move its payment dates (§ 193 BGB at the place of
//! performance, § 269 Abs. 1 BGB). The German code list is complete; for other countries any
//! well-formed code of that country is accepted (`AT-9`, `FR-IDF`).

/// The sixteen German federal states: ISO 3166-2 code and the names an e-invoice may give
/// (German name, English name, common abbreviations), compared case- and accent-insensitively.
const DE_STATES: &[(&str, &[&str])] = &[
    ("DE-BW", &["Baden-Württemberg", "Baden-Wuerttemberg", "BW"]),
    ("DE-BY", &["Bayern", "Bavaria", "Freistaat Bayern", "BY"]),
    ("DE-BE", &["Berlin", "BE"]),
    ("DE-BB", &["Brandenburg", "BB"]),
    ("DE-HB", &["Bremen", "Freie Hansestadt Bremen", "HB"]),
    ("DE-HH", &["Hamburg", "Freie und Hansestadt Hamburg", "HH"]),
    ("DE-HE", &["Hessen", "Hesse", "HE"]),
    (
        "DE-MV",
        &[
            "Mecklenburg-Vorpommern",
            "Mecklenburg-Western Pomerania",
            "MV",
        ],
    ),
    ("DE-NI", &["Niedersachsen", "Lower Saxony", "NI", "NDS"]),
    (
        "DE-NW",
        &["Nordrhein-Westfalen", "North Rhine-Westphalia", "NRW", "NW"],
    ),
    (
        "DE-RP",
        &["Rheinland-Pfalz", "Rhineland-Palatinate", "RP", "RLP"],
    ),
    ("DE-SL", &["Saarland", "SL"]),
    ("DE-SN", &["Sachsen", "Saxony", "Freistaat Sachsen", "SN"]),
    ("DE-ST", &["Sachsen-Anhalt", "Saxony-Anhalt", "ST"]),
    ("DE-SH", &["Schleswig-Holstein", "SH"]),
    (
        "DE-TH",
        &[
            "Thüringen",
            "Thueringen",
            "Thuringia",
            "Freistaat Thüringen",
            "TH",
        ],
    ),
];

/// Checks `region` as the ISO 3166-2 subdivision of an address in `country`: `CC-X`, `CC-XX` or
/// `CC-XXX` (capitals and digits) with `CC` the address's country; for `DE` one of the sixteen
/// federal states. The error says what is expected.
pub fn check_region(country: &str, region: &str) -> Result<(), String> {
    let Some((cc, sub)) = region.split_once('-') else {
        return Err(format!(
            "must be an ISO 3166-2 subdivision code such as DE-BY (country, hyphen, subdivision), got {region:?}"
        ));
    };
    let well_formed = cc.len() == 2
        && (1..=3).contains(&sub.len())
        && sub
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "must be an ISO 3166-2 subdivision code such as DE-BY (capitals), got {region:?}"
        ));
    }
    if cc != country {
        return Err(format!(
            "{region:?} is a subdivision of {cc}, but the address is in {country}"
        ));
    }
    if cc == "DE" && !DE_STATES.iter().any(|(code, _)| *code == region) {
        return Err(format!(
            "{region:?} is not a German federal state; use one of DE-BW DE-BY DE-BE DE-BB DE-HB DE-HH DE-HE DE-MV DE-NI DE-NW DE-RP DE-SL DE-SN DE-ST DE-SH DE-TH"
        ));
    }
    Ok(())
}

fn fold(s: &str) -> String {
    s.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ä' => 'a',
            'ö' => 'o',
            'ü' => 'u',
            '–' | '—' | ' ' | '_' => '-',
            c => c,
        })
        .collect::<String>()
        .replace("ue", "u")
        .replace("ae", "a")
        .replace("oe", "o")
}

/// The ISO 3166-2 code an e-invoice's free-text subdivision (UBL `cbc:CountrySubentity`, CII
/// `ram:CountrySubDivisionName`, BT-54) stands for, when that is unambiguous: a code as such
/// (`DE-BY`, or `BY` for a German address) or a German state's name (`Bayern`, `Bavaria`).
/// `None` for anything else (a county, a typo): the address then has no region.
pub fn region_from_text(country: &str, text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let upper = t.to_ascii_uppercase();
    if check_region(country, &upper).is_ok() {
        return Some(upper);
    }
    if country != "DE" {
        return None;
    }
    let wanted = fold(t);
    DE_STATES
        .iter()
        .find(|(_, names)| names.iter().any(|n| fold(n) == wanted))
        .map(|(code, _)| (*code).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_codes_are_the_sixteen_states_and_others_need_their_country() {
        assert_eq!(DE_STATES.len(), 16);
        assert!(check_region("DE", "DE-BY").is_ok());
        assert!(check_region("DE", "DE-HH").is_ok());
        assert!(
            check_region("DE", "DE-XX")
                .unwrap_err()
                .contains("not a German")
        );
        assert!(check_region("DE", "de-by").is_err());
        assert!(check_region("DE", "BY").is_err());
        assert!(
            check_region("AT", "DE-BY")
                .unwrap_err()
                .contains("address is in AT")
        );
        assert!(check_region("AT", "AT-9").is_ok());
        assert!(check_region("FR", "FR-IDF").is_ok());
        assert!(check_region("FR", "FR-IDFX").is_err());
    }

    #[test]
    fn e_invoice_subdivision_names_map_to_codes_when_unambiguous() {
        assert_eq!(region_from_text("DE", "Bayern").as_deref(), Some("DE-BY"));
        assert_eq!(
            region_from_text("DE", " bavaria ").as_deref(),
            Some("DE-BY")
        );
        assert_eq!(region_from_text("DE", "DE-HH").as_deref(), Some("DE-HH"));
        assert_eq!(region_from_text("DE", "by").as_deref(), Some("DE-BY"));
        assert_eq!(
            region_from_text("DE", "Thüringen").as_deref(),
            Some("DE-TH")
        );
        assert_eq!(
            region_from_text("DE", "Thueringen").as_deref(),
            Some("DE-TH")
        );
        assert_eq!(
            region_from_text("DE", "Baden-Württemberg").as_deref(),
            Some("DE-BW")
        );
        assert_eq!(region_from_text("DE", "NRW").as_deref(), Some("DE-NW"));
        assert_eq!(region_from_text("DE", "Oberbayern"), None);
        assert_eq!(region_from_text("DE", ""), None);
        assert_eq!(region_from_text("AT", "Wien"), None);
        assert_eq!(region_from_text("AT", "AT-9").as_deref(), Some("AT-9"));
    }
}
