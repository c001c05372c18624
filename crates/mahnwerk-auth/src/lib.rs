//! # Tenants, API keys and request authentication
//!
//! Every RPC carries `authorization: Bearer mwk_<key id>_<secret>`. A key is bound to one or more
//! tenants. Only the SHA-256 of the secret is stored: secrets are 256 random bits, so a fast hash
//! is as strong as a slow one here and keeps authentication off the hot path's budget.
//!
//! ## Layout
//! - [`KeyStore`]: the tables (`auth_tenants`, `auth_api_keys`, `auth_key_tenants`) on any sqlx
//!   backend (portable SQL through `sqlx::Any`), key creation and lookup with a short cache.
//! - [`Caller`]: who is calling and which tenants it may act for; [`Caller::tenant`] resolves
//!   the `tenant` field of a request.
//!
//! ## Invariants
//! A secret is never stored or logged; an unknown, malformed or revoked key is `UNAUTHENTICATED`;
//! a tenant the key is not bound to is `PERMISSION_DENIED`, whatever the resource.

use mahnwerk_domain::TenantId;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

pub mod partner;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tenant {0} already exists")]
    TenantExists(TenantId),
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Open a portable (`sqlx::Any`) pool for service tables: `postgres://…` or `sqlite:…`.
pub async fn connect_any(url: &str) -> std::result::Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    sqlx::pool::PoolOptions::new()
        .max_connections(if url.starts_with("sqlite") { 4 } else { 16 })
        .connect(url)
        .await
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS auth_tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS auth_api_keys (key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS auth_key_tenants (key_id TEXT NOT NULL, tenant TEXT NOT NULL, PRIMARY KEY (key_id, tenant))",
];

/// A freshly created key. The `secret` is shown once and never stored.
#[derive(Debug)]
pub struct NewApiKey {
    pub key_id: String,
    /// The full bearer token: `mwk_<key id>_<secret>`.
    pub token: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub tenants: Vec<TenantId>,
}

impl Caller {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key_id)
    }

    /// Resolve the tenant a request acts for: the request's `tenant` field, or the key's only
    /// tenant when the field is empty.
    #[allow(clippy::result_large_err)]
    pub fn tenant(&self, requested: &str) -> std::result::Result<TenantId, tonic::Status> {
        if requested.is_empty() {
            return match self.tenants.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(tonic::Status::invalid_argument(
                    "tenant: required because the API key is bound to several tenants",
                )),
            };
        }
        let tenant: TenantId = requested
            .parse()
            .map_err(|e| tonic::Status::invalid_argument(format!("tenant: {e}")))?;
        if self.tenants.contains(&tenant) {
            Ok(tenant)
        } else {
            Err(tonic::Status::permission_denied(
                "the API key is not bound to this tenant",
            ))
        }
    }
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Tenants and API keys.
#[derive(Clone)]
pub struct KeyStore {
    pool: AnyPool,
    cache: Arc<RwLock<KeyCache>>,
}

/// `key id:secret digest` → when looked up and who it was.
type KeyCache = HashMap<String, (Instant, Option<Caller>)>;

/// How long a looked-up key is trusted without asking the database again (revocation delay).
const CACHE_TTL: Duration = Duration::from_secs(10);

impl KeyStore {
    pub async fn open(pool: AnyPool) -> Result<Self> {
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        Ok(Self {
            pool,
            cache: Arc::default(),
        })
    }

    pub async fn create_tenant(&self, id: &TenantId, name: &str) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO auth_tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str().to_owned())
        .bind(name.to_owned())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(Error::TenantExists(id.clone()));
        }
        Ok(())
    }

    pub async fn tenant_exists(&self, id: &TenantId) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM auth_tenants WHERE id = $1")
            .bind(id.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn list_tenants(&self) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT id, name FROM auth_tenants ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Create a key bound to `tenants` (which must exist).
    pub async fn create_key(&self, tenants: &[TenantId], label: &str) -> Result<NewApiKey> {
        for t in tenants {
            if !self.tenant_exists(t).await? {
                return Err(Error::UnknownTenant(t.clone()));
            }
        }
        let key_id = hex::encode(rand::random::<[u8; 6]>());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO auth_api_keys (key_id, secret_sha256, label, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id.clone())
        .bind(sha256_hex(&secret))
        .bind(label.to_owned())
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *tx)
        .await?;
        for t in tenants {
            sqlx::query("INSERT INTO auth_key_tenants (key_id, tenant) VALUES ($1, $2)")
                .bind(key_id.clone())
                .bind(t.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(NewApiKey {
            token: format!("mwk_{key_id}_{secret}"),
            key_id,
        })
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE auth_api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
        )
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(key_id.to_owned())
        .execute(&self.pool)
        .await?;
        self.cache.write().await.clear();
        Ok(res.rows_affected() > 0)
    }

    /// Key id, label, tenants (comma separated) and whether revoked.
    pub async fn list_keys(&self) -> Result<Vec<(String, String, String, bool)>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT key_id, label, revoked_at FROM auth_api_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (key_id, label, revoked) in rows {
            let tenants: Vec<(String,)> = sqlx::query_as(
                "SELECT tenant FROM auth_key_tenants WHERE key_id = $1 ORDER BY tenant",
            )
            .bind(key_id.clone())
            .fetch_all(&self.pool)
            .await?;
            let tenants = tenants
                .into_iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
                .join(",");
            out.push((key_id, label, tenants, revoked.is_some()));
        }
        Ok(out)
    }

    /// Look a bearer token up; `None` when unknown, malformed or revoked.
    pub async fn lookup(&self, token: &str) -> Result<Option<Caller>> {
        let Some((key_id, secret)) = token
            .strip_prefix("mwk_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let digest = sha256_hex(secret);
        let cache_key = format!("{key_id}:{digest}");
        if let Some((at, caller)) = self.cache.read().await.get(&cache_key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(caller.clone());
        }
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT secret_sha256 FROM auth_api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let caller = match row {
            Some((stored,)) if stored == digest => {
                let tenants: Vec<(String,)> =
                    sqlx::query_as("SELECT tenant FROM auth_key_tenants WHERE key_id = $1")
                        .bind(key_id.to_owned())
                        .fetch_all(&self.pool)
                        .await?;
                Some(Caller {
                    key_id: key_id.to_owned(),
                    tenants: tenants
                        .into_iter()
                        .filter_map(|(t,)| t.parse().ok())
                        .collect(),
                })
            }
            _ => None,
        };
        self.cache
            .write()
            .await
            .insert(cache_key, (Instant::now(), caller.clone()));
        Ok(caller)
    }

    /// Authenticate a gRPC request from its `authorization` metadata.
    #[allow(clippy::result_large_err)]
    pub async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<Caller, tonic::Status> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                tonic::Status::unauthenticated("missing authorization: Bearer <api key>")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                tonic::Status::unauthenticated("authorization must be 'Bearer <api key>'")
            })?;
        match self.lookup(token.trim()).await {
            Ok(Some(caller)) => Ok(caller),
            Ok(None) => Err(tonic::Status::unauthenticated("invalid or revoked API key")),
            Err(err) => {
                tracing::error!(error = %err, "api key lookup failed");
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

    #[tokio::test]
    async fn keys_for_unknown_tenants_are_refused() {
        let (_dir, store) = store().await;
        assert!(matches!(
            store.create_key(&["nope".parse().unwrap()], "k").await,
            Err(Error::UnknownTenant(_))
        ));
    }
}
