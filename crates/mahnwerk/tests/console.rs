//! The creditor console in `mahnwerk serve` against the real components (SQLite log, JetStream,
//! ingest, dunning, letters, matching on a simulated clock, the console on HTTP):
//!
//! - a real Chromium (Debian's, driven by Playwright from Python) signs in, finds the overdue
//!   invoice from the overview, opens its case and the reminder PDF, pauses and resumes dunning and matches
//!   a payment from the review queue; the case files (CaseService) then hold each action with
//!   the signed-in key as actor. Screenshots go to `target/console/`.
//! - another tenant's ids, in URLs and in forms, give 404 and change nothing.

mod common;
mod console_support;

use common::*;
use console_support::*;
use mahnwerk_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creditor_works_a_case_in_chromium_and_the_log_records_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, base) = start_console(&dir).await;
    let acme = prepare(&server, &url, "acme", "RE-CON").await;
    remind(&server, &url, &[&acme]).await;

    let out = screenshots();
    let seen = run_browser(
        "console_browser.py",
        &[
            base.clone(),
            acme.key.clone(),
            out.display().to_string(),
            acme.reminder_number.clone(),
            acme.payment_number.clone(),
        ],
    )
    .await;
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
    assert_eq!(seen["resumed_actor"], actor.as_str(), "{seen}");
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
    let resumed = events
        .iter()
        .find(|e| e.r#type == "dunning.resumed.v1")
        .expect("dunning.resumed.v1 on the case file");
    assert_eq!(resumed.metadata.as_ref().unwrap().actor, actor);
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
        format!("/letterhead/preview?case={}&step=1", beta.reminder_case),
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
    for action in ["approve", "decline"] {
        let status = b
            .post(
                &format!("/offers/{}", beta.reminder_case),
                &[
                    ("csrf", b.csrf.as_str()),
                    ("request_id", "r-cross-offer"),
                    ("action", action),
                ],
            )
            .await;
        assert_eq!(status, 404, "{action} of beta's offer");
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

    // Nothing changed for beta (nor for acme's own case through the refused form). The letters
    // service may still record the reminder's other channels and the creditor's copy on beta's
    // reminder case meanwhile: those are beta's own letters, never an event by acme's key.
    let acme_actor = format!("apikey:{}", acme.key_id);
    for (case, before) in [
        (&beta.reminder_case, before_reminder),
        (&beta.payment_case, before_payment),
    ] {
        let events = case_events(&server, &beta, case).await;
        let later: Vec<_> = events[before..]
            .iter()
            .map(|e| (e.r#type.as_str(), actor(e)))
            .collect();
        assert!(
            later
                .iter()
                .all(|(ty, who)| ty.starts_with("letter.") && *who != acme_actor),
            "beta's case {case} changed: {later:?}"
        );
    }
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
