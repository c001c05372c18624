//! Letters end to end: steps appended to a real SQLite event log travel through a real NATS
//! (relay + consumer) to the letters service, which renders, stores and sends them to a real
//! SMTP server (aiosmtpd) or the post spool.

mod common;

use common::*;
use mahnwerk_domain::Money;
use mahnwerk_letters::events::CopyTo;
use mahnwerk_letters_service::store::state;

fn done(rows: &[mahnwerk_letters_service::store::LedgerRow]) -> bool {
    rows.iter().all(|r| {
        r.reported && ![state::INTENT, state::RENDERED, state::SENDING].contains(&r.state.as_str())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_carry_the_pdf_creditor_gets_a_copy_rejection_falls_back_to_post_settled_gets_none()
{
    let h = Harness::start(&["gone@debtor.test"]).await;
    put_settings(
        &h.log,
        &h.tenant,
        &settings(CopyTo::Email {
            address: "kopien@muster-handel.test".into(),
        }),
    )
    .await;
    let ok = invoice("RE-OK-1", Some("kunde@debtor.test"));
    let rejected = invoice("RE-REJ-1", Some("gone@debtor.test"));
    let paid = invoice("RE-PAID-1", Some("paid@debtor.test"));
    let (_, ok_stream) = case_of(&h.tenant, &ok);
    let (_, rej_stream) = case_of(&h.tenant, &rejected);
    let (_, paid_stream) = case_of(&h.tenant, &paid);
    append(&h.log, &ok_stream, vec![issued(&ok), step_event(&step(1))]).await;
    append(
        &h.log,
        &rej_stream,
        vec![issued(&rejected), step_event(&step(1))],
    )
    .await;
    // Paid, then the step arrives: the check just before sending finds the settlement.
    append(
        &h.log,
        &paid_stream,
        vec![issued(&paid), settled(), step_event(&step(1))],
    )
    .await;
    let service = h.spawn_service();

    wait_for("all letters final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 6 && done(&rows)
    })
    .await;
    let rows = h.rows().await;
    let find = |recipient: &str, channel: &str, case_number: &str| {
        let (case, _) = case_of(&h.tenant, &invoice(case_number, None));
        rows.iter()
            .find(|r| {
                r.recipient == recipient && r.channel == channel && r.case_id == case.0.to_string()
            })
            .unwrap_or_else(|| panic!("no {recipient}/{channel} row for {case_number}: {rows:#?}"))
            .clone()
    };
    assert_eq!(find("debtor", "email", "RE-OK-1").state, state::SENT);
    assert_eq!(find("creditor", "email", "RE-OK-1").state, state::SENT);
    assert_eq!(find("debtor", "email", "RE-REJ-1").state, state::FAILED);
    assert_eq!(find("debtor", "post", "RE-REJ-1").state, state::SENT);
    assert_eq!(find("creditor", "email", "RE-REJ-1").state, state::SENT);
    assert_eq!(
        find("debtor", "email", "RE-PAID-1").state,
        state::SUPPRESSED
    );

    // The SMTP server got the debtor's email with the PDF and two creditor copies.
    wait_for("three messages at the SMTP server", 10, || async {
        received(&h.mail_dir).len() == 3
    })
    .await;
    let mails = received(&h.mail_dir);
    let to_debtor: Vec<_> = mails
        .iter()
        .filter(|m| m.starts_with("X-Rcpt-To: kunde@debtor.test"))
        .collect();
    assert_eq!(to_debtor.len(), 1, "one email to the debtor");
    let m = to_debtor[0];
    assert!(m.contains("Content-Type: application/pdf"), "PDF attached");
    assert!(
        m.contains("JVBERi0"),
        "attachment is a PDF (base64 of %PDF-)"
    );
    assert!(
        m.contains("text/html") && m.contains("text/plain"),
        "HTML and text bodies"
    );
    assert!(
        m.contains("From: \"Muster Handels GmbH\" <buchhaltung@muster-handel.test>")
            || m.contains("From: Muster Handels GmbH <buchhaltung@muster-handel.test>"),
        "tenant sender: {}",
        &m[..m.len().min(600)]
    );
    assert!(m.contains("Reply-To: buchhaltung@muster-handel.test"));
    let debtor_row = find("debtor", "email", "RE-OK-1");
    let message_id = debtor_row.provider_id.clone().expect("message id recorded");
    assert!(
        m.contains(&format!("Message-ID: <{message_id}>")),
        "Message-ID recorded matches"
    );
    let copies = mails
        .iter()
        .filter(|m| m.starts_with("X-Rcpt-To: kopien@muster-handel.test"))
        .count();
    assert_eq!(copies, 2, "a copy of every letter sent to the creditor");
    assert!(
        !mails.iter().any(|m| m.contains("paid@debtor.test")),
        "no letter for the paid case"
    );
    assert!(
        !mails
            .iter()
            .any(|m| m.starts_with("X-Rcpt-To: gone@debtor.test"))
    );

    // The rejected one is in the post spool with its address and PDF.
    let jobs = h.spool_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["address"][0], "Bäckerei Größl OHG");
    assert_eq!(job["registered"], false);
    let pdf = std::fs::read(
        h.spool_dir
            .join(format!("{}.pdf", job["job_id"].as_str().expect("job id"))),
    )
    .expect("pdf");
    assert!(pdf.starts_with(b"%PDF"));
    assert_eq!(
        mahnwerk_letters_service::documents::sha256_hex(&pdf),
        job["document_sha256"]
    );

    // The case file records what happened.
    let ok_events = event_types(&h.log, &ok_stream).await;
    let types: Vec<&str> = ok_events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "invoice.issued.v1",
            "dunning.step_reached.v1",
            "letter.rendered.v1",
            "letter.dispatched.v1",
            "letter.copy_sent.v1"
        ]
    );
    let dispatched = &ok_events[3].1;
    assert_eq!(dispatched["channel"], "email");
    assert_eq!(dispatched["provider_id"], message_id.as_str());
    assert_eq!(
        dispatched["document_sha256"],
        ok_events[2].1["document_sha256"]
    );
    let rej_types: Vec<String> = event_types(&h.log, &rej_stream)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        rej_types,
        [
            "invoice.issued.v1",
            "dunning.step_reached.v1",
            "letter.rendered.v1",
            "letter.failed.v1",
            "letter.dispatched.v1",
            "letter.copy_sent.v1"
        ]
    );
    let failed = event_types(&h.log, &rej_stream).await.remove(3).1;
    assert_eq!(failed["permanent"], true);
    assert_eq!(failed["fallback"], "post");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("550"),
        "{failed}"
    );
    let paid_events = event_types(&h.log, &paid_stream).await;
    let last = paid_events.last().expect("events");
    assert_eq!(last.0, "letter.suppressed.v1");
    assert_eq!(last.1["reason"], "settled");
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_only_tenant_gets_drafts_in_its_inbox_and_nothing_is_sent() {
    let h = Harness::start(&[]).await;
    let mut s = settings(CopyTo::Inbox);
    s.drafts_only = true;
    put_settings(&h.log, &h.tenant, &s).await;
    let inv = invoice("RE-DRAFT-1", Some("kunde@debtor.test"));
    let (_, stream) = case_of(&h.tenant, &inv);
    append(&h.log, &stream, vec![issued(&inv), step_event(&step(1))]).await;
    let service = h.spawn_service();
    wait_for("draft recorded", 60, || async {
        let rows = h.rows().await;
        rows.len() == 1 && rows[0].state == state::DRAFT && rows[0].reported
    })
    .await;
    assert_eq!(
        mahnwerk_letters_service::store::inbox_count(&h.pool, h.tenant.as_str())
            .await
            .expect("inbox"),
        1
    );
    let events = event_types(&h.log, &stream).await;
    let last = events.last().expect("events");
    assert_eq!(last.0, "letter.rendered.v1");
    assert_eq!(last.1["draft"], true);
    assert!(received(&h.mail_dir).is_empty(), "a draft is never sent");
    assert!(h.spool_jobs().is_empty());
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_the_creditor_declined_becomes_a_draft_in_its_inbox_and_is_never_sent() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let inv = invoice("RE-DECLINED-1", Some("kunde@debtor.test"));
    let (_, stream) = case_of(&h.tenant, &inv);
    let mut s = step(1);
    s.draft = true;
    append(&h.log, &stream, vec![issued(&inv), step_event(&s)]).await;
    let service = h.spawn_service();
    wait_for("draft recorded", 60, || async {
        let rows = h.rows().await;
        rows.len() == 1 && rows[0].state == state::DRAFT && rows[0].reported
    })
    .await;
    assert_eq!(
        mahnwerk_letters_service::store::inbox_count(&h.pool, h.tenant.as_str())
            .await
            .expect("inbox"),
        1
    );
    let events = event_types(&h.log, &stream).await;
    let last = events.last().expect("events");
    assert_eq!(last.0, "letter.rendered.v1");
    assert_eq!(last.1["draft"], true);
    assert!(received(&h.mail_dir).is_empty(), "a draft is never sent");
    assert!(h.spool_jobs().is_empty());
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_the_tenant_sends_registered_goes_by_registered_post() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    // No email address: post. Step 3 is in the tenant's registered steps.
    let inv = invoice("RE-REG-3", None);
    let (_, stream) = case_of(&h.tenant, &inv);
    let mut s3 = step(3);
    s3.title = "Letzte Mahnung".into();
    s3.template_id = "dunning-final".into();
    append(
        &h.log,
        &stream,
        vec![issued(&inv), step_event(&step(1)), step_event(&s3)],
    )
    .await;
    let service = h.spawn_service();
    wait_for("both letters and copies final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 4 && done(&rows)
    })
    .await;
    let jobs = h.spool_jobs();
    assert_eq!(jobs.len(), 2);
    let registered: Vec<bool> = h
        .rows()
        .await
        .iter()
        .filter(|r| r.recipient == "debtor")
        .map(|r| {
            jobs.iter()
                .find(|j| j["job_id"] == r.id.as_str())
                .map(|j| (r.step == 3) == j["registered"].as_bool().unwrap_or(false))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(registered, [true, true], "only step 3 registered: {jobs:?}");
    let dispatched: Vec<_> = event_types(&h.log, &stream)
        .await
        .into_iter()
        .filter(|(t, _)| t == "letter.dispatched.v1")
        .map(|(_, p)| (p["step"].as_u64(), p["registered"].as_bool()))
        .collect();
    assert!(
        dispatched.contains(&(Some(3), Some(true))) && dispatched.contains(&(Some(1), Some(false))),
        "{dispatched:?}"
    );
    service.abort();
}

/// The consumer takes only what the service acts on: a case's invoice and its steps, never the
/// service's own `letter.*` events (three per letter) or other case events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_takes_only_invoices_and_steps_not_its_own_letter_events() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let inv = invoice("RE-FILTER-1", None);
    let (_, stream) = case_of(&h.tenant, &inv);
    append(
        &h.log,
        &stream,
        vec![
            issued(&inv),
            new_event("dunning.case_opened.v1", serde_json::json!({})),
            step_event(&step(1)),
        ],
    )
    .await;
    let service = h.spawn_service();
    wait_for("the letter and its copy final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 2 && done(&rows)
    })
    .await;
    // Everything on the log published, and every durable of the stream caught up.
    let head = h.log.head_position().await.unwrap();
    wait_for("the relay and the consumer caught up", 30, || async {
        let mut events = h.js.get_stream(&h.bus.stream).await.unwrap();
        let published = events.info().await.unwrap().state.messages;
        if published < u64::try_from(head).unwrap() {
            return false;
        }
        let mut idle = true;
        let mut names = events.consumer_names();
        while let Some(name) = futures::StreamExt::next(&mut names).await {
            let info = events.consumer_info(name.unwrap()).await.unwrap().clone();
            idle &= info.num_pending == 0 && info.num_ack_pending == 0;
        }
        idle
    })
    .await;
    let handled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bus_inbox WHERE consumer = $1")
        .bind("letters")
        .fetch_one(&h.pool)
        .await
        .unwrap();
    let letter_events = event_types(&h.log, &stream)
        .await
        .into_iter()
        .filter(|(t, _)| t.starts_with("letter."))
        .count();
    assert!(
        letter_events >= 3,
        "{letter_events} letter events on the case"
    );
    assert_eq!(
        handled, 2,
        "the consumer took more than the invoice and the step"
    );
    service.abort();
}

