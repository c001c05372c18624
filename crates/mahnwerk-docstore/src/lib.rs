//! # Document store
//!
//! Documents of the case file (letter PDFs, original e-invoices, exports) stored
//! content-addressed: the key is the hex SHA-256 of the bytes, so the same document stored twice
//! is one object and an event names a document by its hash. The log never holds the bytes.
//!
//! One interface, [`DocumentStore`]; the filesystem ([`FsDocuments`], default `var/documents`)
//! and any S3-compatible store ([`S3Documents`], through the `object_store` crate) implement it.
//! Reads verify the hash, so a corrupted or swapped object is an error, never a wrong document.
//! Objects are stored as `{sha256}.pdf` whatever they hold (the suffix predates e-invoices and
//! is kept so stored letters stay where they are).
//!
//! Documents hold personal data (a letter's address, an e-invoice's buyer), so a document stored
//! for a debtor ([`DocumentStore::put_owned`]) is *sealed* when the process has data keys
//! ([`set_keys`]: the event log's keyring when a master key is configured, ADR 006): the object
//! under the key is then the document encrypted (AES-256-GCM) under that debtor's data key, and
//! erasing the debtor makes it unreadable ([`Error::Erased`]). The key stays the SHA-256 of the
//! document (not of the ciphertext), so events that name a document by its hash are unchanged,
//! and [`DocumentStore::get`] opens and verifies it transparently while the key exists. See
//! [`sealed`] for the format.
//!
//! # Invariants
//! Nothing is ever stored under a key that is not the SHA-256 of its document (clear or sealed);
//! a partial write is never visible under its key; with data keys, a document stored for a debtor
//! never reaches the store in clear. The crate knows nothing of tenants, cases or events beyond
//! the owner a sealed object names.

pub mod sealed;
#[cfg(feature = "testing")]
pub mod testing;

pub use sealed::{DocumentKeys, Owner, keys, set_keys};

use bytes::Bytes;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// Errors of a document store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key that is not a SHA-256 (`field` names it).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The filesystem or object store failed, or an object does not match its hash.
    #[error("document store: {0}")]
    Storage(String),
    /// The document's owner was erased (GDPR Art. 17): its data key is gone, so the document is
    /// unreadable for good, and nothing can be stored for them again.
    #[error("document {what} belongs to an erased debtor ({subject})")]
    Erased { what: String, subject: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Hex SHA-256 of `bytes`: a document's key.
/// Write `bytes` to `path` so that, after a crash or a power cut, `path` holds either what it
/// held before or all of `bytes`: a temporary file beside it, synced, renamed into place, and
/// the directory synced (the rename is durable before this returns). Blocking.
pub fn write_durably(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Create `dir` (and its parents) with each new entry durable.
pub fn create_dir_durably(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(dir.parent().unwrap_or(std::path::Path::new(".")))
}

fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_key(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "sha256".into(),
            reason: "must be 64 lowercase hex digits".into(),
        })
    }
}

fn verified(sha256: &str, bytes: Bytes) -> Result<Bytes> {
    if sha256_hex(&bytes) == sha256 {
        Ok(bytes)
    } else {
        Err(Error::Storage(format!(
            "document {sha256} does not match its hash"
        )))
    }
}

/// Where documents live. Content-addressed: `put`/`put_owned` return the hex SHA-256 of the
/// document and storing the same document again is a no-op. Implementations provide the raw
/// object operations; `put`, `put_owned` and `get` (sealing, opening, verifying) are the same for
/// every store.
pub trait DocumentStore: Send + Sync + 'static {
    /// The object stored under `sha256` as stored (the document or its sealed form), unverified.
    fn read_object<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    /// Store `object` under `sha256` atomically (never partially visible), replacing any.
    fn write_object<'a>(&'a self, sha256: &'a str, object: Bytes) -> BoxFuture<'a, Result<()>>;
    /// Whether an object is stored under `sha256`.
    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Store `bytes` in clear (a document without personal data); returns their hex SHA-256.
    fn put(&self, bytes: Bytes) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let sha = sha256_hex(&bytes);
            if !self.contains(&sha).await? {
                self.write_object(&sha, bytes).await?;
            }
            Ok(sha)
        })
    }

    /// Store `bytes`, a document holding `owner`'s personal data; returns their hex SHA-256.
    /// Sealed under the owner's data key when the process has keys ([`set_keys`]), else in clear.
    /// An object already there for another owner (or in clear) is replaced by this owner's
    /// sealed form; for an erased owner this is [`Error::Erased`].
    fn put_owned<'a>(&'a self, owner: &'a Owner, bytes: Bytes) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let Some(keys) = keys() else {
                return self.put(bytes).await;
            };
            let sha = sha256_hex(&bytes);
            if let Some(object) = self.read_object(&sha).await?
                && sealed::owner_of(&object).is_some_and(|o| o == *owner)
            {
                return Ok(sha);
            }
            let object = sealed::seal(keys.as_ref(), owner, &sha, &bytes).await?;
            self.write_object(&sha, Bytes::from(object)).await?;
            Ok(sha)
        })
    }

    /// The document stored under `sha256` (opened when sealed, verified against its hash), or
    /// `None`. A sealed document of an erased owner is [`Error::Erased`].
    fn get<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(async move {
            check_key(sha256)?;
            let Some(object) = self.read_object(sha256).await? else {
                return Ok(None);
            };
            let bytes = match sealed::owner_of(&object) {
                Some(_) => Bytes::from(sealed::open(&object, sha256).await?),
                None => object,
            };
            verified(sha256, bytes).map(Some)
        })
    }
}

