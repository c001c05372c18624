//! The keyring as the document store's data keys (`mahnwerk_docstore::DocumentKeys`): stored
//! documents (letter PDFs, e-invoice originals) and the letters' post spool are sealed under the
//! same per-debtor data key as the debtor's events, so one erasure makes all of them unreadable
//! (ADR 006). A sealed blob is the 12-byte nonce followed by the AES-256-GCM ciphertext and tag.

use super::{KeyState, Keyring};
use ring::aead::{Aad, NONCE_LEN, Nonce};
use ring::rand::SecureRandom;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

impl Keyring {
    /// `clear` sealed under the live data key of `(tenant, subject)`, created when missing;
    /// `None` once the subject was erased.
    pub async fn seal_bytes(
        &self,
        tenant: &str,
        subject: &str,
        aad: &[u8],
        clear: &[u8],
    ) -> crate::Result<Option<Vec<u8>>> {
        let key = (tenant.to_owned(), subject.to_owned());
        let keys = self.keys(HashSet::from([key.clone()]), true).await?;
        let Some(KeyState::Live(k)) = keys.get(&key) else {
            return Ok(None);
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.inner
            .rng
            .fill(&mut nonce)
            .map_err(|_| crate::Error::Invalid("no randomness for a nonce".into()))?;
        let mut data = clear.to_vec();
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut data,
        )
        .map_err(|_| crate::Error::Invalid("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(Some(out))
    }

    /// What [`Keyring::seal_bytes`] sealed; `None` once the subject was erased (or never had a
    /// key here).
    pub async fn open_bytes(
        &self,
        tenant: &str,
        subject: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> crate::Result<Option<Vec<u8>>> {
        let key = (tenant.to_owned(), subject.to_owned());
        let keys = self.keys(HashSet::from([key.clone()]), false).await?;
        let Some(KeyState::Live(k)) = keys.get(&key) else {
            return Ok(None);
        };
        let bad = || {
            crate::Error::Invalid(format!(
                "sealed bytes of {subject} (tenant {tenant}) do not open: authentication failed"
            ))
        };
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut data = ct.to_vec();
        let clear = k
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| bad())?;
        Ok(Some(clear.to_vec()))
    }
}

impl mahnwerk_docstore::DocumentKeys for Keyring {
    fn seal<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        aad: &'a [u8],
        clear: &'a [u8],
    ) -> Boxed<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.seal_bytes(tenant, subject, aad, clear)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn open<'a>(
        &'a self,
        tenant: &'a str,
        subject: &'a str,
        aad: &'a [u8],
        sealed: &'a [u8],
    ) -> Boxed<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.open_bytes(tenant, subject, aad, sealed)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
