//! Default interest (§ 288 BGB) with payments credited per § 367 BGB.
//!
//! # Conventions (printed on letters, shown by `ExplainCase`)
//! - **Rate**: base rate of the day (§ 247, [`BaseRateTable`]) plus 5 percentage points when a
//!   consumer is party, plus 9 points otherwise (§ 288 Abs. 1, 2). Never below zero.
//! - **Simple interest** on the open principal only, no interest on interest (§ 289).
//! - **Periods** are given by their first and last interest day, both inclusive. A new period
//!   starts on every base-rate change (1 January, 1 July), on every payment day (the reduced
//!   principal bears interest from the payment day on) and, with [`DayCount::ActAct`], on every
//!   1 January.
//! - **Day count**: [`DayCount::Act365`] (actual days / 365, the practice of court and bank
//!   calculators) is the default everywhere; [`DayCount::ActAct`] divides by the days of the
//!   calendar year (366 in leap years).
//! - **Rounding** ([`ROUNDING_RULE`]): each period's interest is computed exactly in integers
//!   and rounded half-up to the minor unit; the total is the sum of the rounded periods, so the
//!   lines on a letter add up.
//! - **§ 367 Abs. 1**: a payment is credited first to costs that arose on or before its day
//!   (fees, the § 288 Abs. 5 lump sum), then to interest accrued before its day, then to the
//!   principal; what is left over is a surplus.

use crate::error::{DunningError, Result};
use crate::law::base_rate::{BaseRateTable, next_half_year};
use chrono::{Datelike, Duration, NaiveDate};
use mahnwerk_domain::{Currency, DebtorKind, Money};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The one rounding rule of Mahnwerk, in words.
pub const ROUNDING_RULE: &str = "each period's interest is rounded half-up to the cent; the total is the sum of the rounded periods";

/// How interest days are divided into years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayCount {
    /// Actual days / 365 (default).
    #[default]
    Act365,
    /// Actual days / days of the calendar year (365 or 366).
    ActAct,
}

/// Percentage points over the base rate: 5 with a consumer, 9 without (§ 288 Abs. 1, 2).
pub fn statutory_margin(debtor: DebtorKind) -> Decimal {
    match debtor {
        DebtorKind::Consumer => Decimal::from(5),
        DebtorKind::Business => Decimal::from(9),
    }
}

/// The § 288 Abs. 5 lump sum: € 40 once per claim when the debtor is not a consumer. Only for
/// claims in euros (the statute names euros); `None` otherwise.
pub fn lump_sum(debtor: DebtorKind, currency: Currency) -> Option<Money> {
    (debtor == DebtorKind::Business && currency == Currency::EUR)
        .then(|| Money::new(4000, currency))
}

/// A dated amount: a payment received, or a cost (fee, lump sum) that arose on that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatedAmount {
    pub date: NaiveDate,
    pub amount: Money,
}

impl DatedAmount {
    pub fn new(date: NaiveDate, amount: Money) -> Self {
        Self { date, amount }
    }
}

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestRequest {
    /// The principal before any payment.
    pub principal: Money,
    /// First interest day (the day after default starts, § 187 Abs. 1).
    pub from: NaiveDate,
    /// Last interest day, inclusive.
    pub to: NaiveDate,
    pub debtor: DebtorKind,
    pub payments: Vec<DatedAmount>,
    pub costs: Vec<DatedAmount>,
    #[serde(default)]
    pub day_count: DayCount,
}

/// One line of the interest calculation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestPeriod {
    /// First interest day of the period.
    pub from: NaiveDate,
    /// Last interest day of the period, inclusive.
    pub to: NaiveDate,
    pub days: i64,
    /// Base rate in percent.
    pub base_rate: Decimal,
    /// Percentage points over the base rate (5 or 9).
    pub margin: Decimal,
    /// Rate applied in percent per year: `max(base_rate + margin, 0)`.
    pub rate: Decimal,
    /// 365 or 366.
    pub day_basis: i64,
    /// Principal bearing interest, minor units.
    pub principal: i64,
    /// `principal × rate/100 × days/day_basis`, rounded half-up to the minor unit.
    pub interest: i64,
    /// The base rate is carried forward and still to be verified.
    pub to_verify: bool,
    /// The date lies past the base-rate table: the last published rate was used.
    #[serde(default)]
    pub provisional: bool,
}

/// How one payment was credited (§ 367 Abs. 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAllocation {
    pub date: NaiveDate,
    pub amount: i64,
    pub to_costs: i64,
    pub to_interest: i64,
    pub to_principal: i64,
    pub surplus: i64,
}

