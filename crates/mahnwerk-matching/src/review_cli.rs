//! `mahnwerk review`: the review queue of a running mahnwerk from the command line, over the
//! same `PaymentService` calls as any other client (`ListUnmatched`, `MatchManually`,
//! `MarkNotOurs`, `UndoMatch`). Every action is an event with the key's actor, as over gRPC.
//!
//! - `review list [--json] [--all]`: the entries waiting for a person, one per line;
//! - `review show ENTRY`: one entry of the queue with its candidates;
//! - `review match ENTRY CASE[=MINOR]…`: apply the entry to one case, or split it over several
//!   (the amounts in minor units; a case without an amount takes the rest);
//! - `review not-ours ENTRY [--note …]`: the payment is not for this creditor;
//! - `review undo ENTRY --reason …`: reverse a match (automatic or manual); the entry returns to
//!   the queue.

use mahnwerk_proto::v1 as pb;
use pb::payment_service_client::PaymentServiceClient;
use serde_json::json;
use std::io::Write;
use tonic::transport::Channel;

/// Subcommands of `mahnwerk review`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ReviewCommand {
    /// List the entries waiting for a person (first page of 100 unless `--all`).
    List {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one entry of the queue (as JSON) with the reason and the cases it points at.
    Show { entry: String },
    /// Apply the entry to one case, or split it: `CASE=MINOR` parts; one part may omit the
    /// amount and takes what the others leave (at least one part is required).
    Match {
        entry: String,
        #[arg(required = true, value_name = "CASE[=MINOR]")]
        parts: Vec<String>,
        /// A note kept with the decision (no personal data).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Mark the entry as not for this creditor; it leaves the queue.
    NotOurs {
        entry: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reverse the entry's payments; it returns to the queue.
    Undo {
        entry: String,
        /// Why (kept in `payment.reversed.v1`).
        #[arg(long)]
        reason: String,
    },
}

fn authed<T>(api_key: &str, body: T) -> Result<tonic::Request<T>, String> {
    let mut req = tonic::Request::new(body);
    let auth = format!("Bearer {api_key}")
        .parse()
        .map_err(|_| "the API key is not a valid header value".to_owned())?;
    req.metadata_mut().insert("authorization", auth);
    Ok(req)
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn entry_json(e: &pb::UnmatchedEntry) -> serde_json::Value {
    let (minor, currency) = e
        .amount
        .as_ref()
        .map_or((0, String::new()), |m| (m.minor, m.currency.clone()));
    json!({
        "entry_id": e.entry_id,
        "amount": {"minor": minor, "currency": currency},
        "booking_date": e.booking_date,
        "counterparty_name": e.counterparty_name,
        "counterparty_iban": e.counterparty_iban,
        "remittance": e.remittance,
        "references": e.references,
        "reason": e.reason,
        "candidate_case_ids": e.candidate_case_ids,
    })
}

fn entry_line(e: &pb::UnmatchedEntry) -> String {
    let amount = e.amount.as_ref().map_or_else(String::new, |m| {
        format!(
            "{}{}.{:02} {}",
            if m.minor < 0 { "-" } else { "" },
            m.minor.unsigned_abs() / 100,
            m.minor.unsigned_abs() % 100,
            m.currency
        )
    });
    let mut line = format!(
        "{}  {}  {}  {}: {}",
        e.entry_id, e.booking_date, amount, e.counterparty_name, e.reason
    );
    if !e.candidate_case_ids.is_empty() {
        line.push_str(&format!(
            " (candidates: {})",
            e.candidate_case_ids.join(", ")
        ));
    }
    line
}

/// Parse `CASE[=MINOR]` parts: at most one without an amount, which then takes `total` minus
/// the others (the server adds any rest of the entry to the last part).
fn parse_parts(parts: &[String], total: i64) -> Result<Vec<pb::ManualAllocation>, String> {
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    for (i, p) in parts.iter().enumerate() {
        let (case, amount) = match p.split_once('=') {
            Some((c, a)) => {
                let minor: i64 = a.trim().parse().map_err(|_| {
                    format!(
                        "part {} ({p}): the amount must be an integer in minor units",
                        i + 1
                    )
                })?;
                (c.trim(), Some(minor))
            }
            None => (p.trim(), None),
        };
        if case.is_empty() {
            return Err(format!("part {} ({p}): the case id is missing", i + 1));
        }
        if amount.is_none() {
            if open.is_some() {
                return Err("only one part may leave out its amount".into());
            }
            open = Some(out.len());
        }
        out.push(pb::ManualAllocation {
            case_id: case.to_owned(),
            amount_minor: amount.unwrap_or(0),
        });
    }
    if let Some(i) = open {
        let others: i64 = out.iter().map(|a| a.amount_minor).sum();
        out[i].amount_minor = total - others;
        // The part that takes the rest goes last: the server gives any rest to the last part.
        let rest = out.remove(i);
        out.push(rest);
    }
    Ok(out)
}

async fn queue(
    client: &mut PaymentServiceClient<Channel>,
    api_key: &str,
    tenant: &str,
    all: bool,
) -> Result<Vec<pb::UnmatchedEntry>, String> {
    let mut entries = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_unmatched(authed(
                api_key,
                pb::ListUnmatchedRequest {
                    tenant: tenant.to_owned(),
                    page_size: 500,
                    page_token: token.clone(),
                },
            )?)
            .await
            .map_err(status)?
            .into_inner();
        entries.extend(page.entries);
        if !all || page.next_page_token.is_empty() {
            return Ok(entries);
        }
        token = page.next_page_token;
    }
}

async fn find(
    client: &mut PaymentServiceClient<Channel>,
    api_key: &str,
    tenant: &str,
    entry: &str,
) -> Result<pb::UnmatchedEntry, String> {
    queue(client, api_key, tenant, true)
        .await?
        .into_iter()
        .find(|e| e.entry_id == entry)
        .ok_or_else(|| format!("entry {entry} is not in the review queue"))
}

/// Run a review command against `server` with `api_key`, writing what it did to `out`.
pub async fn review(
    server: &str,
    api_key: &str,
    tenant: &str,
    cmd: ReviewCommand,
    out: &mut (dyn Write + Send),
) -> Result<(), String> {
    let mut client = PaymentServiceClient::connect(server.to_owned())
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    let w = |out: &mut (dyn Write + Send), s: String| {
        writeln!(out, "{s}").map_err(|e| format!("output: {e}"))
    };
    match cmd {
        ReviewCommand::List { json, all } => {
            let entries = queue(&mut client, api_key, tenant, all).await?;
            for e in &entries {
                w(
                    out,
                    if json {
                        entry_json(e).to_string()
                    } else {
                        entry_line(e)
                    },
                )?;
            }
            if !json {
                w(out, format!("{} entries waiting for review", entries.len()))?;
            }
        }
        ReviewCommand::Show { entry } => {
            let e = find(&mut client, api_key, tenant, &entry).await?;
            let text = serde_json::to_string_pretty(&entry_json(&e))
                .map_err(|e| format!("output: {e}"))?;
            w(out, text)?;
        }
        ReviewCommand::Match { entry, parts, note } => {
            let total = if parts.iter().any(|p| !p.contains('=')) {
                let e = find(&mut client, api_key, tenant, &entry).await?;
                e.amount.map_or(0, |m| m.minor)
            } else {
                0
            };
            let allocations = parse_parts(&parts, total)?;
            let r = client
                .match_manually(authed(
                    api_key,
                    pb::MatchManuallyRequest {
                        tenant: tenant.to_owned(),
                        entry_id: entry.clone(),
                        allocations: allocations.clone(),
                        note,
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            let decision = r.result.map(|r| r.decision).unwrap_or_default();
            let to: Vec<String> = allocations
                .iter()
                .map(|a| format!("{} ({})", a.case_id, a.amount_minor))
                .collect();
            w(out, format!("{entry}: {decision} to {}", to.join(", ")))?;
        }
        ReviewCommand::NotOurs { entry, note } => {
            client
                .mark_not_ours(authed(
                    api_key,
                    pb::MarkNotOursRequest {
                        tenant: tenant.to_owned(),
                        entry_id: entry.clone(),
                        note,
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                )?)
                .await
                .map_err(status)?;
            w(out, format!("{entry}: marked as not ours"))?;
        }
        ReviewCommand::Undo { entry, reason } => {
            let r = client
                .undo_match(authed(
                    api_key,
                    pb::UndoMatchRequest {
                        tenant: tenant.to_owned(),
                        entry_id: entry.clone(),
                        reason,
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                )?)
                .await
                .map_err(status)?
                .into_inner();
            w(
                out,
                format!(
                    "{entry}: {} payments reversed ({}), back in the review queue",
                    r.payment_ids.len(),
                    r.payment_ids.join(", ")
                ),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn a_part_without_amount_takes_the_rest_and_goes_last() {
        let p = parse_parts(&s(&["a", "b=4000"]), 10000).unwrap();
        assert_eq!(
            p.iter()
                .map(|a| (a.case_id.as_str(), a.amount_minor))
                .collect::<Vec<_>>(),
            [("b", 4000), ("a", 6000)]
        );
    }

    #[test]
    fn bad_parts_are_named() {
        assert!(
            parse_parts(&s(&["a", "b"]), 1)
                .unwrap_err()
                .contains("only one")
        );
        assert!(
            parse_parts(&s(&["a=1,5"]), 1)
                .unwrap_err()
                .contains("part 1 (a=1,5)")
        );
        assert!(parse_parts(&s(&["=5"]), 1).unwrap_err().contains("case id"));
    }
}
