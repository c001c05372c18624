//! Tenant policies as events: stream `{tenant}/policy/{id}`, one `dunning.policy_put.v1` per
//! version (the whole policy, its `version` = the stream version). Until a tenant puts its own,
//! `default-consumer` and `default-business` are the core's built-in defaults (version 1); a new
//! case is opened under the tenant's current version of the default for its debtor kind, and
//! keeps it.

use crate::error::{Error, Result};
use mahnwerk_domain::{DebtorKind, StreamId, TenantId};
use mahnwerk_dunning::DunningError;
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use serde::{Deserialize, Serialize};

pub const POLICY_PUT: &str = "dunning.policy_put.v1";
pub const DEFAULT_CONSUMER: &str = "default-consumer";
pub const DEFAULT_BUSINESS: &str = "default-business";

/// Payload of `dunning.policy_put.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPut {
    pub policy: Policy,
}

/// The built-in policy of that id, if it is one.
pub fn builtin(id: &str, state: FederalState) -> Option<Policy> {
    match id {
        DEFAULT_CONSUMER => Some(Policy::default_consumer(state)),
        DEFAULT_BUSINESS => Some(Policy::default_business(state)),
        _ => None,
    }
}

pub fn stream(tenant: &TenantId, id: &str) -> Result<StreamId> {
    format!("{tenant}/policy/{id}").parse().map_err(|_| {
        Error::Rule(DunningError::invalid(
            "id",
            "must be 1–200 characters without '/'",
        ))
    })
}

/// Every stored version, oldest first (empty for a policy never put).
pub async fn versions(log: &EventLog, tenant: &TenantId, id: &str) -> Result<Vec<Policy>> {
    let stream = stream(tenant, id)?;
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let events = log.read_stream(&stream, from, 1000).await?;
        let n = events.len();
        for e in &events {
            from = e.version + 1;
            if e.event_type == POLICY_PUT {
                let put: PolicyPut = serde_json::from_value(e.payload.clone()).map_err(|err| {
                    crate::facts::FoldError {
                        version: e.version,
                        event_type: e.event_type.clone(),
                        error: err.to_string(),
                    }
                })?;
                out.push(put.policy);
            }
        }
        if n < 1000 {
            return Ok(out);
        }
    }
}

/// The current version, and whether it is the built-in default.
pub async fn current(
    log: &EventLog,
    tenant: &TenantId,
    id: &str,
    state: FederalState,
) -> Result<Option<(Policy, bool)>> {
    if let Some(p) = versions(log, tenant, id).await?.pop() {
        return Ok(Some((p, false)));
    }
    Ok(builtin(id, state).map(|p| (p, true)))
}

/// The policy a new case of this debtor opens under: the current version of the debtor's own
/// policy, else its group's (see [`crate::assignments`]), else the tenant's default for the
/// debtor kind.
pub async fn for_new_case(
    log: &EventLog,
    tenant: &TenantId,
    kind: DebtorKind,
    debtor_key: &str,
    state: FederalState,
) -> Result<Policy> {
    if let Some((id, _)) = crate::assignments::resolve(log, tenant, debtor_key).await?
        && let Some((p, _)) = current(log, tenant, &id, state).await?
    {
        return Ok(p);
    }
    let id = match kind {
        DebtorKind::Consumer => DEFAULT_CONSUMER,
        DebtorKind::Business => DEFAULT_BUSINESS,
    };
    Ok(current(log, tenant, id, state)
        .await?
        .map_or_else(|| Policy::default_for(kind, state), |(p, _)| p))
}

/// Store `policy` as the next version (validated). Putting what is already current (apart from
/// the version number) changes nothing and returns the current version.
pub async fn put(
    log: &EventLog,
    tenant: &TenantId,
    mut policy: Policy,
    metadata: &Metadata,
) -> Result<Policy> {
    policy.version = 1;
    policy.validate()?;
    let stream = stream(tenant, &policy.id)?;
    for _ in 0..5 {
        let existing = versions(log, tenant, &policy.id).await?;
        let n = u32::try_from(existing.len()).unwrap_or(u32::MAX);
        if let Some(last) = existing.last() {
            let mut same = policy.clone();
            same.version = last.version;
            if same == *last {
                return Ok(last.clone());
            }
        }
        policy.version = n + 1;
        let payload = serde_json::to_value(PolicyPut {
            policy: policy.clone(),
        })
        .unwrap_or_default();
        let batch = AppendBatch {
            stream: stream.clone(),
            expected: if n == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(u64::from(n))
            },
            events: vec![NewEvent {
                event_id: event_id_now(),
                event_type: POLICY_PUT.to_owned(),
                payload,
                occurred_at: chrono::Utc::now(),
                metadata: metadata.clone(),
            }],
        };
        match log.append(batch).await {
            Ok(_) => return Ok(policy),
            Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict)
}