/// "Einschreiben mit Rückschein": a step in the tenant's `return_receipt_steps` goes by
/// registered post with return receipt: the spool job says so and the Vermerkzone prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_receipt_step_goes_registered_with_return_receipt() {
    let h = Harness::start(&[]).await;
    let mut s = settings(CopyTo::Inbox);
    s.registered_steps.clear();
    s.return_receipt_steps = vec![1];
    put_settings(&h.log, &h.tenant, &s).await;
    let inv = invoice("RE-RR-1", None);
    let (_, stream) = case_of(&h.tenant, &inv);
    append(&h.log, &stream, vec![issued(&inv), step_event(&step(1))]).await;
    let service = h.spawn_service();
    wait_for("the letter and its copy final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 2 && done(&rows)
    })
    .await;
    let jobs = h.spool_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["registered"], true, "{jobs:?}");
    assert_eq!(jobs[0]["return_receipt"], true, "{jobs:?}");
    let rendered: Vec<serde_json::Value> = event_types(&h.log, &stream)
        .await
        .into_iter()
        .filter(|(t, _)| t == "letter.rendered.v1")
        .map(|(_, p)| p)
        .collect();
    let sha = rendered[0]["document_sha256"].as_str().expect("document");
    let pdf = h.parts.docs.get(sha).await.unwrap().expect("stored PDF");
    let path = h.dir.path().join("receipt.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Einschreiben mit Rückschein"), "{text}");
    service.abort();
}

