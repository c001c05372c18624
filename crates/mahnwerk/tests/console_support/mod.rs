//! Shared by the console tests: a server with the console on a simulated clock, a tenant's
//! data (a case that gets a reminder, a case a payment is matched to, a review entry), the case
//! file, a plain HTTP client with the console's cookies and CSRF token, and the Python with
//! Playwright that drives Chromium.

#![allow(dead_code)]

use super::common::*;
use mahnwerk::config::Service;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use std::path::PathBuf;

/// One tenant's data: a case that gets a reminder, a case a payment is matched to by hand, and
/// an entry in the review queue.
pub struct Tenant {
    pub name: String,
    pub key: String,
    pub key_id: String,
    pub reminder_case: String,
    pub reminder_number: String,
    pub payment_case: String,
    pub payment_number: String,
    pub entry_id: String,
}

pub async fn prepare(server: &Running, url: &str, name: &str, prefix: &str) -> Tenant {
    let key = tenant_key(url, name).await;
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    let ch = server.channel().await;
    put_sample_letterhead(&ch, &key).await;
    let reminder_number = format!("{prefix}-1");
    let payment_number = format!("{prefix}-2");
    let reminder_case =
        create_case(server, &key, &reminder_number, "Erika Mustermann", "K-1").await;
    let payment_case = create_case(server, &key, &payment_number, "Max Beispiel", "K-2").await;
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

pub async fn start_console(dir: &tempfile::TempDir) -> (Running, String, String) {
    start_console_with(dir, &[]).await
}

/// [`start_console`] with more services (e.g. collection).
pub async fn start_console_with(
    dir: &tempfile::TempDir,
    extra: &[Service],
) -> (Running, String, String) {
    let url = sqlite_db(dir);
    let console = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (docs, spool) = (dir.path().join("documents"), dir.path().join("spool"));
    let extra = extra.to_vec();
    let server = start_with(&url, move |a| {
        a.services = vec![
            Service::Ingest,
            Service::Relay,
            Service::Dunning,
            Service::Letters,
            Service::Matching,
            Service::Console,
        ];
        a.services.extend(extra);
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
        a.letters.documents_dir = docs;
        a.letters.post_spool = spool;
        a.letters.smtp_host = None;
        a.console_listen = console;
    })
    .await;
    (server, url, format!("http://{console}"))
}

/// Create an invoice of the tenant (consumer debtor `debtor` with customer number `customer`);
/// returns its case id.
pub async fn create_case(
    server: &Running,
    key: &str,
    number: &str,
    debtor: &str,
    customer: &str,
) -> String {
    let mut inv = invoice(number);
    let d = inv.debtor.as_mut().unwrap();
    d.name = debtor.into();
    d.customer_number = customer.into();
    create_case_of(&server.channel().await, key, inv).await
}

/// Wait until the console's projection row of a case satisfies `pred` (its view as JSON).
pub async fn wait_view(
    url: &str,
    tenant: &str,
    case_id: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) {
    let pool = mahnwerk_auth::connect_any(url).await.unwrap();
    let pred = &pred;
    wait_for(what, 60, || async {
        console_view(&pool, tenant, case_id)
            .await
            .is_some_and(|v| pred(&serde_json::from_str(&v).unwrap()))
    })
    .await;
}

/// The console's projection row of a case (its view as JSON text), if it has one.
async fn console_view(pool: &sqlx::AnyPool, tenant: &str, case_id: &str) -> Option<String> {
    let view: Option<(String,)> =
        sqlx::query_as("SELECT view_json FROM console_cases WHERE tenant = $1 AND case_id = $2")
            .bind(tenant.to_owned())
            .bind(case_id.to_owned())
            .fetch_optional(pool)
            .await
            .unwrap();
    view.map(|(v,)| v)
}

/// The case file's events of `event_type` (e.g. `dunning.resumed.v1`).
pub fn of_type<'a>(events: &'a [pb::CaseEvent], event_type: &str) -> Vec<&'a pb::CaseEvent> {
    events.iter().filter(|e| e.r#type == event_type).collect()
}

/// The actor recorded on an event.
pub fn actor(e: &pb::CaseEvent) -> &str {
    e.metadata.as_ref().map_or("", |m| m.actor.as_str())
}

/// Run a Playwright script with `args`; returns the JSON of its last stdout line.
pub async fn run_browser(script: &str, args: &[String]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let run = tokio::process::Command::new(python("playwright"))
        .arg(script)
        .args(args)
        .output();
    let run = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("browser test timed out")
        .unwrap();
    assert!(
        run.status.success(),
        "browser: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        String::from_utf8_lossy(&run.stdout)
    );
    serde_json::from_str(
        String::from_utf8_lossy(&run.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap()
}

/// Where the screenshots go.
pub fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console")
}

pub async fn case_events(server: &Running, t: &Tenant, case_id: &str) -> Vec<pb::CaseEvent> {
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
pub async fn remind(server: &Running, url: &str, tenants: &[&Tenant]) {
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
        wait_for("the console projection", 30, || async {
            let view = console_view(&pool, &t.name, &t.reminder_case).await;
            let (open,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM console_review WHERE tenant = $1 AND open = 1",
            )
            .bind(t.name.clone())
            .fetch_one(&pool)
            .await
            .unwrap();
            open == 1 && view.is_some_and(|v| v.contains("\"last_letter\":{"))
        })
        .await;
    }
}

/// A plain HTTP client with the console's cookies (no redirects followed).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: String,
    pub csrf: String,
}

impl Browser {
    pub async fn sign_in(base: &str, key: &str) -> Browser {
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

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookies)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
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

pub fn form(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

pub fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}
