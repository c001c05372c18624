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

/// `mahnwerk apikey rotate` gives a second key for the same tenants while the old one keeps
/// working until revoked; `apikey create --expires-at` in the past gives a key that never works.
#[tokio::test]
async fn apikey_rotate_and_expiry_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let old = tenant_key(&url, "acme").await;
    let old_id = old.split('_').nth(1).unwrap().to_owned();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .args(args)
            .args(["--database-url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let new = cli(&["apikey", "rotate", &old_id]);
    let expired = cli(&[
        "apikey",
        "create",
        "--tenant",
        "acme",
        "--expires-at",
        "2020-01-01T00:00:00Z",
    ]);
    let (_, keys, _) = mahnwerk::server::open_stores(&url).await.unwrap();
    assert!(keys.lookup(&old).await.unwrap().is_some());
    let caller = keys.lookup(&new).await.unwrap().unwrap();
    assert_eq!(caller.tenants, vec!["acme".parse().unwrap()]);
    assert_eq!(keys.lookup(&expired).await.unwrap(), None);
    cli(&["apikey", "revoke", &old_id]);
    // Revoked in another process: this one's cache trusts the old key for at most CACHE_TTL;
    // a process without it cached refuses it at once.
    let (_, keys, _) = mahnwerk::server::open_stores(&url).await.unwrap();
    assert_eq!(keys.lookup(&old).await.unwrap(), None);
    assert!(keys.lookup(&new).await.unwrap().is_some());
}
