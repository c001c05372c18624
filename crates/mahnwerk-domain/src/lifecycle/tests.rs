use super::*;
use crate::invoice::fixtures::invoice;

fn given(events: &[CaseEvent]) -> Option<CaseState> {
    CaseState::fold(events)
}

fn issued() -> CaseEvent {
    CaseEvent::InvoiceIssued(InvoiceIssued {
        invoice: invoice("RE-1"),
    })
}

fn credit(n: &str, minor: i64) -> CaseCommand {
    CaseCommand::Credit {
        credit_note_number: n.into(),
        amount: Money::eur(minor),
        reason: "goodwill".into(),
    }
}

#[test]
fn issuing_a_new_invoice_emits_issued() {
    let events = decide(None, &CaseCommand::Issue(invoice("RE-1"))).unwrap();
    assert_eq!(events, vec![issued()]);
}

#[test]
fn issuing_the_same_invoice_again_is_a_no_op() {
    let state = given(&[issued()]);
    assert_eq!(
        decide(state.as_ref(), &CaseCommand::Issue(invoice("RE-1"))),
        Ok(vec![])
    );
}

#[test]
fn issuing_a_different_invoice_under_the_same_number_is_already_exists() {
    let state = given(&[issued()]);
    let mut other = invoice("RE-1");
    other.gross += 1;
    other.net += 1;
    assert!(matches!(
        decide(state.as_ref(), &CaseCommand::Issue(other)),
        Err(CaseError::AlreadyExists(_))
    ));
}

#[test]
fn an_invalid_invoice_is_rejected_naming_the_field() {
    let mut bad = invoice("RE-1");
    bad.due_date = bad.issue_date.pred_opt().unwrap();
    let Err(CaseError::Invalid(e)) = decide(None, &CaseCommand::Issue(bad)) else {
        panic!("expected invalid")
    };
    assert_eq!(e.field, "due_date");
}

#[test]
fn commands_on_a_missing_case_are_not_found() {
    assert_eq!(
        decide(
            None,
            &CaseCommand::Cancel {
                reason: String::new()
            }
        ),
        Err(CaseError::NotFound)
    );
}

#[test]
fn a_partial_credit_reduces_the_open_amount() {
    let state = given(&[issued()]);
    let events = decide(state.as_ref(), &credit("GS-1", 1900)).unwrap();
    let state = events.iter().fold(state, evolve).unwrap();
    assert_eq!(state.open, Money::eur(10000));
    assert_eq!(state.status, CaseStatus::Open);
}

#[test]
fn a_credit_retried_is_a_no_op_and_a_conflicting_one_already_exists() {
    let state = given(&[issued()]);
    let events = decide(state.as_ref(), &credit("GS-1", 1900)).unwrap();
    let state = events.iter().fold(state, evolve);
    assert_eq!(decide(state.as_ref(), &credit("GS-1", 1900)), Ok(vec![]));
    assert!(matches!(
        decide(state.as_ref(), &credit("GS-1", 100)),
        Err(CaseError::AlreadyExists(_))
    ));
}

#[test]
fn a_credit_beyond_the_open_amount_is_rejected() {
    let state = given(&[issued()]);
    let Err(CaseError::Invalid(e)) = decide(state.as_ref(), &credit("GS-1", 11901)) else {
        panic!()
    };
    assert_eq!(e.field, "amount");
}

