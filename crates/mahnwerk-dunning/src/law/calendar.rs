//! Public holidays per German federal state, business days and § 193 BGB deadlines.
//!
//! Holidays are computed from fixed dates and from Easter Sunday (Gregorian computus, the
//! "anonymous" Meeus/Jones/Butcher algorithm), so no table has to be maintained. Covered: the
//! state-wide statutory holidays of all 16 states as in force since 2023 (Frauentag in Berlin since
//! 2019 and Mecklenburg-Vorpommern since 2023, Weltkindertag in Thuringia since 2019, Reformationstag
//! in the northern states since 2018) and Berlin's one-off holidays of 8 May 2020 and 8 May 2025.
//! Not covered, on purpose: holidays of single municipalities or mostly-Catholic communities only
//! (Mariä Himmelfahrt in parts of Bavaria, Fronleichnam in parts of Saxony and Thuringia, the
//! Augsburger Friedensfest). A deadline that could end on such a day moves too little, never too
//! much; the tenant picks the state of its place of performance.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A German federal state (Bundesland), by its two-letter code (ISO 3166-2:DE without `DE-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FederalState {
    BW,
    BY,
    BE,
    BB,
    HB,
    HH,
    HE,
    MV,
    NI,
    NW,
    RP,
    SL,
    SN,
    ST,
    SH,
    TH,
}

impl FederalState {
    pub const ALL: [FederalState; 16] = [
        FederalState::BW,
        FederalState::BY,
        FederalState::BE,
        FederalState::BB,
        FederalState::HB,
        FederalState::HH,
        FederalState::HE,
        FederalState::MV,
        FederalState::NI,
        FederalState::NW,
        FederalState::RP,
        FederalState::SL,
        FederalState::SN,
        FederalState::ST,
        FederalState::SH,
        FederalState::TH,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FederalState::BW => "BW",
            FederalState::BY => "BY",
            FederalState::BE => "BE",
            FederalState::BB => "BB",
            FederalState::HB => "HB",
            FederalState::HH => "HH",
            FederalState::HE => "HE",
            FederalState::MV => "MV",
            FederalState::NI => "NI",
            FederalState::NW => "NW",
            FederalState::RP => "RP",
            FederalState::SL => "SL",
            FederalState::SN => "SN",
            FederalState::ST => "ST",
            FederalState::SH => "SH",
            FederalState::TH => "TH",
        }
    }
}

impl fmt::Display for FederalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for FederalState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().trim_start_matches("DE-").to_ascii_uppercase();
        FederalState::ALL
            .into_iter()
            .find(|st| st.code() == code)
            .ok_or_else(|| {
                format!(
                    "unknown federal state {s:?}; use one of BW BY BE BB HB HH HE MV NI NW RP SL SN ST SH TH"
                )
            })
    }
}

/// Easter Sunday of a Gregorian year (anonymous Gregorian algorithm).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction of the algorithm.
    NaiveDate::from_ymd_opt(year, month.unsigned_abs(), day.unsigned_abs())
        .unwrap_or(NaiveDate::MIN)
}

fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN)
}

/// A public holiday: its date and German name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: &'static str,
}

/// The statutory public holidays of `state` in `year`, sorted by date.
pub fn holidays(state: FederalState, year: i32) -> Vec<Holiday> {
    use FederalState::*;
    let easter = easter_sunday(year);
    let rel = |days: i64| easter + Duration::days(days);
    let mut out = vec![
        Holiday {
            date: ymd(year, 1, 1),
            name: "Neujahr",
        },
        Holiday {
            date: rel(-2),
            name: "Karfreitag",
        },
        Holiday {
            date: rel(1),
            name: "Ostermontag",
        },
        Holiday {
            date: ymd(year, 5, 1),
            name: "Tag der Arbeit",
        },
        Holiday {
            date: rel(39),
            name: "Christi Himmelfahrt",
        },
        Holiday {
            date: rel(50),
            name: "Pfingstmontag",
        },
        Holiday {
            date: ymd(year, 10, 3),
            name: "Tag der Deutschen Einheit",
        },
        Holiday {
            date: ymd(year, 12, 25),
            name: "1. Weihnachtstag",
        },
        Holiday {
            date: ymd(year, 12, 26),
            name: "2. Weihnachtstag",
        },
    ];
    let mut add = |date: NaiveDate, name: &'static str| out.push(Holiday { date, name });
    if matches!(state, BW | BY | ST) {
        add(ymd(year, 1, 6), "Heilige Drei Könige");
    }
    if (state == BE && year >= 2019) || (state == MV && year >= 2023) {
        add(ymd(year, 3, 8), "Internationaler Frauentag");
    }
    if state == BB {
        add(easter, "Ostersonntag");
        add(rel(49), "Pfingstsonntag");
    }
    if state == BE && (year == 2020 || year == 2025) {
        add(ymd(year, 5, 8), "Tag der Befreiung");
    }
    if matches!(state, BW | BY | HE | NW | RP | SL) {
        add(rel(60), "Fronleichnam");
    }
    if state == SL {
        add(ymd(year, 8, 15), "Mariä Himmelfahrt");
    }
    if state == TH && year >= 2019 {
        add(ymd(year, 9, 20), "Weltkindertag");
    }
    let reformation = matches!(state, BB | MV | SN | ST | TH)
        || (matches!(state, HB | HH | NI | SH) && year >= 2018)
        || year == 2017;
    if reformation {
        add(ymd(year, 10, 31), "Reformationstag");
    }
    if matches!(state, BW | BY | NW | RP | SL) {
        add(ymd(year, 11, 1), "Allerheiligen");
    }
    if state == SN {
        // The Wednesday before 23 November: between 16 and 22 November.
        let nov22 = ymd(year, 11, 22);
        let back = (i64::from(nov22.weekday().num_days_from_monday()) - 2).rem_euclid(7);
        add(nov22 - Duration::days(back), "Buß- und Bettag");
    }
    out.sort_by_key(|h| h.date);
    out
}

