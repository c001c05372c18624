//! Per-tenant matching settings, on the tenant's stream `{tenant}/matching_settings/current`:
//! each change is a `matching.settings_changed.v1` event with the whole settings, the latest
//! wins. The service reads the stream when it refreshes a tenant's open items, so every entry
//! is decided with the settings in force when it was decided (and the decision event records
//! the threshold in its reason when that sent it to review).

use crate::apply::{check_request_id, read_all, request_id_reused};
use crate::engine::Settings;
use crate::error::{Error, Result};
use mahnwerk_domain::{StreamId, TenantId};
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, RecordedEvent, event_id_now,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Stream kind of a tenant's settings stream.
pub const SETTINGS_KIND: &str = "matching_settings";
/// The event type of a change.
pub const SETTINGS_CHANGED: &str = "matching.settings_changed.v1";
/// Lowest threshold a tenant may set: below it, a name that merely resembles the debtor's
/// would be applied without a person looking.
pub const MIN_THRESHOLD: u8 = 50;

/// `matching.settings_changed.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsChanged {
    pub threshold: u8,
    /// A statement whose balances do not add up is imported with a
    /// `matching.statement_unbalanced.v1` warning instead of being rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_unbalanced: bool,
    /// The caller's idempotency key, when it sent one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// A tenant's settings as folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    /// `None` while the tenant set nothing.
    pub threshold: Option<u8>,
    /// Unbalanced statements are imported with a warning event (default: rejected).
    pub accept_unbalanced: bool,
    pub version: Option<u64>,
    /// What each request id set: (threshold, accept_unbalanced).
    pub requests: HashMap<String, (u8, bool)>,
}

impl TenantSettings {
    /// The settings the engine uses: the tenant's where set, else `default`.
    pub fn effective(&self, default: Settings) -> Settings {
        Settings {
            threshold: self.threshold.unwrap_or(default.threshold),
        }
    }
}

pub fn stream(tenant: &TenantId) -> StreamId {
    StreamId::new(tenant, SETTINGS_KIND, "current")
}

/// Fold a settings stream (pure).
pub fn fold(events: &[RecordedEvent]) -> Result<TenantSettings> {
    let mut s = TenantSettings::default();
    for e in events {
        s.version = Some(e.version);
        if e.event_type == SETTINGS_CHANGED {
            let c: SettingsChanged = serde_json::from_value(e.payload.clone())
                .map_err(|err| Error::Rejected(format!("unreadable {SETTINGS_CHANGED}: {err}")))?;
            s.threshold = Some(c.threshold);
            s.accept_unbalanced = c.accept_unbalanced;
            if !c.request_id.is_empty() {
                s.requests
                    .insert(c.request_id, (c.threshold, c.accept_unbalanced));
            }
        }
    }
    Ok(s)
}

/// A tenant's settings from the log.
pub async fn load(log: &EventLog, tenant: &TenantId) -> Result<TenantSettings> {
    fold(&read_all(log, &stream(tenant)).await?)
}

/// A requested threshold, checked: `threshold` must be 50 to 100.
pub fn validate_threshold(threshold: u32) -> Result<u8> {
    u8::try_from(threshold)
        .ok()
        .filter(|t| (MIN_THRESHOLD..=100).contains(t))
        .ok_or_else(|| {
            Error::invalid(
                "threshold",
                format!("{MIN_THRESHOLD} to 100 required, got {threshold}"),
            )
        })
}

/// Set a tenant's threshold (and, when given, whether unbalanced statements are accepted;
/// `None` keeps what is set), idempotently: the same request id with the same settings changes
/// nothing, with others it is `ALREADY_EXISTS`; without a request id, setting what is in force
/// changes nothing.
pub async fn put(
    log: &EventLog,
    tenant: &TenantId,
    threshold: u8,
    accept_unbalanced: Option<bool>,
    request_id: &str,
    metadata: &Metadata,
) -> Result<TenantSettings> {
    check_request_id(request_id)?;
    for _ in 0..8 {
        let current = load(log, tenant).await?;
        let accept = accept_unbalanced.unwrap_or(current.accept_unbalanced);
        if !request_id.is_empty()
            && let Some(&(prior, prior_accept)) = current.requests.get(request_id)
        {
            return if prior == threshold && accept_unbalanced.is_none_or(|a| a == prior_accept) {
                Ok(current)
            } else {
                Err(request_id_reused())
            };
        }
        if request_id.is_empty()
            && current.threshold == Some(threshold)
            && current.accept_unbalanced == accept
        {
            return Ok(current);
        }
        let ev = SettingsChanged {
            threshold,
            accept_unbalanced: accept,
            request_id: request_id.to_owned(),
        };
        let batch = AppendBatch {
            stream: stream(tenant),
            expected: current
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
            events: vec![NewEvent {
                event_id: event_id_now(),
                event_type: SETTINGS_CHANGED.to_owned(),
                payload: serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null),
                occurred_at: chrono::Utc::now(),
                metadata: metadata.clone(),
            }],
        };
        match log.append(batch).await {
            Ok(_) => return load(log, tenant).await,
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_outside_50_to_100_name_the_field() {
        assert_eq!(validate_threshold(95).unwrap(), 95);
        assert_eq!(validate_threshold(50).unwrap(), 50);
        for bad in [0, 49, 101, 300] {
            let err = validate_threshold(bad).unwrap_err().to_string();
            assert!(err.starts_with("threshold: "), "{err}");
        }
    }

    #[test]
    fn the_tenant_threshold_overrides_the_default_only_when_set() {
        let default = Settings { threshold: 85 };
        assert_eq!(TenantSettings::default().effective(default).threshold, 85);
        let set = TenantSettings {
            threshold: Some(95),
            ..Default::default()
        };
        assert_eq!(set.effective(default).threshold, 95);
    }
}