/// Must-show 4: a case paid a moment before dispatch gets no letter. The letter is rendered,
/// stored and announced (`letter.rendered.v1`), its first hand-over to the post spool fails
/// transiently (the spool path is not a directory) and is retried after 2 s; the payment
/// lands in between and the spool works again. The retry reads the case stream first and
/// suppresses the letter: nothing is spooled, no copy goes to the creditor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_paid_a_second_before_dispatch_gets_no_letter() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    std::fs::write(&h.spool_dir, b"not a directory").expect("block the spool");
    let mut parts = h.parts.clone();
    parts.config.retry_backoff = std::time::Duration::from_secs(2);
    let inv = invoice("RE-LATE-1", None);
    let (_, stream) = case_of(&h.tenant, &inv);
    append(&h.log, &stream, vec![issued(&inv), step_event(&step(1))]).await;
    let service = {
        let (log, pool, js) = (h.log.clone(), h.pool.clone(), h.js.clone());
        tokio::spawn(async move {
            let _ =
                mahnwerk_letters_service::run(parts, log, pool, js, std::future::pending()).await;
        })
    };
    wait_for("the first hand-over failed transiently", 60, || async {
        h.rows()
            .await
            .iter()
            .any(|r| r.state == state::RENDERED && r.attempts == 1)
    })
    .await;
    let types: Vec<String> = event_types(&h.log, &stream)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(types.last().map(String::as_str), Some("letter.rendered.v1"));
    // The spool works again and the debtor pays, before the retry is due.
    std::fs::remove_file(&h.spool_dir).expect("unblock the spool");
    append(&h.log, &stream, vec![settled()]).await;
    wait_for("the letter final", 60, || async { done(&h.rows().await) }).await;
    let rows = h.rows().await;
    assert_eq!(rows.len(), 1, "no copy for the creditor: {rows:#?}");
    assert_eq!(rows[0].state, state::SUPPRESSED);
    assert_eq!(rows[0].reason.as_deref(), Some("settled"));
    assert!(h.spool_jobs().is_empty(), "nothing spooled");
    let spooled = std::fs::read_dir(&h.spool_dir).map_or(0, |d| d.count());
    assert_eq!(spooled, 0, "no PDF in the spool");
    let events = event_types(&h.log, &stream).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "invoice.issued.v1",
            "dunning.step_reached.v1",
            "letter.rendered.v1",
            "invoice.settled.v1",
            "letter.suppressed.v1"
        ]
    );
    assert_eq!(events[4].1["reason"], "settled");
    service.abort();
}

