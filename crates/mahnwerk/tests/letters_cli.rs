//! `mahnwerk letters set-letterhead|show-letterhead|put-template|list|document|preview|resend`:
//! the binary against a running server (relay and letters service in-process), checked on what
//! the server holds: the letterhead version, a template rejected naming its line, a step's
//! letter in the post spool, its PDF downloaded, a preview, a resend recorded with its actor.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_letters_cli_sets_the_letterhead_checks_templates_and_reads_and_resends_letters() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    );
    let spool = dir.path().join("spool");
    let (docs, spool2) = (dir.path().join("documents"), spool.clone());
    let server = start_with(&url, move |a| {
        a.services = vec![Service::Relay, Service::Letters];
        a.letters.documents_dir = docs;
        a.letters.post_spool = spool2;
        a.letters.smtp_host = None;
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let cli = Cli {
        command: "letters",
        server: format!("http://{}", server.addr),
        key,
    };

    // The letterhead from a file; the same settings again record nothing.
    let settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "signature": "Erika Muster, Buchhaltung",
        "email_from": "buchhaltung@muster-handel.test",
        "copy_to": {"mode": "inbox"}
    });
    let file = dir.path().join("letterhead.json");
    std::fs::write(&file, settings.to_string()).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        cli.ok(&["set-letterhead", file]).await,
        "letterhead version 1"
    );
    assert_eq!(
        cli.ok(&["set-letterhead", file]).await,
        "letterhead version 1"
    );
    let shown = cli.ok(&["show-letterhead"]).await;
    assert!(shown.starts_with("version 1\n"), "{shown}");
    assert!(shown.contains("buchhaltung@muster-handel.test"), "{shown}");

    // A template with a syntax error is refused at upload, naming the line; a good one is kept.
    let bad = dir.path().join("first_notice.de.j2");
    std::fs::write(
        &bad,
        "{% block title %}Mahnung{% endblock %}\n{% block salutation %}Hallo{% endblock %}\n{% block body %}{% if %}{% endblock %}\n{% block closing %}Gruß{% endblock %}\n",
    )
    .unwrap();
    let (ok, _, err) = cli.run(&["put-template", bad.to_str().unwrap()]).await;
    assert!(!ok, "a broken template was accepted");
    assert!(
        err.contains("first_notice.de.j2") && err.contains("line 3"),
        "{err}"
    );
    let default_src = mahnwerk_letters::templates::DEFAULTS
        .iter()
        .find(|(n, _)| *n == "first_notice.de.j2")
        .map(|(_, s)| *s)
        .unwrap();
    let good = dir.path().join("mine.j2");
    std::fs::write(
        &good,
        default_src.replacen("{% block closing %}", "{% block closing %}Herzlich, ", 1),
    )
    .unwrap();
    let out = cli
        .ok(&[
            "put-template",
            good.to_str().unwrap(),
            "--name",
            "first_notice.de.j2",
        ])
        .await;
    assert_eq!(out, "template first_notice.de.j2: letterhead version 2");
    let shown = cli.ok(&["show-letterhead"]).await;
    assert!(
        shown.starts_with("version 2\ntemplates: first_notice.de.j2"),
        "{shown}"
    );

    // A case reaches its first step; its letter goes to the post spool.
    let log = EventLog::connect(&url).await.unwrap();
    let tenant: TenantId = "acme".parse().unwrap();
    let invoice: mahnwerk_domain::Invoice = serde_json::from_value(serde_json::json!({
        "number": "RE-CLI-1", "issue_date": "2026-01-15", "due_date": "2026-01-29",
        "currency": "EUR", "net": 100000, "tax": 19000, "gross": 119000,
        "debtor": {"name": "Bäckerei Größl OHG", "kind": "business",
            "address": {"street": ["Mühlenweg 12"], "postal_code": "80331", "city": "München", "country": "DE"},
            "email": null, "language": "de", "customer_number": null, "vat_id": null},
        "payment_reference": null,
        "creditor_account": {"iban": "DE89370400440532013000", "bic": null, "holder": null},
        "default_notice": false
    }))
    .unwrap();
    let case = CaseId::for_invoice(&tenant, &invoice.number);
    let issued = CaseEvent::InvoiceIssued(InvoiceIssued { invoice });
    let step = serde_json::json!({
        "number": 1, "title": "1. Mahnung", "tone": "neutral", "template_id": "dunning-1",
        "channels": ["post"], "date": "2026-02-05",
        "fee": {"minor": 0, "currency": "EUR"}, "fee_waived": null,
        "lump_sum": {"minor": 0, "currency": "EUR"}, "interest_charged": {"minor": 0, "currency": "EUR"},
        "interest": null, "default": null, "creates_default": true,
        "deadline": {"deadline": "2026-02-19", "unmoved": "2026-02-19", "reasons": []},
        "principal_open": {"minor": 119000, "currency": "EUR"}, "balance": {"minor": 119000, "currency": "EUR"}
    });
    log.append(AppendBatch {
        stream: case.stream(&tenant),
        expected: ExpectedVersion::NoStream,
        events: vec![
            event(issued.event_type(), issued.to_payload()),
            event("dunning.step_reached.v1", step),
        ],
    })
    .await
    .unwrap();
    let case_id = case.0.to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let listed = loop {
        let listed = cli.ok(&["list", "--case", &case_id]).await;
        if listed.contains("step 1 debtor post sent") {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no letter: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let line = listed
        .lines()
        .find(|l| l.starts_with("step 1 debtor post sent"))
        .unwrap();
    let sha = line
        .split_whitespace()
        .skip_while(|w| *w != "document")
        .nth(1)
        .unwrap()
        .to_owned();
    let job = line
        .split_whitespace()
        .skip_while(|w| *w != "provider")
        .nth(1)
        .unwrap();
    assert!(spool.join(format!("{job}.json")).exists(), "{line}");

    // The stored PDF, a preview, and a resend on the operator's request.
    let pdf = dir.path().join("letter.pdf");
    cli.ok(&["document", &sha, "-o", pdf.to_str().unwrap()])
        .await;
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"));
    assert_eq!(mahnwerk_docstore::sha256_hex(&bytes), sha);
    let preview = dir.path().join("preview.pdf");
    cli.ok(&[
        "preview",
        "--case",
        &case_id,
        "--step",
        "1",
        "-o",
        preview.to_str().unwrap(),
    ])
    .await;
    assert!(std::fs::read(&preview).unwrap().starts_with(b"%PDF"));
    let out = cli
        .ok(&[
            "resend",
            "--case",
            &case_id,
            "--step",
            "1",
            "--note",
            "lost in the mail",
        ])
        .await;
    assert!(out.starts_with("resend requested: letter "), "{out}");
    let events = log
        .read_stream(&case.stream(&tenant), 1, 100)
        .await
        .unwrap();
    let resend = events
        .iter()
        .find(|e| e.event_type == "letter.resend_requested.v1")
        .expect("resend recorded");
    assert_eq!(resend.payload["note"], "lost in the mail");
    // The letter records the letterhead version and the template overrides it was made with.
    let rendered = events
        .iter()
        .find(|e| e.event_type == "letter.rendered.v1")
        .expect("letter.rendered.v1");
    assert_eq!(rendered.payload["letterhead_version"], 2);
    assert_eq!(
        rendered.payload["templates"],
        serde_json::json!(["first_notice.de.j2"])
    );
    assert_eq!(rendered.payload["document_sha256"], sha.as_str());
    assert!(
        resend.payload["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("apikey:"),
        "{}",
        resend.payload
    );
    server.stop().await;
}
