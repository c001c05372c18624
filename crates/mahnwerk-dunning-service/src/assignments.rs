//! Policy overrides per debtor group and per debtor, as events.
//!
//! Stream `{tenant}/policy_assignment/debtor-{key}` holds a debtor's own policy
//! (`dunning.policy_assigned.v1`) and its group (`dunning.debtor_grouped.v1`);
//! `{tenant}/policy_assignment/group-{name}` holds a group's policy. A new case opens under the
//! debtor's own policy, else its group's, else the tenant's default for the debtor kind
//! ([`mahnwerk_dunning::policy::PolicyBook::resolve`] has the same order); an existing case keeps
//! its version until it is moved explicitly (`dunning.policy_moved.v1`).

use crate::error::{Error, Result};
use mahnwerk_domain::{StreamId, TenantId};
use mahnwerk_dunning::DunningError;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use serde::{Deserialize, Serialize};

pub const POLICY_ASSIGNED: &str = "dunning.policy_assigned.v1";
pub const DEBTOR_GROUPED: &str = "dunning.debtor_grouped.v1";

/// Payload of `dunning.policy_assigned.v1`; `policy_id: null` removes the assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyAssigned {
    pub policy_id: Option<String>,
}

/// Payload of `dunning.debtor_grouped.v1`; `group: null` takes the debtor out of its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtorGrouped {
    pub group: Option<String>,
}

/// Who a policy is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Debtor(String),
    Group(String),
}

/// Where the policy of a new case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Debtor,
    Group,
}

fn check_key(field: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > 100 || key.contains('/') {
        return Err(Error::Rule(DunningError::invalid(
            field,
            "must be 1–100 characters without '/'",
        )));
    }
    Ok(())
}

pub fn stream(tenant: &TenantId, target: &Target) -> Result<StreamId> {
    let (field, prefix, key) = match target {
        Target::Debtor(k) => ("debtor_key", "debtor", k),
        Target::Group(g) => ("group", "group", g),
    };
    check_key(field, key)?;
    Ok(StreamId::new(
        tenant,
        "policy_assignment",
        &format!("{prefix}-{key}"),
    ))
}

/// The latest assignment and group on a target's stream.
async fn read(log: &EventLog, stream: &StreamId) -> Result<(Option<String>, Option<String>)> {
    let (mut policy, mut group) = (None, None);
    let mut from = 1;
    loop {
        let events = log.read_stream(stream, from, 1000).await?;
        let n = events.len();
        for e in &events {
            from = e.version + 1;
            let unreadable = |err: serde_json::Error| crate::facts::FoldError {
                version: e.version,
                event_type: e.event_type.clone(),
                error: err.to_string(),
            };
            match e.event_type.as_str() {
                POLICY_ASSIGNED => {
                    let a: PolicyAssigned =
                        serde_json::from_value(e.payload.clone()).map_err(unreadable)?;
                    policy = a.policy_id;
                }
                DEBTOR_GROUPED => {
                    let g: DebtorGrouped =
                        serde_json::from_value(e.payload.clone()).map_err(unreadable)?;
                    group = g.group;
                }
                _ => {}
            }
        }
        if n < 1000 {
            return Ok((policy, group));
        }
    }
}

async fn append(
    log: &EventLog,
    stream: StreamId,
    event_type: &str,
    payload: serde_json::Value,
    metadata: &Metadata,
) -> Result<u64> {
    let done = log
        .append(AppendBatch {
            stream,
            expected: ExpectedVersion::Any,
            events: vec![NewEvent {
                event_id: event_id_now(),
                event_type: event_type.to_owned(),
                payload,
                occurred_at: chrono::Utc::now(),
                metadata: metadata.clone(),
            }],
        })
        .await?;
    Ok(done.last_version)
}

/// Assign `policy_id` to a debtor or a group (`None` removes the assignment). Returns the
/// stream version; assigning what is already assigned appends nothing.
pub async fn assign(
    log: &EventLog,
    tenant: &TenantId,
    target: &Target,
    policy_id: Option<&str>,
    metadata: &Metadata,
) -> Result<u64> {
    let stream = stream(tenant, target)?;
    if read(log, &stream).await?.0.as_deref() == policy_id {
        return Ok(log.stream_version(&stream).await?.unwrap_or(0));
    }
    let payload = serde_json::to_value(PolicyAssigned {
        policy_id: policy_id.map(str::to_owned),
    })
    .unwrap_or_default();
    append(log, stream, POLICY_ASSIGNED, payload, metadata).await
}

/// Put a debtor into a group (`None`: out of its group).
pub async fn set_group(
    log: &EventLog,
    tenant: &TenantId,
    debtor_key: &str,
    group: Option<&str>,
    metadata: &Metadata,
) -> Result<u64> {
    if let Some(g) = group {
        check_key("group", g)?;
    }
    let stream = stream(tenant, &Target::Debtor(debtor_key.to_owned()))?;
    if read(log, &stream).await?.1.as_deref() == group {
        return Ok(log.stream_version(&stream).await?.unwrap_or(0));
    }
    let payload = serde_json::to_value(DebtorGrouped {
        group: group.map(str::to_owned),
    })
    .unwrap_or_default();
    append(log, stream, DEBTOR_GROUPED, payload, metadata).await
}

/// The policy id assigned to the debtor, else to its group; `None`: the tenant's default.
pub async fn resolve(
    log: &EventLog,
    tenant: &TenantId,
    debtor_key: &str,
) -> Result<Option<(String, Source)>> {
    let Ok(stream) = stream(tenant, &Target::Debtor(debtor_key.to_owned())) else {
        return Ok(None);
    };
    let (own, group) = read(log, &stream).await?;
    if let Some(id) = own {
        return Ok(Some((id, Source::Debtor)));
    }
    let Some(group) = group else {
        return Ok(None);
    };
    let (by_group, _) = read(log, &self::stream(tenant, &Target::Group(group))?).await?;
    Ok(by_group.map(|id| (id, Source::Group)))
}
