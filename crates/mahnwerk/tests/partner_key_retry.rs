//! Must show 1 of issue 10 for `CollectionService.CreatePartnerKey`, in the style of
//! retry_services.rs: the same `request_id` and request give the same key and token and no second
//! key; the key reused for another request is ALREADY_EXISTS; a repeat from another API key of the
//! tenant (which cannot open the token shown once) gets the same key with a new token, and the
//! earlier token stops working. Against `mahnwerk serve` and the real database.

mod common;

use common::*;
use mahnwerk::config::Service;
use mahnwerk_proto::v1 as pb;
use pb::collection_service_client::CollectionServiceClient;
use tonic::Code;

async fn partner_keys(url: &str) -> i64 {
    let (_, _, pool) = mahnwerk::server::open_stores(url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM auth_partner_keys WHERE tenant = 'acme'")
        .fetch_one(&pool)
        .await
        .unwrap()
}

/// Whether `token` authenticates as a partner key: a case it does not hold is NOT_FOUND for a
/// valid key, UNAUTHENTICATED for an invalid one.
async fn works(c: &mut CollectionServiceClient<tonic::transport::Channel>, token: &str) -> bool {
    let err = c
        .get_handed_over_case(authed(
            token,
            pb::GetHandedOverCaseRequest {
                case_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    match err.code() {
        Code::NotFound => true,
        Code::Unauthenticated => false,
        other => panic!("unexpected {other:?}: {err:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partner_key_is_safe_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let docs = dir.path().join(unique("docs"));
        let server = start_with(&url, move |a| {
            a.services = vec![Service::Collection];
            a.collection_documents_dir = Some(docs);
        })
        .await;
        let key = tenant_key(&url, "acme").await;
        let mut c = CollectionServiceClient::new(server.channel().await);
        put_partner(
            &server.channel().await,
            &key,
            partner(pb::HandoverMode::Auto, false),
        )
        .await;
        let req = |rid: &str, label: &str| pb::CreatePartnerKeyRequest {
            tenant: String::new(),
            partner_id: "inkasso-nord".into(),
            label: label.into(),
            request_id: rid.into(),
        };

        let first = c
            .create_partner_key(authed(&key, req("pk-1", "portal")))
            .await
            .unwrap()
            .into_inner();
        let again = c
            .create_partner_key(authed(&key, req("pk-1", "portal")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            again, first,
            "the same caller's retry: the same key and token"
        );
        assert_eq!(partner_keys(&url).await, 1, "no second key");
        assert!(works(&mut c, &first.token).await);

        let err = c
            .create_partner_key(authed(&key, req("pk-1", "another label")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
        assert!(err.message().contains("pk-1"), "{err:?}");
        let err = c
            .create_partner_key(authed(&key, req("", "portal")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("request_id"), "{err:?}");
        assert_eq!(partner_keys(&url).await, 1);

        // Another API key of the tenant repeats the request: still one key, a new token for it.
        let (_, keys, _) = mahnwerk::server::open_stores(&url).await.unwrap();
        let other = keys
            .create_key(&["acme".parse().unwrap()], "second")
            .await
            .unwrap()
            .token;
        let other_answer = c
            .create_partner_key(authed(&other, req("pk-1", "portal")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(other_answer.key_id, first.key_id);
        assert_ne!(other_answer.token, first.token);
        assert_eq!(partner_keys(&url).await, 1, "no second key");
        assert!(works(&mut c, &other_answer.token).await);
        // The key cache trusts a valid key for at most 5 s (mahnwerk-auth), so the old token
        // is refused once that passed.
        wait_for("the earlier token to stop working", 30, || {
            let mut c = c.clone();
            let token = first.token.clone();
            async move { !works(&mut c, &token).await }
        })
        .await;
        // A new request id makes a second key.
        let second = c
            .create_partner_key(authed(&key, req("pk-2", "portal")))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(second.key_id, first.key_id);
        assert_eq!(partner_keys(&url).await, 2);
        server.stop().await;
    }
}