/// The holiday on `date` in `state`, if any.
pub fn holiday_on(state: FederalState, date: NaiveDate) -> Option<Holiday> {
    holidays(state, date.year())
        .into_iter()
        .find(|h| h.date == date)
}

/// Monday to Friday and no public holiday in `state`.
pub fn is_business_day(state: FederalState, date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && holiday_on(state, date).is_none()
}

/// Why a day is not a working day, in words (`"2026-04-06 is a public holiday in BY
/// (Ostermontag)"`), or `None` for a working day.
pub fn non_working_reason(state: FederalState, date: NaiveDate) -> Option<String> {
    match date.weekday() {
        Weekday::Sat => return Some(format!("{date} is a Saturday")),
        Weekday::Sun => return Some(format!("{date} is a Sunday")),
        _ => {}
    }
    holiday_on(state, date).map(|h| format!("{date} is a public holiday in {state} ({})", h.name))
}

/// `date` plus `days` business days of `state` (weekends and holidays skipped). Zero returns the
/// date itself; negative counts go backwards.
pub fn add_business_days(state: FederalState, date: NaiveDate, days: i64) -> NaiveDate {
    let step = if days < 0 { -1 } else { 1 };
    let mut left = days.abs();
    let mut d = date;
    while left > 0 {
        d += Duration::days(step);
        if is_business_day(state, d) {
            left -= 1;
        }
    }
    d
}

/// A deadline after § 193 BGB: the computed day, the day it was moved to and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The last day to act, after moving.
    pub deadline: NaiveDate,
    /// `from + days` before moving.
    pub unmoved: NaiveDate,
    /// One line per day skipped, e.g. `2026-04-05 is a Sunday`.
    pub reasons: Vec<String>,
}

/// § 193 BGB: a deadline that ends on a Saturday, Sunday or public holiday at the place of
/// performance ends on the next working day. `from + days` calendar days, then moved.
pub fn deadline(state: FederalState, from: NaiveDate, days: i64) -> Deadline {
    let unmoved = from + Duration::days(days);
    move_to_working_day(state, unmoved)
}

