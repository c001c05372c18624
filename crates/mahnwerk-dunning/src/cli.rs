//! The `mahnwerk law …` and `mahnwerk policy …` calculators. The `mahnwerk` binary (owned by
//! the workspace) embeds [`LawCommand`] and [`PolicyCommand`] and calls [`run_law`] /
//! [`run_policy`]; on `Err` it prints the [`CliError`] and exits with status 1.
//!
//! This module is the only place in the crate that reads files (the policy, invoice and events
//! files named on the command line); everything it computes goes through the pure core.

use crate::dunning_case::CaseFacts;
use crate::error::DunningError;
use crate::law::BaseRateTable;
use crate::law::calendar::{FederalState, deadline};
use crate::law::interest::{
    DatedAmount, DayCount, InterestRequest, ROUNDING_RULE, compute_interest, lump_sum,
};
use crate::policy::{Policy, PolicyBook};
use crate::preview::{PreviewCase, Scheduled, preview};
use chrono::NaiveDate;
use mahnwerk_domain::{Currency, DebtorKind, Money};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// German default law calculators.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum LawCommand {
    /// Default interest (§ 288 BGB) per period and in total, plus the € 40 lump sum where due.
    ///
    /// Periods split at every base-rate change and every payment; each period is rounded
    /// half-up to the cent and the total is the sum of the periods. Payments are credited to
    /// the lump sum (as costs), then interest, then principal (§ 367 BGB).
    Interest {
        /// Principal as a decimal string in the currency's units, e.g. 1234.56.
        #[arg(long)]
        principal: String,
        /// ISO 4217 currency code of the principal and the payments.
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// First interest day (YYYY-MM-DD), inclusive: the day after default started.
        #[arg(long)]
        from: NaiveDate,
        /// Last interest day (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: NaiveDate,
        /// A consumer is party: base rate + 5 percentage points, no lump sum.
        #[arg(
            long,
            conflicts_with = "business",
            required_unless_present = "business"
        )]
        consumer: bool,
        /// No consumer is party: base rate + 9 percentage points and the € 40 lump sum.
        #[arg(long)]
        business: bool,
        /// A payment received, as DATE:AMOUNT (e.g. 2025-07-16:500.00); repeat for several.
        #[arg(long = "payment", value_name = "DATE:AMOUNT")]
        payments: Vec<String>,
        /// Print JSON: {"periods":[…],"interest_total","lump_sum"} with amounts in minor units.
        #[arg(long)]
        json: bool,
        /// A base-rate table to use instead of the shipped one (the CSV format of
        /// `data/base_rates.csv`; it must keep every published rate).
        #[arg(long, value_name = "FILE")]
        base_rates: Option<PathBuf>,
    },
    /// A deadline after § 193 BGB: DATE + N calendar days, moved past weekends and the
    /// state's public holidays.
    Deadline {
        /// Start date (YYYY-MM-DD), e.g. the letter date.
        #[arg(long)]
        from: NaiveDate,
        /// Number of calendar days.
        #[arg(long)]
        days: i64,
        /// Federal state of the place of performance (BW BY BE BB HB HH HE MV NI NW RP SL SN ST SH TH).
        #[arg(long)]
        state: FederalState,
        /// Print JSON: {"deadline","unmoved","reasons"}.
        #[arg(long)]
        json: bool,
    },
}

