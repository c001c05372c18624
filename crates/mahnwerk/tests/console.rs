//! The creditor console in `mahnwerk serve` against the real components (SQLite log, JetStream,
//! ingest, dunning, letters, matching on a simulated clock, the console on HTTP):
//!
//! - a real Chromium (Debian's, driven by Playwright from Python) signs in, finds the overdue
//!   invoice from the overview, opens its case and the reminder PDF, pauses dunning and matches
//!   a payment from the review queue; the case files (CaseService) then hold each action with
//!   the signed-in key as actor. Screenshots go to `target/console/`.
//! - another tenant's ids, in URLs and in forms, give 404 and change nothing.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use std::path::PathBuf;
use std::time::Duration;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = std::env::var("MAHNWERK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no python with playwright at {}: run `make pyenv`",
        p.display()
    );
    p
}

fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One tenant's data: a case that gets a reminder, a case a payment is matched to by hand, and
/// an entry in the review queue.
struct Tenant {
    name: String,
    key: String,
    key_id: String,
    reminder_case: String,
    reminder_number: String,
    payment_case: String,
    payment_number: String,
    entry_id: String,
}

async fn prepare(server: &Running, url: &str, name: &str, prefix: &str) -> Tenant {
    let key = tenant_key(url, name).await;
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    let ch = server.channel().await;
    let mut letters = pb::letter_service_client::LetterServiceClient::new(ch.clone());
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
    let invoices = pb::invoice_service_client::InvoiceServiceClient::new(ch.clone());
    let create = |number: String, debtor: &str, customer: &str| {
        let mut inv = invoice(&number);
        let d = inv.debtor.as_mut().unwrap();
        d.name = debtor.into();
        d.customer_number = customer.into();
        let req = authed(
            &key,
            pb::CreateInvoiceRequest {
                invoice: Some(inv),
                ..Default::default()
            },
        );
        let mut c = invoices.clone();
        async move {
            c.create_invoice(req)
                .await
                .unwrap()
                .into_inner()
                .invoice
                .unwrap()
                .case_id
        }
    };
    let reminder_number = format!("{prefix}-1");
    let payment_number = format!("{prefix}-2");
    let reminder_case = create(reminder_number.clone(), "Erika Mustermann", "K-1").await;
    let payment_case = create(payment_number.clone(), "Max Beispiel", "K-2").await;
    // A credit nobody's reference points at: the review queue.
    let mut payments = pb::payment_service_client::PaymentServiceClient::new(ch);
    let res = payments
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![pb::Transaction {
                    bank_reference: format!("{prefix}-BANK-1"),
                    account: "DE89370400440532013000".into(),
                    amount: Some(pb::Money {
                        minor: 5000,
                        currency: "EUR".into(),
                    }),
                    booking_date: "2026-03-02".into(),
                    counterparty_name: "Unbekannt GmbH".into(),
                    remittance: "Sammelzahlung".into(),
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entry = &res.results[0];
    assert_eq!(entry.decision, "review", "{entry:?}");
    Tenant {
        name: name.into(),
        key,
        key_id,
        reminder_case,
        reminder_number,
        payment_case,
        payment_number,
        entry_id: entry.entry_id.clone(),
    }
}

async fn start_console(dir: &tempfile::TempDir) -> (Running, String, String) {
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let console = free_port();
    let (docs, spool) = (dir.path().join("documents"), dir.path().join("spool"));
    let server = start_with(&url, move |a| {
        a.services = vec![
            Service::Ingest,
            Service::Relay,
            Service::Dunning,
            Service::Letters,
            Service::Matching,
            Service::Console,
        ];
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
        a.letters.documents_dir = docs;
        a.letters.post_spool = spool;
        a.letters.smtp_host = None;
        a.console_listen = console;
    })
    .await;
    (server, url, format!("http://{console}"))
}

async fn case_events(server: &Running, t: &Tenant, case_id: &str) -> Vec<pb::CaseEvent> {
    CaseServiceClient::new(server.channel().await)
        .get_case_file(authed(
            &t.key,
            pb::GetCaseFileRequest {
                tenant: String::new(),
                case_id: case_id.into(),
                invoice_number: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

/// Move the clock past the reminder day and wait until each tenant's reminder letter went out
/// and the console's projection shows it and the review entry.
async fn remind(server: &Running, url: &str, tenants: &[&Tenant]) {
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(server.channel().await);
    dunning
        .advance_clock(authed(
            &tenants[0].key,
            pb::AdvanceClockRequest { days: 25 },
        ))
        .await
        .unwrap();
    let pool = mahnwerk_auth::connect_any(url).await.unwrap();
    for t in tenants {
        wait_for("the reminder letter on the log", 60, || async {
            case_events(server, t, &t.reminder_case)
                .await
                .iter()
                .any(|e| e.r#type == "letter.dispatched.v1")
        })
        .await;
        wait_for("the console projection", 30, || {
            let pool = pool.clone();
            let (tenant, case) = (t.name.clone(), t.reminder_case.clone());
            async move {
                let view: Option<(String,)> = sqlx::query_as(
                    "SELECT view_json FROM console_cases WHERE tenant = $1 AND case_id = $2",
                )
                .bind(tenant.clone())
                .bind(case)
                .fetch_optional(&pool)
                .await
                .unwrap();
                let (open,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM console_review WHERE tenant = $1 AND open = 1",
                )
                .bind(tenant)
                .fetch_one(&pool)
                .await
                .unwrap();
                open == 1 && view.is_some_and(|(v,)| v.contains("\"last_letter\":{"))
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creditor_works_a_case_in_chromium_and_the_log_records_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, base) = start_console(&dir).await;
    let acme = prepare(&server, &url, "acme", "RE-CON").await;
    remind(&server, &url, &[&acme]).await;

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/console_browser.py");
    let run = tokio::process::Command::new(python())
        .arg(script)
        .args([
            &base,
            &acme.key,
            &out.display().to_string(),
            &acme.reminder_number,
            &acme.payment_number,
        ])
        .output();
    let run = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser test timed out")
        .unwrap();
    assert!(
        run.status.success(),
        "browser: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        String::from_utf8_lossy(&run.stdout)
    );
    let seen: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&run.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let actor = format!("apikey:{}", acme.key_id);
    assert_eq!(seen["session_cookie"]["http_only"], true, "{seen}");
    assert_eq!(seen["session_cookie"]["same_site"], "Strict", "{seen}");
    assert_eq!(seen["overview_review_queue"], "1", "{seen}");
    assert_eq!(seen["pdf"]["status"], 200, "{seen}");
    assert_eq!(seen["pdf"]["content_type"], "application/pdf", "{seen}");
    assert_eq!(seen["pdf"]["starts"], "%PDF-", "{seen}");
    assert!(
        seen["pdf"]["disposition"]
            .as_str()
            .unwrap()
            .starts_with("inline"),
        "{seen}"
    );
    assert_eq!(seen["paused_actor"], actor.as_str(), "{seen}");
    assert_eq!(seen["review_entry"], acme.entry_id.as_str(), "{seen}");
    assert_eq!(seen["unlabeled_fields_review"], 0, "{seen}");
    assert_eq!(seen["first_tab"], "skip", "{seen}");
    assert!(
        seen["phone_scroll_width"].as_i64().unwrap() <= 390,
        "overview scrolls sideways at phone width: {seen}"
    );
    // The PDF the browser got is the one the letter event names.
    let events = case_events(&server, &acme, &acme.reminder_case).await;
    let dispatched = events
        .iter()
        .find(|e| e.r#type == "letter.dispatched.v1")
        .unwrap();
    let sha: serde_json::Value = serde_json::from_str(&dispatched.payload_json).unwrap();
    let pdf = std::fs::read(out.join("reminder.pdf")).unwrap();
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&pdf)),
        sha["document_sha256"].as_str().unwrap()
    );

    // On the log: the pause with the user as actor, the manual match on the payment's case.
    let paused = events
        .iter()
        .find(|e| e.r#type == "dunning.paused.v1")
        .expect("dunning.paused.v1 on the case file");
    assert_eq!(paused.metadata.as_ref().unwrap().actor, actor);
    let events = case_events(&server, &acme, &acme.payment_case).await;
    let applied = events
        .iter()
        .find(|e| e.r#type == "payment.applied.v1")
        .expect("payment.applied.v1 on the case file");
    assert_eq!(applied.metadata.as_ref().unwrap().actor, actor);
    let p: serde_json::Value = serde_json::from_str(&applied.payload_json).unwrap();
    assert_eq!(
        (p["rule"].as_str(), p["amount"]["minor"].as_i64()),
        (Some("manual"), Some(5000)),
        "{p}"
    );
    assert_eq!(p["entry_id"], acme.entry_id.as_str());
    for name in [
        "01-login",
        "02-overview",
        "03-invoices",
        "04-case",
        "05-case-paused",
        "06-review",
        "07-review-done",
        "08-overview-phone-en",
    ] {
        assert!(
            out.join(format!("{name}.png")).exists(),
            "screenshot {name}"
        );
    }
    server.stop().await;
}

/// A plain HTTP client with the console's cookies (no redirects followed).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(base: &str, key: &str) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = http.get(format!("{base}/login")).send().await.unwrap();
        let pre = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let page = login.text().await.unwrap();
        let csrf = hidden(&page, "csrf");
        let resp = http
            .post(format!("{base}/login"))
            .header("cookie", &pre)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf), ("api_key", key)]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let session = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("mw_session=") && c.len() > 20)
            .unwrap();
        let mut b = Browser {
            http,
            base: base.into(),
            cookies: session,
            csrf: String::new(),
        };
        let overview = b.get("/").await;
        assert_eq!(overview.0, 200);
        b.csrf = hidden(&overview.1, "csrf");
        b
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookies)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookies)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_give_404_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, base) = start_console(&dir).await;
    let acme = prepare(&server, &url, "acme", "RE-A").await;
    let beta = prepare(&server, &url, "beta", "RE-B").await;
    remind(&server, &url, &[&acme, &beta]).await;
    let beta_sha = {
        let e = case_events(&server, &beta, &beta.reminder_case).await;
        let d = e
            .iter()
            .find(|e| e.r#type == "letter.dispatched.v1")
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&d.payload_json).unwrap()["document_sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before_reminder = case_events(&server, &beta, &beta.reminder_case).await.len();
    let before_payment = case_events(&server, &beta, &beta.payment_case).await.len();

    // Not signed in: every page sends to the sign-in page, no data.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{base}/cases/{}", acme.reminder_case))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/login")
    );

    let b = Browser::sign_in(&base, &acme.key).await;
    // Own things work …
    assert_eq!(
        b.get(&format!("/cases/{}", acme.reminder_case)).await.0,
        200
    );
    let (status, list) = b.get("/invoices?q=RE-").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("RE-A-1") && !list.contains("RE-B-1"),
        "{list}"
    );
    // … another tenant's ids are not found, in URLs …
    for path in [
        format!("/cases/{}", beta.reminder_case),
        format!("/cases/{}/documents/{beta_sha}", beta.reminder_case),
        format!("/cases/{}/documents/{beta_sha}", acme.reminder_case),
    ] {
        let (status, body) = b.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert!(!b.get("/invoices?q=RE-B").await.1.contains("RE-B-1"));
    // … and in forms (with a valid CSRF token and request id).
    let actions: [(&str, &[(&str, &str)]); 4] = [
        ("pause", &[("reason", "x")]),
        ("write_off", &[("reason", "x")]),
        ("dispute", &[("reason", "x")]),
        ("promise", &[("until", "2026-04-30"), ("amount", "10")]),
    ];
    for (action, extra) in actions {
        let mut fields = vec![
            ("csrf", b.csrf.as_str()),
            ("request_id", "r-cross-1"),
            ("action", action),
        ];
        fields.extend_from_slice(extra);
        let status = b
            .post(&format!("/cases/{}/actions", beta.reminder_case), &fields)
            .await;
        assert_eq!(status, 404, "{action} on beta's case");
    }
    let csrf = b.csrf.clone();
    // Beta's review entry matched to acme's case, and acme's entry matched to beta's case id.
    let status = b
        .post(
            &format!("/payments/review/{}", beta.entry_id),
            &[
                ("csrf", &csrf),
                ("action", "match"),
                ("invoice_number", &acme.payment_number),
                ("amount", "50"),
            ],
        )
        .await;
    assert_eq!(status, 404, "beta's entry");
    let status = b
        .post(
            &format!("/payments/review/{}", acme.entry_id),
            &[
                ("csrf", &csrf),
                ("action", "match"),
                ("case_id", &beta.payment_case),
                ("amount", "50"),
            ],
        )
        .await;
    assert_eq!(status, 404, "beta's case in acme's match form");
    let status = b
        .post(
            &format!("/payments/review/{}", beta.entry_id),
            &[("csrf", &csrf), ("action", "not_ours")],
        )
        .await;
    assert_eq!(status, 404, "not ours on beta's entry");
    // A form without the CSRF token is refused, even for an own case.
    let status = b
        .post(
            &format!("/cases/{}/actions", acme.reminder_case),
            &[("request_id", "r-2"), ("action", "pause"), ("reason", "x")],
        )
        .await;
    assert_eq!(status, 403);

    // Nothing changed for beta (nor for acme's own case through the refused form).
    assert_eq!(
        case_events(&server, &beta, &beta.reminder_case).await.len(),
        before_reminder
    );
    assert_eq!(
        case_events(&server, &beta, &beta.payment_case).await.len(),
        before_payment
    );
    assert!(
        !case_events(&server, &acme, &acme.reminder_case)
            .await
            .iter()
            .any(|e| e.r#type == "dunning.paused.v1")
    );
    let mut payments =
        pb::payment_service_client::PaymentServiceClient::new(server.channel().await);
    let queue = payments
        .list_unmatched(authed(
            &beta.key,
            pb::ListUnmatchedRequest {
                tenant: String::new(),
                page_size: 10,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(
        queue
            .iter()
            .map(|e| e.entry_id.as_str())
            .collect::<Vec<_>>(),
        [beta.entry_id.as_str()]
    );
    server.stop().await;
}
