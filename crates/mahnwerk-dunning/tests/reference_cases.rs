//! Reference cases computed by hand from the statute and the base-rate table.
//!
//! Conventions (see `law::interest`): act/365 unless stated, both period days inclusive, each
//! period rounded half-up to the cent, total = sum of the rounded periods. Rates: consumer is
//! base plus 5, business base plus 9. Integer form used below: interest in cents =
//! principal_cents × rate_in_hundredths_of_a_percent × days / 3,650,000 (act/365).

use chrono::NaiveDate;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::law::{
    BaseRateTable, DatedAmount, DayCount, FederalState, InterestRequest, compute_interest,
    deadline, lump_sum,
};
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

struct Case {
    name: &'static str,
    debtor: DebtorKind,
    principal: i64,
    from: &'static str,
    to: &'static str,
    payments: &'static [(&'static str, i64)],
    costs: &'static [(&'static str, i64)],
    day_count: DayCount,
    /// (from, to, days, rate, principal, interest) per period.
    periods: &'static [(&'static str, &'static str, i64, &'static str, i64, i64)],
    total: i64,
    principal_open: i64,
    interest_open: i64,
}

const C: DebtorKind = DebtorKind::Consumer;
const B: DebtorKind = DebtorKind::Business;
const A365: DayCount = DayCount::Act365;

