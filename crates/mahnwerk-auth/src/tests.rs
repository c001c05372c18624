use super::*;

async fn store() -> (tempfile::TempDir, KeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("auth.db").display());
    let pool = connect_any(&url).await.unwrap();
    (dir, KeyStore::open(pool).await.unwrap())
}

#[tokio::test]
async fn keys_authenticate_only_for_their_tenants() {
    let (_dir, store) = store().await;
    let a: TenantId = "a".parse().unwrap();
    let b: TenantId = "b".parse().unwrap();
    store.create_tenant(&a, "A GmbH").await.unwrap();
    store.create_tenant(&b, "B AG").await.unwrap();
    assert!(matches!(
        store.create_tenant(&a, "again").await,
        Err(Error::TenantExists(_))
    ));
    let key = store
        .create_key(std::slice::from_ref(&a), "test")
        .await
        .unwrap();
    let caller = store.lookup(&key.token).await.unwrap().unwrap();
    assert_eq!(caller.tenants, vec![a.clone()]);
    assert_eq!(caller.tenant("").unwrap(), a);
    assert_eq!(
        caller.tenant("b").unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    // A wrong secret for a real key id is refused.
    let forged = format!("mwk_{}_{}", key.key_id, "0".repeat(64));
    assert_eq!(store.lookup(&forged).await.unwrap(), None);
    assert_eq!(store.lookup("garbage").await.unwrap(), None);
    // Revoked keys stop working.
    assert!(store.revoke_key(&key.key_id).await.unwrap());
    assert_eq!(store.lookup(&key.token).await.unwrap(), None);
}

#[tokio::test]
async fn secrets_are_not_stored() {
    let (_dir, store) = store().await;
    let a: TenantId = "a".parse().unwrap();
    store.create_tenant(&a, "A").await.unwrap();
    let key = store.create_key(&[a], "k").await.unwrap();
    let secret = key.token.rsplit('_').next().unwrap().to_owned();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT secret_sha256 FROM auth_api_keys")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, secret);
    assert_eq!(rows[0].0, sha256_hex(&secret));
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn bearer(token: &str) -> tonic::metadata::MetadataMap {
    let mut m = tonic::metadata::MetadataMap::new();
    m.insert("authorization", format!("Bearer {token}").parse().unwrap());
    m
}

fn random_token() -> String {
    format!(
        "mwk_{}_{}",
        hex::encode(rand::random::<[u8; 6]>()),
        hex::encode(rand::random::<[u8; 32]>())
    )
}

#[tokio::test]
async fn random_tokens_keep_memory_bounded_and_a_valid_key_works_at_once() {
    let (_dir, store) = store().await;
    let store = store.with_cache_limits(100, CACHE_TTL).with_failure_limits(
        FAILURE_BURST,
        FAILURES_PER_SECOND,
        1_000,
    );
    let a: TenantId = "a".parse().unwrap();
    store.create_tenant(&a, "A").await.unwrap();
    let key = store.create_key(&[a], "k").await.unwrap();
    let attacker: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    // The attacker's own key, used before the attack, is cached.
    store
        .authenticate_from(&bearer(&key.token), Some(attacker))
        .await
        .unwrap();
    let before = rss_kib();
    // 100,000 random tokens from one peer: a burst is looked up, then it is rate-limited
    // without database queries.
    let (mut unauthenticated, mut limited) = (0, 0);
    for _ in 0..100_000 {
        match store
            .authenticate_from(&bearer(&random_token()), Some(attacker))
            .await
            .unwrap_err()
            .code()
        {
            tonic::Code::Unauthenticated => unauthenticated += 1,
            tonic::Code::ResourceExhausted => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        unauthenticated >= FAILURE_BURST as usize,
        "{unauthenticated}"
    );
    assert!(limited > 90_000, "{limited}");
    // 5,000 more from as many peers (a botnet): each looked up once, tracked peers capped.
    for i in 0..5_000_u32 {
        let peer = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 1234));
        let err = store
            .authenticate_from(&bearer(&random_token()), Some(peer))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
    let after = rss_kib();
    let (cached, peers) = store.cache_stats();
    eprintln!(
        "105,000 random tokens: {unauthenticated} looked up from the attacking peer, \
         {limited} rate-limited; cache {cached} keys (cap 100), {peers} peers tracked \
         (cap 1000); rss {before} KiB before, {after} KiB after"
    );
    assert_eq!(cached, 1, "misses are never cached");
    assert!(peers <= 1_000, "{peers}");
    // A valid key works at once: the cached one even from the attacking peer, and from
    // any other peer (looked up).
    store
        .authenticate_from(&bearer(&key.token), Some(attacker))
        .await
        .unwrap();
    let other: SocketAddr = "198.51.100.1:5000".parse().unwrap();
    store.cache.lock().unwrap().entries.clear();
    store
        .authenticate_from(&bearer(&key.token), Some(other))
        .await
        .unwrap();
    // An IPv6 attacker is one peer per /64, whatever address of it it uses.
    for i in 0..(FAILURE_BURST + 1) {
        let peer = SocketAddr::new(format!("2001:db8::{:x}", i + 1).parse().unwrap(), 1);
        let _ = store
            .authenticate_from(&bearer(&random_token()), Some(peer))
            .await;
    }
    let peer: SocketAddr = "[2001:db8::ffff]:1".parse().unwrap();
    assert_eq!(
        store
            .authenticate_from(&bearer(&random_token()), Some(peer))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::ResourceExhausted
    );
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity_of_valid_keys() {
    let (_dir, store) = store().await;
    let store = store.with_cache_limits(8, CACHE_TTL);
    let a: TenantId = "a".parse().unwrap();
    store.create_tenant(&a, "A").await.unwrap();
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(
            store
                .create_key(std::slice::from_ref(&a), &format!("k{i}"))
                .await
                .unwrap()
                .token,
        );
    }
    for _ in 0..2 {
        for t in &tokens {
            assert!(store.lookup(t).await.unwrap().is_some());
            assert!(store.cache_stats().0 <= 8);
        }
    }
}

#[tokio::test]
async fn revocation_reaches_other_processes_within_the_cache_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("auth.db").display());
    let ttl = Duration::from_millis(300);
    let one = KeyStore::open(connect_any(&url).await.unwrap())
        .await
        .unwrap()
        .with_cache_limits(10, ttl);
    let two = KeyStore::open(connect_any(&url).await.unwrap())
        .await
        .unwrap()
        .with_cache_limits(10, ttl);
    let a: TenantId = "a".parse().unwrap();
    one.create_tenant(&a, "A").await.unwrap();
    let key = one.create_key(&[a], "k").await.unwrap();
    assert!(one.lookup(&key.token).await.unwrap().is_some());
    assert!(two.lookup(&key.token).await.unwrap().is_some());
    let revoked = Instant::now();
    assert!(one.revoke_key(&key.key_id).await.unwrap());
    // At once where it was revoked ...
    assert_eq!(one.lookup(&key.token).await.unwrap(), None);
    // ... and in the other process once its cached entry is older than the TTL.
    while two.lookup(&key.token).await.unwrap().is_some() {
        assert!(
            revoked.elapsed() < ttl * 10,
            "revocation not seen within the bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_revoked_and_expired_keys_fail() {
    let (_dir, store) = store().await;
    let a: TenantId = "a".parse().unwrap();
    store.create_tenant(&a, "A").await.unwrap();
    let old = store
        .create_key(std::slice::from_ref(&a), "billing")
        .await
        .unwrap();
    let new = store.rotate_key(&old.key_id, None).await.unwrap().unwrap();
    assert_ne!(new.token, old.token);
    let caller = store.lookup(&new.token).await.unwrap().unwrap();
    assert_eq!(caller.tenants, vec![a.clone()]);
    assert!(store.lookup(&old.token).await.unwrap().is_some());
    assert!(store.revoke_key(&old.key_id).await.unwrap());
    assert_eq!(store.lookup(&old.token).await.unwrap(), None);
    assert!(store.lookup(&new.token).await.unwrap().is_some());
    assert!(store.rotate_key(&old.key_id, None).await.unwrap().is_none());
    let labels: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.1)
        .collect();
    assert!(
        labels
            .iter()
            .any(|l| l == &format!("billing (rotated from {})", old.key_id))
    );

    // Expiry: a key past its expiry fails; one before it works.
    let now = chrono::Utc::now();
    let expired = store
        .create_key_expiring(
            std::slice::from_ref(&a),
            "e",
            Some(now - chrono::Duration::seconds(1)),
        )
        .await
        .unwrap();
    assert_eq!(store.lookup(&expired.token).await.unwrap(), None);
    let later = store
        .create_key_expiring(
            std::slice::from_ref(&a),
            "l",
            Some(now + chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    assert!(store.lookup(&later.token).await.unwrap().is_some());
    // A cached key is checked against its expiry on every request.
    let mut cache = KeyCache {
        entries: HashMap::new(),
        capacity: 4,
        ttl: CACHE_TTL,
    };
    cache.insert(
        "k".into(),
        Cached {
            digest: sha256_hex("s"),
            caller: caller.clone(),
            fetched: Instant::now(),
            expires_at: Some(now - chrono::Duration::seconds(1)),
        },
    );
    assert!(cache.get("k", &sha256_hex("s")).is_none());
    cache.entries.get_mut("k").unwrap().expires_at = None;
    assert!(cache.get("k", &sha256_hex("s")).is_some());
    assert!(cache.get("k", &sha256_hex("t")).is_none());
}

#[tokio::test]
async fn a_database_from_before_expiry_gets_the_column_and_its_keys_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("auth.db").display());
    let pool = connect_any(&url).await.unwrap();
    sqlx::query("CREATE TABLE auth_api_keys (key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO auth_api_keys VALUES ('k1', $1, 'old', '2026-01-01T00:00:00Z', NULL)")
        .bind(sha256_hex("s3cret"))
        .execute(&pool)
        .await
        .unwrap();
    let store = KeyStore::open(pool.clone()).await.unwrap();
    // Opening twice is fine (the column exists now).
    KeyStore::open(pool).await.unwrap();
    assert!(store.lookup("mwk_k1_s3cret").await.unwrap().is_some());
}

#[test]
fn digest_comparison() {
    assert!(digests_equal(&sha256_hex("a"), &sha256_hex("a")));
    assert!(!digests_equal(&sha256_hex("a"), &sha256_hex("b")));
    assert!(!digests_equal("ab", "abc"));
}

#[tokio::test]
async fn keys_for_unknown_tenants_are_refused() {
    let (_dir, store) = store().await;
    assert!(matches!(
        store.create_key(&["nope".parse().unwrap()], "k").await,
        Err(Error::UnknownTenant(_))
    ));
}

/// Regression: the limiter checked a peer's budget before the lookup and charged it after, so
/// concurrent requests of one peer (HTTP/2 streams) all passed the check while their queries
/// ran: 200 at once from one peer were all looked up, far over a burst of 20. The budget is now
/// taken before the query (and given back for a valid key), for API and partner keys alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_tokens_from_one_peer_never_exceed_its_budget() {
    let (_dir, store) = store().await;
    let store = store.with_failure_limits(20, 0, 100);
    let partners = crate::partner::PartnerKeys::open(store.pool.clone())
        .await
        .unwrap()
        .limited_by(&store);
    let a: TenantId = "a".parse().unwrap();
    store.create_tenant(&a, "A").await.unwrap();
    let key = store.create_key(&[a], "k").await.unwrap();
    let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (store, partners) = (store.clone(), partners.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                store
                    .authenticate_from(&bearer(&random_token()), Some(peer))
                    .await
                    .unwrap_err()
                    .code()
            } else {
                let token = random_token().replacen("mwk_", "mwp_", 1);
                partners
                    .authenticate_from(&bearer(&token), Some(peer))
                    .await
                    .unwrap_err()
                    .code()
            }
        });
    }
    let mut looked_up = 0;
    while let Some(code) = tasks.join_next().await {
        match code.unwrap() {
            tonic::Code::Unauthenticated => looked_up += 1,
            tonic::Code::ResourceExhausted => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(looked_up, 20, "a burst of 20, no refill");
    // A valid key is looked up from another peer and costs that peer nothing.
    let other: SocketAddr = "198.51.100.9:1".parse().unwrap();
    for _ in 0..30 {
        store.cache.lock().unwrap().entries.clear();
        store
            .authenticate_from(&bearer(&key.token), Some(other))
            .await
            .unwrap();
    }
}
