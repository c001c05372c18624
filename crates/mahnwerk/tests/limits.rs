//! `mahnwerk serve` bounds the gRPC requests it handles at once (MAHNWERK_GRPC_CONCURRENCY):
//! one beyond the limit waits for a slot, then completes; none is refused.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_the_grpc_concurrency_limit_waits_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let key = tenant_key(&url, "acme").await;
    let server = start_with(&url, |a| a.grpc_concurrency = 1).await;

    // An import holds the only slot for as long as its request stream stays open.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportInvoicesRequest>(16);
    let mut importer = InvoiceServiceClient::new(server.channel().await);
    let import = {
        let key = key.clone();
        tokio::spawn(async move {
            importer
                .import_invoices(authed(
                    &key,
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .await
        })
    };
    for i in 0..1000 {
        tx.send(pb::ImportInvoicesRequest {
            tenant: String::new(),
            invoice: Some(invoice(&format!("LIM-{i:04}"))),
        })
        .await
        .unwrap();
    }
    // Its first chunk is recorded and published: the import is running on the server.
    let ns = server.namespace.clone();
    wait_for("the first chunk published", 60, || {
        let ns = ns.clone();
        async move { stream_messages(&ns).await >= 1000 }
    })
    .await;

    // A second request on another connection waits while the import holds the slot ...
    let mut reader = InvoiceServiceClient::new(server.channel().await);
    let get = {
        let key = key.clone();
        tokio::spawn(async move {
            reader
                .get_invoice(authed(
                    &key,
                    pb::GetInvoiceRequest {
                        invoice_number: "LIM-0007".into(),
                        ..Default::default()
                    },
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!get.is_finished(), "the second request waits for the slot");

    // ... and completes once the import is done with it.
    drop(tx);
    let imported = import.await.unwrap().unwrap().into_inner();
    assert_eq!(imported.accepted, 1000);
    let got = tokio::time::timeout(Duration::from_secs(30), get)
        .await
        .expect("the waiting request completes")
        .unwrap()
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(got.invoice_number, "LIM-0007");
    server.stop().await;
}