fn cases() -> Vec<Case> {
    vec![
        // 1. 1000.00 consumer, Jan 2025, base 2.27 + 5 = 7.27 %.
        //    100000 × 727 × 31 / 3,650,000 = 617.45 → 617.
        Case {
            name: "consumer one month 2025",
            debtor: C,
            principal: 100_000,
            from: "2025-01-01",
            to: "2025-01-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2025-01-01", "2025-01-31", 31, "7.27", 100_000, 617)],
            total: 617,
            principal_open: 100_000,
            interest_open: 617,
        },
        // 2. Same as business: 2.27 + 9 = 11.27 %. 100000 × 1127 × 31 / 3,650,000 = 957.18 → 957.
        Case {
            name: "business one month 2025",
            debtor: B,
            principal: 100_000,
            from: "2025-01-01",
            to: "2025-01-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2025-01-01", "2025-01-31", 31, "11.27", 100_000, 957)],
            total: 957,
            principal_open: 100_000,
            interest_open: 957,
        },
        // 3. Across the change of 2025-07-01, business 5000.00.
        //    June: 500000 × 1127 × 30 / 3,650,000 = 4631.51 → 4632.
        //    July: 500000 × 1027 × 31 / 3,650,000 = 4361.23 → 4361. Total 8993.
        Case {
            name: "business across 2025-07-01",
            debtor: B,
            principal: 500_000,
            from: "2025-06-01",
            to: "2025-07-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2025-06-01", "2025-06-30", 30, "11.27", 500_000, 4632),
                ("2025-07-01", "2025-07-31", 31, "10.27", 500_000, 4361),
            ],
            total: 8993,
            principal_open: 500_000,
            interest_open: 8993,
        },
        // 4. Negative base rate: consumer 2000.00, Q4 2022, −0.88 + 5 = 4.12 %, 92 days.
        //    200000 × 412 × 92 / 3,650,000 = 2076.93 → 2077.
        Case {
            name: "consumer negative base rate 2022",
            debtor: C,
            principal: 200_000,
            from: "2022-10-01",
            to: "2022-12-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2022-10-01", "2022-12-31", 92, "4.12", 200_000, 2077)],
            total: 2077,
            principal_open: 200_000,
            interest_open: 2077,
        },
        // 5. Same as business: −0.88 + 9 = 8.12 %. 200000 × 812 × 92 / 3,650,000 = 4093.37 → 4093.
        Case {
            name: "business negative base rate 2022",
            debtor: B,
            principal: 200_000,
            from: "2022-10-01",
            to: "2022-12-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2022-10-01", "2022-12-31", 92, "8.12", 200_000, 4093)],
            total: 4093,
            principal_open: 200_000,
            interest_open: 4093,
        },
        // 6. From negative to positive base rate, consumer 1000.00.
        //    Dec 2022: 100000 × 412 × 31 / 3,650,000 = 349.92 → 350.
        //    Jan 2023: 1.62 + 5 = 6.62 %: 100000 × 662 × 31 / 3,650,000 = 562.25 → 562. Total 912.
        Case {
            name: "consumer across 2023-01-01",
            debtor: C,
            principal: 100_000,
            from: "2022-12-01",
            to: "2023-01-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2022-12-01", "2022-12-31", 31, "4.12", 100_000, 350),
                ("2023-01-01", "2023-01-31", 31, "6.62", 100_000, 562),
            ],
            total: 912,
            principal_open: 100_000,
            interest_open: 912,
        },
        // 7. Leap year act/365: business 1000.00, Feb + Mar 2024 = 29 + 31 = 60 days, 3.62 + 9 = 12.62 %.
        //    100000 × 1262 × 60 / 3,650,000 = 2074.52 → 2075.
        Case {
            name: "leap year act/365",
            debtor: B,
            principal: 100_000,
            from: "2024-02-01",
            to: "2024-03-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2024-02-01", "2024-03-31", 60, "12.62", 100_000, 2075)],
            total: 2075,
            principal_open: 100_000,
            interest_open: 2075,
        },
        // 8. Same act/act: 100000 × 1262 × 60 / 3,660,000 = 2068.85 → 2069.
        Case {
            name: "leap year act/act",
            debtor: B,
            principal: 100_000,
            from: "2024-02-01",
            to: "2024-03-31",
            payments: &[],
            costs: &[],
            day_count: DayCount::ActAct,
            periods: &[("2024-02-01", "2024-03-31", 60, "12.62", 100_000, 2069)],
            total: 2069,
            principal_open: 100_000,
            interest_open: 2069,
        },
        // 9. Consumer 1234.56, H2 2024 (184 days), 3.37 + 5 = 8.37 %.
        //    123456 × 837 = 103,332,672; × 184 = 19,013,211,648; / 3,650,000 = 5209.10 → 5209.
        Case {
            name: "consumer whole half-year",
            debtor: C,
            principal: 123_456,
            from: "2024-07-01",
            to: "2024-12-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2024-07-01", "2024-12-31", 184, "8.37", 123_456, 5209)],
            total: 5209,
            principal_open: 123_456,
            interest_open: 5209,
        },
        // 10. Partial payment, consumer 1000.00, 6.27 %, 500.00 paid on 2025-07-16.
        //     07-01..07-15: 100000 × 627 × 15 / 3,650,000 = 257.67 → 258.
        //     Payment 50000: interest 258, principal 49742 → 50258 open.
        //     07-16..07-31: 50258 × 627 × 16 / 3,650,000 = 504,188,256 / 3,650,000 = 138.13 → 138.
        Case {
            name: "consumer partial payment",
            debtor: C,
            principal: 100_000,
            from: "2025-07-01",
            to: "2025-07-31",
            payments: &[("2025-07-16", 50_000)],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2025-07-01", "2025-07-15", 15, "6.27", 100_000, 258),
                ("2025-07-16", "2025-07-31", 16, "6.27", 50_258, 138),
            ],
            total: 396,
            principal_open: 50_258,
            interest_open: 138,
        },
        // 11. § 367 with costs: business 1000.00, 10.27 %, lump sum 40.00 as cost on 07-01,
        //     100.00 paid on 07-11.
        //     07-01..07-10: 100000 × 1027 × 10 / 3,650,000 = 281.37 → 281.
        //     Payment 10000: costs 4000, interest 281, principal 5719 → 94281.
        //     07-11..07-31: 94281 × 1027 × 21 = 2,033,358,327 / 3,650,000 = 557.08 → 557.
        Case {
            name: "business payment credited to costs first",
            debtor: B,
            principal: 100_000,
            from: "2025-07-01",
            to: "2025-07-31",
            payments: &[("2025-07-11", 10_000)],
            costs: &[("2025-07-01", 4_000)],
            day_count: A365,
            periods: &[
                ("2025-07-01", "2025-07-10", 10, "10.27", 100_000, 281),
                ("2025-07-11", "2025-07-31", 21, "10.27", 94_281, 557),
            ],
            total: 838,
            principal_open: 94_281,
            interest_open: 557,
        },
        // 12. Overpayment: consumer 100.00, 150.00 paid on 08-11.
        //     08-01..08-10: 10000 × 627 × 10 / 3,650,000 = 17.18 → 17. Payment: interest 17,
        //     principal 10000, surplus 4983. No interest afterwards.
        Case {
            name: "consumer overpayment",
            debtor: C,
            principal: 10_000,
            from: "2025-08-01",
            to: "2025-08-31",
            payments: &[("2025-08-11", 15_000)],
            costs: &[],
            day_count: A365,
            periods: &[("2025-08-01", "2025-08-10", 10, "6.27", 10_000, 17)],
            total: 17,
            principal_open: 0,
            interest_open: 0,
        },
        // 13. Payment before interest starts: 1000.00 − 200.00 = 800.00 bears interest.
        //     80000 × 627 × 10 / 3,650,000 = 137.42 → 137.
        Case {
            name: "payment before the first interest day",
            debtor: C,
            principal: 100_000,
            from: "2025-08-01",
            to: "2025-08-10",
            payments: &[("2025-07-20", 20_000)],
            costs: &[],
            day_count: A365,
            periods: &[("2025-08-01", "2025-08-10", 10, "6.27", 80_000, 137)],
            total: 137,
            principal_open: 80_000,
            interest_open: 137,
        },
        // 14. Two years of changes, business 10,000.00:
        //     H1 2023 181 d × 10.62 %: 1,000,000 × 1062 × 181 / 3,650,000 = 52663.56 → 52664
        //     H2 2023 184 d × 12.12 %: 1,000,000 × 1212 × 184 / 3,650,000 = 61098.08 → 61098
        //     H1 2024 182 d × 12.62 %: 1,000,000 × 1262 × 182 / 3,650,000 = 62927.12 → 62927
        //     H2 2024 184 d × 12.37 %: 1,000,000 × 1237 × 184 / 3,650,000 = 62358.36 → 62358
        //     Total 239047 = 2390.47 EUR.
        Case {
            name: "business 2023-2024",
            debtor: B,
            principal: 1_000_000,
            from: "2023-01-01",
            to: "2024-12-31",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2023-01-01", "2023-06-30", 181, "10.62", 1_000_000, 52664),
                ("2023-07-01", "2023-12-31", 184, "12.12", 1_000_000, 61098),
                ("2024-01-01", "2024-06-30", 182, "12.62", 1_000_000, 62927),
                ("2024-07-01", "2024-12-31", 184, "12.37", 1_000_000, 62358),
            ],
            total: 239_047,
            principal_open: 1_000_000,
            interest_open: 239_047,
        },
        // 15. One day: 10000 × 627 × 1 / 3,650,000 = 1.72 → 2.
        Case {
            name: "one day",
            debtor: C,
            principal: 10_000,
            from: "2026-01-15",
            to: "2026-01-15",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2026-01-15", "2026-01-15", 1, "6.27", 10_000, 2)],
            total: 2,
            principal_open: 10_000,
            interest_open: 2,
        },
        // 16. The to-verify half-year 2026-07: 100000 × 627 × 10 / 3,650,000 = 171.78 → 172.
        Case {
            name: "carried-forward base rate 2026-07",
            debtor: C,
            principal: 100_000,
            from: "2026-07-01",
            to: "2026-07-10",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[("2026-07-01", "2026-07-10", 10, "6.27", 100_000, 172)],
            total: 172,
            principal_open: 100_000,
            interest_open: 172,
        },
        // 17. Unchanged rate still splits at the half-year: business 1000.00, 10 + 10 days at
        //     10.27 %: 100000 × 1027 × 10 / 3,650,000 = 281.37 → 281 each; total 562.
        Case {
            name: "split at 2026-07-01 with unchanged rate",
            debtor: B,
            principal: 100_000,
            from: "2026-06-21",
            to: "2026-07-10",
            payments: &[],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2026-06-21", "2026-06-30", 10, "10.27", 100_000, 281),
                ("2026-07-01", "2026-07-10", 10, "10.27", 100_000, 281),
            ],
            total: 562,
            principal_open: 100_000,
            interest_open: 562,
        },
        // 18. Two partial payments, business 2000.00, 3.37 + 9 = 12.37 %:
        //     09-01..09-10: 200000 × 1237 × 10 / 3,650,000 = 677.81 → 678; pay 50000 → interest 678,
        //       principal 49322 → 150678.
        //     09-11..09-20: 150678 × 1237 × 10 = 1,863,886,860 / 3,650,000 = 510.65 → 511; pay 50000
        //       → interest 511, principal 49489 → 101189.
        //     09-21..09-30: 101189 × 1237 × 10 = 1,251,707,930 / 3,650,000 = 342.93 → 343.
        Case {
            name: "business two partial payments",
            debtor: B,
            principal: 200_000,
            from: "2024-09-01",
            to: "2024-09-30",
            payments: &[("2024-09-11", 50_000), ("2024-09-21", 50_000)],
            costs: &[],
            day_count: A365,
            periods: &[
                ("2024-09-01", "2024-09-10", 10, "12.37", 200_000, 678),
                ("2024-09-11", "2024-09-20", 10, "12.37", 150_678, 511),
                ("2024-09-21", "2024-09-30", 10, "12.37", 101_189, 343),
            ],
            total: 1532,
            principal_open: 101_189,
            interest_open: 343,
        },
        // 19. act/act across a year end: consumer 1000.00.
        //     2023-12-22..31: 3.12 + 5 = 8.12 %, /365: 100000 × 812 × 10 / 3,650,000 = 222.47 → 222.
        //     2024-01-01..10: 3.62 + 5 = 8.62 %, /366: 100000 × 862 × 10 / 3,660,000 = 235.52 → 236.
        Case {
            name: "act/act across a year end",
            debtor: C,
            principal: 100_000,
            from: "2023-12-22",
            to: "2024-01-10",
            payments: &[],
            costs: &[],
            day_count: DayCount::ActAct,
            periods: &[
                ("2023-12-22", "2023-12-31", 10, "8.12", 100_000, 222),
                ("2024-01-01", "2024-01-10", 10, "8.62", 100_000, 236),
            ],
            total: 458,
            principal_open: 100_000,
            interest_open: 458,
        },
        // 20. A payment that covers only the costs leaves principal and interest untouched:
        //     business 500.00 at 10.27 %, cost 40.00 on 08-01, 30.00 paid on 08-06.
        //     08-01..08-05: 50000 × 1027 × 5 / 3,650,000 = 70.34 → 70; payment all to costs.
        //     08-06..08-10: same principal, 70. Total 140; costs open 10.00.
        Case {
            name: "payment covering part of the costs",
            debtor: B,
            principal: 50_000,
            from: "2025-08-01",
            to: "2025-08-10",
            payments: &[("2025-08-06", 3_000)],
            costs: &[("2025-08-01", 4_000)],
            day_count: A365,
            periods: &[
                ("2025-08-01", "2025-08-05", 5, "10.27", 50_000, 70),
                ("2025-08-06", "2025-08-10", 5, "10.27", 50_000, 70),
            ],
            total: 140,
            principal_open: 50_000,
            interest_open: 140,
        },
    ]
}

