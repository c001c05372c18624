//! `mahnwerk spool pickup`: a print shop's pickup of the letters service's post spool
//! (`mahnwerk_letters_service::pickup`). With a master key (`MAHNWERK_MASTER_KEY`, the one the
//! service sealed the jobs with) each job is opened with the debtor's data key from the
//! database, written in clear to `--out` and marked picked up in the spool; jobs of erased
//! debtors are reported and skipped.

use crate::config::StoreArgs;
use anyhow::Context as _;
use mahnwerk_letters_service::channels::PostSpool;
use mahnwerk_letters_service::pickup;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum SpoolCommand {
    /// Hand every pending job out in clear (`{job}.pdf`, then `{job}.json`) to `--out` and
    /// mark it picked up (`{spool}/picked-up/{job}.json`): a rerun never hands a job out
    /// twice, a run stopped in the middle loses none. `--list` only lists the jobs.
    Pickup {
        #[command(flatten)]
        store: StoreArgs,
        /// The post spool of the letters service.
        #[arg(long, env = "MAHNWERK_POST_SPOOL", default_value = "var/post-spool")]
        spool: PathBuf,
        /// Where the clear jobs go (the print shop's inbox).
        #[arg(long, required_unless_present = "list")]
        out: Option<PathBuf>,
        /// List the jobs with their state (pending, picked up) and change nothing.
        #[arg(long)]
        list: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: SpoolCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let SpoolCommand::Pickup {
        store,
        spool,
        out: target,
        list,
        json,
    } = cmd;
    if list {
        let jobs = pickup::list(&spool).map_err(anyhow::Error::msg)?;
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&jobs)?)?;
        } else {
            for j in &jobs {
                writeln!(
                    out,
                    "{}\t{}{}",
                    j.job_id,
                    j.state,
                    j.picked_up_at
                        .as_deref()
                        .map(|t| format!("\t{t}"))
                        .unwrap_or_default()
                )?;
            }
            let pending = jobs.iter().filter(|j| j.state == "pending").count();
            writeln!(out, "{} jobs, {pending} pending", jobs.len())?;
        }
        return Ok(());
    }
    let target = target.context("--out is required")?;
    // Opening the log registers this process's data keys (with the master key from the
    // environment), which open the sealed jobs.
    let log = mahnwerk_eventlog::EventLog::connect(&store.database_url)
        .await
        .context("opening the event log (the data keys)")?;
    let report = pickup::pick_up(&PostSpool { dir: spool }, &target)
        .await
        .map_err(anyhow::Error::msg)?;
    drop(log);
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for id in &report.picked_up {
            writeln!(out, "picked up: {id}")?;
        }
        for id in &report.rewritten {
            writeln!(
                out,
                "picked up (written again after an interrupted run): {id}"
            )?;
        }
        for id in &report.erased {
            writeln!(out, "skipped, debtor erased: {id}")?;
        }
        for (id, why) in &report.failed {
            writeln!(out, "failed: {id}: {why}")?;
        }
        writeln!(
            out,
            "{} picked up, {} erased, {} failed, {} picked up before",
            report.picked_up.len() + report.rewritten.len(),
            report.erased.len(),
            report.failed.len(),
            report.already
        )?;
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} jobs could not be picked up", report.failed.len());
    }
    Ok(())
}
