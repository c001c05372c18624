//! Exactly once under real crashes (issue #13, must-show 3): a child `mahnwerk serve --services
//! relay,letters` is killed with SIGKILL at random moments, at least 20 times, while it
//! dispatches `LETTERS_CRASH_N` letters (default 120; rendering costs ~0.2 s of CPU per letter
//! in a debug build) by email to a real SMTP server (aiosmtpd on loopback) and by post into the
//! spool, and restarted each time. Afterwards every letter was delivered exactly once or is
//! `unknown` (flagged for review: killed during the SMTP conversation), none twice, counted
//! where they arrive (the mailbox and the spool) against the dispatch ledger and the case
//! streams. Cases settled before their step get no letter.
//!
//! At the size (`LETTERS_CRASH_N=1000`, debug build, 2026-12-01 on the shared 2-core
//! machine, load ≈ 13): 24 SIGKILLs, 483 s; 895 sent, 5 unknown (flagged for review), 100
//! suppressed (settled before their step); 499 distinct emails at the SMTP server and 399 jobs in
//! the spool, none twice; every `sent` letter delivered exactly once. (`LETTERS_CRASH_KILLS`
//! sets the number of kills; the pause before a kill grows with `n`, so they spread over the
//! run.)
//!
//! The in-process variant (the service's task aborted) is
//! `mahnwerk-letters-service/tests/crash.rs`; this one kills the process the operator runs.

mod common;