#[test]
fn interest_reference_cases() {
    for case in cases() {
        let eur = Money::eur;
        let req = InterestRequest {
            principal: eur(case.principal),
            from: d(case.from),
            to: d(case.to),
            debtor: case.debtor,
            payments: case
                .payments
                .iter()
                .map(|(dt, a)| DatedAmount::new(d(dt), eur(*a)))
                .collect(),
            costs: case
                .costs
                .iter()
                .map(|(dt, a)| DatedAmount::new(d(dt), eur(*a)))
                .collect(),
            day_count: case.day_count,
        };
        let calc = compute_interest(&req, BaseRateTable::german()).unwrap();
        let got: Vec<_> = calc
            .periods
            .iter()
            .map(|p| (p.from, p.to, p.days, p.rate, p.principal, p.interest))
            .collect();
        let want: Vec<_> = case
            .periods
            .iter()
            .map(|(f, t, days, rate, pr, i)| {
                (d(f), d(t), *days, Decimal::from_str(rate).unwrap(), *pr, *i)
            })
            .collect();
        assert_eq!(got, want, "{}", case.name);
        assert_eq!(calc.interest_total, case.total, "{}", case.name);
        assert_eq!(calc.principal_open, case.principal_open, "{}", case.name);
        assert_eq!(calc.interest_open, case.interest_open, "{}", case.name);
    }
}

