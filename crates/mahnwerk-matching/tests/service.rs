//! The matching service against a real SQLite event log and a real NATS JetStream (NATS_URL):
//! relay, consumer projection and gRPC server in-process, a fresh namespace per test.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_over_record_transactions_settles_its_case() {
    let mut env = Env::start().await;
    let rf = RfReference::create("20260001").unwrap();
    let case = env
        .issue(
            "RE-2026-0001",
            "Müller Metallbau GmbH",
            11900,
            Some(rf.as_str()),
        )
        .await;
    let other = env.issue("RE-2026-0002", "Schmidt AG", 5000, None).await;

    let payment = tx("PSP-1", 11900, &format!("Zahlung {}", rf.to_print_format()));
    let res = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![payment.clone(), tx("PSP-2", 2000, "Rechnung RE-2026-0002")],
        }))
        .await
        .unwrap()
        .into_inner();
    let r = &res.results[0];
    assert_eq!(
        (r.decision.as_str(), r.rule.as_str(), r.duplicate),
        ("applied", "rf_reference", false),
        "{r:?}"
    );
    assert_eq!(r.allocations[0].case_id, case);
    // The second one: the number of another debtor's invoice, amount short, payer unlike: review.
    assert_eq!(res.results[1].decision, "review", "{:?}", res.results[1]);
    assert_eq!(
        env.case_types(&case).await,
        [
            "invoice.issued.v1",
            "payment.applied.v1",
            "invoice.settled.v1"
        ]
    );
    assert_eq!(env.case_types(&other).await, ["invoice.issued.v1"]);

    // Retried: the same answer, nothing applied twice.
    let again = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![payment.clone()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(again.results[0].duplicate);
    assert_eq!(again.results[0].decision, "applied");
    assert_eq!(env.case_types(&case).await.len(), 3);

    // The same bank reference with other content.
    let mut changed = payment.clone();
    changed.remittance = "something else".into();
    let err = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![changed],
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");

    // Unauthenticated and malformed calls change nothing.
    let err = env
        .client
        .record_transactions(pb::RecordTransactionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut bad = tx("PSP-3", 100, "x");
    bad.booking_date = "03.11.2026".into();
    let err = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![bad],
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("transactions[0].booking_date"),
        "{err:?}"
    );

    // The projection follows the settlement through NATS: the invoice is no longer open.
    let items_settled = || async {
        mahnwerk_matching::projection::load_items(&env.pool, "acme")
            .await
            .unwrap()
            .get(&case)
            .is_some_and(|i| i.open.minor == 0)
    };
    wait_for("the projection to see the settlement", items_settled).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_statement_twice_or_camt052_then_053_applies_nothing_twice() {
    let mut env = Env::start().await;
    let a = env.issue("RE-2026-0101", "Weiß KG", 10000, None).await;
    let b = env.issue("RE-2026-0102", "Weiß KG", 2500, None).await;

    // Intraday: the first payment only.
    let intraday = camt(
        "052",
        &[("BANK-1", 10000, "Rechnung RE-2026-0101")],
        0,
        10000,
    );
    let r = import(&mut env, &intraday).await.unwrap();
    assert_eq!((r.entries, r.applied, r.duplicates), (1, 1, 0), "{r:?}");

    // End of day: the same entry again, another one for b, and one nobody can place.
    let day = camt(
        "053",
        &[
            ("BANK-1", 10000, "Rechnung RE-2026-0101"),
            ("BANK-2", 2500, "RE 2026 0102"),
            ("BANK-3", 777, "Spende"),
        ],
        0,
        13277,
    );
    let r = import(&mut env, &day).await.unwrap();
    assert_eq!(
        (r.entries, r.applied, r.review, r.duplicates),
        (3, 1, 1, 1),
        "{r:?}"
    );
    // And the whole day once more: nothing new.
    let r = import(&mut env, &day).await.unwrap();
    assert_eq!((r.entries, r.applied, r.duplicates), (3, 0, 3), "{r:?}");
    for case in [&a, &b] {
        let types = env.case_types(case).await;
        assert_eq!(
            types.iter().filter(|t| *t == "payment.applied.v1").count(),
            1,
            "{types:?}"
        );
        assert!(types.contains(&"invoice.settled.v1".to_owned()));
    }

    // The one nobody could place is in the review queue; marking it not ours takes it off.
    let list = || async {
        let mut c = env.client.clone();
        c.list_unmatched(env.req(pb::ListUnmatchedRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .entries
    };
    wait_for("the review queue", || async { list().await.len() == 1 }).await;
    let entry = list().await.remove(0);
    assert_eq!(entry.amount.as_ref().unwrap().minor, 777);
    assert_eq!(entry.remittance, "Spende");
    for _ in 0..2 {
        let mut c = env.client.clone();
        c.mark_not_ours(env.req(pb::MarkNotOursRequest {
            tenant: String::new(),
            entry_id: entry.entry_id.clone(),
            note: "donation".into(),
            request_id: String::new(),
        }))
        .await
        .unwrap();
    }
    wait_for("the review queue to empty", || async {
        list().await.is_empty()
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbalanced_or_malformed_statement_is_rejected_and_nothing_is_applied() {
    let mut env = Env::start().await;
    let a = env.issue("RE-2026-0201", "Weiß KG", 10000, None).await;
    let head = env.log.head_position().await.unwrap();
    let wrong = camt("053", &[("BANK-9", 10000, "RE-2026-0201")], 0, 9999);
    let err = import(&mut env, &wrong).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("10000") && err.message().contains("9999"),
        "{}",
        err.message()
    );
    let truncated = &camt("053", &[("BANK-9", 10000, "RE-2026-0201")], 0, 10000)[..400];
    let err = import(&mut env, truncated).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><Document>&lol2;</Document>";
    let err = import(&mut env, laughs).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(
        env.log.head_position().await.unwrap(),
        head,
        "nothing recorded"
    );
    assert_eq!(env.case_types(&a).await, ["invoice.issued.v1"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_queue_manual_match_and_undo_are_events_with_their_actor() {
    let mut env = Env::start().await;
    let a = env.issue("RE-2026-0301", "Weiß KG", 4000, None).await;
    let b = env.issue("RE-2026-0302", "Weiß KG", 6000, None).await;
    let res = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![tx("PSP-7", 10000, "Oktober")],
        }))
        .await
        .unwrap()
        .into_inner();
    let entry = res.results[0].entry_id.clone();
    assert_eq!(res.results[0].decision, "review", "{:?}", res.results[0]);

    let manual = pb::MatchManuallyRequest {
        tenant: String::new(),
        entry_id: entry.clone(),
        allocations: vec![
            pb::ManualAllocation {
                case_id: a.clone(),
                amount_minor: 4000,
            },
            pb::ManualAllocation {
                case_id: b.clone(),
                amount_minor: 6000,
            },
        ],
        note: String::new(),
        request_id: String::new(),
    };
    // A case of another tenant (or none) is refused before anything is recorded.
    let mut wrong = manual.clone();
    wrong.allocations[1].case_id = uuid::Uuid::new_v4().to_string();
    let err = env.client.match_manually(env.req(wrong)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("allocations[1].case_id"), "{err:?}");
    for _ in 0..2 {
        env.client
            .match_manually(env.req(manual.clone()))
            .await
            .unwrap();
    }
    for case in [&a, &b] {
        assert_eq!(
            env.case_types(case).await,
            [
                "invoice.issued.v1",
                "payment.applied.v1",
                "invoice.settled.v1"
            ]
        );
    }
    let case_a: CaseId = a.parse().unwrap();
    let applied = &env
        .log
        .read_stream(&case_a.stream(&env.tenant), 2, 1)
        .await
        .unwrap()[0];
    assert_eq!(applied.payload["rule"], "manual");
    assert!(
        applied.metadata.actor.starts_with("apikey:"),
        "{:?}",
        applied.metadata
    );

    let undone = env
        .client
        .undo_match(env.req(pb::UndoMatchRequest {
            tenant: String::new(),
            entry_id: entry.clone(),
            reason: "wrong customer".into(),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(undone.payment_ids.len(), 2);
    let types = env.case_types(&a).await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("payment.reversed.v1")
    );
    // Undone entries are back in the queue.
    wait_for("the entry back in the review queue", || async {
        let mut c = env.client.clone();
        c.list_unmatched(env.req(pb::ListUnmatchedRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .entries
            .iter()
            .any(|e| e.entry_id == entry)
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_direct_debit_reverses_its_payment_and_reopens_the_case() {
    let mut env = Env::start().await;
    let case = env.issue("RE-2026-0401", "Weiß KG", 8000, None).await;
    let mut collected = tx("DD-1", 8000, "RE-2026-0401");
    collected.end_to_end_id = "E2E-DD-1".into();
    let r = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![collected],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].decision, "applied", "{:?}", r.results[0]);
    let original = r.results[0].entry_id.clone();
    // The projection knows the applied entry once the consumer has seen it.
    wait_for("the applied entry in the projection", || async {
        let amount = mahnwerk_domain::Money::eur(8000);
        !mahnwerk_matching::projection::find_original(
            &env.pool,
            "acme",
            Some("E2E-DD-1"),
            None,
            amount,
        )
        .await
        .unwrap()
        .is_empty()
    })
    .await;

    let mut ret = tx("DD-1-R", -8000, "RUECKLASTSCHRIFT");
    ret.end_to_end_id = "E2E-DD-1".into();
    ret.return_reason = "MD06".into();
    ret.booking_date = "2026-11-09".into();
    for _ in 0..2 {
        let r = env
            .client
            .record_transactions(env.req(pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![ret.clone()],
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(
            r.results[0].reason.contains(&original),
            "{:?}",
            r.results[0]
        );
    }
    let c: CaseId = case.parse().unwrap();
    let events = env
        .log
        .read_stream(&c.stream(&env.tenant), 1, 100)
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "invoice.issued.v1",
            "payment.applied.v1",
            "invoice.settled.v1",
            "payment.reversed.v1"
        ],
        "reversed exactly once"
    );
    let reversed = events.last().unwrap();
    assert_eq!(reversed.payload["reason"], "MD06");
    assert_eq!(reversed.payload["open_after"]["minor"], 8000);
    assert_eq!(reversed.payload["payment_id"], format!("{original}:{case}"));
    wait_for("the case open again in the projection", || async {
        mahnwerk_matching::projection::load_items(&env.pool, "acme")
            .await
            .unwrap()
            .get(&case)
            .is_some_and(|i| i.open.minor == 8000)
    })
    .await;

    // A return nobody can place goes to review.
    let mut stray = tx("DD-9-R", -1234, "RUECKLASTSCHRIFT");
    stray.return_reason = "AC04".into();
    let r = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![stray],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].decision, "review", "{:?}", r.results[0]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_restarted_applies_every_entry_exactly_once() {
    use mahnwerk_formats::statement::{ParseOptions, StatementItem};
    use mahnwerk_matching::entry::{account_of, bank_entry, entry_id, statement_reader};
    use mahnwerk_matching::events::{ENTRY_KIND, EntryEvent, Payer, TransactionReceived};
    let env = Env::start().await;
    let a = env.issue("RE-2026-0501", "Weiß KG", 3000, None).await;
    let b = env.issue("RE-2026-0502", "Weiß KG", 4000, None).await;
    let file = camt(
        "053",
        &[("K-1", 3000, "RE-2026-0501"), ("K-2", 4000, "RE-2026-0502")],
        0,
        7000,
    );
    // The import was killed after recording the first entry's decision, before applying it.
    let mut account = String::new();
    let mut first = None;
    for item in statement_reader(file.as_bytes(), None, ParseOptions::default()).unwrap() {
        match item.unwrap() {
            StatementItem::Header(h) => account = account_of(&h),
            StatementItem::Entry(e) if first.is_none() => first = Some(*e),
            _ => {}
        }
    }
    let e = first.unwrap();
    let id = entry_id(&account, &e);
    let items = mahnwerk_matching::projection::load_items(&env.pool, "acme")
        .await
        .unwrap();
    let be = bank_entry(id.clone(), &e);
    let d = mahnwerk_matching::decide(&items, &be, &Settings::default());
    assert_eq!(d.allocations[0].case_id, a);
    let received = EntryEvent::Received(Box::new(TransactionReceived {
        entry_id: id.clone(),
        source: "statement".into(),
        bank_reference: e.bank_reference.clone(),
        amount: e.amount,
        booked_on: e.booking_date,
        booked: true,
        reversal: false,
        return_reason: None,
        fingerprint: None,
        payer: Payer::default(),
        decision: (&d).into(),
    }));
    env.log
        .append(AppendBatch {
            stream: mahnwerk_domain::StreamId::new(&env.tenant, ENTRY_KIND, &id),
            expected: ExpectedVersion::NoStream,
            events: vec![NewEvent {
                event_id: event_id_now(),
                event_type: received.event_type().into(),
                payload: received.to_payload(),
                occurred_at: chrono::Utc::now(),
                metadata: Metadata {
                    actor: "test".into(),
                    ..Default::default()
                },
            }],
        })
        .await
        .unwrap();
    assert_eq!(env.case_types(&a).await, ["invoice.issued.v1"]);

    // Restarted, twice, through the CLI: each entry applied exactly once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day.xml");
    std::fs::write(&path, &file).unwrap();
    let server = format!("http://{}", env.addr);
    let mut out = Vec::new();
    let cmd = || mahnwerk_matching::cli::ImportCommand::Statement {
        files: vec![path.clone()],
        csv_mapping: None,
        quiet: true,
    };
    let first = mahnwerk_matching::cli::import(&server, &env.token, "", cmd(), &mut out)
        .await
        .unwrap();
    assert_eq!((first.entries, first.applied, first.duplicates), (2, 1, 1));
    let again = mahnwerk_matching::cli::import(&server, &env.token, "", cmd(), &mut out)
        .await
        .unwrap();
    assert_eq!((again.entries, again.applied, again.duplicates), (2, 0, 2));
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("2 entries: 1 matched"), "{text}");
    assert!(text.contains("2 duplicates skipped"), "{text}");
    for case in [&a, &b] {
        assert_eq!(
            env.case_types(case).await,
            [
                "invoice.issued.v1",
                "payment.applied.v1",
                "invoice.settled.v1"
            ]
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_entry_is_recorded_and_applied_only_once_booked() {
    let mut env = Env::start().await;
    let case = env.issue("RE-2026-0601", "Weiß KG", 5000, None).await;
    let mut pending = tx("PND-1", 5000, "RE-2026-0601");
    pending.pending = true;
    let call = |t: pb::Transaction| pb::RecordTransactionsRequest {
        tenant: String::new(),
        transactions: vec![t],
    };
    for _ in 0..2 {
        let r = env
            .client
            .record_transactions(env.req(call(pending.clone())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.results[0].decision, "ignored", "{:?}", r.results[0]);
    }
    assert_eq!(env.case_types(&case).await, ["invoice.issued.v1"]);
    let mut booked = pending.clone();
    booked.pending = false;
    let r = env
        .client
        .record_transactions(env.req(call(booked.clone())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.results[0].decision.as_str(), r.results[0].duplicate),
        ("applied", false),
        "{:?}",
        r.results[0]
    );
    assert_eq!(
        env.case_types(&case).await,
        [
            "invoice.issued.v1",
            "payment.applied.v1",
            "invoice.settled.v1"
        ]
    );
    env.stop().await;
}

/// `mahnwerk review`: the review queue from the command line, over the same gRPC calls: a
/// transfer that names no invoice is listed, shown, split by hand (one part taking the rest),
/// undone back into the queue, then marked as not ours and gone from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_cli_lists_shows_splits_undoes_and_marks_not_ours() {
    use mahnwerk_matching::review_cli::{ReviewCommand, review};
    let mut env = Env::start().await;
    let a = env.issue("RE-2026-0401", "Weiß KG", 4000, None).await;
    let b = env.issue("RE-2026-0402", "Weiß KG", 6000, None).await;
    let res = env
        .client
        .record_transactions(env.req(pb::RecordTransactionsRequest {
            tenant: String::new(),
            transactions: vec![tx("PSP-CLI-1", 10000, "Oktober")],
        }))
        .await
        .unwrap()
        .into_inner();
    let entry = res.results[0].entry_id.clone();
    assert_eq!(res.results[0].decision, "review", "{:?}", res.results[0]);
    let server = format!("http://{}", env.addr);
    let run = |cmd: ReviewCommand| {
        let (server, token) = (server.clone(), env.token.clone());
        async move {
            let mut out = Vec::new();
            review(&server, &token, "", cmd, &mut out)
                .await
                .map(|()| String::from_utf8(out).unwrap())
        }
    };
    let queued = || {
        let run = &run;
        let entry = entry.clone();
        async move {
            run(ReviewCommand::List {
                json: true,
                all: true,
            })
            .await
            .unwrap()
            .lines()
            .any(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["entry_id"] == entry)
        }
    };
    wait_for("the entry in the review queue", queued).await;
    let text = run(ReviewCommand::List {
        json: false,
        all: false,
    })
    .await
    .unwrap();
    assert!(
        text.contains(&entry) && text.contains("100.00 EUR"),
        "{text}"
    );
    let shown: serde_json::Value = serde_json::from_str(
        &run(ReviewCommand::Show {
            entry: entry.clone(),
        })
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(shown["amount"]["minor"], 10000);
    assert_eq!(shown["counterparty_name"], "Müller Metallbau GmbH");

    // A bad part is refused before anything is sent.
    let err = run(ReviewCommand::Match {
        entry: entry.clone(),
        parts: vec![format!("{a}=40,00")],
        note: String::new(),
    })
    .await
    .unwrap_err();
    assert!(err.contains("part 1"), "{err}");
    assert_eq!(env.case_types(&a).await, ["invoice.issued.v1"]);

    let out = run(ReviewCommand::Match {
        entry: entry.clone(),
        parts: vec![b.clone(), format!("{a}=4000")],
        note: "Anruf Buchhaltung".into(),
    })
    .await
    .unwrap();
    assert!(out.contains("split"), "{out}");
    for case in [&a, &b] {
        assert_eq!(
            env.case_types(case).await,
            [
                "invoice.issued.v1",
                "payment.applied.v1",
                "invoice.settled.v1"
            ]
        );
    }
    let case_b: CaseId = b.parse().unwrap();
    let applied = &env
        .log
        .read_stream(&case_b.stream(&env.tenant), 2, 1)
        .await
        .unwrap()[0];
    assert_eq!(applied.payload["rule"], "manual");
    assert_eq!(
        applied.payload["amount"]["minor"], 6000,
        "{}",
        applied.payload
    );
    assert!(applied.metadata.actor.starts_with("apikey:"));

    let out = run(ReviewCommand::Undo {
        entry: entry.clone(),
        reason: "falscher Kunde".into(),
    })
    .await
    .unwrap();
    assert!(out.contains("2 payments reversed"), "{out}");
    assert_eq!(
        env.case_types(&a).await.last().map(String::as_str),
        Some("payment.reversed.v1")
    );
    wait_for("the undone entry back in the queue", queued).await;

    let out = run(ReviewCommand::NotOurs {
        entry: entry.clone(),
        note: "Fremdüberweisung".into(),
    })
    .await
    .unwrap();
    assert!(out.contains("not ours"), "{out}");
    wait_for("the entry gone from the queue", || async {
        !queued().await
    })
    .await;
    let err = run(ReviewCommand::Show {
        entry: entry.clone(),
    })
    .await
    .unwrap_err();
    assert!(err.contains("not in the review queue"), "{err}");
    env.stop().await;
}
