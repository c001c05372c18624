//! Sealed objects: a document (or a spool file) encrypted under its owner's data key, so that
//! erasing the owner (destroying the key, ADR 006) makes every stored copy unreadable.
//!
//! Format: the magic line `MWSEALED1`, one line of JSON naming the owner, then the sealed bytes
//! as the key holder produced them (for the event log's keyring: a 12-byte nonce, the AES-256-GCM
//! ciphertext and its tag):
//!
//! ```text
//! MWSEALED1\n{"tenant":"acme","subject":"customer:K-77"}\n<nonce><ciphertext><tag>
//! ```
//!
//! The owner line is in clear (a tenant id and a customer number or case stream identify nobody
//! by themselves); the additional authenticated data binds the ciphertext to the owner and to the
//! *context*, the name it is stored under (a document's SHA-256, a spool file's name), so a
//! sealed object cannot be moved to another key or another owner.

use crate::{Error, Result};
use futures::future::BoxFuture;
use std::sync::{Arc, RwLock};

const MAGIC: &[u8] = b"MWSEALED1\n";

/// Whose personal data a document holds: the tenant and the data-key subject (the event log's
/// `Keyring::debtor_subject`: `customer:{number}` or `stream:{case stream}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub tenant: String,
    pub subject: String,
}

/// Data keys by owner (implemented by the event log's keyring). Errors are messages for logs.
pub trait DocumentKeys: Send + Sync + 'static {
    /// `clear` sealed under the live data key of `(tenant, subject)` (created when missing),
    /// authenticated with `aad`. `Ok(None)`: the subject was erased (nothing may be written).
    fn seal<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        aad: &'a [u8],
        clear: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    /// What [`DocumentKeys::seal`] sealed. `Ok(None)`: the subject was erased.
    fn open<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        aad: &'a [u8],
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
}

static KEYS: RwLock<Option<Arc<dyn DocumentKeys>>> = RwLock::new(None);

/// Set (or clear) this process's data keys: the event log does it when it opens with a master
/// key, so every document store of the process seals owned documents from then on.
pub fn set_keys(keys: Option<Arc<dyn DocumentKeys>>) {
    if let Ok(mut k) = KEYS.write() {
        *k = keys;
    }
}

/// This process's data keys, if any.
pub fn keys() -> Option<Arc<dyn DocumentKeys>> {
    KEYS.read().ok().and_then(|k| k.clone())
}

fn aad(owner: &Owner, context: &str) -> Vec<u8> {
    format!(
        "mahnwerk/sealed-object/v1\0{}\0{}\0{context}",
        owner.tenant, owner.subject
    )
    .into_bytes()
}

/// The owner a sealed object names, `None` for an object in clear.
pub fn owner_of(object: &[u8]) -> Option<Owner> {
    split(object).map(|(o, _)| o)
}

fn split(object: &[u8]) -> Option<(Owner, &[u8])> {
    let rest = object.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    let owner = serde_json::from_slice(&rest[..end]).ok()?;
    Some((owner, &rest[end + 1..]))
}