use common::*;
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, StreamId, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_letters_service::store::{self, state};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn letters() -> usize {
    std::env::var("LETTERS_CRASH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// SIGKILLs (`LETTERS_CRASH_KILLS`, default 24; at least 20 are required).
fn kills_wanted() -> usize {
    std::env::var("LETTERS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = std::env::var("MAHNWERK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no python with aiosmtpd at {}: run `make pyenv`",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// aiosmtpd on loopback, saving every message to `mail` (the letters service's test sink).
async fn smtp_sink(mail: &Path) -> (Killed, u16) {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../mahnwerk-letters-service/tests/smtp_sink.py");
    let child = Command::new(python())
        .arg(script)
        .arg(port.to_string())
        .arg(mail)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sink = Killed(child);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            sink.0.try_wait().unwrap().is_none(),
            "smtp_sink.py exited: is aiosmtpd installed (tests/requirements.txt)?"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SMTP sink did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sink, port)
}

struct Setup {
    dir: PathBuf,
    url: String,
    namespace: String,
    smtp_port: u16,
}

fn spawn_serve(s: &Setup, run: u32) -> Killed {
    let log = std::fs::File::create(s.dir.join(format!("serve-{run}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["serve", "--services", "relay,letters"])
        .env("MAHNWERK_DATABASE_URL", &s.url)
        .env("NATS_URL", nats_url())
        .env("MAHNWERK_NAMESPACE", &s.namespace)
        .env("MAHNWERK_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("MAHNWERK_METRICS_LISTEN", "off")
        .env("MAHNWERK_DOCUMENTS_DIR", s.dir.join("documents"))
        .env("MAHNWERK_POST_SPOOL", s.dir.join("spool"))
        .env("MAHNWERK_SMTP_HOST", "127.0.0.1")
        .env("MAHNWERK_SMTP_PORT", s.smtp_port.to_string())
        .env("MAHNWERK_SMTP_TLS", "none")
        .env_remove("MAHNWERK_SMTP_USERNAME")
        .env_remove("MAHNWERK_DOCUMENTS_S3_BUCKET")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mahnwerk serve");
    Killed(child)
}

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event_type.into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

/// An invoice as ingest writes it; with an email address the letter goes by email.
fn issued(number: &str, email: Option<&str>) -> NewEvent {
    let invoice: mahnwerk_domain::Invoice = serde_json::from_value(serde_json::json!({
        "number": number, "issue_date": "2026-01-15", "due_date": "2026-01-29",
        "currency": "EUR", "net": 100000, "tax": 19000, "gross": 119000,
        "debtor": {"name": "Bäckerei Größl OHG", "kind": "business",
            "address": {"street": ["Mühlenweg 12"], "postal_code": "80331", "city": "München", "country": "DE"},
            "email": email, "language": "de", "customer_number": null, "vat_id": null},
        "payment_reference": null,
        "creditor_account": {"iban": "DE89370400440532013000", "bic": null, "holder": "Muster Handels GmbH"},
        "default_notice": false
    }))
    .unwrap();
    let e = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    event(e.event_type(), e.to_payload())
}

/// The first dunning step as the dunning service writes it.
fn step() -> NewEvent {
    event(
        "dunning.step_reached.v1",
        serde_json::json!({
            "number": 1, "title": "Zahlungserinnerung", "tone": "friendly", "template_id": "reminder",
            "channels": ["email", "post"], "date": "2026-02-05",
            "fee": {"minor": 0, "currency": "EUR"}, "fee_waived": null,
            "lump_sum": {"minor": 0, "currency": "EUR"}, "interest_charged": {"minor": 0, "currency": "EUR"},
            "interest": null, "default": null, "creates_default": true,
            "deadline": {"deadline": "2026-02-19", "unmoved": "2026-02-19", "reasons": []},
            "principal_open": {"minor": 119000, "currency": "EUR"}, "balance": {"minor": 119000, "currency": "EUR"}
        }),
    )
}

async fn rows(pool: &sqlx::AnyPool) -> Vec<store::LedgerRow> {
    // Before the service's first start its tables do not exist yet.
    store::all_rows(pool).await.unwrap_or_default()
}

/// Letters past `rendered` (being sent or final): the progress a kill interrupts.
fn progress(rows: &[store::LedgerRow]) -> usize {
    rows.iter()
        .filter(|r| ![state::INTENT, state::RENDERED].contains(&r.state.as_str()))
        .count()
}

/// The debtor's letters past rendering: how far the dispatch is.
fn debtor_progress(rows: &[store::LedgerRow]) -> usize {
    rows.iter()
        .filter(|r| r.recipient == "debtor")
        .filter(|r| ![state::INTENT, state::RENDERED].contains(&r.state.as_str()))
        .count()
}

fn all_final(rows: &[store::LedgerRow], n: usize) -> bool {
    rows.iter().filter(|r| r.recipient == "debtor").count() >= n
        && rows.iter().all(|r| {
            r.reported
                && ![state::INTENT, state::RENDERED, state::SENDING].contains(&r.state.as_str())
        })
}

/// The Message-ID local part of every message the sink received (our ledger row ids), counted.
fn mailbox(dir: &Path) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.split('@').next())
            .expect("every message has our Message-ID")
            .to_owned();
        *out.entry(id).or_default() += 1;
    }
    out
}

/// The job ids in the post spool, counted (a job is `{id}.json` beside its PDF).
fn spool(dir: &Path) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let job: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        *out.entry(job["job_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_while_dispatching_sends_no_letter_twice() {
    let n = letters();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let url = format!("sqlite:{}?mode=rwc", dir.join("mahnwerk.db").display());
    let mail = dir.join("mail");
    let (_sink, smtp_port) = smtp_sink(&mail).await;
    let setup = Setup {
        dir: dir.clone(),
        url: url.clone(),
        namespace: unique("lcrash"),
        smtp_port,
    };
    tenant_key(&url, "acme").await;
    let tenant: TenantId = "acme".parse().unwrap();
    let log = EventLog::connect(&url).await.unwrap();
    let settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "signature": "Erika Muster, Buchhaltung",
        "email_from": "Muster Handels GmbH <buchhaltung@muster-handel.test>",
        "copy_to": {"mode": "inbox"}
    });
    log.append(AppendBatch {
        stream: mahnwerk_letters_service::tenant::stream(&tenant),
        expected: ExpectedVersion::Any,
        events: vec![event("letterhead.updated.v1", settings)],
    })
    .await
    .unwrap();
    // Half by email, half by post; every tenth case settled before its step.
    let mut settled_before = HashSet::new();
    let mut batches = Vec::new();
    for i in 0..n {
        let number = format!("RE-KILL-{i:04}");
        let case = CaseId::for_invoice(&tenant, &number.parse().unwrap());
        let email = (i % 2 == 0).then(|| format!("kunde{i}@debtor.test"));
        let mut events = vec![issued(&number, email.as_deref()), step()];
        if i % 10 == 3 {
            events.insert(
                1,
                event(
                    "invoice.settled.v1",
                    serde_json::json!({"settled_on": "2026-02-04", "by": "e1:c1"}),
                ),
            );
            settled_before.insert(case.0.to_string());
        }
        batches.push(AppendBatch {
            stream: case.stream(&tenant),
            expected: ExpectedVersion::NoStream,
            events,
        });
    }
    for r in log.append_many(batches).await.unwrap() {
        r.unwrap();
    }

    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut next = || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut run = 0;
    let mut kills = 0;
    let mut serve = spawn_serve(&setup, run);
    // Kill it at random moments while letters are still being dispatched, at least 20 times.
    // A kill waits for progress, not for time: each run may advance a random share of what is
    // left spread over the kills still wanted, then it is killed a few milliseconds later, so
    // the kills spread over the whole dispatch however fast the machine is.
    while kills < kills_wanted() {
        let before = progress(&rows(&pool).await);
        let left = n.saturating_sub(debtor_progress(&rows(&pool).await));
        let quota = (left / (kills_wanted() - kills + 1)).max(1);
        let target = before + 1 + usize::try_from(next()).unwrap() % quota;
        let start = tokio::time::Instant::now();
        let mut finished = false;
        loop {
            let now = rows(&pool).await;
            if all_final(&now, n) {
                finished = true;
                break;
            }
            if progress(&now) >= target {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no progress after restart {run}: see {}",
                dir.join(format!("serve-{run}.log")).display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(next() % 40)).await;
        serve.0.kill().unwrap(); // SIGKILL
        serve.0.wait().unwrap();
        kills += 1;
        run += 1;
        serve = spawn_serve(&setup, run);
    }
    let budget = 600 + 3 * u64::try_from(n).unwrap();
    wait_for("every letter final", budget, || async {
        all_final(&rows(&pool).await, n)
    })
    .await;
    drop(serve);

    let rows = rows(&pool).await;
    let mailbox = mailbox(&mail);
    let spooled = spool(&dir.join("spool"));
    assert!(mailbox.values().all(|&c| c == 1), "an email went out twice");
    assert!(spooled.values().all(|&c| c == 1), "a job was spooled twice");
    let (mut sent, mut unknown, mut suppressed) = (0, 0, 0);
    let mut delivered_per_case: HashMap<&str, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.recipient == "debtor") {
        let delivered = match r.channel.as_str() {
            "email" => mailbox.get(&r.id).copied().unwrap_or(0),
            "post" => spooled.get(&r.id).copied().unwrap_or(0),
            other => panic!("unexpected channel {other}"),
        };
        match r.state.as_str() {
            state::SENT => {
                sent += 1;
                assert_eq!(delivered, 1, "sent but not delivered: {r:?}");
            }
            // Killed during the send: it may or may not have gone out; never resent.
            state::UNKNOWN => unknown += 1,
            state::SUPPRESSED => {
                suppressed += 1;
                assert_eq!(delivered, 0, "suppressed but delivered: {r:?}");
            }
            other => panic!("unexpected final state {other}: {r:?}"),
        }
        *delivered_per_case.entry(r.case_id.as_str()).or_default() += delivered;
    }
    // Every delivery belongs to a ledger row: nothing went out that the ledger does not know.
    let ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert!(
        mailbox
            .keys()
            .chain(spooled.keys())
            .all(|k| ids.contains(k.as_str()))
    );
    // One letter per case (the email ones fall back to post only on a permanent rejection).
    assert_eq!(rows.iter().filter(|r| r.recipient == "debtor").count(), n);
    for case in &settled_before {
        assert_eq!(
            delivered_per_case.get(case.as_str()).copied().unwrap_or(0),
            0,
            "case {case} was settled before its step and got a letter"
        );
    }
    assert_eq!(suppressed, settled_before.len());
    assert_eq!(sent + unknown + suppressed, n);
    // The case streams agree: one `letter.dispatched.v1` per sent letter, one
    // `letter.failed.v1` with review_required per unknown one.
    let (mut dispatched, mut review) = (0, 0);
    for i in 0..n {
        let number = format!("RE-KILL-{i:04}");
        let case = CaseId::for_invoice(&tenant, &number.parse().unwrap());
        let stream: StreamId = case.stream(&tenant);
        for e in log.read_stream(&stream, 1, 100).await.unwrap() {
            match e.event_type.as_str() {
                "letter.dispatched.v1" => dispatched += 1,
                // The creditor's copies can be killed mid-send too; the ledger rows counted
                // above are the debtor's letters.
                "letter.failed.v1"
                    if e.payload["review_required"] == true
                        && e.payload["recipient"] == "debtor" =>
                {
                    review += 1
                }
                _ => {}
            }
        }
    }
    assert_eq!((dispatched, review), (sent, unknown));
    assert!(
        kills >= 20,
        "only {kills} kills before the letters were done (raise LETTERS_CRASH_N)"
    );
    eprintln!(
        "letters: {n}, SIGKILLs: {kills}, sent: {sent}, unknown (review): {unknown}, suppressed: {suppressed}, emails: {}, spooled: {}",
        mailbox.len(),
        spooled.len()
    );
}
