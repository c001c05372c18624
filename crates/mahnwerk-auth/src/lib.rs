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
//! A secret is never stored or logged; an unknown, malformed, expired or revoked key is
//! `UNAUTHENTICATED`; a tenant the key is not bound to is `PERMISSION_DENIED`, whatever the
//! resource.
//!
//! ## Under attack
//! - Only valid keys are cached, at most [`CACHE_CAPACITY`] of them, each for [`CACHE_TTL`]:
//!   random tokens never grow memory. A miss costs one primary-key query.
//! - Failed authentications are rate-limited per peer (IP address; IPv6 per /64): a burst of
//!   [`FAILURE_BURST`], then [`FAILURES_PER_SECOND`]. A peer over its limit gets
//!   `RESOURCE_EXHAUSTED` for tokens that are not cached, without a database query; keys it
//!   authenticated before keep working (also once their cache entry is stale: a key that was
//!   valid is looked up again), other peers are not affected. At most
//!   [`TRACKED_PEERS`] peers are tracked.
//! - Digests are compared in constant time.
//!
//! ## Client certificates
//! With mutual TLS a client certificate can be bound to tenants like a key
//! ([`client_cert::CertTenants`], [`KeyStore::with_client_certs`]): alone it authenticates
//! for its tenants; with an API key the caller acts only for the tenants both are bound to.
//!
//! ## Revocation, expiry and rotation
//! Revoking a key takes effect at once in the process that revoked it and within
//! [`CACHE_TTL`] (5 s) in every other process (the longest a cached key is trusted). A key may
//! carry an expiry (checked on every request, also when cached). Rotation: create a new key for
//! the same tenants ([`KeyStore::rotate_key`]); the old one keeps working until it is revoked
//! (or expires), so clients can switch without downtime.

use mahnwerk_domain::TenantId;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

