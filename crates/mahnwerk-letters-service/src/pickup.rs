//! A print shop's pickup of the post spool (`mahnwerk spool pickup`): each job the letters
//! service spooled (`{job}.pdf` + `{job}.json`, sealed per debtor with a master key) is opened
//! with this process's data keys and handed out in clear to an out directory, then marked
//! picked up in the spool.
//!
//! The mark is a receipt `{spool}/picked-up/{job}.json`, written to a temporary file, synced and
//! renamed into place: the rename is the commit. A job is pending while its JSON is in the
//! spool and it has no receipt. The order makes every job leave exactly once by its id:
//! - the clear files are written (PDF, then JSON, each by rename, synced) before the receipt,
//!   so a crash in the middle never loses a job: it is still pending, and the rerun writes the
//!   same two files under the same names again (`rewritten`), never a second job;
//! - a job with a receipt is never handed out again, whatever happens to the out directory.
//!
//! A job whose debtor was erased cannot be opened: it is reported (`erased`) and left in the
//! spool, never marked, never written out. Other jobs that cannot be read (a PDF missing, a
//! foreign file) are reported as `failed` and left pending; the rest go on.

use crate::channels::PostSpool;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The receipts' directory inside the spool.
pub const RECEIPTS: &str = "picked-up";

/// One spooled job as `--list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub job_id: String,
    /// `pending` or `picked_up`.
    pub state: &'static str,
    /// When it was picked up (RFC 3339), from its receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picked_up_at: Option<String>,
}

/// What one pickup run did, by job id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Written to the out directory and marked.
    pub picked_up: Vec<String>,
    /// Pending with the same clear files already in the out directory (a run that stopped
    /// before its mark): written again under the same names and marked.
    pub rewritten: Vec<String>,
    /// The debtor was erased: not readable, skipped, left in the spool.
    pub erased: Vec<String>,
    /// Could not be read or written (job id, why); left pending.
    pub failed: Vec<(String, String)>,
    /// Picked up by an earlier run (not handed out again).
    pub already: usize,
}

fn io(context: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", context.display())
}