#[test]
fn overpayment_and_cost_allocations_are_itemised() {
    // Case 12: 150.00 = 0.17 interest + 100.00 principal + 49.83 surplus.
    let calc = compute_interest(
        &InterestRequest {
            principal: Money::eur(10_000),
            from: d("2025-08-01"),
            to: d("2025-08-31"),
            debtor: C,
            payments: vec![DatedAmount::new(d("2025-08-11"), Money::eur(15_000))],
            costs: vec![],
            day_count: A365,
        },
        BaseRateTable::german(),
    )
    .unwrap();
    let a = &calc.allocations[0];
    assert_eq!(
        (a.to_costs, a.to_interest, a.to_principal, a.surplus),
        (0, 17, 10_000, 4_983)
    );
    assert_eq!(calc.surplus, 4_983);
}

#[test]
fn lump_sum_reference_cases() {
    // 21. Business in EUR: § 288 Abs. 5 → 40.00 EUR.
    assert_eq!(
        lump_sum(B, mahnwerk_domain::Currency::EUR),
        Some(Money::eur(4000))
    );
    // 22. Consumer: no lump sum.
    assert_eq!(lump_sum(C, mahnwerk_domain::Currency::EUR), None);
}

#[test]
fn deadline_reference_cases() {
    use FederalState::*;
    let cases: &[(FederalState, &str, i64, &str, usize)] = &[
        // 23. 2026-03-20 + 14 = 2026-04-03 Karfreitag; 04-04 Sat; 04-05 Sun; 04-06 Ostermontag
        //     → Tue 2026-04-07 (4 reasons), in every state.
        (HH, "2026-03-20", 14, "2026-04-07", 4),
        // 24. 2026-05-21 + 14 = 2026-06-04 Fronleichnam (Easter 04-05 + 60) in Bavaria → Fri 06-05.
        (BY, "2026-05-21", 14, "2026-06-05", 1),
        // 25. The same day in Berlin is a working day.
        (BE, "2026-05-21", 14, "2026-06-04", 0),
        // 26. 2026-10-17 + 14 = 2026-10-31 Saturday, 11-01 Sunday → Mon 11-02 (Bavaria).
        (BY, "2026-10-17", 14, "2026-11-02", 2),
        // 27. 2025-12-10 + 14 = 2025-12-24 Wednesday: Heiligabend is no public holiday.
        (NW, "2025-12-10", 14, "2025-12-24", 0),
        // 28. Berlin 2025-04-24 + 14 = 2025-05-08, the one-off Tag der Befreiung (Thursday) → 05-09.
        (BE, "2025-04-24", 14, "2025-05-09", 1),
        // 29. Hamburg, same dates: no holiday.
        (HH, "2025-04-24", 14, "2025-05-08", 0),
        // 30. Saxony 2026-11-04 + 14 = 2026-11-18 Buß- und Bettag (Wednesday) → 11-19.
        (SN, "2026-11-04", 14, "2026-11-19", 1),
        // 31. Thuringia 2027-09-06 + 14 = 2027-09-20 Weltkindertag (Monday) → Tue 09-21.
        (TH, "2027-09-06", 14, "2027-09-21", 1),
        // 32. 2027-12-11 + 14 = 2027-12-25 Saturday; 12-26 Sunday; 12-27 Monday is a working day.
        (NI, "2027-12-11", 14, "2027-12-27", 2),
        // 33. Berlin 2027-02-22 + 14 = 2027-03-08 Frauentag (Monday) → 03-09.
        (BE, "2027-02-22", 14, "2027-03-09", 1),
        // 34. 2031-12-18 + 14 = 2032-01-01 Neujahr (Thursday) → Fri 2032-01-02.
        (SH, "2031-12-18", 14, "2032-01-02", 1),
        // 35. Leap day: 2028-02-15 + 14 = 2028-02-29 Tuesday, a working day.
        (HE, "2028-02-15", 14, "2028-02-29", 0),
    ];
    for (state, from, days, want, reasons) in cases {
        let dl = deadline(*state, d(from), *days);
        assert_eq!(
            dl.deadline,
            d(want),
            "{state} {from} + {days}: {:?}",
            dl.reasons
        );
        assert_eq!(
            dl.reasons.len(),
            *reasons,
            "{state} {from}: {:?}",
            dl.reasons
        );
    }
}

