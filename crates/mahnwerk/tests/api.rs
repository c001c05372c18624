//! The gRPC API end to end: real server, real event log (SQLite and PostgreSQL), real NATS.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

// More of this binary, by idea (one binary: one link).
#[path = "api/import.rs"]
mod import;
#[path = "api/serve.rs"]
mod serve;

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_is_idempotent_and_bad_requests_name_their_field_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let server = start(&url).await;
        let key = tenant_key(&url, "acme").await;
        let mut client = InvoiceServiceClient::new(server.channel().await);
        let create = |inv: pb::Invoice| {
            authed(
                &key,
                pb::CreateInvoiceRequest {
                    tenant: String::new(),
                    invoice: Some(inv),
                },
            )
        };

        let first = client
            .create_invoice(create(invoice("RE-1")))
            .await
            .unwrap()
            .into_inner();
        assert!(first.created);
        let again = client
            .create_invoice(create(invoice("RE-1")))
            .await
            .unwrap()
            .into_inner();
        assert!(!again.created);
        assert_eq!(first.invoice, again.invoice);
        let mut changed = invoice("RE-1");
        changed.net_amount += 1;
        changed.gross_amount += 1;
        assert_eq!(
            client
                .create_invoice(create(changed))
                .await
                .unwrap_err()
                .code(),
            Code::AlreadyExists
        );

        type Spoil = Box<dyn Fn(&mut pb::Invoice)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("invoice.net_amount", Box::new(|i| i.net_amount = -5)),
            (
                "invoice.gross_amount",
                Box::new(|i| i.gross_amount = i64::MAX),
            ),
            ("invoice.currency", Box::new(|i| i.currency = "EUX".into())),
            (
                "invoice.due_date",
                Box::new(|i| i.due_date = "2026-02-01".into()),
            ),
            (
                "invoice.creditor_account.iban",
                Box::new(|i| {
                    i.creditor_account.as_mut().unwrap().iban = "DE88370400440532013000".into()
                }),
            ),
            (
                "invoice.invoice_number",
                Box::new(|i| i.invoice_number = String::new()),
            ),
            (
                "invoice.debtor.name",
                Box::new(|i| i.debtor.as_mut().unwrap().name = "x".repeat(5000)),
            ),
            (
                "invoice.issue_date",
                Box::new(|i| i.issue_date = "2026-02-30".into()),
            ),
            (
                "invoice.debtor.address.region",
                Box::new(|i| {
                    if let Some(a) = i.debtor.as_mut().and_then(|d| d.address.as_mut()) {
                        a.region = "DE-XX".into();
                    }
                }),
            ),
        ];
        for (field, spoil) in cases {
            let mut bad = invoice("RE-BAD");
            spoil(&mut bad);
            let err = client.create_invoice(create(bad)).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{field}");
            assert!(
                violations(&err).iter().any(|f| f == field),
                "{field}: {:?}",
                violations(&err)
            );
            assert!(err.message().contains(field), "{}", err.message());
        }
        // Nothing of the rejected requests reached the log: one event, from RE-1.
        let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
        assert_eq!(log.head_position().await.unwrap(), 1);
        server.stop().await;
    }
}