/// The result with its full derivation. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestCalculation {
    pub currency: Currency,
    pub day_count: DayCount,
    pub rounding: String,
    pub periods: Vec<InterestPeriod>,
    /// Sum of the rounded period interests.
    pub interest_total: i64,
    pub allocations: Vec<PaymentAllocation>,
    /// Principal still open after all payments.
    pub principal_open: i64,
    /// Interest not covered by payments.
    pub interest_open: i64,
    /// Costs not covered by payments.
    pub costs_open: i64,
    /// Paid beyond costs, interest and principal.
    pub surplus: i64,
    /// Some period used a provisional base rate (past the table's end).
    #[serde(default)]
    pub provisional: bool,
}

impl InterestCalculation {
    pub fn interest_total_money(&self) -> Money {
        Money::new(self.interest_total, self.currency)
    }
}

/// `principal × rate% × days / basis`, exactly in integers, rounded half-up. Zero for rates ≤ 0.
pub fn period_interest(principal: i64, rate_percent: Decimal, days: i64, basis: i64) -> i64 {
    if principal <= 0 || days <= 0 || rate_percent <= Decimal::ZERO || basis <= 0 {
        return 0;
    }
    let mantissa = rate_percent.mantissa();
    let scale = 10_i128.pow(rate_percent.scale());
    let num = i128::from(principal) * mantissa * i128::from(days);
    let den = 100 * i128::from(basis) * scale;
    let rounded = (2 * num + den) / (2 * den);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

fn days_in_year(year: i32) -> i64 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

struct Ledger {
    principal: i64,
    interest_accrued: i64,
    interest_paid: i64,
    costs_paid: i64,
    surplus: i64,
}

impl Ledger {
    fn credit(&mut self, payment: &DatedAmount, costs: &[DatedAmount]) -> PaymentAllocation {
        let costs_due: i64 = costs
            .iter()
            .filter(|c| c.date <= payment.date)
            .map(|c| c.amount.minor)
            .sum();
        let mut left = payment.amount.minor;
        let to_costs = left.min((costs_due - self.costs_paid).max(0));
        left -= to_costs;
        self.costs_paid += to_costs;
        let to_interest = left.min((self.interest_accrued - self.interest_paid).max(0));
        left -= to_interest;
        self.interest_paid += to_interest;
        let to_principal = left.min(self.principal.max(0));
        left -= to_principal;
        self.principal -= to_principal;
        self.surplus += left;
        PaymentAllocation {
            date: payment.date,
            amount: payment.amount.minor,
            to_costs,
            to_interest,
            to_principal,
            surplus: left,
        }
    }
}

/// How payments were credited when the interest is not accrued day by day but known as dated
/// amounts (see [`credit_payments`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credited {
    pub allocations: Vec<PaymentAllocation>,
    pub principal_open: i64,
    pub costs_open: i64,
    pub interest_open: i64,
    pub surplus: i64,
}

/// § 367 Abs. 1 over dated amounts: each payment, in date order, goes to the costs that had
/// arisen on or before its day, then to the interest that had arisen on or before its day, then
/// to the principal; what is left over is a surplus. A cost or interest amount that arises
/// after a payment is never paid by it. [`compute_interest`] does the same with interest
/// accrued day by day; this is the form for interest already charged (dated by its letter).
pub fn credit_payments(
    principal: i64,
    payments: &[DatedAmount],
    costs: &[DatedAmount],
    interest: &[DatedAmount],
) -> Credited {
    let mut payments = payments.to_vec();
    payments.sort_by_key(|p| p.date);
    let mut ledger = Ledger {
        principal,
        interest_accrued: 0,
        interest_paid: 0,
        costs_paid: 0,
        surplus: 0,
    };
    let allocations = payments
        .iter()
        .map(|p| {
            ledger.interest_accrued = interest
                .iter()
                .filter(|i| i.date <= p.date)
                .map(|i| i.amount.minor)
                .sum();
            ledger.credit(p, costs)
        })
        .collect();
    let costs_total: i64 = costs.iter().map(|c| c.amount.minor).sum();
    let interest_total: i64 = interest.iter().map(|i| i.amount.minor).sum();
    Credited {
        allocations,
        principal_open: ledger.principal,
        costs_open: costs_total - ledger.costs_paid,
        interest_open: interest_total - ledger.interest_paid,
        surplus: ledger.surplus,
    }
}

