//! Issue 15: a debtor without a postal address (an imported e-invoice that named only the
//! buyer's country, a Kleinbetragsrechnung) never gets a letter with an empty address window.
//! With an email address the letter goes by email; without, the post letter is held for the
//! creditor ("postal address missing") until the address is given
//! (`invoice.debtor_address_updated.v1`), and then goes out by post. Real NATS, SMTP (aiosmtpd)
//! and SQLite event log, as the other letters tests.

mod common;

use common::*;
use mahnwerk_domain::lifecycle::{CaseEvent, DebtorAddressUpdated};
use mahnwerk_domain::{Invoice, Personal, PostalAddress};
use mahnwerk_letters::events::CopyTo;
use mahnwerk_letters_service::store::state;

fn country_only(number: &str, email: Option<&str>) -> Invoice {
    let mut inv = invoice(number, email);
    inv.debtor.address = Personal::new(PostalAddress {
        country: "DE".into(),
        ..Default::default()
    });
    inv
}

fn berlin() -> PostalAddress {
    PostalAddress {
        street: vec!["Lindenstraße 4".into()],
        postal_code: "10969".into(),
        city: "Berlin".into(),
        country: "DE".into(),
        region: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postal_address_the_letter_is_held_until_the_address_is_given_or_goes_by_email() {
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let held = country_only("RE-NOADDR-1", None);
    let mailed = country_only("RE-NOADDR-2", Some("kunde@debtor.test"));
    let (held_case, held_stream) = case_of(&h.tenant, &held);
    let (mailed_case, mailed_stream) = case_of(&h.tenant, &mailed);
    append(
        &h.log,
        &held_stream,
        vec![issued(&held), step_event(&step(1))],
    )
    .await;
    // The step says post only: with no address but an email, email it is.
    let mut post_only = step(1);
    post_only.channels = vec![mahnwerk_dunning::policy::Channel::Post];
    append(
        &h.log,
        &mailed_stream,
        vec![issued(&mailed), step_event(&post_only)],
    )
    .await;
    let service = h.spawn_service();
    let row_of = |rows: &[mahnwerk_letters_service::store::LedgerRow], case: &str| {
        rows.iter()
            .find(|r| r.case_id == case && r.recipient == "debtor")
            .cloned()
    };
    let (held_id, mailed_id) = (held_case.0.to_string(), mailed_case.0.to_string());
    wait_for("one letter held, one emailed", 60, || async {
        let rows = h.rows().await;
        let held = row_of(&rows, &held_id);
        let mailed = row_of(&rows, &mailed_id);
        held.is_some_and(|r| r.state == state::HELD && r.reported)
            && mailed.is_some_and(|r| r.state == state::SENT && r.reported)
    })
    .await;
    let rows = h.rows().await;
    let h_row = row_of(&rows, &held_id).unwrap();
    assert_eq!(h_row.channel, "post");
    assert_eq!(h_row.reason.as_deref(), Some("postal address missing"));
    assert_eq!(h_row.document, None, "nothing rendered for an empty window");
    assert!(h.spool_jobs().is_empty(), "nothing went to the post");
    let events = event_types(&h.log, &held_stream).await;
    let last = events.last().unwrap();
    assert_eq!(last.0, "letter.held.v1", "{events:?}");
    assert_eq!(last.1["reason"], "postal address missing");
    assert_eq!(last.1["channel"], "post");
    assert_eq!(row_of(&rows, &mailed_id).unwrap().channel, "email");
    let mails = received(&h.mail_dir);
    assert_eq!(mails.len(), 1, "the emailed letter only");
    assert!(mails[0].starts_with("X-Rcpt-To: kunde@debtor.test"));
    assert!(mails[0].contains("Content-Type: application/pdf"));

    // The creditor gives the address: the held letter is rendered and posted to it.
    let mut debtor = held.debtor.clone();
    debtor.address = Personal::new(berlin());
    let e = CaseEvent::DebtorAddressUpdated(DebtorAddressUpdated {
        debtor,
        request_id: Some("addr-1".into()),
    });
    append(
        &h.log,
        &held_stream,
        vec![new_event(e.event_type(), e.to_payload())],
    )
    .await;
    wait_for("the held letter posted", 60, || async {
        row_of(&h.rows().await, &held_id).is_some_and(|r| r.state == state::SENT && r.reported)
    })
    .await;
    let jobs = h.spool_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let address: Vec<String> = jobs[0]["address"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        address,
        ["Bäckerei Größl OHG", "Lindenstraße 4", "10969 Berlin"]
    );
    let types: Vec<String> = event_types(&h.log, &held_stream)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    // (The creditor's copy may or may not be recorded yet.)
    let after: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .skip_while(|t| *t != "invoice.debtor_address_updated.v1")
        .filter(|t| *t != "letter.copy_sent.v1")
        .collect();
    assert_eq!(
        after,
        [
            "invoice.debtor_address_updated.v1",
            "letter.rendered.v1",
            "letter.dispatched.v1"
        ],
        "{types:?}"
    );
    service.abort();
}