/// A shared document store.
pub type Documents = Arc<dyn DocumentStore>;

/// Where documents are stored.
#[derive(Debug, Clone)]
pub enum DocumentConfig {
    Fs(PathBuf),
    S3(S3Config),
}

impl DocumentConfig {
    /// Open the configured store.
    pub fn open(&self) -> Result<Documents> {
        Ok(match self {
            DocumentConfig::Fs(dir) => Arc::new(FsDocuments::new(dir.clone())),
            DocumentConfig::S3(c) => Arc::new(S3Documents::new(c)?),
        })
    }
}

/// Documents in a directory: `{root}/{first two hex digits}/{sha256}.pdf`, written to a
/// temporary file and renamed, so a crash never leaves a partial document under its hash.
#[derive(Debug, Clone)]
pub struct FsDocuments {
    root: PathBuf,
}

impl FsDocuments {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(format!("{sha256}.pdf"))
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("filesystem: {e}"))
}

impl DocumentStore for FsDocuments {
    fn read_object<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(async move {
            check_key(sha256)?;
            match tokio::fs::read(self.path(sha256)).await {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            }
        })
    }

    fn write_object<'a>(&'a self, sha256: &'a str, object: Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_key(sha256)?;
            let path = self.path(sha256);
            // Durable before the caller records the key (a ledger row, an event): a power cut
            // must not leave a recorded document missing or empty.
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    create_dir_durably(dir)?;
                }
                write_durably(&path, &object)
            })
            .await
            .map_err(|e| Error::Storage(format!("filesystem task: {e}")))?
            .map_err(io)
        })
    }

    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            check_key(sha256)?;
            tokio::fs::try_exists(self.path(sha256)).await.map_err(io)
        })
    }
}

/// Settings of an S3-compatible store (AWS S3, MinIO, Ceph, moto, …).
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`; `None` for AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Object key prefix, e.g. `documents/`.
    pub prefix: String,
}

/// Documents in an S3-compatible bucket under `{prefix}{sha256}.pdf` (path-style requests, so
/// any endpoint works; plain HTTP allowed only for a loopback endpoint).
#[derive(Debug, Clone)]
pub struct S3Documents {
    store: Arc<dyn object_store::ObjectStore>,
    prefix: String,
}

fn s3_err(e: object_store::Error) -> Error {
    Error::Storage(format!("object store: {e}"))
}

impl S3Documents {
    pub fn new(config: &S3Config) -> Result<Self> {
        use object_store::aws::AmazonS3Builder;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &config.endpoint {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| endpoint.starts_with(p));
            b = b.with_endpoint(endpoint).with_allow_http(loopback);
        }
        let store = b.build().map_err(s3_err)?;
        Ok(Self {
            store: Arc::new(store),
            prefix: config.prefix.clone(),
        })
    }

    fn path(&self, sha256: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}{sha256}.pdf", self.prefix))
    }
}

impl DocumentStore for S3Documents {
    fn read_object<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(async move {
            check_key(sha256)?;
            match self.store.get(&self.path(sha256)).await {
                Ok(r) => Ok(Some(r.bytes().await.map_err(s3_err)?)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(s3_err(e)),
            }
        })
    }

    fn write_object<'a>(&'a self, sha256: &'a str, object: Bytes) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            check_key(sha256)?;
            self.store
                .put(
                    &self.path(sha256),
                    object_store::PutPayload::from_bytes(object),
                )
                .await
                .map(|_| ())
                .map_err(s3_err)
        })
    }

    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            check_key(sha256)?;
            match self.store.head(&self.path(sha256)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(s3_err(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fs_store_is_content_addressed_and_verifies_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsDocuments::new(dir.path());
        let sha = store.put(Bytes::from_static(b"<Invoice/>")).await.unwrap();
        assert_eq!(sha, sha256_hex(b"<Invoice/>"));
        assert_eq!(
            store.put(Bytes::from_static(b"<Invoice/>")).await.unwrap(),
            sha
        );
        assert_eq!(
            store.get(&sha).await.unwrap().as_deref(),
            Some(&b"<Invoice/>"[..])
        );
        std::fs::write(store.path(&sha), b"swapped").unwrap();
        assert!(matches!(store.get(&sha).await, Err(Error::Storage(_))));
        assert!(matches!(
            store.get("../x").await,
            Err(Error::Invalid { .. })
        ));
        assert!(store.get(&sha256_hex(b"other")).await.unwrap().is_none());
    }

    /// A durable write creates missing directories, replaces what was there, and leaves no
    /// temporary file behind, also when it fails. (That the data is synced before the rename
    /// is not observable here: it matters only in a power cut.)
    #[test]
    fn durable_writes_replace_whole_files_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_durably(&nested).unwrap();
        create_dir_durably(&nested).unwrap();
        let path = nested.join("job.json");
        write_durably(&path, b"first").unwrap();
        write_durably(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        // A target that is a directory cannot be replaced: an error, no temporary file left.
        std::fs::create_dir(nested.join("taken")).unwrap();
        assert!(write_durably(&nested.join("taken"), b"x").is_err());
        let mut names: Vec<String> = std::fs::read_dir(&nested)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["job.json", "taken"]);
    }
}
