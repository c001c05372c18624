//! `mahnwerk dunning …`: the creditor's and operator's dunning decisions over gRPC
//! (`DunningService`): approve or decline in approval mode, assign policies to debtors and
//! groups, move a case to another policy version, and the interventions on a case (pause and
//! resume, promise to pay, payment plan, settlement, skip or repeat a step, write off). Each intervention
//! takes an idempotency key (`--request-id`, by default derived from the request), so running
//! the same command twice changes the case once.

use crate::client::{Connection, authed, channel, status_error};
use anyhow::Context;
use mahnwerk_domain::{Currency, Money};
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_client::DunningServiceClient;

#[derive(Debug, clap::Subcommand)]
pub enum DunningCommand {
    /// Approval mode: let Mahnwerk dun the case.
    Approve {
        /// Case id (UUID).
        #[arg(long)]
        case: String,
        /// Idempotency key (default: `approve-{case}`).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Approval mode: the creditor sends its letters itself (steps become drafts).
    Decline {
        #[arg(long)]
        case: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Assign a policy to a debtor or a group; without `--policy` the assignment is removed.
    Assign {
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        debtor: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        policy: Option<String>,
    },
    /// Put a debtor into a group; without `--group` it leaves its group.
    Group {
        #[arg(long)]
        debtor: String,
        #[arg(long)]
        group: Option<String>,
    },
    /// Hold a case (no step until `resume`, or until `--until`).
    Pause {
        #[arg(long)]
        case: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Last day of the hold (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Release a case's hold.
    Resume {
        #[arg(long)]
        case: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The debtor promised to pay AMOUNT by a date: no step until then.
    Promise {
        #[arg(long)]
        case: String,
        /// Decimal amount, e.g. 120.50.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        until: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Agree a payment plan: `--instalment DATE=AMOUNT`, repeated, dates increasing.
    Plan {
        #[arg(long)]
        case: String,
        #[arg(long = "instalment", required = true)]
        instalments: Vec<String>,
        #[arg(long, default_value = "EUR")]
        currency: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// A settlement (Vergleich): AMOUNT paid by a date settles the case, the rest is waived.
    Settle {
        #[arg(long)]
        case: String,
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        pay_by: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Pass over the case's next step without a letter; the step after it is due at once.
    Skip {
        #[arg(long)]
        case: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Send the case's last letter again (new date and deadline, no second fee).
    Repeat {
        #[arg(long)]
        case: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Write the open balance off: dunning ends.
    WriteOff {
        #[arg(long)]
        case: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Move a case to another policy (its current version, or `--version`).
    Move {
        #[arg(long)]
        case: String,
        #[arg(long)]
        policy: String,
        #[arg(long, default_value_t = 0)]
        version: u32,
        #[arg(long)]
        request_id: Option<String>,
    },
}

/// Call one intervention RPC and print what it changed.
macro_rules! intervene {
    ($api:ident . $rpc:ident, $conn:expr, $req:expr $(,)?) => {{
        let r = $api
            .$rpc(authed($conn, $req)?)
            .await
            .map_err(status_error)?
            .into_inner();
        print_events(&r.case_id, &r.event_types, r.stream_version);
    }};
}

fn print_events(case_id: &str, event_types: &[String], version: u64) {
    if event_types.is_empty() {
        println!("case {case_id}: nothing to change (version {version})");
    } else {
        println!(
            "case {case_id}: {} (version {version})",
            event_types.join(", ")
        );
    }
}

/// `--amount` and `--currency` as the API's money (the amount's fraction digits checked against
/// the currency's).
fn money(field: &str, amount: &str, currency: &str) -> anyhow::Result<pb::Money> {
    let currency: Currency = currency
        .parse()
        .map_err(|_| anyhow::anyhow!("--currency: unknown ISO 4217 code {currency:?}"))?;
    let m = Money::parse_decimal(amount, currency, false)
        .map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
    Ok(pb::Money {
        minor: m.minor,
        currency: currency.to_string(),
    })
}

/// A short key derived from the request, for the default idempotency keys.
fn key_of(parts: &[&str]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(parts.join("\u{1f}").as_bytes())[..8])
}

pub async fn run(conn: Connection, cmd: DunningCommand) -> anyhow::Result<()> {
    let mut api = DunningServiceClient::new(channel(&conn).await?);
    let tenant = conn.tenant.clone();
    match cmd {
        DunningCommand::Approve { case, request_id } => {
            intervene!(
                api.approve_dunning,
                &conn,
                pb::ApproveDunningRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("approve-{case}")),
                    case_id: case,
                },
            );
        }
        DunningCommand::Decline { case, request_id } => {
            intervene!(
                api.decline_dunning,
                &conn,
                pb::DeclineDunningRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("decline-{case}")),
                    case_id: case,
                },
            );
        }
        DunningCommand::Assign {
            debtor,
            group,
            policy,
        } => {
            let who = match (&debtor, &group) {
                (Some(d), _) => format!("debtor {d}"),
                (None, Some(g)) => format!("group {g}"),
                (None, None) => String::new(),
            };
            let r = api
                .assign_policy(authed(
                    &conn,
                    pb::AssignPolicyRequest {
                        tenant,
                        debtor_key: debtor.unwrap_or_default(),
                        group: group.unwrap_or_default(),
                        policy_id: policy.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            match policy {
                Some(p) => println!("{who}: policy {p} (version {})", r.stream_version),
                None => println!("{who}: no own policy (version {})", r.stream_version),
            }
        }
        DunningCommand::Group { debtor, group } => {
            let r = api
                .set_debtor_group(authed(
                    &conn,
                    pb::SetDebtorGroupRequest {
                        tenant,
                        debtor_key: debtor.clone(),
                        group: group.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "debtor {debtor}: group {} (version {})",
                group.as_deref().unwrap_or("none"),
                r.stream_version
            );
        }
        DunningCommand::Pause {
            case,
            reason,
            until,
            request_id,
        } => {
            let until = until.unwrap_or_default();
            intervene!(
                api.pause_case,
                &conn,
                pb::PauseCaseRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| {
                        format!("pause-{case}-{}", key_of(&[&reason, &until]))
                    }),
                    case_id: case,
                    reason,
                    until,
                },
            );
        }
        DunningCommand::Resume { case, request_id } => {
            intervene!(
                api.resume_case,
                &conn,
                pb::ResumeCaseRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("resume-{case}")),
                    case_id: case,
                },
            );
        }
        DunningCommand::Promise {
            case,
            amount,
            currency,
            until,
            request_id,
        } => {
            let key = key_of(&[&amount, &currency, &until]);
            intervene!(
                api.record_promise_to_pay,
                &conn,
                pb::RecordPromiseToPayRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("promise-{case}-{key}")),
                    case_id: case,
                    until,
                    amount: Some(money("--amount", &amount, &currency)?),
                },
            );
        }
        DunningCommand::Plan {
            case,
            instalments,
            currency,
            request_id,
        } => {
            let mut plan = Vec::with_capacity(instalments.len());
            for (i, text) in instalments.iter().enumerate() {
                let (date, amount) = text.split_once('=').with_context(|| {
                    format!("--instalment {}: {text:?} is not DATE=AMOUNT", i + 1)
                })?;
                plan.push(pb::Instalment {
                    date: date.trim().to_owned(),
                    amount: Some(money(
                        &format!("--instalment {}", i + 1),
                        amount.trim(),
                        &currency,
                    )?),
                });
            }
            let parts: Vec<&str> = instalments.iter().map(String::as_str).collect();
            let key = key_of(&parts);
            intervene!(
                api.agree_payment_plan,
                &conn,
                pb::AgreePaymentPlanRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("plan-{case}-{key}")),
                    case_id: case,
                    instalments: plan,
                },
            );
        }
        DunningCommand::Settle {
            case,
            amount,
            currency,
            pay_by,
            request_id,
        } => {
            let key = key_of(&[&amount, &currency, &pay_by]);
            intervene!(
                api.agree_settlement,
                &conn,
                pb::AgreeSettlementRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("settle-{case}-{key}")),
                    case_id: case,
                    amount: Some(money("--amount", &amount, &currency)?),
                    pay_by,
                },
            );
        }
        DunningCommand::Skip {
            case,
            reason,
            request_id,
        } => {
            // No default key from the content: skipping twice on purpose passes over two steps.
            let request_id = request_id.unwrap_or_else(|| {
                format!("skip-{case}-{}", chrono::Utc::now().timestamp_micros())
            });
            intervene!(
                api.skip_step,
                &conn,
                pb::SkipStepRequest {
                    tenant,
                    request_id,
                    case_id: case,
                    reason,
                },
            );
        }
        DunningCommand::Repeat {
            case,
            reason,
            request_id,
        } => {
            // Like skip: repeating twice on purpose sends the letter twice more.
            let request_id = request_id.unwrap_or_else(|| {
                format!("repeat-{case}-{}", chrono::Utc::now().timestamp_micros())
            });
            intervene!(
                api.repeat_step,
                &conn,
                pb::RepeatStepRequest {
                    tenant,
                    request_id,
                    case_id: case,
                    reason,
                },
            );
        }
        DunningCommand::WriteOff {
            case,
            reason,
            request_id,
        } => {
            intervene!(
                api.write_off,
                &conn,
                pb::WriteOffRequest {
                    tenant,
                    request_id: request_id.unwrap_or_else(|| format!("write-off-{case}")),
                    case_id: case,
                    reason,
                },
            );
        }
        DunningCommand::Move {
            case,
            policy,
            version,
            request_id,
        } => {
            intervene!(
                api.move_case_policy,
                &conn,
                pb::MoveCasePolicyRequest {
                    tenant,
                    request_id: request_id
                        .unwrap_or_else(|| format!("move-{case}-{policy}-{version}")),
                    case_id: case,
                    policy_id: policy,
                    version,
                },
            );
        }
    }
    Ok(())
}
