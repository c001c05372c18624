//! Where the log meets `privacy`: the keyring opened with the log when a master key is
//! configured, personal data sealed on append ([`seal_batches`]) and opened on read
//! ([`EventLog::open_events`]).

use crate::{AppendBatch, Backend, Error, EventLog, RecordedEvent, Result, privacy};

/// The keyring on the log's own database (`None` without a master key: personal data in
/// clear).
pub(crate) async fn open_keyring(
    backend: &Backend,
    master: Option<privacy::MasterKey>,
) -> Result<Option<privacy::Keyring>> {
    let Some(master) = master else {
        return Ok(None);
    };
    let db = match backend {
        Backend::Pg(b) => privacy::KeyDb::Pg(b.pool().clone()),
        Backend::Sqlite(b) => privacy::KeyDb::Sqlite(b.pool().clone()),
    };
    Ok(Some(privacy::Keyring::open(db, &master).await?))
}

/// Seal the personal data of every event (`privacy`): one batched key lookup for all, then,
/// if that fails (an erased debtor, a database error), batch by batch, so only the batches that
/// cannot be sealed are refused (their error in the returned slot).
pub(crate) async fn seal_batches(
    keyring: &privacy::Keyring,
    batches: &mut [AppendBatch],
) -> Vec<Option<Error>> {
    async fn seal(keyring: &privacy::Keyring, batches: &mut [AppendBatch]) -> Result<()> {
        let names: Vec<(String, String)> = batches
            .iter()
            .map(|b| (b.stream.tenant().to_string(), b.stream.to_string()))
            .collect();
        let mut items: Vec<(&str, &str, &mut serde_json::Value)> = Vec::new();
        for ((tenant, stream), batch) in names.iter().zip(batches.iter_mut()) {
            for e in &mut batch.events {
                items.push((tenant.as_str(), stream.as_str(), &mut e.payload));
            }
        }
        keyring.seal_payloads(&mut items).await
    }
    if seal(keyring, batches).await.is_ok() {
        return Vec::new();
    }
    let mut refused = Vec::with_capacity(batches.len());
    for i in 0..batches.len() {
        refused.push(seal(keyring, &mut batches[i..=i]).await.err());
    }
    refused
}

impl EventLog {
    /// The keyring when a master key is configured (`privacy`).
    pub fn keyring(&self) -> Option<&privacy::Keyring> {
        self.inner.privacy.as_ref()
    }

    /// Open the sealed personal data of `events` in place (no-op without a master key).
    pub async fn open_events(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
        if let Some(keyring) = &self.inner.privacy {
            let tenants: Vec<String> = events.iter().map(|e| e.tenant.to_string()).collect();
            let mut items: Vec<(&str, &mut serde_json::Value)> = tenants
                .iter()
                .map(String::as_str)
                .zip(events.iter_mut().map(|e| &mut e.payload))
                .collect();
            keyring.open_payloads(&mut items).await?;
        }
        Ok(events)
    }
}
