//! Personal data that can be erased from the append-only log (GDPR Art. 17, ADR 006).
//!
//! Every event's personal parts (any object member named `debtor` or `payer`, wherever it is in
//! the payload) are sealed on append with AES-256-GCM under a per-debtor *data key*. Data keys
//! live in their own table (`privacy_keys`), wrapped (AES-256-GCM) by the master key from
//! configuration. The log stores, hashes and relays the sealed form; erasing a debtor deletes
//! their data key, so every copy of the ciphertext (log, JetStream, archives, backups) becomes
//! unreadable while the hash chains stay intact.
//!
//! A sealed object keeps its non-personal members in clear and carries the rest in `sealed`:
//!
//! ```json
//! {"kind": "consumer", "language": "de", "customer_number": "K-1",
//!  "sealed": {"v": 1, "subject": "customer:K-1", "nonce": "…base64…", "ct": "…base64…"}}
//! ```
//!
//! `ct` is the canonical JSON of the sealed members; the AAD binds it to the tenant, the subject
//! and the member name. Opening merges them back; an erased subject opens to placeholders
//! (`"[erased]"`, `null`) plus `"erased": true`, so readers keep working on amounts and dates.
//!
//! # Layout
//! - [`MasterKey`]: 32 bytes from `MAHNWERK_MASTER_KEY` (64 hex digits) or
//!   `MAHNWERK_MASTER_KEY_FILE`.
//! - [`Keyring`]: the key table, a bounded cache (one lookup per debtor, not per field), and
//!   [`Keyring::seal_payloads`] / [`Keyring::open_payloads`] / [`Keyring::erase`].
//! - `documents`: [`Keyring::seal_bytes`] / [`Keyring::open_bytes`], the keyring as the
//!   document store's `DocumentKeys` (stored documents and the post spool, sealed per debtor);
//!   registered with `mahnwerk_docstore::set_keys` when a log opens with a master key.

mod documents;

use crate::{Error, Result};
use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Sealed members of each personal object, by member name. Everything else stays in clear.
const PERSONAL: &[(&str, &[&str])] = &[
    // `ibans`: the IBANs a debtor paid from, as the matching projection keeps them.
    ("debtor", &["name", "address", "email", "vat_id", "ibans"]),
    (
        "payer",
        &[
            "name",
            "iban",
            "ultimate_debtor",
            "remittance",
            "references",
            "end_to_end_id",
        ],
    ),
];

/// How long a process trusts a cached data key: an erasure reaches every process within this.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Cached data keys per process.
pub const CACHE_ENTRIES: usize = 50_000;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn placeholder(object: &str, member: &str) -> Value {
    match (object, member) {
        ("debtor", "name") => Value::String("[erased]".into()),
        ("debtor", "address") => serde_json::json!({
            "street": ["[erased]"], "postal_code": "", "city": "[erased]", "country": "XX"
        }),
        ("payer", "references") | ("debtor", "ibans") => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

/// The key that wraps every data key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim()).map_err(|_| {
            Error::Invalid("the master key must be 64 hex digits (32 bytes)".into())
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Invalid("the master key must be 64 hex digits (32 bytes)".into())
        })?;
        Ok(MasterKey(key))
    }

    /// `MAHNWERK_MASTER_KEY`, else the file named by `MAHNWERK_MASTER_KEY_FILE`, else `None`
    /// (personal data is then stored in clear: development only).
    pub fn from_env() -> Result<Option<Self>> {
        if let Ok(text) = std::env::var("MAHNWERK_MASTER_KEY")
            && !text.trim().is_empty()
        {
            return Self::from_hex(&text)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("MAHNWERK_MASTER_KEY: {e}")));
        }
        if let Ok(path) = std::env::var("MAHNWERK_MASTER_KEY_FILE")
            && !path.trim().is_empty()
        {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Invalid(format!("MAHNWERK_MASTER_KEY_FILE {path}: cannot read: {e}"))
            })?;
            return Self::from_hex(&text)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("MAHNWERK_MASTER_KEY_FILE {path}: {e}")));
        }
        Ok(None)
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte key"))
    }

    /// A key for subject ids derived from values (IBANs): HMAC-SHA256 under a key derived from
    /// the master key, so an id names a debtor without revealing the value.
    fn index_key(&self) -> ring::hmac::Key {
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&derive, b"mahnwerk privacy subject index v1");
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, tag.as_ref())
    }
}

