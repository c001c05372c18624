//! Consolidated letters end to end ("Sammelmahnung", issues #12 Fix 5 and #13): `mahnwerk serve`
//! with ingest, relay, dunning, letters and matching on a simulated clock against the real
//! components (SQLite log, JetStream, typst letters, aiosmtpd on loopback).
//!
//! - Debtor A has three invoices due the same day: one email with one PDF listing all three,
//!   one QR code over the total with the letter's RF reference; a payment of the total quoting
//!   it is split over the three (§ 366) and settles all three.
//! - Debtor B has three invoices due the same day and a fourth due later: the 1. Mahnung lists
//!   the three and charges one fee; on the day the three reach the "Letzte Mahnung" the fourth
//!   reaches its first step and gets a letter of its own, not a place in the last notice.
//! - The server is restarted in the middle (a new JetStream namespace: the relay replays the
//!   whole log to the letters consumer) and no letter goes out twice.

mod common;

use chrono::NaiveDate;
use common::*;
use mahnwerk::config::Service;
use mahnwerk_domain::{DebtorKind, Money};
use mahnwerk_dunning::dunning_case::{
    CaseFacts, DunningCase, DunningCommand, DunningEvent, decide, evolve,
};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

type Events = Vec<(String, serde_json::Value)>;

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

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A child process killed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// aiosmtpd on loopback, saving every message to `mail` (the letters service's test sink).
async fn smtp_sink(mail: &Path) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        assert!(sink.0.try_wait().unwrap().is_none(), "smtp_sink.py exited");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SMTP sink did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sink, port)
}

/// The messages the sink received for `to`, as text.
fn mails_to(mail: &Path, to: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(mail) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|m| m.lines().next().is_some_and(|l| l.contains(to)))
        .collect()
}

fn all<'a>(events: &'a Events, t: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e.0 == t).map(|e| &e.1).collect()
}

/// The dates of the steps the consumer default policy (NW) gives an invoice due on `due`.
fn step_days(due: NaiveDate) -> Vec<NaiveDate> {
    let facts = CaseFacts {
        invoice_number: "X".into(),
        debtor_key: "X".into(),
        debtor: DebtorKind::Consumer,
        issue_date: d("2026-03-01"),
        due_date: due,
        principal: Money::eur(11_900),
        default_notice: false,
        calendar_due_date: false,
        state: None,
        direct_debit: false,
    };
    let open = DunningCommand::Open {
        facts,
        policy: Policy::default_consumer(FederalState::NW),
    };
    let mut state: Option<DunningCase> = decide(None, &open, d("2026-03-01"))
        .unwrap()
        .iter()
        .fold(None, evolve);
    let mut days = Vec::new();
    let mut on = due;
    while on <= due + chrono::Duration::days(90) {
        for e in decide(state.as_ref(), &DunningCommand::Advance, on).unwrap() {
            if let DunningEvent::StepReached(s) = &e {
                days.push(s.date);
            }
            state = evolve(state, &e);
        }
        on = on.succ_opt().unwrap();
    }
    days
}

struct World {
    dir: tempfile::TempDir,
    url: String,
    mail: PathBuf,
    smtp_port: u16,
}

impl World {
    async fn start(&self, today: NaiveDate) -> Running {
        let (docs, spool) = (
            self.dir.path().join("documents"),
            self.dir.path().join("spool"),
        );
        let port = self.smtp_port;
        start_with(&self.url, move |a| {
            a.services = vec![
                Service::Ingest,
                Service::Relay,
                Service::Dunning,
                Service::Letters,
                Service::Matching,
            ];
            a.simulated_clock = Some(today);
            a.letters.documents_dir = docs;
            a.letters.post_spool = spool;
            a.letters.smtp_host = Some("127.0.0.1".into());
            a.letters.smtp_port = port;
            a.letters.smtp_tls = "none".into();
        })
        .await
    }
}