/// `clear` sealed for `owner` under `context` with `keys`.
pub async fn seal(
    keys: &dyn DocumentKeys,
    owner: &Owner,
    context: &str,
    clear: &[u8],
) -> Result<Vec<u8>> {
    let sealed = keys
        .seal(&owner.tenant, &owner.subject, &aad(owner, context), clear)
        .await
        .map_err(|e| Error::Storage(format!("sealing {context}: {e}")))?
        .ok_or_else(|| Error::Erased {
            what: context.to_owned(),
            subject: owner.subject.clone(),
        })?;
    let head = serde_json::to_vec(owner).map_err(|e| Error::Storage(e.to_string()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + head.len() + 1 + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&head);
    out.push(b'\n');
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// `clear` sealed for `owner` under `context` with this process's keys, or `clear` itself
/// when the process has none (no master key: development).
pub async fn seal_if_keys(owner: &Owner, context: &str, clear: &[u8]) -> Result<Vec<u8>> {
    match keys() {
        Some(k) => seal(k.as_ref(), owner, context, clear).await,
        None => Ok(clear.to_vec()),
    }
}

/// The clear bytes of `object` stored under `context`: opened with this process's keys when
/// sealed ([`Error::Erased`] once the owner was erased), the object itself when in clear.
pub async fn open(object: &[u8], context: &str) -> Result<Vec<u8>> {
    let Some((owner, sealed)) = split(object) else {
        return Ok(object.to_vec());
    };
    let keys = keys().ok_or_else(|| {
        Error::Storage(format!(
            "{context} is sealed for {} but this process has no data keys (MAHNWERK_MASTER_KEY)",
            owner.subject
        ))
    })?;
    keys.open(&owner.tenant, &owner.subject, &aad(&owner, context), sealed)
        .await
        .map_err(|e| Error::Storage(format!("opening {context}: {e}")))?
        .ok_or(Error::Erased {
            what: context.to_owned(),
            subject: owner.subject,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DocumentStore, FsDocuments, sha256_hex};
    use bytes::Bytes;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Keys for the test: a keyed XOR stream (the crate has no cipher; the real keys are the
    /// event log's AES-256-GCM keyring, tested there and end to end in `erasure.rs`). The
    /// "ciphertext" carries the aad's hash, so a moved object fails to open.
    #[derive(Default)]
    struct TestKeys(Mutex<HashMap<String, Option<u8>>>);

    impl TestKeys {
        fn key(&self, subject: &str, create: bool) -> Option<Option<u8>> {
            let mut m = self.0.lock().unwrap();
            if create {
                let n = m.len() as u8 + 1;
                Some(*m.entry(subject.to_owned()).or_insert(Some(n)))
            } else {
                m.get(subject).copied()
            }
        }
    }

    impl DocumentKeys for TestKeys {
        fn seal<'a>(
            &'a self,
            _tenant: &'a str,
            subject: &'a str,
            aad: &'a [u8],
            clear: &'a [u8],
        ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
            Box::pin(async move {
                Ok(self.key(subject, true).flatten().map(|k| {
                    let mut out = sha256_hex(aad).into_bytes();
                    out.extend(clear.iter().map(|b| b ^ k ^ 0x5a));
                    out
                }))
            })
        }
        fn open<'a>(
            &'a self,
            _tenant: &'a str,
            subject: &'a str,
            aad: &'a [u8],
            sealed: &'a [u8],
        ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
            Box::pin(async move {
                let Some(k) = self.key(subject, false).flatten() else {
                    return Ok(None);
                };
                let (tag, ct) = sealed.split_at(64);
                if tag != sha256_hex(aad).as_bytes() {
                    return Err("authentication failed".into());
                }
                Ok(Some(ct.iter().map(|b| b ^ k ^ 0x5a).collect()))
            })
        }
    }

    #[tokio::test]
    async fn owned_documents_are_sealed_opened_and_unreadable_once_erased() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsDocuments::new(dir.path());
        let keys = Arc::new(TestKeys::default());
        set_keys(Some(keys.clone()));
        let doc = b"%PDF Zacharias Quellenberger, Brombeerweg 4711".to_vec();
        let owner = Owner {
            tenant: "acme".into(),
            subject: "customer:K-77".into(),
        };
        let sha = store
            .put_owned(&owner, Bytes::from(doc.clone()))
            .await
            .unwrap();
        assert_eq!(sha, sha256_hex(&doc), "the key is the document's hash");
        let stored = store.read_object(&sha).await.unwrap().unwrap();
        assert!(!stored.windows(10).any(|w| w == b"Zacharias "));
        assert_eq!(owner_of(&stored), Some(owner.clone()));
        assert_eq!(store.get(&sha).await.unwrap().unwrap(), doc);
        // Stored again for the same owner: a no-op; moved under another key: refused.
        store
            .put_owned(&owner, Bytes::from(doc.clone()))
            .await
            .unwrap();
        let other = sha256_hex(b"other");
        store.write_object(&other, stored.clone()).await.unwrap();
        assert!(matches!(store.get(&other).await, Err(Error::Storage(_))));
        // Erased: unreadable, and nothing more can be stored for the owner.
        keys.0.lock().unwrap().insert(owner.subject.clone(), None);
        assert!(matches!(store.get(&sha).await, Err(Error::Erased { .. })));
        assert!(matches!(
            store.put_owned(&owner, Bytes::from_static(b"new")).await,
            Err(Error::Erased { .. })
        ));
        // Clear objects (stored before keys, or without an owner) still read.
        let clear = store.put(Bytes::from_static(b"<Invoice/>")).await.unwrap();
        assert_eq!(
            store.get(&clear).await.unwrap().as_deref(),
            Some(&b"<Invoice/>"[..])
        );
        set_keys(None);
        assert!(matches!(store.get(&sha).await, Err(Error::Storage(_))));
    }
}