/// A transient SMTP failure (451 at RCPT TO) is retried after the backoff and the letter goes
/// out once; the ledger counts the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_smtp_failure_is_retried_and_the_letter_goes_out_once() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let inv = invoice("RE-451-1", Some("tempfail@debtor.test"));
    let (_, stream) = case_of(&h.tenant, &inv);
    append(&h.log, &stream, vec![issued(&inv), step_event(&step(1))]).await;
    let service = h.spawn_service();
    wait_for("the letter and its copy final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 2 && done(&rows)
    })
    .await;
    let rows = h.rows().await;
    let debtor = rows
        .iter()
        .find(|r| r.recipient == "debtor")
        .expect("debtor row");
    assert_eq!(debtor.state, state::SENT);
    assert_eq!(debtor.channel, "email");
    assert_eq!(debtor.attempts, 1, "one transient failure before the send");
    let mails = received(&h.mail_dir);
    assert_eq!(mails.len(), 1, "delivered once");
    assert!(mails[0].starts_with("X-Rcpt-To: tempfail@debtor.test"));
    let types: Vec<String> = event_types(&h.log, &stream)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            "invoice.issued.v1",
            "dunning.step_reached.v1",
            "letter.rendered.v1",
            "letter.dispatched.v1",
            "letter.copy_sent.v1"
        ]
    );
    service.abort();
}

