//! Partner-scoped API keys: `mwp_<key id>_<secret>`, bound to one collection partner of one
//! tenant. Kept in their own table (`auth_partner_keys`), so a partner key is never a tenant key:
//! [`crate::KeyStore::lookup`] only knows `mwk_` tokens and refuses these, and only the
//! collection service asks [`PartnerKeys::authenticate_request`]. Secrets are stored as SHA-256,
//! like tenant keys, and compared in constant time. Failed partner authentications are charged
//! to the peer like failed API keys: with [`PartnerKeys::limited_by`] both kinds share one
//! budget per peer, so an attacker gains nothing by switching prefixes, and a peer over its
//! limit gets `RESOURCE_EXHAUSTED` without a database query.

use crate::{FailureLimiter, NewApiKey, Result, digests_equal, peer_key};
use mahnwerk_domain::TenantId;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS auth_partner_keys (key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, tenant TEXT NOT NULL, partner_id TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)";

/// Idempotency of key creation: which key a request id made, for which request, and the key's
/// secret *sealed for the caller* (XOR with a pad only the caller's own credential derives), so
/// the same caller's retry gets the same token while the table alone never reveals it.
const REQUESTS: &str = "CREATE TABLE IF NOT EXISTS auth_partner_key_requests (tenant TEXT NOT NULL, request_id TEXT NOT NULL, request_sha256 TEXT NOT NULL, key_id TEXT NOT NULL, sealed_secret TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (tenant, request_id))";

/// What an idempotent [`PartnerKeys::create_once`] did.
#[derive(Debug)]
pub enum CreatedOnce {
    /// The key (new, or the one this request id made before, with the same token).
    Key(NewApiKey),
    /// This request id made a key for a different request (partner or label).
    OtherRequest,
}

/// The pad that seals a partner key's secret for the caller that created it: SHA-256 over the
/// caller's credential and everything that names the request, so each (caller, request) pair has
/// its own 32-byte pad, used once.
fn pad(caller_secret: &[u8], tenant: &str, request_id: &str, key_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mahnwerk partner key seal v1\0");
    h.update((caller_secret.len() as u64).to_be_bytes());
    h.update(caller_secret);
    for part in [tenant, request_id, key_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// A caller holding a partner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerCaller {
    pub key_id: String,
    pub tenant: TenantId,
    pub partner_id: String,
}

impl PartnerCaller {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("partnerkey:{}:{}", self.partner_id, self.key_id)
    }
}

/// The partner keys table.
#[derive(Clone)]
pub struct PartnerKeys {
    pool: AnyPool,
    failures: Arc<Mutex<FailureLimiter>>,
}

/// What a partner token lookup found.
enum Found {
    Valid(PartnerCaller),
    Invalid,
    Limited,
}

impl PartnerKeys {
    /// The table, with its own failure limiter (default limits); [`PartnerKeys::limited_by`]
    /// shares the API keys' one instead.
    pub async fn open(pool: AnyPool) -> Result<Self> {
        sqlx::query(SCHEMA).execute(&pool).await?;
        sqlx::query(REQUESTS).execute(&pool).await?;
        Ok(Self {
            pool,
            failures: Arc::new(Mutex::new(FailureLimiter::default())),
        })
    }

    /// Charge failed partner authentications to the same per-peer budget as `keys`' API keys.
    pub fn limited_by(mut self, keys: &crate::KeyStore) -> Self {
        self.failures = keys.failures.clone();
        self
    }

    /// Create a key for `partner_id` of `tenant` (the caller checks the partner exists).
    pub async fn create(
        &self,
        tenant: &TenantId,
        partner_id: &str,
        label: &str,
    ) -> Result<NewApiKey> {
        let key_id = hex::encode(rand::random::<[u8; 6]>());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO auth_partner_keys (key_id, secret_sha256, tenant, partner_id, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key_id.clone())
        .bind(sha256_hex(&secret))
        .bind(tenant.as_str().to_owned())
        .bind(partner_id.to_owned())
        .bind(label.to_owned())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(NewApiKey {
            token: format!("mwp_{key_id}_{secret}"),
            key_id,
        })
    }

