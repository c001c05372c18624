//! The console's policy, letterhead and debtors pages in a real Chromium (Debian's, Playwright
//! from Python) against `mahnwerk serve` on a simulated clock:
//!
//! - the policy page shows the default policy's steps; a draft (approval by the creditor, a
//!   higher fee) is previewed over the open cases (the figures are PreviewPolicy's for the same
//!   draft), a broken draft is refused naming the field, the draft is saved (the tenant's first own version);
//! - a new case under that policy is offered to the creditor; the offer is on the debtors page
//!   and approved there: `dunning.approved.v1` with the user as actor;
//! - the letterhead page takes a new company name and a PNG logo; the step's letter preview is
//!   a PDF whose text (pdfplumber) has the new name and which embeds the logo.

mod common;
mod console_support;

use common::*;
use console_support::*;
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_client::DunningServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_draft_preview_and_save_offer_approval_and_letterhead_preview_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, base) = start_console(&dir).await;
    let acme = prepare(&server, &url, "acme", "RE-SET").await;
    remind(&server, &url, &[&acme]).await;
    let out = screenshots();
    let args = |phase: &str, arg: &str| {
        vec![
            base.clone(),
            acme.key.clone(),
            out.display().to_string(),
            phase.to_owned(),
            arg.to_owned(),
        ]
    };
    let me = format!("apikey:{}", acme.key_id);

    // Policy: view, preview a draft, save it.
    let seen = run_browser("console_settings.py", &args("policy", "")).await;
    assert_eq!(seen["steps_shown"], 3, "{seen}");
    assert_eq!(seen["first_step_title"], "Zahlungserinnerung", "{seen}");
    let mut dunning = DunningServiceClient::new(server.channel().await);
    let expected = dunning
        .preview_policy(authed(
            &acme.key,
            pb::PreviewPolicyRequest {
                tenant: String::new(),
                policy_json: seen["draft"].as_str().unwrap().to_owned(),
                policy_id: String::new(),
                until: seen["until"].as_str().unwrap().to_owned(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expected.cases, 2, "both open cases");
    // Under approval by the creditor the draft sends nothing: it offers both cases.
    let report: serde_json::Value = serde_json::from_str(&expected.report_json).unwrap();
    let lines = report["lines"].as_array().unwrap();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["event_type"] == "dunning.offered.v1")
            .count(),
        2,
        "{report}"
    );
    let preview = &seen["preview"];
    assert_eq!(preview["cases"], expected.cases.to_string(), "{seen}");
    assert_eq!(preview["steps"], expected.steps.to_string(), "{seen}");
    assert_eq!(
        preview["escalations"],
        expected.escalations.to_string(),
        "{seen}"
    );
    assert_eq!(preview["lines"], lines.len(), "{seen}");
    assert!(
        seen["bad_draft_error"]
            .as_str()
            .unwrap()
            .contains("steps[0].template_id"),
        "{seen}"
    );
    assert!(seen["saved"].as_str().unwrap().ends_with(" 1"), "{seen}");
    assert!(
        seen["after_last"].as_str().unwrap().contains("Gläubiger"),
        "{seen}"
    );
    let stored = dunning
        .get_policy(authed(
            &acme.key,
            pb::GetPolicyRequest {
                tenant: String::new(),
                policy_id: "default-consumer".into(),
                version: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let stored_json: serde_json::Value = serde_json::from_str(&stored.policy_json).unwrap();
    assert_eq!(
        (
            stored.version,
            stored_json["approval"].as_str(),
            stored_json["steps"][1]["fee"]["minor"].as_i64()
        ),
        (1, Some("creditor"), Some(300))
    );

    // A new case under the saved policy: offered to the creditor, approved on the debtors page.
    let offered = create_case(&server, &acme.key, "RE-SET-3", "Nora Neu", "K-3").await;
    dunning
        .advance_clock(authed(&acme.key, pb::AdvanceClockRequest { days: 1 }))
        .await
        .unwrap();
    wait_for("the offer on the log", 60, || async {
        !of_type(
            &case_events(&server, &acme, &offered).await,
            "dunning.offered.v1",
        )
        .is_empty()
    })
    .await;
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    wait_for("the offer in the console", 30, || {
        let pool = pool.clone();
        let case = offered.clone();
        async move {
            let n: Option<(i64,)> = sqlx::query_as(
                "SELECT open FROM console_offers WHERE tenant = 'acme' AND case_id = $1",
            )
            .bind(case)
            .fetch_optional(&pool)
            .await
            .unwrap();
            n == Some((1,))
        }
    })
    .await;
    let seen = run_browser("console_settings.py", &args("offers", "RE-SET-3")).await;
    assert_eq!(seen["offer_case"], offered.as_str(), "{seen}");
    let events = case_events(&server, &acme, &offered).await;
    let approved = of_type(&events, "dunning.approved.v1");
    assert_eq!(approved.len(), 1, "{events:?}");
    assert_eq!(actor(approved[0]), me);

    // Letterhead: a new name and a logo; the step's letter preview shows them.
    let company = "Nordlicht Handel GmbH";
    let seen = run_browser("console_settings.py", &args("letterhead", company)).await;
    assert_eq!(seen["name_after"], company, "{seen}");
    assert!(
        seen["logo_state"].as_str().unwrap().contains("png"),
        "{seen}"
    );
    assert_eq!(seen["unlabeled_fields_letterhead"], 0, "{seen}");
    assert!(seen["preview_links"].as_i64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["preview_pdf"]["status"], 200, "{seen}");
    assert_eq!(
        seen["preview_pdf"]["content_type"], "application/pdf",
        "{seen}"
    );
    assert_eq!(seen["preview_pdf"]["starts"], "%PDF-", "{seen}");
    assert!(
        seen["preview_text"].as_str().unwrap().contains(company),
        "the preview's text: {}",
        seen["preview_text"]
    );
    assert!(
        seen["preview_images"].as_i64().unwrap() >= 1,
        "the logo: {seen}"
    );
    // The letterhead is stored with the logo (PutLetterhead through the user's key).
    let lh = pb::letter_service_client::LetterServiceClient::new(server.channel().await)
        .get_letterhead(authed(
            &acme.key,
            pb::GetLetterheadRequest {
                tenant: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let settings: serde_json::Value = serde_json::from_str(&lh.settings_json).unwrap();
    assert_eq!(settings["letterhead"]["name"], company);
    assert_eq!(settings["letterhead"]["logo"]["format"], "png");
    assert_eq!(settings["letterhead"]["logo"]["height_mm"], 12);
    // The fields the form does not show are kept.
    assert_eq!(settings["copy_to"]["mode"], "inbox");
    for name in [
        "09-policy",
        "10-policy-preview",
        "11-letterhead",
        "12-debtors-offers",
    ] {
        assert!(
            out.join(format!("{name}.png")).exists(),
            "screenshot {name}"
        );
    }
    server.stop().await;
}