/// A data key as the table holds it.
#[derive(Clone)]
enum KeyState {
    Live(Arc<LessSafeKey>),
    Erased,
}

pub(crate) enum KeyDb {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS privacy_keys (tenant TEXT NOT NULL, subject TEXT NOT NULL, wrapped TEXT, created_at TEXT NOT NULL, erased_at TEXT, PRIMARY KEY (tenant, subject))";

/// Per-debtor data keys, wrapped by the master key, with a bounded cache. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<KeyringInner>,
}

struct KeyringInner {
    db: KeyDb,
    master: LessSafeKey,
    index: ring::hmac::Key,
    rng: SystemRandom,
    cache: Mutex<HashMap<(String, String), (KeyState, Instant)>>,
}

static PROCESS: OnceLock<Mutex<Option<Keyring>>> = OnceLock::new();

/// The keyring of the event log this process opened last with a master key; the consumer
/// library opens sealed payloads with it.
pub fn process_keyring() -> Option<Keyring> {
    PROCESS
        .get()
        .and_then(|m| m.lock().ok().and_then(|k| k.clone()))
}

/// A subject's personal object, found in a payload.
struct Found<'a> {
    object: &'static str,
    value: &'a mut Map<String, Value>,
}

fn visit<'a>(value: &'a mut Value, out: &mut Vec<Found<'a>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let personal: Option<&'static str> = PERSONAL
                    .iter()
                    .find(|p| {
                        p.0 == k.as_str()
                            && v.as_object().is_some_and(|o| {
                                o.contains_key("sealed") || p.1.iter().any(|m| o.contains_key(*m))
                            })
                    })
                    .map(|p| p.0);
                match (personal, v) {
                    (Some(name), Value::Object(inner)) => out.push(Found {
                        object: name,
                        value: inner,
                    }),
                    (_, v) => visit(v, out),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit(v, out)),
        _ => {}
    }
}

/// An opened object of an erased subject holds only placeholders: nothing to seal.
fn is_erased(map: &Map<String, Value>) -> bool {
    map.get("erased") == Some(&Value::Bool(true))
}

/// Seal the personal objects of a value a projection is about to store, with this process's
/// keyring (no-op without a master key). Projections store only this form, so no clear
/// personal data reaches their tables (ADR 006).
pub async fn seal_json(tenant: &str, stream: &str, value: &mut Value) -> Result<()> {
    match process_keyring() {
        Some(k) => k.seal_payloads(&mut [(tenant, stream, value)]).await,
        None => Ok(()),
    }
}

/// Open what [`seal_json`] sealed (placeholders once erased).
pub async fn open_json(tenant: &str, value: &mut Value) -> Result<()> {
    match process_keyring() {
        Some(k) => k.open_payloads(&mut [(tenant, value)]).await,
        None => Ok(()),
    }
}

/// What a projection stores to find entries by IBAN: with a master key the IBAN's subject id
/// (HMAC), never the IBAN; without one the normalised IBAN.
pub fn iban_index(iban: &str) -> String {
    match process_keyring() {
        Some(k) => k.iban_subject(iban),
        None => iban.replace(' ', "").to_uppercase(),
    }
}

fn aad(tenant: &str, subject: &str, object: &str) -> String {
    format!("mahnwerk/v1\0{tenant}\0{subject}\0{object}")
}

impl Keyring {
    pub(crate) async fn open(db: KeyDb, master: &MasterKey) -> Result<Self> {
        match &db {
            KeyDb::Pg(p) => {
                sqlx::query(SCHEMA).execute(p).await?;
            }
            KeyDb::Sqlite(p) => {
                sqlx::query(SCHEMA).execute(p).await?;
            }
        }
        let ring = Keyring {
            inner: Arc::new(KeyringInner {
                db,
                master: master.aead(),
                index: master.index_key(),
                rng: SystemRandom::new(),
                cache: Mutex::new(HashMap::new()),
            }),
        };
        *PROCESS
            .get_or_init(|| Mutex::new(None))
            .lock()
            .map_err(|_| Error::Invalid("keyring registry poisoned".into()))? = Some(ring.clone());
        // Documents and the post spool of this process are sealed with the same keys.
        mahnwerk_docstore::set_keys(Some(Arc::new(ring.clone())));
        Ok(ring)
    }