/// A step sent again on an operator's request (`repeat` on the step event) is a letter of its
/// own: rendered from the repetition (its date and deadline), sent, copied to the creditor; the
/// first sending is not sent a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_step_is_a_second_letter_with_its_own_date_and_deadline() {
    let h = Harness::start(&[]).await;
    put_settings(
        &h.log,
        &h.tenant,
        &settings(CopyTo::Email {
            address: "kopien@muster-handel.test".into(),
        }),
    )
    .await;
    let inv = invoice("RE-REP-1", Some("kunde@debtor.test"));
    let (_, stream) = case_of(&h.tenant, &inv);
    let first = step(1);
    let mut again = step(1);
    again.date = d(2026, 4, 2);
    again.deadline.deadline = d(2026, 4, 16);
    again.deadline.unmoved = d(2026, 4, 16);
    again.fee = Money::eur(0);
    again.repeat = Some(mahnwerk_dunning::dunning_case::Repetition {
        count: 1,
        reason: "returned undeliverable".into(),
    });
    append(
        &h.log,
        &stream,
        vec![issued(&inv), step_event(&first), step_event(&again)],
    )
    .await;
    let service = h.spawn_service();
    wait_for("both letters final", 60, || async {
        let rows = h.rows().await;
        rows.len() == 4 && done(&rows)
    })
    .await;
    let rows = h.rows().await;
    let debtor: Vec<_> = rows.iter().filter(|r| r.recipient == "debtor").collect();
    assert_eq!(debtor.len(), 2, "{rows:#?}");
    assert!(debtor.iter().all(|r| r.state == state::SENT), "{rows:#?}");
    assert_ne!(debtor[0].letter_id, debtor[1].letter_id);
    assert_ne!(debtor[0].document, debtor[1].document, "rendered apart");
    let repeated = debtor
        .iter()
        .find(|r| mahnwerk_letters_service::store::is_repeat_seq(&r.seq))
        .expect("the repetition has its own row");
    // The repetition's PDF prints its own deadline.
    let text = h.pdf_text(repeated.document.as_deref().unwrap()).await;
    assert!(text.contains("16.04.2026"), "{text}");
    wait_for("four messages", 10, || async {
        received(&h.mail_dir).len() == 4
    })
    .await;
    service.abort();
}
