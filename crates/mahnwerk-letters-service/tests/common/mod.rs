//! Test harness: real helper servers (moto for S3, aiosmtpd for SMTP) started from the
//! project's Python (`MAHNWERK_PYTHON`, default `.venv/bin/python` at the workspace root), real
//! NATS (`NATS_URL`) and a real SQLite event log. A missing tool fails the test with a message.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the letters service tests: run `make pyenv` (creates {} with moto[server] and aiosmtpd from tests/requirements.txt) or set MAHNWERK_PYTHON",
        venv.display()
    );
    venv
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `python args…` and wait until it accepts connections on `port`.
pub async fn start_python(what: &str, args: &[&str], port: u16) -> ChildGuard {
    let py = python();
    let child = Command::new(&py)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} with {}: {e}", py.display()));
    let mut guard = ChildGuard(child);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return guard;
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!(
                "{what} exited with {status} before listening on port {port}: is it installed in {}? (`make pyenv`, tests/requirements.txt)",
                py.display()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for `cond` with a deadline (no sleeps as synchronisation).
pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An SMTP server (aiosmtpd) saving every message to `dir` as `{n}.eml`; RCPT TO any address
/// in `reject` is answered 550.
pub async fn smtp_sink(dir: &std::path::Path, reject: &[&str]) -> (ChildGuard, u16) {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
    let port_s = port.to_string();
    let dir_s = dir.display().to_string();
    let reject_s = reject.join(",");
    let guard = start_python(
        "aiosmtpd",
        &[
            script.to_str().expect("utf-8 path"),
            &port_s,
            &dir_s,
            &reject_s,
        ],
        port,
    )
    .await;
    (guard, port)
}

/// The messages the sink saved.
pub fn received(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "eml") {
                out.push(std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

use chrono::NaiveDate;
use mahnwerk_bus::{BusConfig, Relay};
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{
    BankAccount, CaseId, Currency, Debtor, DebtorKind, Invoice, Money, Personal, PostalAddress,
    StreamId, TenantId,
};
use mahnwerk_dunning::dunning_case::{DunningEvent, StepReached};
use mahnwerk_dunning::law::calendar::Deadline;
use mahnwerk_dunning::policy::{Channel, Tone};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_letters::events::{CopyTo, LetterSettings};
use mahnwerk_letters_service::channels::SmtpConfig;
use mahnwerk_letters_service::{Config, DocumentConfig, Parts};

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("date")
}

pub fn invoice(number: &str, email: Option<&str>) -> Invoice {
    Invoice {
        number: number.parse().expect("invoice number"),
        issue_date: d(2026, 1, 15),
        due_date: d(2026, 1, 29),
        currency: Currency::EUR,
        net: 100_000,
        tax: 19_000,
        gross: 119_000,
        debtor: Debtor {
            name: Personal::new("Bäckerei Größl OHG".into()),
            kind: DebtorKind::Business,
            address: Personal::new(PostalAddress {
                street: vec!["Mühlenweg 12".into()],
                postal_code: "80331".into(),
                city: "München".into(),
                country: "DE".into(),
                region: None,
            }),
            email: email.map(|e| Personal::new(e.to_owned())),
            language: "de".into(),
            customer_number: Some("K-10042".into()),
            vat_id: None,
        },
        payment_reference: None,
        creditor_account: BankAccount {
            iban: "DE89370400440532013000".parse().expect("iban"),
            bic: None,
            holder: Some("Muster Handels GmbH".into()),
        },
        default_notice: false,
        prepaid: 0,
        rounding: 0,
        cash_discounts: vec![],
        source: None,
        direct_debit: None,
        due_date_by_calendar: false,
    }
}

pub fn step(number: u32) -> StepReached {
    StepReached {
        number,
        title: "1. Mahnung".into(),
        tone: Tone::Neutral,
        template_id: "dunning-1".into(),
        channels: vec![Channel::Email, Channel::Post],
        date: d(2026, 3, 16),
        fee: Money::eur(500),
        fee_waived: None,
        lump_sum: Money::eur(4000),
        fee_offset: None,
        interest_charged: Money::eur(0),
        interest: None,
        default: None,
        creates_default: false,
        deadline: Deadline {
            deadline: d(2026, 3, 30),
            unmoved: d(2026, 3, 30),
            reasons: vec![],
        },
        principal_open: Money::eur(119_000),
        balance: Money::eur(123_500),
        draft: false,
        consolidation: None,
        repeat: None,
    }
}

pub fn settings(copy_to: CopyTo) -> LetterSettings {
    let sample = mahnwerk_letters::model::sample();
    LetterSettings {
        letterhead: sample.letterhead,
        signature: Some("Erika Muster, Buchhaltung".into()),
        email_from: "Muster Handels GmbH <buchhaltung@muster-handel.test>".into(),
        reply_to: Some("buchhaltung@muster-handel.test".into()),
        copy_to,
        email_fallback_to_post: true,
        registered_steps: vec![3],
        return_receipt_steps: vec![],
        drafts_only: false,
    }
}

pub fn new_event(event_type: &str, payload: serde_json::Value) -> NewEvent {
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

pub async fn append(log: &EventLog, stream: &StreamId, events: Vec<NewEvent>) {
    log.append(AppendBatch {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events,
    })
    .await
    .expect("append");
}

pub async fn put_settings(log: &EventLog, tenant: &TenantId, s: &LetterSettings) {
    append(
        log,
        &mahnwerk_letters_service::tenant::stream(tenant),
        vec![new_event(
            "letterhead.updated.v1",
            serde_json::to_value(s).expect("json"),
        )],
    )
    .await;
}

pub fn issued(inv: &Invoice) -> NewEvent {
    let e = CaseEvent::InvoiceIssued(InvoiceIssued {
        invoice: inv.clone(),
    });
    new_event(e.event_type(), e.to_payload())
}

pub fn step_event(s: &StepReached) -> NewEvent {
    let e = DunningEvent::StepReached(Box::new(s.clone()));
    new_event(e.event_type(), e.to_payload())
}

pub fn settled() -> NewEvent {
    new_event(
        "invoice.settled.v1",
        serde_json::json!({"settled_on": "2026-03-16", "by": "e1:c1"}),
    )
}

pub fn case_of(tenant: &TenantId, inv: &Invoice) -> (CaseId, StreamId) {
    let case = CaseId::for_invoice(tenant, &inv.number);
    (case, case.stream(tenant))
}

pub async fn event_types(log: &EventLog, stream: &StreamId) -> Vec<(String, serde_json::Value)> {
    log.read_stream(stream, 1, 10_000)
        .await
        .expect("read")
        .into_iter()
        .map(|e| (e.event_type, e.payload))
        .collect()
}

/// Everything a letters service needs, real: SQLite event log and service database, NATS with
/// a relay, an SMTP sink, a spool directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub log: EventLog,
    pub pool: sqlx::AnyPool,
    pub keys: mahnwerk_auth::KeyStore,
    pub js: async_nats::jetstream::Context,
    pub bus: BusConfig,
    pub parts: Parts,
    pub smtp: ChildGuard,
    pub mail_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub tenant: TenantId,
    relay_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// (admin URL, database) of the per-run PostgreSQL database, dropped with the harness.
    pg_database: Option<(String, String)>,
}

impl Harness {
    pub async fn start(reject: &[&str]) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
        let log = EventLog::connect(&log_url).await.expect("event log");
        // The service's tables on PostgreSQL when DATABASE_URL is set (a fresh database per
        // run), on SQLite otherwise.
        let mut pg_database = None;
        let svc_url = match std::env::var("DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let name = format!("lt_{}", uuid::Uuid::new_v4().simple());
                pg_database = Some((admin.clone(), name.clone()));
                let admin_pool = mahnwerk_auth::connect_any(&admin).await.expect("postgres");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin_pool)
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(b, _)| b)
                    .to_owned();
                format!("{base}/{name}")
            }
            _ => format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display()),
        };
        let pool = mahnwerk_auth::connect_any(&svc_url)
            .await
            .expect("service db");
        let keys = mahnwerk_auth::KeyStore::open(pool.clone())
            .await
            .expect("keys");
        let js = mahnwerk_bus::connect(&nats_url())
            .await
            .expect("nats (NATS_URL)");
        let ns = format!("lt{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let bus = BusConfig::with_namespace(&ns);
        let mail_dir = dir.path().join("mail");
        let spool_dir = dir.path().join("spool");
        let (smtp, port) = smtp_sink(&mail_dir, reject).await;
        let mut config = Config::new(bus.clone());
        config.documents = DocumentConfig::Fs(dir.path().join("documents"));
        config.spool_dir = spool_dir.clone();
        config.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            ..Default::default()
        });
        config.retry_backoff = Duration::from_millis(100);
        config.ack_wait = Duration::from_secs(1);
        let parts = Parts::open(config, &pool).await.expect("parts");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        {
            let (log, js, bus) = (log.clone(), js.clone(), bus.clone());
            tokio::spawn(async move {
                let _ = Relay::new(bus)
                    .run(log, js, async move {
                        let _ = rx.await;
                    })
                    .await;
            });
        }
        let tenant: TenantId = "acme".parse().expect("tenant");
        keys.create_tenant(&tenant, "Muster Handels GmbH")
            .await
            .expect("tenant");
        Harness {
            dir,
            log,
            pool,
            keys,
            js,
            bus,
            parts,
            smtp,
            mail_dir,
            spool_dir,
            tenant,
            relay_stop: Some(tx),
            pg_database,
        }
    }

    /// Start the service (consumer + dispatcher); abort the handle to simulate a crash.
    /// The text of a stored letter (pdftotext from poppler-utils).
    pub async fn pdf_text(&self, sha: &str) -> String {
        let pdf = self.parts.docs.get(sha).await.unwrap().expect("stored PDF");
        let path = self.dir.path().join(format!("{sha}.pdf"));
        std::fs::write(&path, &pdf).unwrap();
        let out = std::process::Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn spawn_service(&self) -> tokio::task::JoinHandle<()> {
        let (parts, log, pool, js) = (
            self.parts.clone(),
            self.log.clone(),
            self.pool.clone(),
            self.js.clone(),
        );
        tokio::spawn(async move {
            let _ =
                mahnwerk_letters_service::run(parts, log, pool, js, std::future::pending()).await;
        })
    }

    pub async fn rows(&self) -> Vec<mahnwerk_letters_service::store::LedgerRow> {
        mahnwerk_letters_service::store::all_rows(&self.pool)
            .await
            .expect("rows")
    }

    pub fn spool_jobs(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.spool_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    out.push(serde_json::from_str(&text).expect("job json"));
                }
            }
        }
        out
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.relay_stop.take() {
            let _ = tx.send(());
        }
        if let Some((admin, name)) = self.pg_database.take() {
            // Best effort, on its own runtime (Drop cannot await).
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(pool) = mahnwerk_auth::connect_any(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                    }
                });
            })
            .join();
        }
    }
}
