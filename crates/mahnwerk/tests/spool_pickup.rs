//! `mahnwerk spool pickup` against a post spool written by the real letters service with a
//! master key (ADR 006): the sealed jobs are listed, opened and handed out in clear once (a
//! rerun hands out nothing), marked picked up in the spool, and the job of a debtor erased
//! before the pickup is reported and skipped. The server runs as a child process because the
//! master key is process configuration (`MAHNWERK_MASTER_KEY`).

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MASTER: &str = "3a7c1e9b5d2f4a6c8e0b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mahnwerk serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `mahnwerk ARGS` with the master key; (exit ok, stdout, stderr).
fn mahnwerk(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(args)
        .env("MAHNWERK_MASTER_KEY", MASTER)
        .env_remove("MAHNWERK_MASTER_KEY_FILE")
        .env_remove("MAHNWERK_POST_SPOOL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pickup(url: &str, spool: &Path, out: &Path) -> serde_json::Value {
    let (ok, stdout, stderr) = mahnwerk(&[
        "spool",
        "pickup",
        "--database-url",
        url,
        "--spool",
        spool.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "spool pickup: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn listed(url: &str, spool: &Path) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = mahnwerk(&[
        "spool",
        "pickup",
        "--database-url",
        url,
        "--spool",
        spool.to_str().unwrap(),
        "--list",
        "--json",
    ]);
    assert!(ok, "spool pickup --list: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_shop_picks_up_sealed_jobs_once_and_skips_an_erased_debtors_job() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let (spool, out) = (dir.path().join("spool"), dir.path().join("print-shop"));
    let key = tenant_key(&url, "acme").await;
    let port = free_port();
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .args([
                "serve",
                "--database-url",
                &url,
                "--nats-url",
                &nats_url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--namespace",
                &unique("spool"),
                "--services",
                "ingest,relay,dunning,letters",
                "--metrics-listen",
                "off",
            ])
            .env("MAHNWERK_DOCUMENTS_DIR", dir.path().join("documents"))
            .env("MAHNWERK_POST_SPOOL", &spool)
            .env_remove("MAHNWERK_SMTP_HOST")
            .env_remove("MAHNWERK_DOCUMENTS_S3_BUCKET")
            .env("MAHNWERK_MASTER_KEY", MASTER)
            .env_remove("MAHNWERK_MASTER_KEY_FILE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_port(port);
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut invoices = pb::invoice_service_client::InvoiceServiceClient::new(channel.clone());
    let mut letters = pb::letter_service_client::LetterServiceClient::new(channel.clone());
    let mut settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "email_from": "buchhaltung@muster-handel.test",
        "copy_to": {"mode": "inbox"}
    });
    settings["signature"] = "Erika Muster".into();
    letters
        .put_letterhead(authed(
            &key,
            pb::PutLetterheadRequest {
                tenant: String::new(),
                settings_json: settings.to_string(),
            },
        ))
        .await
        .unwrap();

    // Two debtors with an overdue invoice each: dunning's first step goes out by post.
    let mut cases = Vec::new();
    for (number, name, customer) in [
        ("RE-SPOOL-1", "Friedhelm Druckerei-Abholer", "K-101"),
        ("RE-SPOOL-2", "Gundula Gelöscht-Schuldner", "K-102"),
    ] {
        let mut inv = invoice(number);
        inv.payment_reference = String::new();
        let d = inv.debtor.as_mut().unwrap();
        d.name = name.into();
        d.customer_number = customer.into();
        let created = invoices
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    tenant: String::new(),
                    invoice: Some(inv),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        cases.push((created.invoice.unwrap().case_id, name));
    }
    let mut jobs = Vec::new();
    for (case, _) in &cases {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let job = loop {
            let list = letters
                .list_letters(authed(
                    &key,
                    pb::ListLettersRequest {
                        tenant: String::new(),
                        case_id: case.clone(),
                    },
                ))
                .await
                .map(|r| r.into_inner().letters)
                .unwrap_or_default();
            if let Some(l) = list
                .iter()
                .find(|l| l.recipient == "debtor" && l.channel == "post" && l.state == "sent")
            {
                break l.provider_id.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no post letter for {case}: {list:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        jobs.push(job);
    }
    // The spool holds the jobs sealed: the print shop cannot read them without the pickup.
    for job in &jobs {
        for ext in ["pdf", "json"] {
            let bytes = std::fs::read(spool.join(format!("{job}.{ext}"))).unwrap();
            assert!(
                bytes.starts_with(b"MWSEALED1\n"),
                "{job}.{ext} is not sealed"
            );
        }
    }
    let before = listed(&url, &spool);
    for job in &jobs {
        assert!(
            before
                .iter()
                .any(|l| l["job_id"] == job.as_str() && l["state"] == "pending"),
            "{before:?}"
        );
    }

    // The second debtor is erased before the print shop comes.
    let (ok, stdout, stderr) = mahnwerk(&[
        "debtor",
        "erase",
        "--database-url",
        &url,
        "--tenant",
        "acme",
        "--customer-number",
        "K-102",
        "--reason",
        "Art. 17 request 2026-200",
    ]);
    assert!(ok, "{stdout}{stderr}");

    // The pickup hands out the first job in clear and skips the erased debtor's.
    let first = pickup(&url, &spool, &out);
    assert_eq!(first["picked_up"], serde_json::json!([jobs[0]]), "{first}");
    assert_eq!(first["erased"], serde_json::json!([jobs[1]]), "{first}");
    assert_eq!(first["failed"], serde_json::json!([]), "{first}");
    let pdf = std::fs::read(out.join(format!("{}.pdf", jobs[0]))).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("{}.json", jobs[0]))).unwrap())
            .unwrap();
    assert_eq!(job["address"][0], cases[0].1, "{job}");
    assert_eq!(job["case_id"], cases[0].0.as_str());
    assert!(
        !out.join(format!("{}.pdf", jobs[1])).exists(),
        "nothing of the erased debtor reaches the print shop"
    );
    // Marked in the spool; the sealed files stay as they were.
    let after = listed(&url, &spool);
    let state = |job: &str| {
        after
            .iter()
            .find(|l| l["job_id"] == job)
            .map(|l| l["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&jobs[0]).as_deref(), Some("picked_up"));
    assert_eq!(state(&jobs[1]).as_deref(), Some("pending"));
    assert!(
        std::fs::read(spool.join(format!("{}.json", jobs[0])))
            .unwrap()
            .starts_with(b"MWSEALED1\n")
    );

    // A rerun, after the print shop took its files away, hands out nothing twice.
    std::fs::remove_dir_all(&out).unwrap();
    let second = pickup(&url, &spool, &out);
    assert_eq!(second["picked_up"], serde_json::json!([]), "{second}");
    assert_eq!(second["rewritten"], serde_json::json!([]), "{second}");
    assert_eq!(second["already"], 1, "{second}");
    assert_eq!(second["erased"], serde_json::json!([jobs[1]]), "{second}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);

    // The plain listing names both jobs.
    let (ok, text, _) = mahnwerk(&[
        "spool",
        "pickup",
        "--database-url",
        &url,
        "--spool",
        spool.to_str().unwrap(),
        "--list",
    ]);
    assert!(ok);
    assert!(text.contains("2 jobs, 1 pending"), "{text}");
}
