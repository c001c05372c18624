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
        if let Some(p) = &peer
            && !self.failures.lock().expect("limiter lock").allowed(p)
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
            Some(c) => Ok(Found::Valid(c)),
            None => failed(peer),
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