/// Compute default interest per period, crediting payments per § 367.
pub fn compute_interest(
    req: &InterestRequest,
    table: &BaseRateTable,
) -> Result<InterestCalculation> {
    let currency = req.principal.currency;
    if req.to < req.from {
        return Err(DunningError::invalid("to", "must not be before from"));
    }
    if req.principal.minor < 0 {
        return Err(DunningError::invalid("principal", "must not be negative"));
    }
    for (field, list) in [("payments", &req.payments), ("costs", &req.costs)] {
        for (i, p) in list.iter().enumerate() {
            if p.amount.currency != currency {
                return Err(DunningError::CurrencyMismatch(currency, p.amount.currency));
            }
            if p.amount.minor < 0 {
                return Err(DunningError::invalid(
                    format!("{field}[{i}].amount"),
                    "must not be negative",
                ));
            }
        }
    }
    let mut payments = req.payments.clone();
    payments.sort_by_key(|p| p.date);

    // Period boundaries: first days of new periods inside (from, to].
    let mut starts: Vec<NaiveDate> = table.changes_between(req.from, req.to);
    // The base rate is defined per half-year; split there too even if a row is missing.
    let mut hy = next_half_year(req.from);
    while hy <= req.to {
        starts.push(hy);
        hy = next_half_year(hy);
    }
    if req.day_count == DayCount::ActAct {
        for y in (req.from.year() + 1)..=req.to.year() {
            if let Some(jan1) = NaiveDate::from_ymd_opt(y, 1, 1) {
                starts.push(jan1);
            }
        }
    }
    starts.extend(
        payments
            .iter()
            .map(|p| p.date)
            .filter(|d| *d > req.from && *d <= req.to),
    );
    starts.sort();
    starts.dedup();

    let mut ledger = Ledger {
        principal: req.principal.minor,
        interest_accrued: 0,
        interest_paid: 0,
        costs_paid: 0,
        surplus: 0,
    };
    let mut allocations = Vec::new();
    let mut next_payment = 0;
    let mut periods = Vec::new();
    let mut start = req.from;
    let mut boundaries = starts
        .into_iter()
        .chain(std::iter::once(req.to + Duration::days(1)));
    while start <= req.to {
        // Payments on or before this period's first day are credited before it bears interest.
        while next_payment < payments.len() && payments[next_payment].date <= start {
            allocations.push(ledger.credit(&payments[next_payment], &req.costs));
            next_payment += 1;
        }
        let end_excl = boundaries.next().unwrap_or(req.to + Duration::days(1));
        let end = end_excl - Duration::days(1);
        let (base, provisional) = table.on_or_last(start)?;
        let margin = statutory_margin(req.debtor);
        let rate = (base.rate + margin).max(Decimal::ZERO);
        let days = (end - start).num_days() + 1;
        let day_basis = match req.day_count {
            DayCount::Act365 => 365,
            DayCount::ActAct => days_in_year(start.year()),
        };
        if ledger.principal > 0 {
            let interest = period_interest(ledger.principal, rate, days, day_basis);
            ledger.interest_accrued += interest;
            periods.push(InterestPeriod {
                from: start,
                to: end,
                days,
                base_rate: base.rate,
                margin,
                rate,
                day_basis,
                principal: ledger.principal,
                interest,
                to_verify: base.to_verify,
                provisional,
            });
        }
        start = end_excl;
    }
    while next_payment < payments.len() {
        allocations.push(ledger.credit(&payments[next_payment], &req.costs));
        next_payment += 1;
    }
    let costs_total: i64 = req.costs.iter().map(|c| c.amount.minor).sum();
    Ok(InterestCalculation {
        currency,
        day_count: req.day_count,
        rounding: ROUNDING_RULE.to_owned(),
        interest_total: periods.iter().map(|p| p.interest).sum(),
        provisional: periods.iter().any(|p| p.provisional),
        periods,
        allocations,
        principal_open: ledger.principal,
        interest_open: ledger.interest_accrued - ledger.interest_paid,
        costs_open: costs_total - ledger.costs_paid,
        surplus: ledger.surplus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn period_interest_rounds_half_up() {
        // 100.00 EUR at 3.65 % for 1 day /365: 10000 × 3.65 / 100 / 365 = 1.0 cent exactly.
        assert_eq!(period_interest(10000, dec!(3.65), 1, 365), 1);
        // 50.00 EUR at 3.65 % for 1 day: 0.5 cent, half-up → 1.
        assert_eq!(period_interest(5000, dec!(3.65), 1, 365), 1);
        // 49.99 EUR: 0.4999 cent → 0.
        assert_eq!(period_interest(4999, dec!(3.65), 1, 365), 0);
        assert_eq!(period_interest(10000, dec!(-0.5), 10, 365), 0);
    }

    #[test]
    fn a_payment_in_another_currency_is_refused() {
        let from: NaiveDate = "2025-01-01".parse().unwrap();
        let req = InterestRequest {
            principal: Money::eur(1000),
            from,
            to: from,
            debtor: DebtorKind::Consumer,
            payments: vec![DatedAmount::new(
                from,
                Money::new(1, "CHF".parse().unwrap()),
            )],
            costs: vec![],
            day_count: DayCount::Act365,
        };
        assert!(matches!(
            compute_interest(&req, BaseRateTable::german()),
            Err(DunningError::CurrencyMismatch(..))
        ));
    }
}