/// The § 193 move on its own: `date` if it is a working day, else the next working day.
pub fn move_to_working_day(state: FederalState, date: NaiveDate) -> Deadline {
    let mut d = date;
    let mut reasons = Vec::new();
    while let Some(reason) = non_working_reason(state, d) {
        reasons.push(reason);
        d += Duration::days(1);
    }
    Deadline {
        deadline: d,
        unmoved: date,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn easter_sundays_2020_to_2035_match_the_published_dates() {
        // Published Easter dates (Gregorian), e.g. in the EKD/DBK calendars.
        let known = [
            "2020-04-12",
            "2021-04-04",
            "2022-04-17",
            "2023-04-09",
            "2024-03-31",
            "2025-04-20",
            "2026-04-05",
            "2027-03-28",
            "2028-04-16",
            "2029-04-01",
            "2030-04-21",
            "2031-04-13",
            "2032-03-28",
            "2033-04-17",
            "2034-04-09",
            "2035-03-25",
        ];
        for (i, date) in known.iter().enumerate() {
            let year = 2020 + i32::try_from(i).unwrap();
            assert_eq!(easter_sunday(year), d(date), "easter {year}");
        }
    }

    #[test]
    fn every_state_has_the_nine_national_holidays_in_every_year_2020_to_2035() {
        for year in 2020..=2035 {
            let easter = easter_sunday(year);
            for state in FederalState::ALL {
                let hs = holidays(state, year);
                for (date, name) in [
                    (ymd(year, 1, 1), "Neujahr"),
                    (easter - Duration::days(2), "Karfreitag"),
                    (easter + Duration::days(1), "Ostermontag"),
                    (ymd(year, 5, 1), "Tag der Arbeit"),
                    (easter + Duration::days(39), "Christi Himmelfahrt"),
                    (easter + Duration::days(50), "Pfingstmontag"),
                    (ymd(year, 10, 3), "Tag der Deutschen Einheit"),
                    (ymd(year, 12, 25), "1. Weihnachtstag"),
                    (ymd(year, 12, 26), "2. Weihnachtstag"),
                ] {
                    assert!(
                        hs.iter().any(|h| h.date == date && h.name == name),
                        "{state} {year} lacks {name}"
                    );
                }
                // Christi Himmelfahrt is always a Thursday, Karfreitag a Friday.
                assert_eq!((easter + Duration::days(39)).weekday(), Weekday::Thu);
                assert_eq!((easter - Duration::days(2)).weekday(), Weekday::Fri);
            }
        }
    }

    #[test]
    fn state_holiday_counts_per_year_2020_to_2035() {
        for year in 2020..=2035 {
            for state in FederalState::ALL {
                let n = holidays(state, year).len();
                let expected = match state {
                    FederalState::BW | FederalState::BY => 12, // + 6.1., Fronleichnam, 1.11.
                    FederalState::NW | FederalState::RP => 11, // + Fronleichnam, 1.11.
                    FederalState::SL => 12,                    // + Fronleichnam, 15.8., 1.11.
                    FederalState::HE => 10,                    // + Fronleichnam
                    FederalState::BE if year == 2020 || year == 2025 => 11, // + 8.3., 8.5.
                    FederalState::BE => 10,                    // + 8.3.
                    FederalState::MV if year >= 2023 => 11,    // + 8.3., 31.10.
                    FederalState::MV => 10,
                    FederalState::BB => 12, // + Easter/Whit Sunday, 31.10.
                    FederalState::SN => 11, // + 31.10., Buß- und Bettag
                    FederalState::ST => 11, // + 6.1., 31.10.
                    FederalState::TH => 11, // + 20.9., 31.10.
                    FederalState::HB | FederalState::HH | FederalState::NI | FederalState::SH => 10,
                };
                assert_eq!(n, expected, "{state} {year}");
            }
        }
    }

    #[test]
    fn buss_und_bettag_in_saxony_is_the_wednesday_before_23_november() {
        let known = [
            (2020, "2020-11-18"),
            (2021, "2021-11-17"),
            (2022, "2022-11-16"),
            (2023, "2023-11-22"),
            (2024, "2024-11-20"),
            (2025, "2025-11-19"),
            (2026, "2026-11-18"),
            (2030, "2030-11-20"),
            (2035, "2035-11-21"),
        ];
        for (year, date) in known {
            let h = holidays(FederalState::SN, year);
            assert!(
                h.iter()
                    .any(|h| h.name == "Buß- und Bettag" && h.date == d(date)),
                "{year}"
            );
        }
        for year in 2020..=2035 {
            let h = holidays(FederalState::SN, year);
            let b = h.iter().find(|h| h.name == "Buß- und Bettag").unwrap();
            assert_eq!(b.date.weekday(), Weekday::Wed);
            assert!(b.date.day() >= 16 && b.date.day() <= 22 && b.date.month() == 11);
        }
    }

    #[test]
    fn fronleichnam_2026_is_a_holiday_in_bavaria_but_not_in_berlin() {
        // Easter 2026-04-05 + 60 days = 2026-06-04 (Thursday).
        assert!(holiday_on(FederalState::BY, d("2026-06-04")).is_some());
        assert!(holiday_on(FederalState::BE, d("2026-06-04")).is_none());
        assert!(!is_business_day(FederalState::BY, d("2026-06-04")));
        assert!(is_business_day(FederalState::BE, d("2026-06-04")));
    }

    #[test]
    fn a_deadline_on_a_working_day_stays() {
        let dl = deadline(FederalState::BE, d("2026-03-02"), 14);
        assert_eq!(dl.deadline, d("2026-03-16")); // Monday
        assert_eq!(dl.unmoved, dl.deadline);
        assert!(dl.reasons.is_empty());
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        // Thu 2026-04-02 + 2 business days in NW: Fri 04-03 Karfreitag, Sat, Sun, Mon 04-06
        // Ostermontag, so Tue 04-07 and Wed 04-08.
        assert_eq!(
            add_business_days(FederalState::NW, d("2026-04-02"), 2),
            d("2026-04-08")
        );
        assert_eq!(
            add_business_days(FederalState::NW, d("2026-04-08"), -2),
            d("2026-04-02")
        );
        assert_eq!(
            add_business_days(FederalState::NW, d("2026-04-08"), 0),
            d("2026-04-08")
        );
    }

    #[test]
    fn states_parse_from_codes() {
        assert_eq!("by".parse::<FederalState>(), Ok(FederalState::BY));
        assert_eq!("DE-NW".parse::<FederalState>(), Ok(FederalState::NW));
        assert!("XX".parse::<FederalState>().is_err());
    }
}
