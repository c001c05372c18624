//! `mahnwerk dunning …`: the creditor's and operator's dunning decisions over gRPC
//! (`DunningService`): approve or decline in approval mode, assign policies to debtors and
//! groups, move a case to another policy version.

use crate::client::{Connection, authed, channel, status_error};
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

pub async fn run(conn: Connection, cmd: DunningCommand) -> anyhow::Result<()> {
    let mut api = DunningServiceClient::new(channel(&conn).await?);
    let tenant = conn.tenant.clone();
    match cmd {
        DunningCommand::Approve { case, request_id } => {
            let r = api
                .approve_dunning(authed(
                    &conn,
                    pb::ApproveDunningRequest {
                        tenant,
                        request_id: request_id.unwrap_or_else(|| format!("approve-{case}")),
                        case_id: case,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            print_events(&r.case_id, &r.event_types, r.stream_version);
        }
        DunningCommand::Decline { case, request_id } => {
            let r = api
                .decline_dunning(authed(
                    &conn,
                    pb::DeclineDunningRequest {
                        tenant,
                        request_id: request_id.unwrap_or_else(|| format!("decline-{case}")),
                        case_id: case,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            print_events(&r.case_id, &r.event_types, r.stream_version);
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
        DunningCommand::Move {
            case,
            policy,
            version,
            request_id,
        } => {
            let r = api
                .move_case_policy(authed(
                    &conn,
                    pb::MoveCasePolicyRequest {
                        tenant,
                        request_id: request_id
                            .unwrap_or_else(|| format!("move-{case}-{policy}-{version}")),
                        case_id: case,
                        policy_id: policy,
                        version,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            print_events(&r.case_id, &r.event_types, r.stream_version);
        }
    }
    Ok(())
}