    /// The subject of a debtor: their customer number, else the case.
    pub fn debtor_subject(customer_number: Option<&str>, case_stream: &str) -> String {
        match customer_number.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => format!("customer:{c}"),
            None => format!("stream:{case_stream}"),
        }
    }

    /// The subject of a payer with this IBAN (HMAC, not the IBAN): spaces ignored, upper case.
    pub fn iban_subject(&self, iban: &str) -> String {
        let norm: String = iban
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let tag = ring::hmac::sign(&self.inner.index, norm.as_bytes());
        format!("iban:{}", hex::encode(&tag.as_ref()[..16]))
    }

    fn subject_of(&self, object: &str, map: &Map<String, Value>, stream: &str) -> String {
        match object {
            "payer" => match map.get("iban").and_then(Value::as_str) {
                Some(iban) if !iban.trim().is_empty() => self.iban_subject(iban),
                _ => format!("stream:{stream}"),
            },
            _ => Self::debtor_subject(map.get("customer_number").and_then(Value::as_str), stream),
        }
    }

    /// Seal the personal objects of each `(tenant, stream, payload)` in place, creating data
    /// keys as needed (one batched lookup for all subjects). A subject that was erased cannot
    /// be written to: [`Error::Erased`] naming it.
    pub async fn seal_payloads(&self, items: &mut [(&str, &str, &mut Value)]) -> Result<()> {
        let mut wanted = HashSet::new();
        for (tenant, stream, payload) in items.iter_mut() {
            let mut found = Vec::new();
            visit(payload, &mut found);
            for f in found {
                if !f.value.contains_key("sealed") && !is_erased(f.value) {
                    wanted.insert((
                        tenant.to_string(),
                        self.subject_of(f.object, f.value, stream),
                    ));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let keys = self.keys(wanted, true).await?;
        for (tenant, stream, payload) in items.iter_mut() {
            let mut found = Vec::new();
            visit(payload, &mut found);
            for f in found {
                if f.value.contains_key("sealed") || is_erased(f.value) {
                    continue;
                }
                let subject = self.subject_of(f.object, f.value, stream);
                let key = match keys.get(&(tenant.to_string(), subject.clone())) {
                    Some(KeyState::Live(k)) => k.clone(),
                    _ => return Err(Error::Erased { subject }),
                };
                self.seal_one(tenant, &subject, f.object, f.value, &key)?;
            }
        }
        Ok(())
    }

    fn seal_one(
        &self,
        tenant: &str,
        subject: &str,
        object: &str,
        map: &mut Map<String, Value>,
        key: &LessSafeKey,
    ) -> Result<()> {
        let members = PERSONAL
            .iter()
            .find(|(n, _)| *n == object)
            .map(|(_, m)| *m)
            .unwrap_or_default();
        let mut secret = Map::new();
        for m in members {
            if let Some(v) = map.remove(*m) {
                secret.insert((*m).to_owned(), v);
            }
        }
        let mut data = crate::canonical::canonical_json(&Value::Object(secret))
            .map_err(|e| Error::Invalid(format!("sealing: {}", e.0)))?
            .into_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        self.inner
            .rng
            .fill(&mut nonce)
            .map_err(|_| Error::Invalid("no randomness for a nonce".into()))?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(tenant, subject, object)),
            &mut data,
        )
        .map_err(|_| Error::Invalid("sealing failed".into()))?;
        map.insert(
            "sealed".into(),
            serde_json::json!({"v": 1, "subject": subject, "nonce": B64.encode(nonce), "ct": B64.encode(&data)}),
        );
        Ok(())
    }

    /// Open the sealed objects of each `(tenant, payload)` in place (one batched key lookup).
    /// An erased subject opens to placeholders and `"erased": true`.
    pub async fn open_payloads(&self, items: &mut [(&str, &mut Value)]) -> Result<()> {
        let mut wanted = HashSet::new();
        for (tenant, payload) in items.iter_mut() {
            let mut found = Vec::new();
            visit(payload, &mut found);
            for f in found {
                if let Some(s) = f.value.get("sealed").and_then(|s| s.get("subject")) {
                    wanted.insert((
                        tenant.to_string(),
                        s.as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let keys = self.keys(wanted, false).await?;
        for (tenant, payload) in items.iter_mut() {
            let mut found = Vec::new();
            visit(payload, &mut found);
            for f in found {
                let Some(Value::Object(sealed)) = f.value.remove("sealed") else {
                    continue;
                };
                let subject = sealed
                    .get("subject")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match keys.get(&(tenant.to_string(), subject.to_owned())) {
                    Some(KeyState::Live(key)) => {
                        let clear = open_one(tenant, subject, f.object, &sealed, key)?;
                        f.value.extend(clear);
                    }
                    _ => {
                        let members = PERSONAL
                            .iter()
                            .find(|(n, _)| *n == f.object)
                            .map(|(_, m)| *m)
                            .unwrap_or_default();
                        for m in members {
                            f.value.insert((*m).to_owned(), placeholder(f.object, m));
                        }
                        f.value.insert("erased".into(), Value::Bool(true));
                    }
                }
            }
        }
        Ok(())
    }

    /// Erase a subject: its data key is replaced by a tombstone (so it can never be written to
    /// again) and dropped from this process's cache. Returns whether a live key was erased.
    pub async fn erase(&self, tenant: &str, subject: &str) -> Result<bool> {
        let now = chrono::Utc::now().to_rfc3339();
        let upd = "UPDATE privacy_keys SET wrapped = NULL, erased_at = $3 WHERE tenant = $1 AND subject = $2 AND wrapped IS NOT NULL";
        let ins = "INSERT INTO privacy_keys (tenant, subject, wrapped, created_at, erased_at) VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (tenant, subject) DO NOTHING";
        let changed = match &self.inner.db {
            KeyDb::Pg(p) => {
                let n = sqlx::query(upd)
                    .bind(tenant)
                    .bind(subject)
                    .bind(&now)
                    .execute(p)
                    .await?
                    .rows_affected();
                sqlx::query(ins)
                    .bind(tenant)
                    .bind(subject)
                    .bind(&now)
                    .execute(p)
                    .await?;
                n
            }
            KeyDb::Sqlite(p) => {
                let n = sqlx::query(upd)
                    .bind(tenant)
                    .bind(subject)
                    .bind(&now)
                    .execute(p)
                    .await?
                    .rows_affected();
                sqlx::query(ins)
                    .bind(tenant)
                    .bind(subject)
                    .bind(&now)
                    .execute(p)
                    .await?;
                n
            }
        };
        if let Ok(mut c) = self.inner.cache.lock() {
            c.remove(&(tenant.to_owned(), subject.to_owned()));
        }
        Ok(changed > 0)
    }

    /// Keys of `wanted`, from the cache or the table; `create` makes missing ones.
    async fn keys(
        &self,
        wanted: HashSet<(String, String)>,
        create: bool,
    ) -> Result<HashMap<(String, String), KeyState>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self
                .inner
                .cache
                .lock()
                .map_err(|_| Error::Invalid("key cache poisoned".into()))?;
            for w in wanted {
                match cache.get(&w) {
                    Some((state, at)) if at.elapsed() < CACHE_TTL => {
                        out.insert(w, state.clone());
                    }
                    _ => missing.push(w),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut loaded = self.load(&missing).await?;
        if create {
            let absent: Vec<_> = missing
                .iter()
                .filter(|w| !loaded.contains_key(*w))
                .cloned()
                .collect();
            if !absent.is_empty() {
                self.create(&absent).await?;
                loaded.extend(self.load(&absent).await?);
            }
        }
        let mut cache = self
            .inner
            .cache
            .lock()
            .map_err(|_| Error::Invalid("key cache poisoned".into()))?;
        if cache.len() + loaded.len() > CACHE_ENTRIES {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() + loaded.len() > CACHE_ENTRIES {
                cache.clear();
            }
        }
        let now = Instant::now();
        for (w, state) in loaded {
            cache.insert(w.clone(), (state.clone(), now));
            out.insert(w, state);
        }
        Ok(out)
    }

    async fn load(
        &self,
        wanted: &[(String, String)],
    ) -> Result<HashMap<(String, String), KeyState>> {
        let mut out = HashMap::new();
        for chunk in wanted.chunks(400) {
            let mut sql = String::from("SELECT tenant, subject, wrapped FROM privacy_keys WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!(
                    "(tenant = ${} AND subject = ${})",
                    2 * i + 1,
                    2 * i + 2
                ));
            }
            let rows: Vec<(String, String, Option<String>)> = match &self.inner.db {
                KeyDb::Pg(p) => {
                    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
                    for (t, s) in chunk {
                        q = q.bind(t).bind(s);
                    }
                    q.fetch_all(p).await?
                }
                KeyDb::Sqlite(p) => {
                    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
                    for (t, s) in chunk {
                        q = q.bind(t).bind(s);
                    }
                    q.fetch_all(p).await?
                }
            };
            for (tenant, subject, wrapped) in rows {
                let state = match wrapped {
                    Some(w) => KeyState::Live(Arc::new(self.unwrap_key(&tenant, &subject, &w)?)),
                    None => KeyState::Erased,
                };
                out.insert((tenant, subject), state);
            }
        }
        Ok(out)
    }

    async fn create(&self, absent: &[(String, String)]) -> Result<()> {
        let now = chrono::Utc::now().to_rfc3339();
        for chunk in absent.chunks(200) {
            let mut sql = String::from(
                "INSERT INTO privacy_keys (tenant, subject, wrapped, created_at) VALUES ",
            );
            let mut wrapped = Vec::with_capacity(chunk.len());
            for (i, (tenant, subject)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let b = 3 * i;
                sql.push_str(&format!("(${}, ${}, ${}, '{now}')", b + 1, b + 2, b + 3));
                wrapped.push(self.new_wrapped_key(tenant, subject)?);
            }
            sql.push_str(" ON CONFLICT (tenant, subject) DO NOTHING");
            match &self.inner.db {
                KeyDb::Pg(p) => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for ((t, s), w) in chunk.iter().zip(&wrapped) {
                        q = q.bind(t).bind(s).bind(w);
                    }
                    q.execute(p).await?;
                }
                KeyDb::Sqlite(p) => {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for ((t, s), w) in chunk.iter().zip(&wrapped) {
                        q = q.bind(t).bind(s).bind(w);
                    }
                    q.execute(p).await?;
                }
            }
        }
        Ok(())
    }

    fn new_wrapped_key(&self, tenant: &str, subject: &str) -> Result<String> {
        let mut key = [0u8; 32];
        let mut nonce = [0u8; NONCE_LEN];
        self.inner
            .rng
            .fill(&mut key)
            .and_then(|()| self.inner.rng.fill(&mut nonce))
            .map_err(|_| Error::Invalid("no randomness for a data key".into()))?;
        let mut data = key.to_vec();
        self.inner
            .master
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, subject, "data-key")),
                &mut data,
            )
            .map_err(|_| Error::Invalid("wrapping failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(B64.encode(out))
    }

    fn unwrap_key(&self, tenant: &str, subject: &str, wrapped: &str) -> Result<LessSafeKey> {
        let bad = || {
            Error::Invalid(format!(
                "the data key of {subject} (tenant {tenant}) does not open with this master key"
            ))
        };
        let bytes = B64.decode(wrapped).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let mut data = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let key = self
            .inner
            .master
            .open_in_place(
                nonce,
                Aad::from(aad(tenant, subject, "data-key")),
                &mut data,
            )
            .map_err(|_| bad())?;
        UnboundKey::new(&AES_256_GCM, key)
            .map(LessSafeKey::new)
            .map_err(|_| bad())
    }
}

fn open_one(
    tenant: &str,
    subject: &str,
    object: &str,
    sealed: &Map<String, Value>,
    key: &LessSafeKey,
) -> Result<Map<String, Value>> {
    let bad = |what: &str| {
        Error::Invalid(format!(
            "sealed {object} of {subject} (tenant {tenant}) does not open: {what}"
        ))
    };
    let field = |name: &str| {
        sealed
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| bad(name))
    };
    let nonce = field("nonce")?;
    let mut data = field("ct")?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| bad("nonce"))?;
    let clear = key
        .open_in_place(nonce, Aad::from(aad(tenant, subject, object)), &mut data)
        .map_err(|_| bad("authentication failed"))?;
    match serde_json::from_slice(clear) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad("not an object")),
    }
}
