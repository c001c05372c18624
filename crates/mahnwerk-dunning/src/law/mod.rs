//! German default law: base rates, default start (§ 286), interest (§§ 288, 289, 367),
//! the lump sum (§ 288 Abs. 5) and deadlines with public holidays (§ 193).

pub mod base_rate;
pub mod calendar;
pub mod default;
pub mod interest;

pub use base_rate::{BaseRate, BaseRateTable};
pub use calendar::{
    Deadline, FederalState, add_business_days, deadline, holidays, is_business_day,
};
pub use default::{
    DefaultFacts, DefaultRule, DefaultStart, default_start, default_without_reminder,
};
pub use interest::{
    DatedAmount, DayCount, InterestCalculation, InterestPeriod, InterestRequest, PaymentAllocation,
    ROUNDING_RULE, compute_interest, lump_sum, statutory_margin,
};