    /// [`PartnerKeys::create`] under an idempotency key: the first call with `request_id`
    /// creates the key; a repeat with the same request gives the same key and, for the same
    /// `caller_secret` (the caller's own credential, e.g. its API key token), the same token. A
    /// repeat by another credential of the tenant cannot open that token (it was shown once):
    /// it gets a new secret for the *same* key, and the earlier token stops working. Either way
    /// there is never a second key for one request id; another request under it is
    /// [`CreatedOnce::OtherRequest`].
    pub async fn create_once(
        &self,
        tenant: &TenantId,
        partner_id: &str,
        label: &str,
        request_id: &str,
        caller_secret: &[u8],
    ) -> Result<CreatedOnce> {
        // No secret credential (a client certificate alone): a pad nobody can derive again, so
        // the sealed secret is noise and a repeat gets a new secret for the same key.
        let random: [u8; 32] = rand::random();
        let caller_secret = if caller_secret.is_empty() {
            &random[..]
        } else {
            caller_secret
        };
        let request = sha256_hex(&format!("{partner_id}\u{1f}{label}"));
        loop {
            if let Some(found) = self
                .repeat(tenant, request_id, &request, caller_secret)
                .await?
            {
                return Ok(found);
            }
            let key_id = hex::encode(rand::random::<[u8; 6]>());
            let secret: [u8; 32] = rand::random();
            let sealed = xor32(
                &secret,
                &pad(caller_secret, tenant.as_str(), request_id, &key_id),
            );
            let secret = hex::encode(secret);
            let now = chrono::Utc::now().to_rfc3339();
            let mut tx = self.pool.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO auth_partner_key_requests (tenant, request_id, request_sha256, key_id, sealed_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, request_id) DO NOTHING",
            )
            .bind(tenant.as_str().to_owned())
            .bind(request_id.to_owned())
            .bind(request.clone())
            .bind(key_id.clone())
            .bind(hex::encode(sealed))
            .bind(now.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                // A concurrent call with this request id won: answer as its repeat.
                tx.rollback().await?;
                continue;
            }
            sqlx::query(
                "INSERT INTO auth_partner_keys (key_id, secret_sha256, tenant, partner_id, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key_id.clone())
            .bind(sha256_hex(&secret))
            .bind(tenant.as_str().to_owned())
            .bind(partner_id.to_owned())
            .bind(label.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(CreatedOnce::Key(NewApiKey {
                token: format!("mwp_{key_id}_{secret}"),
                key_id,
            }));
        }
    }

    /// The answer to a repeated request id, `None` when it is new.
    async fn repeat(
        &self,
        tenant: &TenantId,
        request_id: &str,
        request: &str,
        caller_secret: &[u8],
    ) -> Result<Option<CreatedOnce>> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT request_sha256, key_id, sealed_secret FROM auth_partner_key_requests WHERE tenant = $1 AND request_id = $2",
        )
        .bind(tenant.as_str().to_owned())
        .bind(request_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let Some((req_sha, key_id, sealed)) = row else {
            return Ok(None);
        };
        if !digests_equal(&req_sha, request) {
            return Ok(Some(CreatedOnce::OtherRequest));
        }
        let (stored,): (String,) =
            sqlx::query_as("SELECT secret_sha256 FROM auth_partner_keys WHERE key_id = $1")
                .bind(key_id.clone())
                .fetch_one(&self.pool)
                .await?;
        let pad = pad(caller_secret, tenant.as_str(), request_id, &key_id);
        let opened = hex::decode(&sealed)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|b| hex::encode(xor32(&b, &pad)));
        if let Some(secret) = opened
            && digests_equal(&sha256_hex(&secret), &stored)
        {
            return Ok(Some(CreatedOnce::Key(NewApiKey {
                token: format!("mwp_{key_id}_{secret}"),
                key_id,
            })));
        }
        // Another credential of the tenant: a new secret for the same key, sealed for it.
        let secret: [u8; 32] = rand::random();
        let resealed = xor32(&secret, &pad);
        let secret = hex::encode(secret);
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE auth_partner_keys SET secret_sha256 = $1 WHERE key_id = $2")
            .bind(sha256_hex(&secret))
            .bind(key_id.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE auth_partner_key_requests SET sealed_secret = $1 WHERE tenant = $2 AND request_id = $3")
            .bind(hex::encode(resealed))
            .bind(tenant.as_str().to_owned())
            .bind(request_id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(CreatedOnce::Key(NewApiKey {
            token: format!("mwp_{key_id}_{secret}"),
            key_id,
        })))
    }

