//! The console's case actions over HTTP, as a browser sends them (a real session cookie, the
//! page's CSRF token and request ids), against `mahnwerk serve` with every service on a
//! simulated clock: resume, promise to pay, payment plan, dispute and its resolution, resend a
//! letter, write off, split a payment from the review queue, approve and hold a hand-over. Each
//! one's event is then on the case file (CaseService) with the signed-in key as actor, and the
//! case page shows it; the debtors page counts the promise the debtor then broke.

mod common;
mod console_support;

use common::*;
use console_support::*;
use mahnwerk::config::Service;
use mahnwerk_proto::v1 as pb;
use serde_json::Value;

fn payload(e: &pb::CaseEvent) -> Value {
    serde_json::from_str(&e.payload_json).unwrap()
}

/// Post one case action from the case page's form (its CSRF token and request id).
async fn act(b: &Browser, case_id: &str, action: &str, extra: &[(&str, &str)]) {
    let (status, page) = b.get(&format!("/cases/{case_id}")).await;
    assert_eq!(status, 200, "{page}");
    let at = page
        .find(&format!("data-action=\"{action}\""))
        .unwrap_or_else(|| panic!("no {action} form on the case page: {page}"));
    let request_id = hidden(&page[at..], "request_id");
    let mut fields = vec![
        ("csrf", b.csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("action", action),
    ];
    fields.extend_from_slice(extra);
    let status = b.post(&format!("/cases/{case_id}/actions"), &fields).await;
    assert_eq!(status, 303, "{action} on {case_id}");
}

/// The one event of `ty` on the case file, recorded with `actor`; the case page lists it.
async fn on_log(
    server: &Running,
    t: &Tenant,
    b: &Browser,
    case_id: &str,
    ty: &str,
    want_actor: &str,
) -> Value {
    let events = case_events(server, t, case_id).await;
    let found = of_type(&events, ty);
    assert_eq!(
        found.len(),
        1,
        "{ty} on {case_id}: {:?}",
        events.iter().map(|e| &e.r#type).collect::<Vec<_>>()
    );
    assert_eq!(actor(found[0]), want_actor, "{ty}");
    let (_, page) = b.get(&format!("/cases/{case_id}")).await;
    assert!(
        page.contains(&format!("data-type=\"{ty}\"")),
        "{ty} not on the case page"
    );
    payload(found[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_action_and_a_split_payment_is_on_the_log_with_the_user_as_actor() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url, base) = start_console_with(&dir, &[Service::Collection]).await;
    let acme = prepare(&server, &url, "acme", "RE-ACT").await;
    let key = acme.key.clone();
    // A partner that takes consumer cases only on the creditor's approval.
    put_partner(
        &server.channel().await,
        &key,
        partner(pb::HandoverMode::Approval, true),
    )
    .await;
    let mut cases = Vec::new();
    for i in 3..=10 {
        let number = format!("RE-ACT-{i}");
        let id = create_case(
            &server,
            &key,
            &number,
            &format!("Kunde {i}"),
            &format!("K-{i}"),
        )
        .await;
        cases.push(id);
    }
    let [
        resume,
        promise,
        plan,
        dispute,
        resend,
        write_off,
        approve,
        hold,
    ] = <[String; 8]>::try_from(cases).unwrap();
    remind(&server, &url, &[&acme]).await;
    for c in [
        &resume, &promise, &plan, &dispute, &resend, &write_off, &approve, &hold,
    ] {
        wait_view(&url, "acme", c, "the reminder in the console", |v| {
            v["last_letter"].is_object()
        })
        .await;
    }
    let b = Browser::sign_in(&base, &key).await;
    let me = format!("apikey:{}", acme.key_id);

    // Pause, then resume: the case page offers resume once the hold is in the projection.
    act(&b, &resume, "pause", &[("reason", "Rückruf")]).await;
    wait_view(&url, "acme", &resume, "the hold", |v| {
        v["holds"] == serde_json::json!(["case_hold"])
    })
    .await;
    act(&b, &resume, "resume", &[]).await;
    let r = on_log(&server, &acme, &b, &resume, "dunning.resumed.v1", &me).await;
    assert_eq!(r["pause"], "case_hold", "{r}");

    act(
        &b,
        &promise,
        "promise",
        &[("until", "2026-04-10"), ("amount", "119,00")],
    )
    .await;
    let p = on_log(&server, &acme, &b, &promise, "dunning.paused.v1", &me).await;
    assert_eq!(
        (
            p["pause"]["kind"].as_str(),
            p["pause"]["amount"]["minor"].as_i64()
        ),
        (Some("promise_to_pay"), Some(11900)),
        "{p}"
    );

    act(
        &b,
        &plan,
        "plan",
        &[("instalments", "2026-04-15=59.50; 2026-05-15=59.50")],
    )
    .await;
    let p = on_log(&server, &acme, &b, &plan, "dunning.paused.v1", &me).await;
    assert_eq!(p["pause"]["kind"], "payment_plan", "{p}");
    assert_eq!(
        p["pause"]["instalments"].as_array().unwrap().len(),
        2,
        "{p}"
    );

    act(&b, &dispute, "dispute", &[("reason", "Ware mangelhaft")]).await;
    let d = on_log(&server, &acme, &b, &dispute, "invoice.disputed.v1", &me).await;
    assert_eq!(d["reason"], "Ware mangelhaft");
    wait_view(&url, "acme", &dispute, "the dispute", |v| {
        v["disputed"] == true
    })
    .await;
    act(
        &b,
        &dispute,
        "resolve",
        &[("outcome", "rejected"), ("note", "Ware geprüft")],
    )
    .await;
    on_log(&server, &acme, &b, &dispute, "dispute.resolved.v1", &me).await;

    act(&b, &resend, "resend", &[("step", "1")]).await;
    let r = on_log(
        &server,
        &acme,
        &b,
        &resend,
        "letter.resend_requested.v1",
        &me,
    )
    .await;
    assert_eq!(r["step"], 1, "{r}");

    act(&b, &write_off, "write_off", &[("reason", "Insolvenz")]).await;
    on_log(
        &server,
        &acme,
        &b,
        &write_off,
        "dunning.written_off.v1",
        &me,
    )
    .await;

    // The review entry (50.00) split over two invoices by number.
    let (_, review) = b.get("/payments/review").await;
    let at = review
        .find(&format!("data-entry=\"{}\"", acme.entry_id))
        .expect("the entry on the review page");
    let request_id = hidden(&review[at..], "request_id");
    let split = format!("{}=20; {}=30", acme.reminder_number, acme.payment_number);
    let status = b
        .post(
            &format!("/payments/review/{}", acme.entry_id),
            &[
                ("csrf", &b.csrf),
                ("request_id", &request_id),
                ("action", "match"),
                ("split", &split),
            ],
        )
        .await;
    assert_eq!(status, 303);
    for (case, minor) in [(&acme.reminder_case, 2000), (&acme.payment_case, 3000)] {
        let p = on_log(&server, &acme, &b, case, "payment.applied.v1", &me).await;
        assert_eq!(
            (
                p["rule"].as_str(),
                p["amount"]["minor"].as_i64(),
                p["entry_id"].as_str()
            ),
            (Some("manual"), Some(minor), Some(acme.entry_id.as_str())),
            "{p}"
        );
    }

    // To the hand-over (step 3 and 8 days after it): the partner waits for approval.
    pb::dunning_service_client::DunningServiceClient::new(server.channel().await)
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 40 }))
        .await
        .unwrap();
    for c in [&approve, &hold] {
        wait_for("the hand-over awaiting approval", 90, || async {
            !of_type(
                &case_events(&server, &acme, c).await,
                "collection.approval_requested.v1",
            )
            .is_empty()
        })
        .await;
    }
    act(&b, &approve, "approve", &[]).await;
    let h = on_log(&server, &acme, &b, &approve, "case.handed_over.v1", &me).await;
    assert_eq!(h["partner_id"], "inkasso-nord", "{h}");
    act(&b, &hold, "hold", &[("reason", "Kunde ruft an")]).await;
    let h = on_log(&server, &acme, &b, &hold, "collection.held.v1", &me).await;
    assert_eq!(h["reason"], "Kunde ruft an", "{h}");
    assert!(
        of_type(
            &case_events(&server, &acme, &hold).await,
            "case.handed_over.v1"
        )
        .is_empty(),
        "a held case is not handed over"
    );

    // The promise (until 2026-04-10) was not kept: dunning resumed it, the debtors page counts it.
    wait_view(&url, "acme", &promise, "the broken promise", |v| {
        v["broken_promises"] == 1
    })
    .await;
    let (_, debtors) = b.get("/debtors").await;
    let row = &debtors[debtors.find("Kunde 4").expect("debtor K-4 listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cells: Vec<&str> = row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| &c[..c.find('<').unwrap()])
        .collect();
    assert_eq!(cells.last(), Some(&"1"), "broken promises of K-4: {row}");
    server.stop().await;
}