pub mod client_cert;
mod limits;
pub mod listen;
pub mod partner;
pub mod scratch;
use limits::{Cached, FailureLimiter, KeyCache, peer_key};

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
    // PostgreSQL over TCP: without Nagle's algorithm (`mahnwerk_eventlog::nodelay`).
    let port = url
        .starts_with("postgres")
        .then(|| url.parse::<sqlx::postgres::PgConnectOptions>().ok())
        .flatten()
        .map(|o| o.get_port());
    sqlx::pool::PoolOptions::new()
        .max_connections(if url.starts_with("sqlite") { 4 } else { 16 })
        .after_connect(move |_, _| {
            Box::pin(async move {
                if let Some(port) = port {
                    mahnwerk_eventlog::nodelay::disable_nagle(port);
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS auth_tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS auth_api_keys (key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, label TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS auth_key_tenants (key_id TEXT NOT NULL, tenant TEXT NOT NULL, PRIMARY KEY (key_id, tenant))",
];

/// Added after the first schema: an optional expiry (RFC 3339), added to older databases.
const EXPIRES_COLUMN: &str = "ALTER TABLE auth_api_keys ADD COLUMN expires_at TEXT";

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
        if self.key_id.starts_with("cert:") {
            // Authenticated by a client certificate bound to its tenants.
            return self.key_id.clone();
        }
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

/// Constant-time equality of two digests (hex or raw): no early exit on the first difference.
fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// How long a valid key is trusted without asking the database again: the bound on how late
/// another process sees a revocation.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Most valid keys cached at once.
pub const CACHE_CAPACITY: usize = 10_000;
/// Failed authentications a peer may make at once ...
pub const FAILURE_BURST: u32 = 50;
/// ... and per second after that.
pub const FAILURES_PER_SECOND: u32 = 10;
/// Most peers whose failures are tracked (beyond that, the idlest are forgotten).
pub const TRACKED_PEERS: usize = 10_000;

/// Tenants and API keys.
#[derive(Clone)]
pub struct KeyStore {
    pool: AnyPool,
    cache: Arc<Mutex<KeyCache>>,
    failures: Arc<Mutex<FailureLimiter>>,
    certs: Option<Arc<client_cert::CertTenants>>,
}

/// What a lookup found.
enum Lookup {
    Valid(Caller),
    Invalid,
    /// The peer is over its failure limit: not looked up.
    Limited,
}

impl KeyStore {
    pub async fn open(pool: AnyPool) -> Result<Self> {
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        if sqlx::query("SELECT expires_at FROM auth_api_keys WHERE 1 = 0")
            .execute(&pool)
            .await
            .is_err()
        {
            sqlx::query(EXPIRES_COLUMN).execute(&pool).await?;
        }
        Ok(Self {
            pool,
            cache: Arc::new(Mutex::new(KeyCache {
                entries: HashMap::new(),
                capacity: CACHE_CAPACITY,
                ttl: CACHE_TTL,
            })),
            failures: Arc::new(Mutex::new(FailureLimiter::default())),
            certs: None,
        })
    }

    /// The same store with other cache bounds (tests, operators with many keys).
    pub fn with_cache_limits(self, capacity: usize, ttl: Duration) -> Self {
        {
            let mut c = self.cache.lock().expect("key cache lock");
            c.capacity = capacity.max(1);
            c.ttl = ttl;
        }
        self
    }

    /// The same store with other limits on failed authentications (tests).
    pub fn with_failure_limits(self, burst: u32, per_second: u32, max_peers: usize) -> Self {
        {
            let mut f = self.failures.lock().expect("limiter lock");
            (f.burst, f.per_second, f.max_peers) = (burst, per_second, max_peers.max(1));
        }
        self
    }

    /// Bind client certificates to tenants (mutual TLS, [`client_cert`]): requests over a
    /// connection with a listed certificate act only for its tenants.
    pub fn with_client_certs(mut self, certs: client_cert::CertTenants) -> Self {
        self.certs = Some(Arc::new(certs));
        self
    }

    /// Valid keys cached now (at most the capacity) and peers with tracked failures.
    pub fn cache_stats(&self) -> (usize, usize) {
        let cached = self.cache.lock().expect("key cache lock").entries.len();
        let peers = self.failures.lock().expect("limiter lock").peers.len();
        (cached, peers)
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

    /// Create a key bound to `tenants` (which must exist), valid until revoked.
    pub async fn create_key(&self, tenants: &[TenantId], label: &str) -> Result<NewApiKey> {
        self.create_key_expiring(tenants, label, None).await
    }

    /// Rotation: a new key for the tenants of `key_id` (labelled after it). The old key stays
    /// valid until it is revoked or expires. `None` when `key_id` is not an active key.
    pub async fn rotate_key(
        &self,
        key_id: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<NewApiKey>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT label FROM auth_api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let Some((label,)) = row else {
            return Ok(None);
        };
        let tenants: Vec<(String,)> =
            sqlx::query_as("SELECT tenant FROM auth_key_tenants WHERE key_id = $1")
                .bind(key_id.to_owned())
                .fetch_all(&self.pool)
                .await?;
        let tenants: Vec<TenantId> = tenants
            .into_iter()
            .filter_map(|(t,)| t.parse().ok())
            .collect();
        let label = if label.is_empty() {
            format!("rotated from {key_id}")
        } else {
            format!("{label} (rotated from {key_id})")
        };
        self.create_key_expiring(&tenants, &label, expires_at)
            .await
            .map(Some)
    }

    /// Create a key bound to `tenants` that stops working at `expires_at` (if given).
    pub async fn create_key_expiring(
        &self,
        tenants: &[TenantId],
        label: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<NewApiKey> {
        for t in tenants {
            if !self.tenant_exists(t).await? {
                return Err(Error::UnknownTenant(t.clone()));
            }
        }
        let key_id = hex::encode(rand::random::<[u8; 6]>());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO auth_api_keys (key_id, secret_sha256, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key_id.clone())
        .bind(sha256_hex(&secret))
        .bind(label.to_owned())
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(expires_at.map(|t| t.to_rfc3339()))
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
        self.cache
            .lock()
            .expect("key cache lock")
            .entries
            .remove(key_id);
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

    /// Look a bearer token up; `None` when unknown, malformed, expired or revoked.
    pub async fn lookup(&self, token: &str) -> Result<Option<Caller>> {
        match self.lookup_from(token, None).await? {
            Lookup::Valid(caller) => Ok(Some(caller)),
            Lookup::Invalid | Lookup::Limited => Ok(None),
        }
    }

    async fn lookup_from(&self, token: &str, peer: Option<IpAddr>) -> Result<Lookup> {
        let parsed = token
            .strip_prefix("mwk_")
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| id.len() <= 64 && secret.len() <= 128);
        let Some((key_id, secret)) = parsed else {
            if let Some(p) = peer {
                self.failures.lock().expect("limiter lock").failed(p);
            }
            return Ok(Lookup::Invalid);
        };
        let digest = sha256_hex(secret);
        if let Some(caller) = self
            .cache
            .lock()
            .expect("key cache lock")
            .get(key_id, &digest)
        {
            return Ok(Lookup::Valid(caller));
        }
        // A key that was valid before is looked up again even from a peer over its limit (its
        // cache entry went stale during an attack): only random tokens are refused unseen.
        let known = self
            .cache
            .lock()
            .expect("key cache lock")
            .known(key_id, &digest);
        // The failure is charged before the query (refunded when the key is valid), so a
        // peer's concurrent requests never look up more than its budget.
        let reserved = match peer {
            Some(p) if !known => {
                if !self.failures.lock().expect("limiter lock").try_reserve(p) {
                    return Ok(Lookup::Limited);
                }
                Some(p)
            }
            _ => None,
        };
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT secret_sha256, expires_at FROM auth_api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let valid = row.and_then(|(stored, expires)| {
            let expires_at = expires
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let unexpired = match (&expires, expires_at) {
                (None, _) => true,
                (Some(_), Some(at)) => chrono::Utc::now() < at,
                // An expiry that does not parse: refused, not treated as "never".
                (Some(_), None) => false,
            };
            (unexpired && digests_equal(&stored, &digest)).then_some((stored, expires_at))
        });
        let Some((stored, expires_at)) = valid else {
            if let (Some(p), None) = (peer, reserved) {
                self.failures.lock().expect("limiter lock").failed(p);
            }
            return Ok(Lookup::Invalid);
        };
        if let Some(p) = reserved {
            self.failures.lock().expect("limiter lock").refund(p);
        }
        let tenants: Vec<(String,)> =
            sqlx::query_as("SELECT tenant FROM auth_key_tenants WHERE key_id = $1")
                .bind(key_id.to_owned())
                .fetch_all(&self.pool)
                .await?;
        let caller = Caller {
            key_id: key_id.to_owned(),
            tenants: tenants
                .into_iter()
                .filter_map(|(t,)| t.parse().ok())
                .collect(),
        };
        self.cache.lock().expect("key cache lock").insert(
            key_id.to_owned(),
            Cached {
                digest: stored,
                caller: caller.clone(),
                fetched: Instant::now(),
                expires_at,
            },
        );
        Ok(Lookup::Valid(caller))
    }

    /// Authenticate a gRPC request: its `authorization` metadata, failures charged to its
    /// peer address (rate-limited). Services use this one.
    /// (Not an `async fn`: the future borrows only the metadata, so it is `Send` for any
    /// request body.)
    pub fn authenticate_request<'a, T>(
        &'a self,
        req: &'a tonic::Request<T>,
    ) -> impl Future<Output = std::result::Result<Caller, tonic::Status>> + Send + 'a {
        let bound = self.certs.as_ref().and_then(|map| {
            let certs = req.peer_certs()?;
            let (fp, tenants) = map.tenants(certs.first()?.as_ref())?;
            Some((fp, tenants.to_vec()))
        });
        self.authenticate_bound(req.metadata(), req.remote_addr(), bound)
    }

    /// Authenticate with the tenants of the connection's client certificate, if it is listed:
    /// without `authorization` the certificate is the credential; with an API key the caller
    /// acts only for the tenants both are bound to.
    #[allow(clippy::result_large_err)]
    async fn authenticate_bound(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        peer: Option<SocketAddr>,
        bound: Option<(String, Vec<TenantId>)>,
    ) -> std::result::Result<Caller, tonic::Status> {
        let Some((fp, tenants)) = bound else {
            return self.authenticate_from(metadata, peer).await;
        };
        if metadata.get("authorization").is_none() {
            return Ok(Caller {
                key_id: format!("cert:{}", &fp[..16]),
                tenants,
            });
        }
        let mut caller = self.authenticate_from(metadata, peer).await?;
        caller.tenants.retain(|t| tenants.contains(t));
        if caller.tenants.is_empty() {
            return Err(tonic::Status::permission_denied(
                "the API key and the client certificate are bound to different tenants",
            ));
        }
        Ok(caller)
    }

    /// Authenticate a gRPC request from its `authorization` metadata.
    #[allow(clippy::result_large_err)]
    /// Without a peer address failures are not rate-limited: prefer
    /// [`KeyStore::authenticate_request`].
    pub async fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<Caller, tonic::Status> {
        self.authenticate_from(metadata, None).await
    }

    /// Authenticate from `authorization` metadata, failures charged to `peer`.
    #[allow(clippy::result_large_err)]
    pub async fn authenticate_from(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        peer: Option<SocketAddr>,
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
        match self.lookup_from(token.trim(), peer.map(peer_key)).await {
            Ok(Lookup::Valid(caller)) => Ok(caller),
            Ok(Lookup::Invalid) => Err(tonic::Status::unauthenticated(
                "invalid, expired or revoked API key",
            )),
            Ok(Lookup::Limited) => {
                tracing::warn!("failed authentications rate-limited for a peer");
                Err(tonic::Status::resource_exhausted(
                    "too many failed authentications from this address: retry later",
                ))
            }
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
mod tests;