/// Job ids in the spool: every complete job (`{job}.json`, not a temporary file).
fn job_ids(dir: &Path) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        if let Some(id) = name.strip_suffix(".json") {
            ids.push(id.to_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

fn receipt_path(spool: &Path, job_id: &str) -> PathBuf {
    spool.join(RECEIPTS).join(format!("{job_id}.json"))
}

fn picked_up_at(spool: &Path, job_id: &str) -> Result<Option<String>, String> {
    let path = receipt_path(spool, job_id);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Some(
                v.get("picked_up_at")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

/// Every job in the spool with its state.
pub fn list(spool: &Path) -> Result<Vec<Listed>, String> {
    job_ids(spool)?
        .into_iter()
        .map(|job_id| {
            let at = picked_up_at(spool, &job_id)?;
            Ok(Listed {
                state: if at.is_some() { "picked_up" } else { "pending" },
                picked_up_at: at,
                job_id,
            })
        })
        .collect()
}

/// Write `bytes` to `path` durably and atomically ([`mahnwerk_docstore::write_durably`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    mahnwerk_docstore::write_durably(path, bytes).map_err(|e| io(path, e))
}

/// Whether `path` holds exactly `bytes`.
fn same(path: &Path, bytes: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|b| b == bytes)
}

/// Hand every pending job out to `out` (clear `{job}.pdf`, then `{job}.json`) and mark it
/// picked up; see the module docs for the order and what a crash leaves.
pub async fn pick_up(spool: &PostSpool, out: &Path) -> Result<Report, String> {
    mahnwerk_docstore::create_dir_durably(out).map_err(|e| io(out, e))?;
    let receipts = spool.dir.join(RECEIPTS);
    let mut report = Report::default();
    for job_id in job_ids(&spool.dir)? {
        if picked_up_at(&spool.dir, &job_id)?.is_some() {
            report.already += 1;
            continue;
        }
        let (job, pdf) = match spool.read(&job_id).await {
            Ok(read) => read,
            Err(mahnwerk_docstore::Error::Erased { .. }) => {
                tracing::warn!(job = %job_id, "spooled job of an erased debtor skipped");
                report.erased.push(job_id);
                continue;
            }
            Err(e) => {
                report.failed.push((job_id, e.to_string()));
                continue;
            }
        };
        let json = match serde_json::to_vec_pretty(&job) {
            Ok(j) => j,
            Err(e) => {
                report.failed.push((job_id, e.to_string()));
                continue;
            }
        };
        let (pdf_out, json_out) = (
            out.join(format!("{job_id}.pdf")),
            out.join(format!("{job_id}.json")),
        );
        let again = same(&pdf_out, &pdf) && same(&json_out, &json);
        // The clear job first (its JSON last, as in the spool), then the receipt.
        if let Err(e) = write_atomic(&pdf_out, &pdf).and_then(|()| write_atomic(&json_out, &json)) {
            report.failed.push((job_id, e));
            continue;
        }
        mahnwerk_docstore::create_dir_durably(&receipts).map_err(|e| io(&receipts, e))?;
        let receipt = serde_json::json!({
            "job_id": job_id,
            "picked_up_at": chrono::Utc::now().to_rfc3339(),
            "out": out.display().to_string(),
            "pdf_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pdf)),
        });
        write_atomic(
            &receipt_path(&spool.dir, &job_id),
            receipt.to_string().as_bytes(),
        )?;
        if again {
            report.rewritten.push(job_id);
        } else {
            report.picked_up.push(job_id);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spool_job(spool: &PostSpool, id: &str) {
        let job = crate::channels::PostJob {
            job_id: id,
            tenant: "acme",
            case_id: "c-1",
            letter_id: "l-1",
            document_sha256: "00",
            address: &["Erika Mustermann".into(), "Hauptstr. 1".into()],
            country: "DE",
            registered: false,
            return_receipt: false,
            colour: false,
            duplex: true,
        };
        let owner = mahnwerk_docstore::Owner {
            tenant: "acme".into(),
            subject: "customer:K-1".into(),
        };
        let outcome = spool.submit(&job, b"%PDF-1.4 test", &owner).await;
        assert_eq!(outcome, crate::channels::Outcome::Sent(id.into()));
    }

    #[tokio::test]
    async fn a_rerun_hands_out_nothing_twice_and_a_run_stopped_before_its_mark_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = PostSpool {
            dir: dir.path().join("spool"),
        };
        let out = dir.path().join("out");
        spool_job(&spool, "job-a").await;
        spool_job(&spool, "job-b").await;
        let listed = list(&spool.dir).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|l| l.state == "pending"));

        let first = pick_up(&spool, &out).await.unwrap();
        assert_eq!(first.picked_up, vec!["job-a", "job-b"]);
        assert!(
            std::fs::read(out.join("job-a.pdf"))
                .unwrap()
                .starts_with(b"%PDF")
        );
        let job: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("job-a.json")).unwrap()).unwrap();
        assert_eq!(job["address"][0], "Erika Mustermann");
        assert!(
            list(&spool.dir)
                .unwrap()
                .iter()
                .all(|l| l.state == "picked_up")
        );

        // A rerun, even after the print shop emptied the out directory, hands out nothing.
        std::fs::remove_dir_all(&out).unwrap();
        let second = pick_up(&spool, &out).await.unwrap();
        assert_eq!(second.already, 2);
        assert!(second.picked_up.is_empty() && second.rewritten.is_empty());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);

        // A run that wrote a job out but stopped before its receipt: the job is still pending
        // and the rerun writes the same files under the same names, then marks it.
        spool_job(&spool, "job-c").await;
        let (job, pdf) = spool.read("job-c").await.unwrap();
        std::fs::write(out.join("job-c.pdf"), &pdf).unwrap();
        std::fs::write(
            out.join("job-c.json"),
            serde_json::to_vec_pretty(&job).unwrap(),
        )
        .unwrap();
        let third = pick_up(&spool, &out).await.unwrap();
        assert_eq!(third.rewritten, vec!["job-c"]);
        assert_eq!(third.already, 2);
        let names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_read_is_reported_and_stays_pending() {
        let dir = tempfile::tempdir().unwrap();
        let spool = PostSpool {
            dir: dir.path().join("spool"),
        };
        spool_job(&spool, "job-a").await;
        std::fs::remove_file(spool.dir.join("job-a.pdf")).unwrap();
        let report = pick_up(&spool, &dir.path().join("out")).await.unwrap();
        assert_eq!(report.failed.len(), 1);
        assert_eq!(list(&spool.dir).unwrap()[0].state, "pending");
    }
}
