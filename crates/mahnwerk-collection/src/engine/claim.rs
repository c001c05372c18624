//! The claim handed over: principal, costs and default interest to the hand-over date.

use super::{Refused, precondition};
use chrono::NaiveDate;
use mahnwerk_domain::Money;
use mahnwerk_dunning::dunning_case::DunningCase;
use mahnwerk_dunning::law::BaseRateTable;
use mahnwerk_dunning::law::interest::{
    DatedAmount, InterestCalculation, InterestRequest, compute_interest,
};
use serde::{Deserialize, Serialize};

/// The claim handed over, every amount with its derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub currency: mahnwerk_domain::Currency,
    /// Gross invoice amount.
    pub principal: Money,
    /// Credit notes.
    pub credited: Money,
    /// Payments not reversed.
    pub paid: Money,
    /// Principal still open after § 367 crediting.
    pub principal_open: Money,
    /// Dunning fees charged (after the lump-sum offset).
    pub dunning_fees: Money,
    /// § 288 Abs. 5 lump sum charged (businesses only).
    pub lump_sum: Money,
    /// Fees not charged because the lump sum covers them (§ 288 Abs. 5 S. 3).
    pub lump_sum_offset: Money,
    /// Fees and lump sum still open after § 367 crediting.
    pub costs_open: Money,
    /// Default interest from the default date to the hand-over date.
    pub interest_total: Money,
    /// Interest still open after § 367 crediting.
    pub interest_open: Money,
    /// The interest derivation (periods, rates, base rates), when the debtor is in default.
    pub interest: Option<InterestCalculation>,
    pub interest_to: NaiveDate,
    /// principal open + costs open + interest open.
    pub total_open: Money,
}

/// The claim of a dunning case on `handover_date`.
pub fn claim(case: &DunningCase, handover_date: NaiveDate) -> Result<Claim, Refused> {
    let cur = case.currency();
    let m = |minor: i64| Money::new(minor, cur);
    let paid = case.paid();
    let costs = case.fees + case.lump_sum;
    let default = case.default();
    let calc = match default {
        Some(def) if def.interest_from <= handover_date => Some(
            compute_interest(
                &InterestRequest {
                    principal: m(case.principal_owed()),
                    from: def.interest_from,
                    to: handover_date,
                    debtor: case.facts.debtor,
                    payments: case
                        .payments
                        .iter()
                        .filter(|p| !p.reversed)
                        .map(|p| DatedAmount::new(p.date, p.amount))
                        .collect(),
                    costs: case.costs.clone(),
                    day_count: case.policy.day_count,
                },
                &BaseRateTable::in_force(),
            )
            .map_err(|e| precondition(format!("interest: {e}")))?,
        ),
        _ => None,
    };
    let (principal_open, costs_open, interest_total, interest_open) = match &calc {
        Some(c) => (
            c.principal_open,
            c.costs_open,
            c.interest_total,
            c.interest_open,
        ),
        None => {
            // Not in default: no interest; payments go to costs first, then principal.
            let to_costs = paid.min(costs);
            let to_principal = (paid - to_costs).max(0);
            (
                (case.principal_owed() - to_principal).max(0),
                costs - to_costs,
                0,
                0,
            )
        }
    };
    Ok(Claim {
        currency: cur,
        principal: case.facts.principal,
        credited: m(case.facts.principal.minor - case.principal_owed()),
        paid: m(paid),
        principal_open: m(principal_open),
        dunning_fees: m(case.fees),
        lump_sum: m(case.lump_sum),
        lump_sum_offset: m(case.lump_sum_offset),
        costs_open: m(costs_open),
        interest_total: m(interest_total),
        interest_open: m(interest_open),
        interest: calc,
        interest_to: handover_date,
        total_open: m(principal_open + costs_open + interest_open),
    })
}
