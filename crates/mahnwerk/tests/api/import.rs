//! `ImportInvoices`: one stream of many invoices, some of them bad.

use super::*;

#[tokio::test]
async fn ten_thousand_invoices_over_one_stream_with_one_percent_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let server = start(&url).await;
        let key = tenant_key(&url, "bulk").await;
        let bad_fields = [
            "invoice.net_amount",
            "invoice.creditor_account.iban",
            "invoice.due_date",
            "invoice.currency",
            "invoice.debtor.address.postal_code",
        ];
        let mut expected_bad = std::collections::HashMap::new();
        let items: Vec<pb::ImportInvoicesRequest> = (0..10_000)
            .map(|i| {
                let mut inv = invoice(&format!("IMP-{i:05}"));
                if i % 100 == 42 {
                    let field = bad_fields[(i / 100) % bad_fields.len()];
                    match field {
                        "invoice.net_amount" => inv.net_amount = -1,
                        "invoice.creditor_account.iban" => {
                            inv.creditor_account.as_mut().unwrap().iban =
                                "DE00370400440532013000".into()
                        }
                        "invoice.due_date" => inv.due_date = "2026-01-01".into(),
                        "invoice.currency" => inv.currency = "XYZ".into(),
                        _ => {
                            inv.debtor
                                .as_mut()
                                .unwrap()
                                .address
                                .as_mut()
                                .unwrap()
                                .postal_code = String::new()
                        }
                    }
                    expected_bad.insert(i as u64, field);
                }
                pb::ImportInvoicesRequest {
                    tenant: String::new(),
                    invoice: Some(inv),
                }
            })
            .collect();
        let mut client = InvoiceServiceClient::new(server.channel().await);
        let res = client
            .import_invoices(authed(&key, tokio_stream::iter(items)))
            .await
            .unwrap()
            .into_inner();
        // Only the rejected items are listed, in order; the rest are counted.
        assert_eq!(res.results.len(), 100);
        assert_eq!(
            (
                res.accepted,
                res.rejected,
                res.created,
                res.rejected_unreported
            ),
            (9_900, 100, 9_900, 0)
        );
        for r in &res.results {
            let field = expected_bad
                .get(&r.index)
                .unwrap_or_else(|| panic!("item {} rejected: {r:?}", r.index));
            assert_eq!(r.error_code, "INVALID_ARGUMENT");
            assert!(
                r.violations.iter().any(|v| v.field == *field),
                "item {}: {:?}",
                r.index,
                r.violations
            );
            assert!(r.case_id.is_empty());
        }
        assert!(res.results.windows(2).all(|w| w[0].index < w[1].index));
        let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
        assert_eq!(log.head_position().await.unwrap(), 9_900);
        // Every good invoice is readable through CaseService.
        let mut cases = CaseServiceClient::new(server.channel().await);
        for i in (0..10_000_u64)
            .filter(|i| !expected_bad.contains_key(i))
            .step_by(33)
        {
            let number = format!("IMP-{i:05}");
            let file = cases
                .get_case_file(authed(
                    &key,
                    pb::GetCaseFileRequest {
                        invoice_number: number.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(file.events.len(), 1);
            assert!(file.events[0].payload_json.contains(&number));
        }
        // Importing the same stream again is a retry: nothing new, nothing rejected twice.
        let again: Vec<_> = (0..200)
            .map(|i| pb::ImportInvoicesRequest {
                tenant: String::new(),
                invoice: Some(invoice(&format!("IMP-{i:05}"))),
            })
            .collect();
        let res2 = client
            .import_invoices(authed(&key, tokio_stream::iter(again)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(res2.accepted, 200);
        // Only the two items rejected the first time are new.
        assert_eq!((res2.created, res2.rejected), (2, 0));
        assert!(res2.results.is_empty());
        // And all events reach JetStream.
        let ns = server.namespace.clone();
        wait_for("published", 60, || {
            let ns = ns.clone();
            async move { stream_messages(&ns).await == 9_902 }
        })
        .await;
        server.stop().await;
    }
}