/// Dunning policy tools.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file (JSON: one policy, or a policy book with "tenant", "groups" and
    /// "debtors"); prints every error with its field.
    Check {
        /// Path of the policy JSON file.
        file: PathBuf,
    },
    /// Print the steps, fees and interest a case would get under a policy, up to a date.
    Simulate {
        /// Path of the policy JSON file (a single policy).
        file: PathBuf,
        /// Path of the invoice JSON: {"invoice_number","debtor_key","debtor":"consumer"|"business",
        /// "issue_date","due_date","principal":{"minor","currency"},"default_notice"}.
        #[arg(long)]
        invoice: PathBuf,
        /// Path of a JSON array of {"date","command":{"type":"record_payment",…}} to apply on
        /// their dates (payments, disputes, promises, plans, holds, …).
        #[arg(long)]
        events: Option<PathBuf>,
        /// Last day to simulate (YYYY-MM-DD), inclusive.
        #[arg(long)]
        until: NaiveDate,
        /// Print the full preview report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed; `Display` is the complete message for the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not valid: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: policy is invalid:\n{errors}")]
    InvalidPolicy { path: String, errors: String },
    #[error("{0}")]
    Dunning(#[from] DunningError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn parse_amount(text: &str, currency: Currency, what: &str) -> Result<Money, CliError> {
    Money::parse_decimal(text, currency, false).map_err(|e| CliError::Usage(format!("{what}: {e}")))
}

fn parse_payment(text: &str, currency: Currency) -> Result<DatedAmount, CliError> {
    let (date, amount) = text.split_once(':').ok_or_else(|| {
        CliError::Usage(format!(
            "--payment {text:?}: expected DATE:AMOUNT, e.g. 2025-07-16:500.00"
        ))
    })?;
    let date: NaiveDate = date.trim().parse().map_err(|_| {
        CliError::Usage(format!(
            "--payment {text:?}: {date:?} is not a date (YYYY-MM-DD)"
        ))
    })?;
    let amount = parse_amount(amount, currency, &format!("--payment {text:?}"))?;
    if amount.minor <= 0 {
        return Err(CliError::Usage(format!(
            "--payment {text:?}: amount must be greater than zero"
        )));
    }
    Ok(DatedAmount::new(date, amount))
}

/// Run a `law` subcommand, writing its report to `out`.
pub fn run_law(cmd: LawCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        LawCommand::Interest {
            principal,
            currency,
            from,
            to,
            consumer: _,
            business,
            payments,
            json,
            base_rates,
        } => {
            if let Some(path) = &base_rates {
                BaseRateTable::install(BaseRateTable::from_file(path)?)?;
            }
            let currency: Currency = currency.parse().map_err(|_| {
                CliError::Usage(format!("--currency {currency:?}: unknown ISO 4217 code"))
            })?;
            let principal = parse_amount(&principal, currency, "--principal")?;
            if principal.minor < 0 {
                return Err(CliError::Usage("--principal must not be negative".into()));
            }
            let debtor = if business {
                DebtorKind::Business
            } else {
                DebtorKind::Consumer
            };
            let payments = payments
                .iter()
                .map(|p| parse_payment(p, currency))
                .collect::<Result<Vec<_>, _>>()?;
            let lump = lump_sum(debtor, currency);
            let req = InterestRequest {
                principal,
                from,
                to,
                debtor,
                payments,
                costs: lump
                    .map(|m| DatedAmount::new(from, m))
                    .into_iter()
                    .collect(),
                day_count: DayCount::Act365,
            };
            let calc = compute_interest(&req, &BaseRateTable::in_force())?;
            if json {
                let periods: Vec<_> = calc
                    .periods
                    .iter()
                    .map(|p| {
                        json!({
                            "from": p.from, "to": p.to, "days": p.days,
                            "base_rate": p.base_rate.to_string(), "rate": p.rate.to_string(),
                            "principal": p.principal, "interest": p.interest,
                        })
                    })
                    .collect();
                let doc = json!({
                    "periods": periods,
                    "interest_total": calc.interest_total,
                    "lump_sum": lump.map_or(0, |m| m.minor),
                });
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                )?;
                return Ok(());
            }
            let m = |minor: i64| Money::new(minor, currency).to_decimal_string();
            let who = match debtor {
                DebtorKind::Consumer => "consumer party: base rate + 5 points",
                DebtorKind::Business => "no consumer party: base rate + 9 points",
            };
            writeln!(
                out,
                "Default interest (§ 288 BGB, {who}), actual days / 365, {currency}"
            )?;
            writeln!(
                out,
                "{:<10}  {:<10}  {:>5}  {:>9}  {:>6}  {:>14}  {:>10}",
                "from", "to", "days", "base rate", "rate", "principal", "interest"
            )?;
            let mut any_to_verify = false;
            for p in &calc.periods {
                any_to_verify |= p.to_verify;
                writeln!(
                    out,
                    "{:<10}  {:<10}  {:>5}  {:>8}%  {:>5}%  {:>14}  {:>10}{}{}",
                    p.from,
                    p.to,
                    p.days,
                    p.base_rate,
                    p.rate,
                    m(p.principal),
                    m(p.interest),
                    if p.to_verify { " *" } else { "" },
                    if p.provisional { " (provisional)" } else { "" }
                )?;
            }
            for a in &calc.allocations {
                writeln!(
                    out,
                    "payment {} of {}: costs {}, interest {}, principal {}{}",
                    a.date,
                    m(a.amount),
                    m(a.to_costs),
                    m(a.to_interest),
                    m(a.to_principal),
                    if a.surplus > 0 {
                        format!(", surplus {}", m(a.surplus))
                    } else {
                        String::new()
                    }
                )?;
            }
            writeln!(out, "Interest total: {} {currency}", m(calc.interest_total))?;
            match lump {
                Some(l) => writeln!(out, "Lump sum (§ 288 Abs. 5 BGB): {l}")?,
                None => writeln!(out, "Lump sum: none (consumer party or not in EUR)")?,
            }
            writeln!(out, "Rounding: {ROUNDING_RULE}.")?;
            if any_to_verify {
                writeln!(
                    out,
                    "* base rate carried forward, still to be verified against the Bundesbank table"
                )?;
            }
            if calc.provisional {
                writeln!(
                    out,
                    "(provisional) past the base-rate table: the last published rate is used until the table is updated"
                )?;
            }
            Ok(())
        }
        LawCommand::Deadline {
            from,
            days,
            state,
            json,
        } => {
            let dl = deadline(state, from, days);
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&dl).unwrap_or_default()
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "Deadline: {} ({} + {} days in {}, § 193 BGB)",
                dl.deadline, from, days, state
            )?;
            if dl.reasons.is_empty() {
                writeln!(out, "Not moved: {} is a working day.", dl.unmoved)?;
            } else {
                writeln!(out, "Moved from {}:", dl.unmoved)?;
                for r in &dl.reasons {
                    writeln!(out, "  {r}")?;
                }
            }
            Ok(())
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, CliError> {
    serde_json::from_str(text).map_err(|e| CliError::Parse {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Run a `policy` subcommand, writing its report to `out`.
pub fn run_policy(cmd: PolicyCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::Check { file } => {
            let text = read(&file)?;
            let value: serde_json::Value = parse(&file, &text)?;
            let (errors, what) = if value.get("tenant").is_some() {
                let book: PolicyBook = parse(&file, &text)?;
                (
                    book.check(),
                    format!(
                        "policy book with {} override(s)",
                        book.groups.len() + book.debtors.len()
                    ),
                )
            } else {
                let policy: Policy = parse(&file, &text)?;
                (
                    policy.check(),
                    format!(
                        "policy {} version {} with {} step(s)",
                        policy.id,
                        policy.version,
                        policy.steps.len()
                    ),
                )
            };
            if !errors.is_empty() {
                return Err(CliError::InvalidPolicy {
                    path: file.display().to_string(),
                    errors: errors
                        .0
                        .iter()
                        .map(|e| format!("  {e}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                });
            }
            writeln!(out, "{}: ok ({what})", file.display())?;
            Ok(())
        }
        PolicyCommand::Simulate {
            file,
            invoice,
            events,
            until,
            json,
        } => {
            let policy: Policy = parse(&file, &read(&file)?)?;
            let errors = policy.check();
            if !errors.is_empty() {
                return Err(CliError::InvalidPolicy {
                    path: file.display().to_string(),
                    errors: errors
                        .0
                        .iter()
                        .map(|e| format!("  {e}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                });
            }
            let facts: CaseFacts = parse(&invoice, &read(&invoice)?)?;
            let scheduled: Vec<Scheduled> = match &events {
                Some(path) => parse(path, &read(path)?)?,
                None => Vec::new(),
            };
            let case = PreviewCase {
                case_id: facts.invoice_number.clone(),
                facts,
                events: scheduled,
            };
            let report = preview(&policy, std::slice::from_ref(&case), until)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                )?;
                return Ok(());
            }
            writeln!(
                out,
                "Invoice {} under policy {} v{} until {}",
                case.case_id, policy.id, policy.version, until
            )?;
            for l in &report.lines {
                let what = match (&l.step, &l.title) {
                    (Some(n), Some(t)) => format!(
                        "step {n} {t}: fee {}, lump sum {}, interest {}",
                        l.fee, l.lump_sum, l.interest
                    ),
                    _ => l.event_type.clone(),
                };
                writeln!(out, "{}  {what}  (balance {})", l.date, l.balance)?;
            }
            writeln!(
                out,
                "{} step(s), {} escalation(s); fees {}, lump sums {}, interest {}",
                report.steps, report.escalations, report.fees, report.lump_sums, report.interest
            )?;
            Ok(())
        }
    }
}
