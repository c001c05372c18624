//! The collection service in `mahnwerk serve` against the real components (SQLite event log,
//! JetStream, every service in one process on a simulated clock): invoice → dunning steps →
//! escalation → hand-over published on the partner's subject → a Python nats-py collector
//! validates it against the published JSON Schema and fetches a letter PDF with its partner key
//! → the partner accepts, reports a payment → the case is closed; the case file holds it all in
//! order and verifies; every event published for the partner validates against its schema in
//! docs/schemas/; the export's one-page summary reads back with pdftotext. A partner key reads
//! and reports only on cases handed over to it. The same path runs with the filesystem document
//! store and with S3 (moto in server mode): partners and the export read through either.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;
use pb::collection_service_client::CollectionServiceClient;
use pb::dunning_service_client::DunningServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tonic::Code;

fn report(request_id: &str, case_id: &str, r: pb::report_request::Report) -> pb::ReportRequest {
    pb::ReportRequest {
        request_id: request_id.into(),
        case_id: case_id.into(),
        report: Some(r),
    }
}

async fn types(log: &EventLog, tenant: &str, case_id: &str) -> Vec<String> {
    let stream = format!("{tenant}/case/{case_id}").parse().unwrap();
    log.read_stream(&stream, 1, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

#[tokio::test]
async fn escalated_case_is_handed_over_reported_on_and_closed_and_partner_keys_see_only_their_cases()
 {
    handover_path(false).await;
}

#[tokio::test]
async fn partner_fetches_letter_pdf_and_export_reads_from_the_s3_document_store() {
    handover_path(true).await;
}

/// The S3 settings as the `MAHNWERK_DOCUMENTS_S3_*` variables `serve` and the CLI read.
fn s3_env(c: &mahnwerk_docstore::S3Config) -> Vec<(&'static str, String)> {
    vec![
        ("MAHNWERK_DOCUMENTS_S3_BUCKET", c.bucket.clone()),
        (
            "MAHNWERK_DOCUMENTS_S3_ENDPOINT",
            c.endpoint.clone().unwrap_or_default(),
        ),
        ("MAHNWERK_DOCUMENTS_S3_REGION", c.region.clone()),
        ("MAHNWERK_DOCUMENTS_S3_PREFIX", c.prefix.clone()),
        (
            "MAHNWERK_DOCUMENTS_S3_ACCESS_KEY_ID",
            c.access_key_id.clone(),
        ),
        (
            "MAHNWERK_DOCUMENTS_S3_SECRET_ACCESS_KEY",
            c.secret_access_key.clone(),
        ),
    ]
}

/// `s3`: documents live in a moto S3 bucket (the server configured like an operator would),
/// else in a filesystem directory.
async fn handover_path(s3: bool) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let docs = dir.path().join("documents");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = if s3 {
        Some(mahnwerk_docstore::testing::moto(&root, "mahnwerk-docs").await)
    } else {
        None
    };
    let store_config = match &moto {
        Some(m) => mahnwerk_docstore::DocumentConfig::S3(m.config.clone()),
        None => mahnwerk_docstore::DocumentConfig::Fs(docs.clone()),
    };
    let store = store_config.open().unwrap();
    let server = start_with(&url, |a| {
        // Everything but the letters service: this test writes the letter facts and the PDF
        // itself, so the case file holds exactly the letters it checks.
        a.services = vec![
            Service::Ingest,
            Service::Relay,
            Service::Dunning,
            Service::Matching,
            Service::Collection,
        ];
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
        match &moto {
            Some(m) => use_s3(a, &m.config),
            None => a.collection_documents_dir = Some(docs.clone()),
        }
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let beta_key = tenant_key(&url, "beta").await;
    let log = EventLog::connect(&url).await.unwrap();
    let ch = server.channel().await;
    let mut col = CollectionServiceClient::new(ch.clone());
    let mut invoices = InvoiceServiceClient::new(ch.clone());
    let mut dunning = DunningServiceClient::new(ch.clone());

    // A partner of acme that takes consumer cases in DE from 10.00 EUR, automatically.
    let partner = partner(pb::HandoverMode::Auto, true);
    let put_partner = |p: pb::Partner| {
        authed(
            &key,
            pb::PutPartnerRequest {
                tenant: String::new(),
                partner: Some(p),
            },
        )
    };
    let put = col
        .put_partner(put_partner(partner.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.version, 1);
    // Idempotent by content; a bad field is named.
    let again = col
        .put_partner(put_partner(partner.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, 1);
    let bad = col
        .put_partner(put_partner(pb::Partner {
            subject_token: "a.b".into(),
            ..partner.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("subject_token"), "{}", bad.message());
    let pkey = col
        .create_partner_key(authed(
            &key,
            pb::CreatePartnerKeyRequest {
                tenant: String::new(),
                partner_id: "inkasso-nord".into(),
                label: "test".into(),
                request_id: "partner-key-1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token;

    // Case 1 goes the whole way; beta (another tenant) has a case of the same number.
    let case1 = create_case_of(&ch, &key, invoice("RE-COL-1")).await;
    let beta_case = create_case_of(&ch, &beta_key, invoice("RE-COL-1")).await;
    wait_dunning_opened(&ch, &key, &case1, 20).await;
    // The letters service (its own branch) records a rendered letter with its PDF in the
    // document store; here the test does what it would.
    let pdf = b"%PDF-1.4\n% Zahlungserinnerung RE-COL-1\n%%EOF\n".to_vec();
    let sha = hex::encode(Sha256::digest(&pdf));
    assert_eq!(store.put(pdf.clone().into()).await.unwrap(), sha);
    if s3 {
        assert!(
            !docs.exists(),
            "the S3 run must not touch the filesystem store"
        );
    }
    let stream1 = format!("acme/case/{case1}").parse().unwrap();
    log.append(AppendBatch {
        stream: stream1,
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_id: event_id_now(),
            event_type: "letter.rendered.v1".into(),
            payload: serde_json::json!({"letter_id": "l-1", "step": 1, "kind": "reminder",
                "document_sha256": sha, "letterhead_version": 1, "templates": ["reminder"], "draft": false}),
            occurred_at: chrono::Utc::now(),
            metadata: Metadata {
                actor: "service:letters".into(),
                ..Default::default()
            },
        }],
    })
    .await
    .unwrap();

    // Time passes: every step, then the escalation and the automatic hand-over.
    dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 90 }))
        .await
        .unwrap();
    let get = |case_id: &str, tenant: &str| pb::GetHandedOverCaseRequest {
        tenant: tenant.into(),
        case_id: case_id.into(),
    };
    wait_for("the hand-over of case 1", 30, || {
        let mut c = col.clone();
        let req = authed(&pkey, get(&case1, ""));
        async move { c.get_handed_over_case(req).await.is_ok() }
    })
    .await;
    let handed = col
        .get_handed_over_case(authed(&pkey, get(&case1, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handed.partner_id, "inkasso-nord");
    assert_eq!(handed.phase, "handed_over");
    let file: serde_json::Value = serde_json::from_str(&handed.case_file_json).unwrap();
    let before = types(&log, "acme", &case1).await;
    let hv = usize::try_from(handed.handover_version).unwrap();
    assert_eq!(before[hv - 1], "case.handed_over.v1");
    assert_eq!(before[hv - 2], "dunning.escalated.v1");
    assert_eq!(file["hash_chain"]["version"], hv as u64 - 1);
    assert_eq!(file["debtor"]["name"], "Erika Mustermann");
    assert_eq!(file["letters"][0]["document_sha256"], sha.as_str());
    assert!(!file["dunning_steps"].as_array().unwrap().is_empty());
    let claim = &file["claim"];
    assert_eq!(claim["principal_open"]["minor"], 11900);
    assert_eq!(claim["lump_sum"]["minor"], 0, "no lump sum for consumers");
    assert!(claim["interest_total"]["minor"].as_i64().unwrap() > 0);
    assert!(!claim["interest"]["periods"].as_array().unwrap().is_empty());

    // A Python collector receives it on the public subject, validates it against the schema
    // and fetches the letter PDF with the partner key; beta's case is not its case.
    let subject = format!("{}.collection.acme.nord.handover", server.namespace);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../mahnwerk-collection/tests/py/collector.py");
    let out = tokio::process::Command::new(python("nats-py, grpcio and jsonschema"))
        .arg(script)
        .args([
            nats_url(),
            subject,
            "1".into(),
            server.addr.to_string(),
            pkey.clone(),
            beta_case.clone(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let got = &seen["received"][0];
    assert_eq!(got["valid"], true, "{seen}");
    assert_eq!(got["type"], "case.handed_over.v1");
    assert_eq!(got["msg_id"], handed.handover_event_id.as_str());
    assert_eq!(got["head"], file["hash_chain"]["head"]);
    assert_eq!(seen["document"]["matches"], true, "{seen}");
    assert_eq!(seen["document"]["content_type"], "application/pdf");
    assert_eq!(seen["other_case"], "NOT_FOUND");

    // Partner keys: nothing of beta, no other service, no case it does not hold.
    for (c, t) in [(&beta_case, ""), (&beta_case, "beta"), (&case1, "beta")] {
        let e = col
            .get_handed_over_case(authed(&pkey, get(c, t)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{c} {t}");
    }
    let e = col
        .get_partner_document(authed(
            &pkey,
            pb::GetPartnerDocumentRequest {
                tenant: String::new(),
                case_id: beta_case.clone(),
                sha256: sha.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = invoices
        .get_invoice(authed(
            &pkey,
            pb::GetInvoiceRequest {
                invoice_number: "RE-COL-1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let beta_before = types(&log, "beta", &beta_case).await;
    let e = col
        .report(authed(
            &pkey,
            report(
                "r-beta",
                &beta_case,
                pb::report_request::Report::Accepted(pb::ReportAccepted {}),
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        types(&log, "beta", &beta_case).await,
        beta_before,
        "a refused report appends nothing"
    );
    // The tenant key cannot report; a report out of order is refused and appends nothing.
    let e = col
        .report(authed(
            &key,
            report(
                "r0",
                &case1,
                pb::report_request::Report::Accepted(pb::ReportAccepted {}),
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let paid = |principal: i64, costs: i64| {
        pb::report_request::Report::PaymentCollected(pb::ReportPaymentCollected {
            principal: Some(pb::Money {
                minor: principal,
                currency: "EUR".into(),
            }),
            costs: Some(pb::Money {
                minor: costs,
                currency: "EUR".into(),
            }),
            collected_on: "2026-06-01".into(),
        })
    };
    let e = col
        .report(authed(&pkey, report("r1", &case1, paid(11900, 0))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(types(&log, "acme", &case1).await, before);

    // Accepted (idempotent by request id), then the payment of the principal closes the case.
    let accept = || {
        report(
            "r2",
            &case1,
            pb::report_request::Report::Accepted(pb::ReportAccepted {}),
        )
    };
    let a = col
        .report(authed(&pkey, accept()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.event_types, ["collection.status_reported.v1"]);
    assert_eq!(a.phase, "accepted");
    let a2 = col
        .report(authed(&pkey, accept()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a2.stream_version, a2.event_types.len()),
        (a.stream_version, 0)
    );
    let e = col
        .report(authed(&pkey, report("r2", &case1, paid(100, 0))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let p = col
        .report(authed(&pkey, report("r3", &case1, paid(11900, 2500))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        p.event_types,
        ["collection.status_reported.v1", "case.closed.v1"]
    );
    assert_eq!(p.phase, "closed:paid");
    let e = col
        .report(authed(
            &pkey,
            report(
                "r4",
                &case1,
                pb::report_request::Report::Closed(pb::ReportClosed {
                    note: String::new(),
                }),
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    // The case file: everything in order, and the chain verifies.
    let all = types(&log, "acme", &case1).await;
    let pos = |t: &str| {
        all.iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("{t} in {all:?}"))
    };
    assert!(pos("invoice.issued.v1") < pos("dunning.step_reached.v1"));
    assert!(pos("dunning.step_reached.v1") < pos("dunning.escalated.v1"));
    assert!(pos("dunning.escalated.v1") < pos("case.handed_over.v1"));
    assert!(pos("case.handed_over.v1") < pos("collection.status_reported.v1"));
    assert_eq!(all.last().map(String::as_str), Some("case.closed.v1"));
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let handed = col
        .get_handed_over_case(authed(&key, get(&case1, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handed.phase, "closed:paid");
    let since: Vec<serde_json::Value> = serde_json::from_str(&handed.events_json).unwrap();
    assert_eq!(since.len(), 3);
    assert_eq!(since[1]["payload"]["costs_waived"], true);

    // Everything published for the partner, in log order, each payload valid against the
    // schema of its type in docs/schemas/ (checked by a nats-py + jsonschema collector).
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../mahnwerk-collection/tests/py/partner_events.py");
    let out = tokio::process::Command::new(python("nats-py, grpcio and jsonschema"))
        .arg(script)
        .args([
            nats_url(),
            format!("{}.collection.acme.nord.>", server.namespace),
            "4".into(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let got: Vec<(String, String, String)> = seen["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["valid"], true, "{m}");
            assert_eq!(m["msg_id"], m["event_id"], "{m}");
            assert_eq!(m["header_type"], m["type"], "{m}");
            let subject = m["subject"].as_str().unwrap();
            (
                subject.rsplit('.').next().unwrap().to_owned(),
                m["type"].as_str().unwrap().to_owned(),
                m["report"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let row = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        got,
        [
            row("handover", "case.handed_over.v1", ""),
            row("report", "collection.status_reported.v1", "accepted"),
            row(
                "report",
                "collection.status_reported.v1",
                "payment_collected"
            ),
            row("closed", "case.closed.v1", ""),
        ],
        "{seen}"
    );
    server.stop().await;

    // The export for humans and courts, checked offline (no database reachable): untouched it
    // passes; a byte changed in the letter PDF fails, naming the file.
    let bin = env!("CARGO_BIN_EXE_mahnwerk");
    let tar = dir.path().join("case.tar");
    let mut export = std::process::Command::new(bin);
    export
        .args([
            "case",
            "export",
            "--database-url",
            &url,
            "--tenant",
            "acme",
            "RE-COL-1",
            "--out",
        ])
        .arg(&tar);
    match &moto {
        Some(m) => export.envs(s3_env(&m.config)),
        None => export.arg("--documents-dir").arg(&docs),
    };
    let out = export.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = |path: &std::path::Path| {
        let out = std::process::Command::new(bin)
            .args([
                "verify",
                "--database-url",
                "sqlite:/nonexistent/none.db",
                "--archive",
            ])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = check(&tar);
    assert!(ok, "{text}");
    assert!(text.starts_with("ok:"), "{text}");

    // The one-page summary for a person, read back by pdftotext (poppler-utils, `make tools`).
    let archive = std::fs::read(&tar).unwrap();
    let files = mahnwerk_collection::archive::read_tar(&archive).unwrap();
    let summary = files.iter().find(|f| f.name == "summary.pdf").unwrap();
    let pdf = dir.path().join("summary.pdf");
    std::fs::write(&pdf, &summary.bytes).unwrap();
    let info = std::process::Command::new("pdfinfo")
        .arg(&pdf)
        .output()
        .expect("pdfinfo (apt-get install poppler-utils)");
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 1")),
        "{info}"
    );
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let case_stream = format!("acme/case/{case1}").parse().unwrap();
    let head = log
        .read_stream(&case_stream, 1, 10_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .hash
        .clone();
    for want in [
        "Fallakte RE-COL-1",
        "Erika Mustermann",
        "119,00 EUR",
        "Mahnstufe 1",
        "An Inkassopartner",
        "Bericht des Partners: payment_collected",
        "Fall geschlossen: paid",
        head.as_str(),
    ] {
        assert!(text.contains(want), "{want:?} not in the summary:\n{text}");
    }
    // A byte changed in the summary fails the check, naming it.
    let mut bytes = archive.clone();
    let at = bytes
        .windows(summary.bytes.len().min(64))
        .position(|w| w == &summary.bytes[..summary.bytes.len().min(64)])
        .unwrap();
    bytes[at + 20] ^= 0x01;
    let bad = dir.path().join("bad-summary.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let (ok, text) = check(&bad);
    assert!(!ok, "{text}");
    assert!(text.contains("summary.pdf: content changed"), "{text}");
    let mut bytes = std::fs::read(&tar).unwrap();
    let at = bytes
        .windows(b"% Zahlungserinnerung".len())
        .position(|w| w == b"% Zahlungserinnerung")
        .unwrap();
    bytes[at + 2] ^= 0x20;
    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let (ok, text) = check(&bad);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("documents/{sha}.pdf")), "{text}");
}

#[tokio::test]
async fn partners_and_partner_keys_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    tenant_key(&url, "acme").await;
    let bin = env!("CARGO_BIN_EXE_mahnwerk");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .args(["--database-url", &url, "--tenant", "acme"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let partner = r#"{"id":"west","name":"Inkasso West","subject_token":"west","min_amount_minor":0,
        "debtor_kinds":[],"countries":["DE"],"mode":"approval","waive_costs_if_principal_paid":false,"active":true}"#;
    let (ok, out, err) = run(&["partner", "put", partner]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "partner west version 1");
    let (ok, out, _) = run(&["partner", "list"]);
    assert!(ok);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["partner"]["mode"], "approval");
    let (ok, out, _) = run(&["partner", "key", "west"]);
    assert!(ok);
    assert!(out.trim().starts_with("mwp_"), "{out}");
    let (ok, _, err) = run(&["partner", "key", "nobody"]);
    assert!(!ok);
    assert!(err.contains("no partner nobody"), "{err}");
    let bad = partner.replace(r#""id":"west""#, r#""id":"Bad Id""#);
    let (ok, _, err) = run(&["partner", "put", &bad]);
    assert!(!ok);
    assert!(err.contains("partner_id"), "{err}");
}

/// Issue 14: the export holds the original invoice document when there is one. An e-invoice
/// imported over `InvoiceService.ImportEInvoice` (its file stored by ingest, named by
/// `invoice.issued.v1` `invoice.source`) is in the archive as `documents/original-{sha}.xml`,
/// byte for byte, covered by the manifest; one byte of it changed fails `verify --archive`,
/// naming the file.
#[tokio::test]
async fn case_export_holds_the_original_e_invoice_and_verify_names_it_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let docs = dir.path().join("documents");
    let d = docs.clone();
    let server = start_with(&url, move |a| {
        a.services = vec![Service::Ingest];
        a.letters.documents_dir = d;
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let mut invoices = InvoiceServiceClient::new(server.channel().await);
    let content = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../mahnwerk-formats/tests/fixtures/einvoice/xrechnung_01.07a-INVOICE_ubl.xml"),
    )
    .unwrap();
    let r = invoices
        .import_e_invoice(authed(
            &key,
            einvoice_request(
                content.clone(),
                "xrechnung_01.07a-INVOICE_ubl.xml",
                "Acme GmbH",
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(r.outcome, "created", "{r:?}");
    let sha = hex::encode(Sha256::digest(&content));
    assert_eq!(r.document_sha256, sha);

    let bin = env!("CARGO_BIN_EXE_mahnwerk");
    let tar = dir.path().join("einvoice.tar");
    let out = std::process::Command::new(bin)
        .args([
            "case",
            "export",
            "--database-url",
            &url,
            "--tenant",
            "acme",
            &r.case_id,
            "--out",
        ])
        .arg(&tar)
        .arg("--documents-dir")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&tar).unwrap();
    let entries = mahnwerk_collection::archive::read_tar(&bytes).unwrap();
    let name = format!("documents/original-{sha}.xml");
    let original = entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} not in the archive"));
    assert_eq!(original.bytes, content, "the original, byte for byte");
    let manifest = entries.iter().find(|e| e.name == "manifest.json").unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(manifest["files"][&name], sha.as_str(), "{manifest}");

    let check = |path: &std::path::Path| {
        let out = std::process::Command::new(bin)
            .args([
                "verify",
                "--database-url",
                "sqlite:/nonexistent/none.db",
                "--archive",
            ])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = check(&tar);
    assert!(ok, "{text}");
    let at = bytes
        .windows(content.len())
        .position(|w| w == content)
        .expect("the original's bytes in the tar");
    let mut bad = bytes.clone();
    bad[at + content.len() / 2] ^= 0x01;
    let bad_path = dir.path().join("bad.tar");
    std::fs::write(&bad_path, &bad).unwrap();
    let (ok, text) = check(&bad_path);
    assert!(!ok, "{text}");
    assert!(text.contains(&name), "{text}");
    // Left out of the archive (and out of its manifest), the event still names it.
    let without: Vec<_> = entries
        .iter()
        .filter(|e| e.name != name)
        .map(|e| {
            let mut e = e.clone();
            if e.name == "manifest.json" {
                let mut m: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
                m["files"].as_object_mut().unwrap().remove(&name);
                e.bytes = serde_json::to_vec_pretty(&m).unwrap();
            }
            e
        })
        .collect();
    std::fs::write(&bad_path, mahnwerk_collection::archive::write_tar(&without)).unwrap();
    let (ok, text) = check(&bad_path);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{name}: missing (the original invoice")),
        "{text}"
    );
}
