//! Partner-scoped API keys: `mwp_<key id>_<secret>`, bound to one collection partner of one
//! tenant. Kept in their own table (`auth_partner_keys`), so a partner key is never a tenant key:
//! [`crate::KeyStore::lookup`] only knows `mwk_` tokens and refuses these, and only the
//! collection service asks [`PartnerKeys::authenticate`]. Secrets are stored as SHA-256, like
//! tenant keys.

use crate::{NewApiKey, Result};
use mahnwerk_domain::TenantId;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

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
}

impl PartnerKeys {
    pub async fn open(pool: AnyPool) -> Result<Self> {
        sqlx::query(SCHEMA).execute(&pool).await?;
        Ok(Self { pool })
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
        let Some((key_id, secret)) = token
            .strip_prefix("mwp_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT secret_sha256, tenant, partner_id FROM auth_partner_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((stored, tenant, partner_id)) if stored == sha256_hex(secret) => {
                tenant.parse().ok().map(|tenant| PartnerCaller {
                    key_id: key_id.to_owned(),
                    tenant,
                    partner_id,
                })
            }
            _ => None,
        })
    }

    /// `Some` when the request carries a partner token (`Bearer mwp_…`), checked; `None` when it
    /// carries something else (a tenant key, or nothing: the caller decides).
    #[allow(clippy::result_large_err)]
    pub async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
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
        match self.lookup(token).await {
            Ok(Some(caller)) => Ok(Some(caller)),
            Ok(None) => Err(tonic::Status::unauthenticated("invalid or revoked API key")),
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
}