    pub async fn revoke(&self, key_id: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE auth_partner_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
        )
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(key_id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Look a partner token up; `None` when unknown, malformed, revoked or a tenant key.
    pub async fn lookup(&self, token: &str) -> Result<Option<PartnerCaller>> {
        Ok(match self.lookup_from(token, None).await? {
            Found::Valid(c) => Some(c),
            Found::Invalid | Found::Limited => None,
        })
    }

    async fn lookup_from(&self, token: &str, peer: Option<IpAddr>) -> Result<Found> {
        let failed = |peer: Option<IpAddr>| {
            if let Some(p) = peer {
                self.failures.lock().expect("limiter lock").failed(p);
            }
            Ok(Found::Invalid)
        };
        let Some((key_id, secret)) = token
            .strip_prefix("mwp_")
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| id.len() <= 64 && secret.len() <= 128)
        else {
            return failed(peer);
        };
        // Charged before the query, refunded when valid (see `KeyStore`): concurrent requests
        // of a peer never look up more than its budget.
        if let Some(p) = peer
            && !self.failures.lock().expect("limiter lock").try_reserve(p)
        {
            return Ok(Found::Limited);
        }
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT secret_sha256, tenant, partner_id FROM auth_partner_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let caller = row.and_then(|(stored, tenant, partner_id)| {
            if !digests_equal(&stored, &sha256_hex(secret)) {
                return None;
            }
            tenant.parse().ok().map(|tenant| PartnerCaller {
                key_id: key_id.to_owned(),
                tenant,
                partner_id,
            })
        });
        match caller {
            Some(c) => {
                if let Some(p) = peer {
                    self.failures.lock().expect("limiter lock").refund(p);
                }
                Ok(Found::Valid(c))
            }
            // Charged when reserved.
            None => Ok(Found::Invalid),
        }
    }