async fn issue(
    server: &Running,
    key: &str,
    number: &str,
    customer: &str,
    email: &str,
    due: NaiveDate,
    net: i64,
) -> String {
    let mut inv = invoice(number);
    inv.payment_reference = String::new();
    inv.due_date = due.to_string();
    inv.net_amount = net;
    inv.tax_amount = net * 19 / 100;
    inv.gross_amount = net + net * 19 / 100;
    let debtor = inv.debtor.as_mut().unwrap();
    debtor.customer_number = customer.into();
    debtor.email = email.into();
    pb::invoice_service_client::InvoiceServiceClient::new(server.channel().await)
        .create_invoice(authed(
            key,
            pb::CreateInvoiceRequest {
                invoice: Some(inv),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id
}

/// Advance the simulated clock a day at a time until `case` has `steps` steps; the date then.
async fn advance_until(server: &Running, key: &str, case: &str, steps: usize) -> NaiveDate {
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(server.channel().await);
    for _ in 0..60 {
        let today = dunning
            .advance_clock(authed(key, pb::AdvanceClockRequest { days: 1 }))
            .await
            .unwrap()
            .into_inner()
            .today;
        if all(
            &case_file_events(server, key, case).await,
            "dunning.step_reached.v1",
        )
        .len()
            >= steps
        {
            return today.parse().unwrap();
        }
    }
    panic!("{case}: no step {steps} within 60 days");
}

/// Wait until every case has `n` `letter.dispatched.v1` and `n` `letter.copy_sent.v1`.
async fn letters_out(server: &Running, key: &str, cases: &[String], n: usize) {
    for case in cases {
        wait_for("the letters and their copies on the log", 90, || async {
            let file = case_file_events(server, key, case).await;
            all(&file, "letter.dispatched.v1").len() >= n
                && all(&file, "letter.copy_sent.v1").len() >= n
        })
        .await;
    }
}

/// The consolidation of the last step of each case: (id, members) the same for all.
async fn consolidation_of(server: &Running, key: &str, cases: &[String]) -> (String, Vec<String>) {
    let mut seen = None;
    for case in cases {
        let file = case_file_events(server, key, case).await;
        let steps = all(&file, "dunning.step_reached.v1");
        let c = &steps.last().unwrap()["consolidation"];
        let here = (
            c["id"].as_str().expect("a consolidated step").to_owned(),
            c["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        if let Some(s) = &seen {
            assert_eq!(s, &here, "every member carries the same consolidation");
        }
        seen = Some(here);
    }
    seen.unwrap()
}

/// The document of a case's last `letter.rendered.v1`, read back.
async fn last_letter(
    server: &Running,
    key: &str,
    case: &str,
) -> (serde_json::Value, String, Vec<String>) {
    let file = case_file_events(server, key, case).await;
    let rendered = all(&file, "letter.rendered.v1")
        .last()
        .copied()
        .unwrap()
        .clone();
    let pdf = pb::letter_service_client::LetterServiceClient::new(server.channel().await)
        .get_document(authed(
            key,
            pb::GetDocumentRequest {
                tenant: String::new(),
                sha256: rendered["document_sha256"].as_str().unwrap().into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (pages, qr) = read_back(&pdf.content);
    let text = pages.join("\n");
    (rendered, text, qr)
}

fn euro(minor: i64) -> String {
    let s = format!("{},{:02}", minor / 100, minor % 100);
    // German grouping of thousands.
    let (int, frac) = s.split_once(',').unwrap();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{grouped},{frac}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debtors_invoices_due_the_same_day_get_one_letter_with_one_fee_and_one_reference() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let mail = dir.path().join("mail");
    let (_sink, smtp_port) = smtp_sink(&mail).await;
    let w = World {
        url,
        mail,
        smtp_port,
        dir,
    };
    let server = w.start(d("2026-03-01")).await;
    let key = tenant_key(&w.url, "acme").await;
    let settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "email_from": "buchhaltung@muster-handel.test",
        "copy_to": {"mode": "email", "address": "kopie@muster-handel.test"},
        "signature": "Erika Muster"
    });
    pb::letter_service_client::LetterServiceClient::new(server.channel().await)
        .put_letterhead(authed(
            &key,
            pb::PutLetterheadRequest {
                tenant: String::new(),
                settings_json: settings.to_string(),
            },
        ))
        .await
        .unwrap();

    // B4 is due so that its first step falls on the day B1–B3 reach the Letzte Mahnung.
    let due = d("2026-03-16");
    let last_day = step_days(due)[2];
    let due4 = (1..40)
        .map(|n| due + chrono::Duration::days(n))
        .find(|d4| step_days(*d4).first() == Some(&last_day))
        .expect("a due date whose reminder falls on the last notice's day");
    let nets = [10_000, 20_000, 5_000];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        a.push(
            issue(
                &server,
                &key,
                &format!("RE-CA-{}", i + 1),
                "K-A",
                "a@debtor.test",
                due,
                *net,
            )
            .await,
        );
        b.push(
            issue(
                &server,
                &key,
                &format!("RE-CB-{}", i + 1),
                "K-B",
                "b@debtor.test",
                due,
                *net,
            )
            .await,
        );
    }
    let b4 = issue(
        &server,
        &key,
        "RE-CB-4",
        "K-B",
        "b@debtor.test",
        due4,
        8_000,
    )
    .await;

    // The reminder day: one consolidated letter per debtor.
    advance_until(&server, &key, &a[0], 1).await;
    letters_out(&server, &key, &a, 1).await;
    let (id_a, members_a) = consolidation_of(&server, &key, &a).await;
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(members_a, sorted);
    wait_for("one email to debtor A and one copy", 30, || async {
        mails_to(&w.mail, "a@debtor.test").len() == 1
    })
    .await;
    let mails = mails_to(&w.mail, "a@debtor.test");
    assert_eq!(mails.len(), 1, "one email for three invoices");
    assert_eq!(
        mails[0].matches("application/pdf").count(),
        1,
        "one PDF attached"
    );
    let (rendered, text, qr) = last_letter(&server, &key, &a[0]).await;
    for n in ["RE-CA-1", "RE-CA-2", "RE-CA-3"] {
        assert!(text.contains(n), "the letter lists {n}: {text}");
    }
    let total_a: i64 = nets.iter().map(|n| n + n * 19 / 100).sum();
    assert!(
        text.contains(&euro(total_a)),
        "the total {}: {text}",
        euro(total_a)
    );
    let reference = rendered["payment_reference"].as_str().unwrap().to_owned();
    assert_eq!(
        Some(reference.clone()),
        mahnwerk_formats::rf::for_consolidation(&id_a).map(|r| r.as_str().to_owned())
    );
    let epc: Vec<&str> = qr
        .iter()
        .find(|q| q.starts_with("BCD"))
        .expect("a GiroCode")
        .lines()
        .collect();
    assert_eq!(
        epc.get(7).copied(),
        Some(format!("EUR{}.{:02}", total_a / 100, total_a % 100).as_str()),
        "{epc:?}"
    );
    assert_eq!(epc.get(9).copied(), Some(reference.as_str()), "{epc:?}");
    // Every member case records the same letter and reference.
    for case in &a {
        let (r, _, _) = last_letter(&server, &key, case).await;
        assert_eq!(r["letter_id"], rendered["letter_id"]);
        assert_eq!(r["payment_reference"], rendered["payment_reference"]);
    }

    // A pays the total quoting the reference: split over the three, oldest first, all settled.
    let res = pb::payment_service_client::PaymentServiceClient::new(server.channel().await)
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![pb::Transaction {
                    bank_reference: "SAMMEL-1".into(),
                    account: "DE89370400440532013000".into(),
                    amount: Some(pb::Money {
                        minor: total_a,
                        currency: "EUR".into(),
                    }),
                    booking_date: "2026-03-27".into(),
                    counterparty_name: "Erika Mustermann".into(),
                    references: vec![reference.clone()],
                    ..Default::default()
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entry = &res.results[0];
    assert_eq!(
        (entry.decision.as_str(), entry.rule.as_str()),
        ("split", "rf_reference"),
        "{entry:?}"
    );
    assert_eq!(entry.allocations.len(), 3, "{entry:?}");
    for case in &a {
        wait_for(
            "invoice.settled and dunning.settled on every member",
            60,
            || async {
                let file = case_file_events(&server, &key, case).await;
                all(&file, "invoice.settled.v1").len() == 1
                    && all(&file, "dunning.settled.v1").len() == 1
            },
        )
        .await;
    }

    // Restart: a new namespace, so the relay replays the whole log to every consumer.
    letters_out(&server, &key, &b, 1).await;
    let today = advance_until(&server, &key, &b[0], 1).await;
    server.stop().await;
    let server = w.start(today).await;

    // The 1. Mahnung of B1–B3: one letter, one fee.
    advance_until(&server, &key, &b[0], 2).await;
    letters_out(&server, &key, &b, 2).await;
    let (_, members_b) = consolidation_of(&server, &key, &b).await;
    assert_eq!(members_b.len(), 3);
    let mut fees = 0;
    let mut waived = 0;
    let mut total_b = 0;
    for case in &b {
        let file = case_file_events(&server, &key, case).await;
        let step = all(&file, "dunning.step_reached.v1")[1].clone();
        assert_eq!(step["number"], 2);
        fees += step["fee"]["minor"].as_i64().unwrap();
        waived += usize::from(!step["fee_waived"].is_null());
        total_b += step["balance"]["minor"].as_i64().unwrap();
    }
    assert_eq!(
        (fees, waived),
        (250, 2),
        "one fee (€ 2.50) for the letter, waived on the others"
    );
    let (_, text, qr) = last_letter(&server, &key, &b[0]).await;
    for n in ["RE-CB-1", "RE-CB-2", "RE-CB-3"] {
        assert!(text.contains(n), "the 1. Mahnung lists {n}: {text}");
    }
    assert!(!text.contains("RE-CB-4"), "{text}");
    assert!(
        text.contains(&euro(total_b)),
        "the total {}: {text}",
        euro(total_b)
    );
    let epc: Vec<&str> = qr
        .iter()
        .find(|q| q.starts_with("BCD"))
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        epc.get(7).copied(),
        Some(format!("EUR{}.{:02}", total_b / 100, total_b % 100).as_str())
    );

    // The last-notice day: B1–B3 in the Letzte Mahnung, B4 (first step) in a letter of its own.
    let on = advance_until(&server, &key, &b[0], 3).await;
    assert_eq!(on, last_day);
    letters_out(&server, &key, &b, 3).await;
    letters_out(&server, &key, std::slice::from_ref(&b4), 1).await;
    let (_, members_last) = consolidation_of(&server, &key, &b).await;
    assert!(
        !members_last.contains(&b4),
        "a first step is not put into the last notice"
    );
    let file4 = case_file_events(&server, &key, &b4).await;
    let step4 = all(&file4, "dunning.step_reached.v1")[0].clone();
    assert_eq!(step4["number"], 1);
    assert_eq!(step4["date"], serde_json::json!(last_day.to_string()));
    assert!(step4["consolidation"].is_null(), "{step4}");
    let (_, text, _) = last_letter(&server, &key, &b[0]).await;
    assert!(
        text.contains("Letzte Mahnung") && !text.contains("RE-CB-4"),
        "{text}"
    );

    // Exactly once, through the restart and the replay: A one letter, B four, one copy each.
    wait_for("B's four emails and the copies", 30, || async {
        mails_to(&w.mail, "b@debtor.test").len() >= 4
            && mails_to(&w.mail, "kopie@muster-handel.test").len() >= 5
    })
    .await;
    assert_eq!(mails_to(&w.mail, "a@debtor.test").len(), 1);
    assert_eq!(mails_to(&w.mail, "b@debtor.test").len(), 4);
    assert_eq!(mails_to(&w.mail, "kopie@muster-handel.test").len(), 5);
    for case in &a {
        let file = case_file_events(&server, &key, case).await;
        assert_eq!(all(&file, "letter.dispatched.v1").len(), 1, "{case}");
        assert_eq!(all(&file, "letter.rendered.v1").len(), 1, "{case}");
    }
    server.stop().await;
}
