//! `mahnwerk deadletter list|show|replay`: the operator's view of events a consumer gave up on.
//!
//! Reads the dead-letter stream of a namespace (`<NS>_DEADLETTER`); `replay` hands one back to
//! its consumer on `<ns>.replay.<consumer>` (see `mahnwerk_bus::deadletter`).

use anyhow::Context as _;
use mahnwerk_bus::BusConfig;
use mahnwerk_bus::deadletter::{self, DeadLetter};
use std::io::Write;

/// Where the dead letters live.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// NATS server with JetStream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Namespace of the JetStream subjects and streams.
    #[arg(long, env = "MAHNWERK_NAMESPACE", default_value = "mahnwerk")]
    pub namespace: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum DeadletterCommand {
    /// List dead letters, oldest first: sequence, time, consumer, reason, event type, error.
    List {
        #[command(flatten)]
        bus: BusArgs,
        /// Only this consumer's.
        #[arg(long)]
        consumer: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter: its headers and the original event.
    Show {
        #[command(flatten)]
        bus: BusArgs,
        /// Sequence in the dead-letter stream (from `list`).
        sequence: u64,
    },
    /// Hand a dead letter back to its consumer, which handles it again (once).
    Replay {
        #[command(flatten)]
        bus: BusArgs,
        /// Sequence in the dead-letter stream (from `list`).
        sequence: u64,
    },
}

fn summary(dl: &DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "sequence": dl.sequence,
        "time": dl.time.map(|t| t.to_rfc3339()),
        "consumer": dl.consumer,
        "reason": dl.reason,
        "event_type": dl.event_type,
        "event_id": dl.event_id,
        "error": dl.error,
        "original_subject": dl.original_subject,
        "original_stream": dl.original_stream,
        "original_sequence": dl.original_sequence,
        "delivered": dl.delivered,
    })
}

/// Run one `deadletter` command, writing to `out`.
pub async fn run(cmd: DeadletterCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let args = match &cmd {
        DeadletterCommand::List { bus, .. }
        | DeadletterCommand::Show { bus, .. }
        | DeadletterCommand::Replay { bus, .. } => bus.clone(),
    };
    let bus = BusConfig::with_namespace(&args.namespace);
    let js = mahnwerk_bus::connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    match cmd {
        DeadletterCommand::List { consumer, json, .. } => {
            let letters = deadletter::list(&js, &bus, consumer.as_deref()).await?;
            if json {
                for dl in &letters {
                    writeln!(out, "{}", summary(dl))?;
                }
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<20}  {:<16} {:<11} {:<28} error",
                    "seq", "time", "consumer", "reason", "event type"
                )?;
                for dl in &letters {
                    let mut error = dl.error.clone();
                    if error.chars().count() > 80 {
                        error = error.chars().take(77).collect::<String>() + "...";
                    }
                    writeln!(
                        out,
                        "{:>6}  {:<20}  {:<16} {:<11} {:<28} {error}",
                        dl.sequence,
                        dl.time
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default(),
                        dl.consumer,
                        dl.reason,
                        dl.event_type.as_deref().unwrap_or("?"),
                    )?;
                }
                writeln!(out, "{} dead letter(s)", letters.len())?;
            }
        }
        DeadletterCommand::Show { sequence, .. } => {
            let dl = deadletter::show(&js, &bus, sequence).await?;
            let mut doc = summary(&dl);
            let headers: serde_json::Map<String, serde_json::Value> = dl
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        serde_json::Value::String(
                            v.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                        ),
                    )
                })
                .collect();
            doc["headers"] = headers.into();
            doc["event"] = match serde_json::from_slice::<serde_json::Value>(&dl.payload) {
                Ok(v) => v,
                Err(_) => String::from_utf8_lossy(&dl.payload).into_owned().into(),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        DeadletterCommand::Replay { sequence, .. } => {
            let r = deadletter::replay(&js, &bus, sequence).await?;
            if r.duplicate {
                writeln!(
                    out,
                    "dead letter {sequence} was already replayed (to {}, replay sequence {})",
                    r.subject, r.sequence
                )?;
            } else {
                writeln!(
                    out,
                    "replayed dead letter {sequence} to {} (replay sequence {})",
                    r.subject, r.sequence
                )?;
            }
        }
    }
    Ok(())
}