#[tokio::test]
async fn lifecycle_commands_change_the_case_and_the_case_file_shows_every_event() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let server = start(&url).await;
        let key = tenant_key(&url, "acme").await;
        let mut client = InvoiceServiceClient::new(server.channel().await);
        let created = client
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    tenant: "acme".into(),
                    invoice: Some(invoice("RE-7")),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        let n = || "RE-7".to_owned();
        let credited = client
            .credit_invoice(authed(
                &key,
                pb::CreditInvoiceRequest {
                    tenant: String::new(),
                    invoice_number: n(),
                    credit_note_number: "GS-1".into(),
                    amount: Some(pb::Money {
                        minor: 1900,
                        currency: "EUR".into(),
                    }),
                    reason: "discount".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(credited.open_amount, 10000);
        let disputed = client
            .dispute_invoice(authed(
                &key,
                pb::DisputeInvoiceRequest {
                    tenant: String::new(),
                    invoice_number: n(),
                    reason: "quality".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(disputed.status, pb::InvoiceStatus::Disputed as i32);
        let resolved = client
            .resolve_dispute(authed(
                &key,
                pb::ResolveDisputeRequest {
                    tenant: String::new(),
                    invoice_number: n(),
                    outcome: pb::DisputeOutcome::Rejected as i32,
                    note: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(resolved.status, pb::InvoiceStatus::Open as i32);
        let extended = client
            .extend_due_date(authed(
                &key,
                pb::ExtendDueDateRequest {
                    tenant: String::new(),
                    invoice_number: n(),
                    new_due_date: "2026-04-30".into(),
                    reason: String::new(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(extended.current_due_date, "2026-04-30");
        let overdue = |as_of: &str| {
            authed(
                &key,
                pb::ListInvoicesRequest {
                    overdue_as_of: as_of.into(),
                    ..Default::default()
                },
            )
        };
        // The projection follows the log; wait until it shows the extension (regression: waiting
        // for "not overdue" passed before the projection had the invoice at all).
        let ch = server.channel().await;
        let all = || authed(&key, pb::ListInvoicesRequest::default());
        wait_for("projection", 20, || {
            let mut c = InvoiceServiceClient::new(ch.clone());
            let req = all();
            async move {
                let listed = c.list_invoices(req).await.unwrap().into_inner().invoices;
                listed.len() == 1 && listed[0].current_due_date == "2026-04-30"
            }
        })
        .await;
        let not_yet = client
            .list_invoices(overdue("2026-04-15"))
            .await
            .unwrap()
            .into_inner();
        assert!(not_yet.invoices.is_empty());
        let listed = client
            .list_invoices(overdue("2026-05-01"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.invoices.len(), 1);
        assert_eq!(listed.invoices[0].invoice_number, "RE-7");
        let cancelled = client
            .cancel_invoice(authed(
                &key,
                pb::CancelInvoiceRequest {
                    tenant: String::new(),
                    invoice_number: n(),
                    reason: "void".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(cancelled.status, pb::InvoiceStatus::Cancelled as i32);

        let mut cases = CaseServiceClient::new(server.channel().await);
        let file = cases
            .get_case_file(authed(
                &key,
                pb::GetCaseFileRequest {
                    case_id: created.case_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let types: Vec<&str> = file.events.iter().map(|e| e.r#type.as_str()).collect();
        assert_eq!(
            types,
            [
                "invoice.issued.v1",
                "invoice.credited.v1",
                "invoice.disputed.v1",
                "dispute.resolved.v1",
                "due_date.extended.v1",
                "invoice.cancelled.v1"
            ]
        );
        assert_eq!(
            file.events.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert!(
            file.events
                .iter()
                .all(|e| e.metadata.as_ref().unwrap().actor.starts_with("apikey:"))
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_key_of_tenant_a_cannot_read_list_or_change_tenant_b() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let server = start(&url).await;
        let key_a = tenant_key(&url, "tenant-a").await;
        let key_b = tenant_key(&url, "tenant-b").await;
        let mut client = InvoiceServiceClient::new(server.channel().await);
        let b_invoice = client
            .create_invoice(authed(
                &key_b,
                pb::CreateInvoiceRequest {
                    tenant: String::new(),
                    invoice: Some(invoice("B-1")),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        // Naming tenant B explicitly: permission denied, whatever the call.
        let denied = |c: Code| assert_eq!(c, Code::PermissionDenied);
        denied(
            client
                .get_invoice(authed(
                    &key_a,
                    pb::GetInvoiceRequest {
                        tenant: "tenant-b".into(),
                        invoice_number: "B-1".into(),
                    },
                ))
                .await
                .unwrap_err()
                .code(),
        );
        denied(
            client
                .list_invoices(authed(
                    &key_a,
                    pb::ListInvoicesRequest {
                        tenant: "tenant-b".into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err()
                .code(),
        );
        denied(
            client
                .cancel_invoice(authed(
                    &key_a,
                    pb::CancelInvoiceRequest {
                        tenant: "tenant-b".into(),
                        invoice_number: "B-1".into(),
                        reason: String::new(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_err()
                .code(),
        );
        denied(
            client
                .create_invoice(authed(
                    &key_a,
                    pb::CreateInvoiceRequest {
                        tenant: "tenant-b".into(),
                        invoice: Some(invoice("B-2")),
                    },
                ))
                .await
                .unwrap_err()
                .code(),
        );
        // In its own tenant, A does not see B's invoice or case file, even by case id.
        assert_eq!(
            client
                .get_invoice(authed(
                    &key_a,
                    pb::GetInvoiceRequest {
                        tenant: String::new(),
                        invoice_number: "B-1".into()
                    }
                ))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        assert_eq!(
            client
                .cancel_invoice(authed(
                    &key_a,
                    pb::CancelInvoiceRequest {
                        tenant: String::new(),
                        invoice_number: "B-1".into(),
                        reason: String::new(),
                        ..Default::default()
                    }
                ))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        // Once the projection holds B's invoice (B sees it), A's list still shows nothing.
        let ch = server.channel().await;
        wait_for("projection", 20, || {
            let mut c = InvoiceServiceClient::new(ch.clone());
            let req = authed(&key_b, pb::ListInvoicesRequest::default());
            async move {
                c.list_invoices(req)
                    .await
                    .unwrap()
                    .into_inner()
                    .invoices
                    .len()
                    == 1
            }
        })
        .await;
        let listed = client
            .list_invoices(authed(&key_a, pb::ListInvoicesRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.invoices.is_empty());
        let mut cases = CaseServiceClient::new(server.channel().await);
        assert_eq!(
            cases
                .get_case_file(authed(
                    &key_a,
                    pb::GetCaseFileRequest {
                        case_id: b_invoice.case_id.clone(),
                        ..Default::default()
                    }
                ))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        // And B's invoice is untouched.
        let b = client
            .get_invoice(authed(
                &key_b,
                pb::GetInvoiceRequest {
                    tenant: String::new(),
                    invoice_number: "B-1".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(b.status, pb::InvoiceStatus::Open as i32);
        // No key, a bad key: unauthenticated.
        assert_eq!(
            client
                .get_invoice(tonic::Request::new(pb::GetInvoiceRequest::default()))
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
        assert_eq!(
            client
                .get_invoice(authed("mwk_nope_nope", pb::GetInvoiceRequest::default()))
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated
        );
        server.stop().await;
    }
}

/// Must show 1 of issue 10: every mutating RPC is safe to retry. Regressions: a retried
/// ResolveDispute was FAILED_PRECONDITION, a delayed DisputeInvoice retry after the resolve
/// opened a second dispute, a second CancelInvoice with another reason returned OK.
#[tokio::test]
async fn every_mutating_rpc_is_safe_to_retry_and_a_reused_key_is_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let server = start(&url).await;
        let key = tenant_key(&url, "acme").await;
        let mut client = InvoiceServiceClient::new(server.channel().await);
        let number = || "RE-RETRY".to_owned();
        let create = pb::CreateInvoiceRequest {
            tenant: String::new(),
            invoice: Some(invoice("RE-RETRY")),
        };
        client
            .create_invoice(authed(&key, create.clone()))
            .await
            .unwrap();
        let dispute = |reason: &str, rid: &str| pb::DisputeInvoiceRequest {
            invoice_number: number(),
            reason: reason.into(),
            request_id: rid.into(),
            ..Default::default()
        };
        let resolve = |note: &str, rid: &str| pb::ResolveDisputeRequest {
            invoice_number: number(),
            outcome: pb::DisputeOutcome::Rejected as i32,
            note: note.into(),
            request_id: rid.into(),
            ..Default::default()
        };
        let extend = |date: &str, rid: &str| pb::ExtendDueDateRequest {
            invoice_number: number(),
            new_due_date: date.into(),
            request_id: rid.into(),
            ..Default::default()
        };
        let credit = |minor: i64| pb::CreditInvoiceRequest {
            invoice_number: number(),
            credit_note_number: "GS-9".into(),
            amount: Some(pb::Money {
                minor,
                currency: "EUR".into(),
            }),
            ..Default::default()
        };
        let cancel = |reason: &str, rid: &str| pb::CancelInvoiceRequest {
            invoice_number: number(),
            reason: reason.into(),
            request_id: rid.into(),
            ..Default::default()
        };

        // Each call twice: the same answer, and the second adds nothing to the case file.
        let a = client
            .dispute_invoice(authed(&key, dispute("quality", "d-1")))
            .await
            .unwrap()
            .into_inner();
        let b = client
            .dispute_invoice(authed(&key, dispute("quality", "d-1")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a, b);
        let a = client
            .resolve_dispute(authed(&key, resolve("checked", "r-1")))
            .await
            .unwrap()
            .into_inner();
        let b = client
            .resolve_dispute(authed(&key, resolve("checked", "r-1")))
            .await
            .expect("a retried resolve is OK")
            .into_inner();
        assert_eq!(a, b);
        // The dispute's first request arrives again, late: no second dispute.
        let late = client
            .dispute_invoice(authed(&key, dispute("quality", "d-1")))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        assert_eq!(late.status, pb::InvoiceStatus::Open as i32);
        let a = client
            .extend_due_date(authed(&key, extend("2026-05-30", "e-1")))
            .await
            .unwrap()
            .into_inner();
        let b = client
            .extend_due_date(authed(&key, extend("2026-05-30", "e-1")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a, b);
        let a = client
            .credit_invoice(authed(&key, credit(100)))
            .await
            .unwrap()
            .into_inner();
        let b = client
            .credit_invoice(authed(&key, credit(100)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a, b);
        let a = client
            .cancel_invoice(authed(&key, cancel("duplicate", "c-1")))
            .await
            .unwrap()
            .into_inner();
        let b = client
            .cancel_invoice(authed(&key, cancel("duplicate", "c-1")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a, b);
        let again = client
            .create_invoice(authed(&key, create.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(!again.created);

        // The same key (or natural key) with a different request: ALREADY_EXISTS.
        fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
            r.unwrap_err().code()
        }
        assert_eq!(
            code(
                client
                    .dispute_invoice(authed(&key, dispute("other", "d-1")))
                    .await
            ),
            Code::AlreadyExists
        );
        assert_eq!(
            code(
                client
                    .resolve_dispute(authed(&key, resolve("other", "r-1")))
                    .await
            ),
            Code::AlreadyExists
        );
        assert_eq!(
            code(
                client
                    .extend_due_date(authed(&key, extend("2026-06-30", "e-1")))
                    .await
            ),
            Code::AlreadyExists
        );
        assert_eq!(
            code(client.credit_invoice(authed(&key, credit(200))).await),
            Code::AlreadyExists
        );
        assert_eq!(
            code(
                client
                    .cancel_invoice(authed(&key, cancel("other", "")))
                    .await
            ),
            Code::AlreadyExists
        );
        assert_eq!(
            code(
                client
                    .cancel_invoice(authed(&key, cancel("duplicate", "d-1")))
                    .await
            ),
            Code::AlreadyExists
        );

        // The case file holds each effect once.
        let mut cases = CaseServiceClient::new(server.channel().await);
        let file = cases
            .get_case_file(authed(
                &key,
                pb::GetCaseFileRequest {
                    invoice_number: number(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let types: Vec<_> = file.events.iter().map(|e| e.r#type.as_str()).collect();
        assert_eq!(
            types,
            [
                "invoice.issued.v1",
                "invoice.disputed.v1",
                "dispute.resolved.v1",
                "due_date.extended.v1",
                "invoice.credited.v1",
                "invoice.cancelled.v1"
            ],
            "{url}"
        );
    }
}

/// Issue 10, "inputs that mean the same thing are the same" and "problems that are the
/// caller's are INVALID_ARGUMENT": each of these was OK, a second case, or UNAVAILABLE before.
#[tokio::test]
async fn callers_problems_are_invalid_argument_and_padded_numbers_are_one_case() {
    let dir = tempfile::tempdir().unwrap();
    let url = databases(&dir).await.remove(0);
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let mut client = InvoiceServiceClient::new(server.channel().await);
    let create = |number: &str| {
        authed(
            &key,
            pb::CreateInvoiceRequest {
                tenant: String::new(),
                invoice: Some(invoice(number)),
            },
        )
    };
    let first = client
        .create_invoice(create("RE-PAD-1"))
        .await
        .unwrap()
        .into_inner();
    let padded = client
        .create_invoice(create("\u{a0} RE-PAD-1\u{a0}"))
        .await
        .unwrap()
        .into_inner();
    assert!(!padded.created, "a padded number is the same invoice");
    assert_eq!(
        first.invoice.as_ref().unwrap().case_id,
        padded.invoice.as_ref().unwrap().case_id
    );

    // A NUL in a reason: INVALID_ARGUMENT naming it (it used to reach the log and fail there).
    let err = client
        .dispute_invoice(authed(
            &key,
            pb::DisputeInvoiceRequest {
                invoice_number: "RE-PAD-1".into(),
                reason: "broken\0item".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["reason"]);
    // A payment reference with a NUL in an invoice.
    let mut bad = invoice("RE-PAD-2");
    bad.payment_reference = "RF18\u{0}5390".into();
    let err = client
        .create_invoice(authed(
            &key,
            pb::CreateInvoiceRequest {
                tenant: String::new(),
                invoice: Some(bad),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["invoice.payment_reference"]);

    // An oversized x-request-id header.
    let mut req = create("RE-PAD-3");
    req.metadata_mut()
        .insert("x-request-id", "r".repeat(500).parse().unwrap());
    let err = client.create_invoice(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["x-request-id"]);

    // GetCaseFile with a case id and an unrelated invoice number.
    let case_id = first.invoice.unwrap().case_id;
    let mut cases = CaseServiceClient::new(server.channel().await);
    let err = cases
        .get_case_file(authed(
            &key,
            pb::GetCaseFileRequest {
                case_id: case_id.clone(),
                invoice_number: "RE-OTHER".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let file = cases
        .get_case_file(authed(
            &key,
            pb::GetCaseFileRequest {
                case_id,
                invoice_number: " RE-PAD-1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Nothing of the refused requests reached the case file.
    assert_eq!(file.events.len(), 1);
}