#[test]
fn interest_across_2026_12_31_uses_the_last_published_rate_marked_provisional() {
    // Business, 1,000.00 EUR from 2026-12-01 to 2027-01-31. The shipped table ends with the
    // half-year from 2026-07-01 (1.27 %, to verify); 2027 has no row yet. Both periods run at
    // 1.27 + 9 = 10.27 %: 100000 × 1027 × 31 / 3,650,000 = 872.25 → 872 cents each; the
    // January period is provisional, the December one is not.
    let calc = compute_interest(
        &InterestRequest {
            principal: Money::eur(100_000),
            from: d("2026-12-01"),
            to: d("2027-01-31"),
            debtor: DebtorKind::Business,
            payments: vec![],
            costs: vec![],
            day_count: DayCount::Act365,
        },
        BaseRateTable::german(),
    )
    .expect("a date past the table must not fail the calculation");
    let periods: Vec<_> = calc
        .periods
        .iter()
        .map(|p| {
            (
                p.from.to_string(),
                p.to.to_string(),
                p.interest,
                p.provisional,
            )
        })
        .collect();
    assert_eq!(
        periods,
        [
            ("2026-12-01".to_owned(), "2026-12-31".to_owned(), 872, false),
            ("2027-01-01".to_owned(), "2027-01-31".to_owned(), 872, true),
        ]
    );
    assert_eq!(calc.interest_total, 1744);
    assert!(calc.provisional);
    assert_eq!(
        calc.periods[1].base_rate,
        Decimal::from_str("1.27").unwrap()
    );
    // The strict lookup still says the table has no 2027 rate.
    assert!(BaseRateTable::german().on(d("2027-01-01")).is_err());
}