    /// `Some` when the request carries a partner token (`Bearer mwp_…`), checked, failures
    /// charged to the request's peer; `None` when it carries something else (a tenant key, or
    /// nothing: the caller decides). Services use this one.
    pub fn authenticate_request<'a, T>(
        &'a self,
        req: &'a tonic::Request<T>,
    ) -> impl Future<Output = std::result::Result<Option<PartnerCaller>, tonic::Status>> + Send + 'a
    {
        self.authenticate_from(req.metadata(), req.remote_addr())
    }

    /// [`PartnerKeys::authenticate_request`] without a peer: failures are not rate-limited.
    #[allow(clippy::result_large_err)]
    pub async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<Option<PartnerCaller>, tonic::Status> {
        self.authenticate_from(metadata, None).await
    }

    /// Authenticate a partner token from `authorization` metadata, failures charged to `peer`.
    #[allow(clippy::result_large_err)]
    pub async fn authenticate_from(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        peer: Option<SocketAddr>,
    ) -> std::result::Result<Option<PartnerCaller>, tonic::Status> {
        let Some(token) = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| t.starts_with("mwp_"))
        else {
            return Ok(None);
        };
        match self.lookup_from(token, peer.map(peer_key)).await {
            Ok(Found::Valid(caller)) => Ok(Some(caller)),
            Ok(Found::Invalid) => Err(tonic::Status::unauthenticated("invalid or revoked API key")),
            Ok(Found::Limited) => {
                tracing::warn!("failed partner authentications rate-limited for a peer");
                Err(tonic::Status::resource_exhausted(
                    "too many failed authentications from this address: retry later",
                ))
            }
            Err(err) => {
                tracing::error!(error = %err, "partner key lookup failed");
                Err(tonic::Status::unavailable(
                    "authentication store unavailable",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyStore;

    #[tokio::test]
    async fn partner_keys_are_not_tenant_keys() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("k.db").display());
        let pool = crate::connect_any(&url).await.unwrap();
        let keys = KeyStore::open(pool.clone()).await.unwrap();
        let partners = PartnerKeys::open(pool).await.unwrap();
        let tenant: TenantId = "acme".parse().unwrap();
        keys.create_tenant(&tenant, "Acme").await.unwrap();
        let key = partners.create(&tenant, "inkasso1", "test").await.unwrap();
        let caller = partners.lookup(&key.token).await.unwrap().unwrap();
        assert_eq!(caller.partner_id, "inkasso1");
        assert_eq!(caller.tenant, tenant);
        // A partner token is no tenant key, and a tenant token is no partner key.
        assert_eq!(keys.lookup(&key.token).await.unwrap(), None);
        let mangled = key.token.replacen("mwp_", "mwk_", 1);
        assert_eq!(keys.lookup(&mangled).await.unwrap(), None);
        let tenant_key = keys.create_key(&[tenant], "t").await.unwrap();
        assert_eq!(partners.lookup(&tenant_key.token).await.unwrap(), None);
        // Wrong secret, revoked.
        let wrong = format!("{}0", &key.token[..key.token.len() - 1]);
        assert_eq!(partners.lookup(&wrong).await.unwrap(), None);
        assert!(partners.revoke(&key.key_id).await.unwrap());
        assert_eq!(partners.lookup(&key.token).await.unwrap(), None);
    }

    /// Regression: partner tokens skipped the failed-attempt limiter, so a peer could try
    /// `mwp_` tokens without limit (and API keys after them with a fresh budget).
    #[tokio::test]
    async fn failed_partner_tokens_share_the_api_keys_budget_per_peer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("k.db").display());
        let pool = crate::connect_any(&url).await.unwrap();
        let keys = KeyStore::open(pool.clone())
            .await
            .unwrap()
            .with_failure_limits(3, 1, 100);
        let partners = PartnerKeys::open(pool).await.unwrap().limited_by(&keys);
        let tenant: TenantId = "acme".parse().unwrap();
        keys.create_tenant(&tenant, "Acme").await.unwrap();
        let good = partners.create(&tenant, "inkasso1", "test").await.unwrap();
        let attacker: SocketAddr = "203.0.113.7:4000".parse().unwrap();
        let other: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let md = |token: &str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("authorization", format!("Bearer {token}").parse().unwrap());
            m
        };
        let code = |r: std::result::Result<Option<PartnerCaller>, tonic::Status>| {
            r.map(|c| c.map(|c| c.partner_id)).map_err(|e| e.code())
        };
        let wrong = format!("mwp_{}_{}", good.key_id, "0".repeat(64));
        for _ in 0..3 {
            assert_eq!(
                code(
                    partners
                        .authenticate_from(&md(&wrong), Some(attacker))
                        .await
                ),
                Err(tonic::Code::Unauthenticated)
            );
        }
        // Over the budget: refused without a lookup, partner and API tokens alike.
        assert_eq!(
            code(
                partners
                    .authenticate_from(&md(&good.token), Some(attacker))
                    .await
            ),
            Err(tonic::Code::ResourceExhausted)
        );
        let api = keys
            .authenticate_from(&md("mwk_abc_def"), Some(attacker))
            .await
            .unwrap_err();
        assert_eq!(api.code(), tonic::Code::ResourceExhausted);
        // Another peer is not affected.
        assert_eq!(
            code(
                partners
                    .authenticate_from(&md(&good.token), Some(other))
                    .await
            ),
            Ok(Some("inkasso1".to_owned()))
        );
        // Failed API keys count against partner tokens too.
        for _ in 0..3 {
            let _ = keys.authenticate_from(&md("mwk_x_y"), Some(other)).await;
        }
        assert_eq!(
            code(partners.authenticate_from(&md(&wrong), Some(other)).await),
            Err(tonic::Code::ResourceExhausted)
        );
    }
}
