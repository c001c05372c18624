//! Authentication under attack, through the real gRPC server: a peer sending random tokens is
//! rate-limited after a burst (RESOURCE_EXHAUSTED, no database query); a valid key it used
//! before keeps working at once.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;

#[tokio::test]
async fn random_tokens_from_one_peer_are_rate_limited_and_valid_keys_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let mut client = InvoiceServiceClient::new(server.channel().await);
    let get = |token: String| {
        authed(
            &token,
            pb::GetInvoiceRequest {
                invoice_number: "RE-1".into(),
                ..Default::default()
            },
        )
    };
    // The valid key is used (and cached) before the attack: NOT_FOUND, i.e. authenticated.
    let code = client
        .get_invoice(get(key.clone()))
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, tonic::Code::NotFound);
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..(mahnwerk_auth::FAILURE_BURST + 100) {
        let token = format!(
            "mwk_{}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12],
            uuid::Uuid::new_v4().simple()
        );
        let code = client.get_invoice(get(token)).await.unwrap_err().code();
        *codes.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    eprintln!("random tokens: {codes:?}");
    assert!(
        codes.get("ResourceExhausted").copied().unwrap_or(0) >= 50,
        "{codes:?}"
    );
    assert!(
        codes.get("Unauthenticated").copied().unwrap_or(0) >= 50,
        "{codes:?}"
    );
    assert_eq!(codes.len(), 2, "{codes:?}");
    let code = client.get_invoice(get(key)).await.unwrap_err().code();
    assert_eq!(code, tonic::Code::NotFound, "the valid key works at once");
    server.stop().await;
}