#[test]
fn a_full_credit_closes_the_case() {
    let state = given(&[issued()]);
    let events = decide(state.as_ref(), &credit("GS-1", 11900)).unwrap();
    let state = events.iter().fold(state, evolve).unwrap();
    assert_eq!(state.status, CaseStatus::Credited);
    assert!(!state.is_overdue(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
}

#[test]
fn dispute_then_resolve_reopens() {
    let state = given(&[issued()]);
    let d = decide(
        state.as_ref(),
        &CaseCommand::Dispute {
            reason: "wrong qty".into(),
        },
    )
    .unwrap();
    let state = d.iter().fold(state, evolve);
    assert_eq!(state.as_ref().unwrap().status, CaseStatus::Disputed);
    let r = decide(
        state.as_ref(),
        &CaseCommand::ResolveDispute {
            outcome: DisputeOutcome::Rejected,
            note: String::new(),
        },
    )
    .unwrap();
    let state = r.iter().fold(state, evolve).unwrap();
    assert_eq!(state.status, CaseStatus::Open);
}

#[test]
fn resolving_an_undisputed_case_is_a_failed_precondition() {
    let state = given(&[issued()]);
    assert!(matches!(
        decide(
            state.as_ref(),
            &CaseCommand::ResolveDispute {
                outcome: DisputeOutcome::Upheld,
                note: String::new()
            }
        ),
        Err(CaseError::Precondition(_))
    ));
}

#[test]
fn extending_the_due_date_moves_it_and_never_backwards() {
    let state = given(&[issued()]);
    let later = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    let ev = decide(
        state.as_ref(),
        &CaseCommand::ExtendDueDate {
            new_due_date: later,
            reason: String::new(),
        },
    )
    .unwrap();
    let state = ev.iter().fold(state, evolve);
    assert_eq!(state.as_ref().unwrap().due_date, later);
    let earlier = NaiveDate::from_ymd_opt(2026, 3, 20).unwrap();
    assert!(matches!(
        decide(
            state.as_ref(),
            &CaseCommand::ExtendDueDate {
                new_due_date: earlier,
                reason: String::new()
            }
        ),
        Err(CaseError::Invalid(_))
    ));
}

#[test]
fn cancelled_cases_accept_no_credit_and_cancel_is_idempotent() {
    let state = given(&[
        issued(),
        CaseEvent::InvoiceCancelled(InvoiceCancelled {
            reason: String::new(),
            request_id: None,
        }),
    ]);
    assert_eq!(
        decide(
            state.as_ref(),
            &CaseCommand::Cancel {
                reason: String::new()
            }
        ),
        Ok(vec![])
    );
    assert!(matches!(
        decide(state.as_ref(), &credit("GS-1", 1)),
        Err(CaseError::Precondition(_))
    ));
}

#[test]
fn events_round_trip_through_type_and_payload() {
    let e = issued();
    let back = CaseEvent::from_parts(e.event_type(), &e.to_payload()).unwrap();
    assert_eq!(back, Some(e));
    assert_eq!(
        CaseEvent::from_parts("letter.sent.v1", &serde_json::json!({})).unwrap(),
        None
    );
}

/// Replays `command` through the state the events so far give, as the ingest service does.
fn run(events: &mut Vec<CaseEvent>, command: &CaseCommand, rid: Option<&str>) -> Result<usize> {
    let state = given(events);
    let new = decide_request(state.as_ref(), command, rid)?;
    let n = new.len();
    events.extend(new);
    Ok(n)
}

fn dispute(reason: &str) -> CaseCommand {
    CaseCommand::Dispute {
        reason: reason.into(),
    }
}

fn resolve(note: &str) -> CaseCommand {
    CaseCommand::ResolveDispute {
        outcome: DisputeOutcome::Rejected,
        note: note.into(),
    }
}

/// Regression (issue 10): a retried ResolveDispute was FAILED_PRECONDITION; a delayed retry
/// of DisputeInvoice after the resolve opened a second dispute.
#[test]
fn retried_dispute_and_resolve_under_their_request_ids_change_nothing() {
    let mut events = vec![issued()];
    assert_eq!(run(&mut events, &dispute("damaged"), Some("d-1")), Ok(1));
    assert_eq!(run(&mut events, &resolve("photos"), Some("r-1")), Ok(1));
    // The resolve retried: same result, nothing new.
    assert_eq!(run(&mut events, &resolve("photos"), Some("r-1")), Ok(0));
    // Without a key too, while nothing happened since.
    assert_eq!(run(&mut events, &resolve("photos"), None), Ok(0));
    // The first dispute arrives again late: no second dispute.
    assert_eq!(run(&mut events, &dispute("damaged"), Some("d-1")), Ok(0));
    assert_eq!(given(&events).unwrap().status, CaseStatus::Open);
    // A key reused for another request is refused, whatever the state.
    assert!(matches!(
        run(&mut events, &dispute("late"), Some("d-1")),
        Err(CaseError::AlreadyExists(_))
    ));
    assert!(matches!(
        run(&mut events, &resolve("other"), Some("d-1")),
        Err(CaseError::AlreadyExists(_))
    ));
    // A new key opens a new dispute.
    assert_eq!(run(&mut events, &dispute("late"), Some("d-2")), Ok(1));
    // The recorded events carry their keys (the case file says which request did what).
    let keys: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            CaseEvent::InvoiceDisputed(d) => d.request_id.clone(),
            CaseEvent::DisputeResolved(d) => d.request_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["d-1", "r-1", "d-2"]);
}

/// Regression (issue 10): a second cancel or dispute with another reason returned OK and
/// dropped the reason.
#[test]
fn a_second_cancel_or_dispute_with_another_reason_is_refused() {
    let mut events = vec![issued()];
    assert_eq!(run(&mut events, &dispute("damaged"), None), Ok(1));
    assert_eq!(run(&mut events, &dispute("damaged"), None), Ok(0));
    assert!(matches!(
        run(&mut events, &dispute("wrong amount"), None),
        Err(CaseError::AlreadyExists(_))
    ));
    let cancel = |r: &str| CaseCommand::Cancel { reason: r.into() };
    assert_eq!(run(&mut events, &cancel("duplicate"), Some("c-1")), Ok(1));
    assert_eq!(run(&mut events, &cancel("duplicate"), None), Ok(0));
    assert_eq!(run(&mut events, &cancel("duplicate"), Some("c-1")), Ok(0));
    assert!(matches!(
        run(&mut events, &cancel("other"), None),
        Err(CaseError::AlreadyExists(_))
    ));
    assert!(matches!(
        run(&mut events, &cancel("other"), Some("c-2")),
        Err(CaseError::AlreadyExists(_))
    ));
}

#[test]
fn request_ids_are_bounded_and_printable() {
    let state = given(&[issued()]);
    let long = "x".repeat(MAX_REQUEST_ID + 1);
    for bad in [long.as_str(), "a\nb", "nul\0"] {
        assert!(matches!(
            decide_request(state.as_ref(), &dispute("x"), Some(bad)),
            Err(CaseError::Invalid(ref f)) if f.field == "request_id"
        ));
    }
}

/// Regression (issue 10): a NUL in a reason passed validation, then failed the log write as
/// the retryable UNAVAILABLE.
#[test]
fn control_characters_in_reasons_notes_and_credit_notes_are_refused() {
    let state = given(&[issued()]);
    let refused = |command: CaseCommand, field: &str| {
        assert!(
            matches!(
                decide(state.as_ref(), &command),
                Err(CaseError::Invalid(ref f)) if f.field == field
            ),
            "{command:?}"
        );
    };
    refused(dispute("bad\0thing"), "reason");
    refused(
        CaseCommand::Cancel {
            reason: "a\r\nb".into(),
        },
        "reason",
    );
    refused(resolve("x\u{7}"), "note");
    refused(credit("GS\u{0}1", 100), "credit_note_number");
}

/// An invoice imported with only the buyer's country (issue 15): accepted when its source
/// says the document named no more, refused otherwise (CreateInvoice keeps the full check).
fn country_only(source: bool) -> Invoice {
    let mut i = invoice("RE-1");
    i.debtor.address = PostalAddress {
        country: "DE".into(),
        ..Default::default()
    }
    .into();
    if source {
        i.source = Some(crate::invoice::SourceDocument {
            sha256: "ab".repeat(32),
            media_type: "application/xml".into(),
            size: 1,
            syntax: "cii".into(),
            specification: None,
            type_code: "380".into(),
            replaces: None,
            debtor_kind_rule: "tenant_default".into(),
            due_date_rule: "due_date".into(),
            language_rule: "buyer_country".into(),
            creditor_account_rule: "document".into(),
            postal_address_incomplete: true,
        });
    }
    i
}

fn full_address() -> PostalAddress {
    PostalAddress {
        street: vec!["Lindenstraße 4".into()],
        postal_code: "10969".into(),
        city: "Berlin".into(),
        country: "DE".into(),
        region: None,
    }
}

#[test]
fn an_address_of_only_a_country_is_accepted_only_from_a_document_that_says_so() {
    let Err(CaseError::Invalid(e)) = decide(None, &CaseCommand::Issue(country_only(false))) else {
        panic!("expected invalid")
    };
    assert_eq!(e.field, "debtor.address.street");
    let events = decide(None, &CaseCommand::Issue(country_only(true))).unwrap();
    assert_eq!(events.len(), 1);
    assert!(!country_only(true).has_postal_address());
    // What there is must still be valid.
    let mut bad = country_only(true);
    bad.debtor.address = PostalAddress {
        country: "XX".into(),
        ..Default::default()
    }
    .into();
    let Err(CaseError::Invalid(e)) = decide(None, &CaseCommand::Issue(bad)) else {
        panic!("expected invalid")
    };
    assert_eq!(e.field, "debtor.address.country");
}

#[test]
fn the_creditor_adds_the_address_once_and_the_import_retried_is_still_the_same_invoice() {
    let mut events = vec![CaseEvent::InvoiceIssued(InvoiceIssued {
        invoice: country_only(true),
    })];
    let update = CaseCommand::UpdateDebtorAddress {
        address: full_address(),
    };
    // An incomplete address is refused, naming the field.
    let Err(CaseError::Invalid(e)) = run(
        &mut events,
        &CaseCommand::UpdateDebtorAddress {
            address: PostalAddress {
                city: "Berlin".into(),
                country: "DE".into(),
                ..Default::default()
            },
        },
        Some("a-0"),
    ) else {
        panic!("expected invalid")
    };
    assert_eq!(e.field, "address.street");
    assert_eq!(run(&mut events, &update, Some("a-1")), Ok(1));
    let state = given(&events).unwrap();
    assert!(state.invoice.has_postal_address());
    assert_eq!(state.invoice.debtor.address.expose(), &full_address());
    // Retried: nothing new, with or without its key.
    assert_eq!(run(&mut events, &update, Some("a-1")), Ok(0));
    assert_eq!(run(&mut events, &update, None), Ok(0));
    // The key for another address is ALREADY_EXISTS.
    let mut other = full_address();
    other.city = "Potsdam".into();
    assert!(matches!(
        run(
            &mut events,
            &CaseCommand::UpdateDebtorAddress { address: other },
            Some("a-1")
        ),
        Err(CaseError::AlreadyExists(_))
    ));
    // The e-invoice imported again is the invoice as issued: a no-op.
    assert_eq!(
        run(&mut events, &CaseCommand::Issue(country_only(true)), None),
        Ok(0)
    );
    let e = events.last().unwrap();
    assert_eq!(
        CaseEvent::from_parts(e.event_type(), &e.to_payload()).unwrap(),
        Some(e.clone())
    );
    assert_eq!(e.event_type(), "invoice.debtor_address_updated.v1");
}
