//! Consolidated letters in the letters service (real SQLite log, NATS, aiosmtpd): one letter per
//! consolidation whichever member's step arrives, a member settled before the send is left out
//! of the letter (with a `letter.suppressed.v1` of its own), a consolidation with no member left is suppressed on every member, and a case
//! listed in a consolidation without carrying its step (it was decided alone) is not in it.

mod common;

use common::*;
use mahnwerk_domain::Money;
use mahnwerk_dunning::consolidate::Consolidation;
use mahnwerk_letters::events::CopyTo;
use mahnwerk_letters_service::store::state;

fn consolidation(id: &str, cases: &[&mahnwerk_domain::CaseId]) -> Consolidation {
    let mut cases: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
    cases.sort();
    Consolidation {
        id: id.into(),
        carrier: cases[0].clone(),
        cases,
        step: 2,
        title: "1. Mahnung".into(),
        tone: mahnwerk_dunning::policy::Tone::Neutral,
        template_id: "first_notice".into(),
        channels: vec![mahnwerk_dunning::policy::Channel::Email],
        deadline: d(2026, 3, 30),
        fee: Money::eur(500),
        total: Money::eur(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consolidated_letter_lists_its_open_members_once_and_is_suppressed_when_none_is_left() {
    let h = Harness::start(&[]).await;
    put_settings(
        &h.log,
        &h.tenant,
        &settings(CopyTo::Email {
            address: "kopien@muster-handel.test".into(),
        }),
    )
    .await;
    let mail = Some("kunde@debtor.test");
    let [one, two, paid, alone] =
        ["RE-S-1", "RE-S-2", "RE-S-3", "RE-S-4"].map(|n| invoice(n, mail));
    let cases: Vec<_> = [&one, &two, &paid, &alone]
        .iter()
        .map(|i| case_of(&h.tenant, i))
        .collect();
    let ids: Vec<&mahnwerk_domain::CaseId> = cases.iter().map(|(c, _)| c).collect();
    // One letter over four cases: RE-S-3 paid before its step arrives, RE-S-4 listed but its
    // step was decided alone (no consolidation on its stream).
    let c = consolidation("c-one", &ids);
    for (i, (inv, (_, stream))) in [&one, &two, &paid, &alone].iter().zip(&cases).enumerate() {
        let mut s = step(2);
        s.fee = Money::eur(if i == 0 { 500 } else { 0 });
        s.balance = Money::eur(s.principal_open.minor + s.lump_sum.minor + s.fee.minor);
        let mut events = vec![issued(inv)];
        if i == 2 {
            events.push(settled());
        }
        if i != 3 {
            s.consolidation = Some(c.clone());
        }
        events.push(step_event(&s));
        append(&h.log, stream, events).await;
    }
    // A second consolidation whose only members are settled before the send.
    let [gone1, gone2] = ["RE-G-1", "RE-G-2"].map(|n| invoice(n, mail));
    let gone: Vec<_> = [&gone1, &gone2]
        .iter()
        .map(|i| case_of(&h.tenant, i))
        .collect();
    let gone_ids: Vec<&mahnwerk_domain::CaseId> = gone.iter().map(|(c, _)| c).collect();
    let cg = consolidation("c-gone", &gone_ids);
    for (inv, (_, stream)) in [&gone1, &gone2].iter().zip(&gone) {
        let mut s = step(2);
        s.consolidation = Some(cg.clone());
        append(&h.log, stream, vec![issued(inv), settled(), step_event(&s)]).await;
    }
    let service = h.spawn_service();

    wait_for("the letters final and reported", 60, || async {
        let rows = h.rows().await;
        rows.iter().filter(|r| r.seq.starts_with("c:")).count() == 3
            && rows.iter().all(|r| {
                r.reported
                    && ![state::INTENT, state::RENDERED, state::SENDING].contains(&r.state.as_str())
            })
            && rows.len() == 5
    })
    .await;
    let rows = h.rows().await;
    let one_rows: Vec<_> = rows.iter().filter(|r| r.seq == "c:c-one").collect();
    assert_eq!(
        one_rows.len(),
        2,
        "one debtor letter and one copy: {rows:#?}"
    );
    assert!(one_rows.iter().all(|r| r.state == state::SENT));
    let gone_rows: Vec<_> = rows.iter().filter(|r| r.seq == "c:c-gone").collect();
    assert_eq!(gone_rows.len(), 1);
    assert_eq!(gone_rows[0].state, state::SUPPRESSED);
    // RE-S-4's own (plain) letter.
    assert!(
        rows.iter()
            .any(|r| r.seq.is_empty() && r.state == state::SENT)
    );

    // The open members carry the letter; the paid one and the one decided alone do not.
    let letter_id = &one_rows[0].letter_id;
    let mut documents = Vec::new();
    for (i, (case, stream)) in cases.iter().enumerate() {
        // ListLetters of any member shows the consolidated letter (its rows are keyed on the
        // consolidation's first case); the case decided alone is not in it.
        let listed = mahnwerk_letters_service::store::letters_of_case(
            &h.pool,
            h.tenant.as_str(),
            &case.to_string(),
        )
        .await
        .expect("letters of the case");
        let in_letter = listed.iter().filter(|r| r.seq == "c:c-one").count();
        assert_eq!(
            in_letter,
            if i < 3 { 2 } else { 0 },
            "case {i}: {listed:#?}"
        );
        let file = event_types(&h.log, stream).await;
        let rendered: Vec<_> = file
            .iter()
            .filter(|(t, p)| t == "letter.rendered.v1" && p["letter_id"] == *letter_id)
            .collect();
        let dispatched = file
            .iter()
            .filter(|(t, p)| t == "letter.dispatched.v1" && p["letter_id"] == *letter_id)
            .count();
        if i < 2 {
            assert_eq!(
                (rendered.len(), dispatched),
                (1, 1),
                "member {i}: {file:#?}"
            );
            assert_eq!(rendered[0].1["kind"], "consolidated_notice");
            let rf = rendered[0].1["payment_reference"].as_str().unwrap();
            assert_eq!(
                Some(rf),
                mahnwerk_formats::rf::for_consolidation("c-one")
                    .as_ref()
                    .map(|r| r.as_str())
            );
            documents.push(rendered[0].1["document_sha256"].clone());
        } else {
            assert_eq!((rendered.len(), dispatched), (0, 0), "case {i}: {file:#?}");
        }
        // The member paid before the send is told why it got no letter; the case decided
        // alone was never a member.
        let suppressed: Vec<_> = file
            .iter()
            .filter(|(t, p)| t == "letter.suppressed.v1" && p["letter_id"] == *letter_id)
            .collect();
        if i == 2 {
            assert_eq!(suppressed.len(), 1, "the dropped member: {file:#?}");
            assert_eq!(suppressed[0].1["reason"], "settled");
            assert_eq!(suppressed[0].1["step"], 2);
        } else {
            assert!(suppressed.is_empty(), "case {i}: {file:#?}");
        }
    }
    assert_eq!(documents[0], documents[1], "one document for the letter");
    for (_, stream) in &gone {
        let file = event_types(&h.log, stream).await;
        assert_eq!(
            file.iter()
                .filter(|(t, _)| t == "letter.suppressed.v1")
                .count(),
            1,
            "{file:#?}"
        );
    }

    // One email for the consolidated letter (the PDF lists RE-S-1 and RE-S-2 only) and one for
    // RE-S-4's own letter, each with its copy.
    wait_for("four messages", 10, || async {
        received(&h.mail_dir).len() == 4
    })
    .await;
    let to_debtor: Vec<String> = received(&h.mail_dir)
        .into_iter()
        .filter(|m| m.starts_with("X-Rcpt-To: kunde@debtor.test"))
        .collect();
    assert_eq!(to_debtor.len(), 2);
    let sha = documents[0].as_str().unwrap();
    let pdf = h.parts.docs.get(sha).await.unwrap().expect("stored PDF");
    let path = h.dir.path().join("letter.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let text = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("RE-S-1") && text.contains("RE-S-2"), "{text}");
    assert!(
        !text.contains("RE-S-3") && !text.contains("RE-S-4"),
        "{text}"
    );
    service.abort();
}

/// A consolidated letter rendered, then a member paid before the send (the first SMTP attempt
/// failed transiently): the retry re-renders it without that member, and the members still in
/// it are told of the new document (a second `letter.rendered.v1`, its own SHA-256), the one
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consolidated_letter_rendered_again_without_a_paid_member_is_announced_again() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let mut parts = h.parts.clone();
    parts.config.retry_backoff = std::time::Duration::from_secs(3);
    let mail = Some("tempfail-consolidated@debtor.test");
    let invoices = ["RE-R-1", "RE-R-2", "RE-R-3"].map(|n| invoice(n, mail));
    let cases: Vec<_> = invoices.iter().map(|i| case_of(&h.tenant, i)).collect();
    let ids: Vec<&mahnwerk_domain::CaseId> = cases.iter().map(|(c, _)| c).collect();
    let c = consolidation("c-again", &ids);
    for (i, (inv, (_, stream))) in invoices.iter().zip(&cases).enumerate() {
        let mut s = step(2);
        s.fee = Money::eur(if i == 0 { 500 } else { 0 });
        s.consolidation = Some(c.clone());
        append(&h.log, stream, vec![issued(inv), step_event(&s)]).await;
    }
    let service = {
        let (log, pool, js) = (h.log.clone(), h.pool.clone(), h.js.clone());
        tokio::spawn(async move {
            let _ =
                mahnwerk_letters_service::run(parts, log, pool, js, std::future::pending()).await;
        })
    };
    wait_for("the first attempt failed transiently", 60, || async {
        h.rows()
            .await
            .iter()
            .any(|r| r.recipient == "debtor" && r.state == state::RENDERED && r.attempts == 1)
    })
    .await;
    // The third member pays before the retry.
    append(&h.log, &cases[2].1, vec![settled()]).await;
    wait_for("the letter final", 60, || async {
        let rows = h.rows().await;
        rows.iter()
            .any(|r| r.recipient == "debtor" && r.state == state::SENT)
            && rows.iter().all(|r| r.reported)
    })
    .await;
    let letter_id = h
        .rows()
        .await
        .into_iter()
        .find(|r| r.recipient == "debtor")
        .unwrap()
        .letter_id;
    for (i, (_, stream)) in cases.iter().enumerate().take(2) {
        let file = event_types(&h.log, stream).await;
        let rendered: Vec<String> = file
            .iter()
            .filter(|(t, p)| t == "letter.rendered.v1" && p["letter_id"] == letter_id)
            .map(|(_, p)| p["document_sha256"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(rendered.len(), 2, "member {i}: rendered twice: {file:#?}");
        assert_ne!(rendered[0], rendered[1], "member {i}: a new document");
        let sent = h
            .rows()
            .await
            .into_iter()
            .find(|r| r.recipient == "debtor")
            .unwrap()
            .document;
        assert_eq!(sent.as_deref(), Some(rendered[1].as_str()), "the one sent");
        let text = h.pdf_text(&rendered[1]).await;
        assert!(text.contains("RE-R-1") && text.contains("RE-R-2"), "{text}");
        assert!(!text.contains("RE-R-3"), "{text}");
    }
    service.abort();
}
