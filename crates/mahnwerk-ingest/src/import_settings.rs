//! A tenant's e-invoice import settings (`PutImportSettings`, `GetImportSettings`), versioned as
//! events on `{tenant}/import_settings/default` (`import_settings.updated.v1`, each the whole
//! settings), like the other tenant configuration. `ImportEInvoice` takes them for every field
//! a request leaves unset; a field the request sets still wins ([`merge`], pure).

use crate::service::{Ingest, RequestCtx};
use mahnwerk_domain::{BankAccount, DebtorKind, FieldErrors, StreamId, TenantId};
use mahnwerk_eventlog::{AppendBatch, ExpectedVersion, NewEvent, event_id_now};
use mahnwerk_formats::einvoice::ImportPolicy;
use mahnwerk_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tonic::Status;

pub const IMPORT_SETTINGS_UPDATED: &str = "import_settings.updated.v1";

/// Longest default term accepted, in days.
pub const MAX_TERM_DAYS: u32 = 365;

pub fn stream(tenant: &TenantId) -> StreamId {
    StreamId::new(tenant, "import_settings", "default")
}

/// `import_settings.updated.v1`: the tenant's settings for what an e-invoice does not say.
/// `None` is "not set" (the built-in default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSettingsUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_buyer: Option<DebtorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_term_days: Option<u32>,
    /// The creditor's own account (not personal data of a debtor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_account: Option<BankAccount>,
    /// The idempotency key it was stored under.
    pub request_id: String,
}

impl ImportSettingsUpdated {
    fn same_settings(&self, other: &Self) -> bool {
        (
            &self.unknown_buyer,
            self.default_term_days,
            &self.default_account,
        ) == (
            &other.unknown_buyer,
            other.default_term_days,
            &other.default_account,
        )
    }
}

/// The request's account, checked; errors name `{prefix}.iban`, `{prefix}.bic`.
pub(crate) fn account_from_proto(
    errs: &mut FieldErrors,
    prefix: &str,
    a: &pb::BankAccount,
) -> Option<BankAccount> {
    let iban = errs.check(&format!("{prefix}.iban"), a.iban.parse());
    let bic = match a.bic.trim() {
        "" => Some(None),
        b => errs.check(&format!("{prefix}.bic"), b.parse()).map(Some),
    };
    Some(BankAccount {
        iban: iban?,
        bic: bic?,
        holder: (!a.holder.trim().is_empty()).then(|| a.holder.trim().to_owned()),
    })
}

fn kind_from_proto(kind: i32) -> Option<DebtorKind> {
    match pb::DebtorKind::try_from(kind) {
        Ok(pb::DebtorKind::Business) => Some(DebtorKind::Business),
        Ok(pb::DebtorKind::Consumer) => Some(DebtorKind::Consumer),
        _ => None,
    }
}

/// The settings of a `PutImportSettings` request; errors name the field under `settings.`.
pub fn settings_from_proto(
    s: &pb::ImportSettings,
    request_id: &str,
) -> Result<ImportSettingsUpdated, FieldErrors> {
    let mut errs = FieldErrors::default();
    if s.default_term_days > MAX_TERM_DAYS {
        errs.push(
            "settings.default_term_days",
            format!("must be at most {MAX_TERM_DAYS} (0: the default of 14)"),
        );
    }
    let account = s
        .default_creditor_account
        .as_ref()
        .map(|a| account_from_proto(&mut errs, "settings.default_creditor_account", a));
    if request_id.trim().is_empty() || request_id.chars().count() > 128 {
        errs.push("request_id", "required, at most 128 characters");
    }
    errs.into_result()?;
    Ok(ImportSettingsUpdated {
        unknown_buyer: kind_from_proto(s.unknown_buyer_kind),
        default_term_days: (s.default_term_days > 0).then_some(s.default_term_days),
        default_account: account.flatten(),
        request_id: request_id.to_owned(),
    })
}

pub fn settings_to_proto(s: &ImportSettingsUpdated) -> pb::ImportSettings {
    pb::ImportSettings {
        unknown_buyer_kind: match s.unknown_buyer {
            Some(DebtorKind::Business) => pb::DebtorKind::Business as i32,
            Some(DebtorKind::Consumer) => pb::DebtorKind::Consumer as i32,
            None => pb::DebtorKind::Unspecified as i32,
        },
        default_term_days: s.default_term_days.unwrap_or(0),
        default_creditor_account: s.default_account.as_ref().map(|a| pb::BankAccount {
            iban: a.iban.to_string(),
            bic: a.bic.as_ref().map(ToString::to_string).unwrap_or_default(),
            holder: a.holder.clone().unwrap_or_default(),
        }),
    }
}

/// The policy for one file: each field the request sets, else the stored setting, else the
/// built-in default ([`ImportPolicy::default`]). Errors name the request's field.
pub fn merge(
    req: &pb::ImportEInvoiceRequest,
    stored: &ImportSettingsUpdated,
) -> Result<ImportPolicy, FieldErrors> {
    let mut p = ImportPolicy::default();
    if let Some(k) = kind_from_proto(req.unknown_buyer_kind).or(stored.unknown_buyer) {
        p.unknown_buyer = k;
    }
    if let Some(d) = (req.default_term_days > 0)
        .then_some(req.default_term_days)
        .or(stored.default_term_days)
    {
        p.default_term_days = d;
    }
    p.default_account = match &req.default_creditor_account {
        Some(a) => {
            let mut errs = FieldErrors::default();
            let account = account_from_proto(&mut errs, "default_creditor_account", a);
            errs.into_result()?;
            account
        }
        None => stored.default_account.clone(),
    };
    Ok(p)
}

impl Ingest {
    /// The tenant's stored settings and the stream version (0: none stored), with every
    /// earlier event (for the idempotency check).
    pub(crate) async fn import_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<(ImportSettingsUpdated, u64, Vec<ImportSettingsUpdated>), Status> {
        let stream = stream(tenant);
        let mut all = Vec::new();
        let mut version = 0;
        let mut from = 1;
        loop {
            let events = self
                .log
                .read_stream(&stream, from, 500)
                .await
                .map_err(crate::error::log_error)?;
            let Some(last) = events.last() else { break };
            from = last.version + 1;
            for e in &events {
                version = e.version;
                if e.event_type == IMPORT_SETTINGS_UPDATED {
                    let s = serde_json::from_value(e.payload.clone()).map_err(|err| {
                        tracing::error!(error = %err, version = e.version, "undecodable import settings");
                        Status::internal("stored import settings are undecodable")
                    })?;
                    all.push(s);
                }
            }
            if events.len() < 500 {
                break;
            }
        }
        Ok((all.last().cloned().unwrap_or_default(), version, all))
    }

    pub(crate) async fn store_import_settings(
        &self,
        ctx: &RequestCtx,
        req: &pb::PutImportSettingsRequest,
    ) -> Result<pb::PutImportSettingsResponse, Status> {
        let tenant = ctx.caller.tenant(&req.tenant)?;
        let Some(settings) = &req.settings else {
            return Err(crate::error::invalid_field("settings", "required"));
        };
        let new = settings_from_proto(settings, &req.request_id)
            .map_err(|e| crate::error::invalid(&e))?;
        for _ in 0..5 {
            let (current, version, all) = self.import_settings(&tenant).await?;
            if let Some(earlier) = all.iter().find(|s| s.request_id == new.request_id) {
                if !earlier.same_settings(&new) {
                    return Err(Status::already_exists(format!(
                        "request_id {:?} was already used for other settings",
                        new.request_id
                    )));
                }
                return Ok(pb::PutImportSettingsResponse {
                    settings: Some(settings_to_proto(&current)),
                    version,
                });
            }
            let event = NewEvent {
                event_id: event_id_now(),
                event_type: IMPORT_SETTINGS_UPDATED.into(),
                payload: serde_json::to_value(&new)
                    .map_err(|e| Status::internal(format!("encoding settings: {e}")))?,
                occurred_at: chrono::Utc::now(),
                metadata: ctx.metadata.clone(),
            };
            let batch = AppendBatch {
                stream: stream(&tenant),
                expected: if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                },
                events: vec![event],
            };
            match self.log.append(batch).await {
                Ok(_) => {
                    return Ok(pb::PutImportSettingsResponse {
                        settings: Some(settings_to_proto(&new)),
                        version: version + 1,
                    });
                }
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(crate::error::log_error(e)),
            }
        }
        Err(Status::aborted(
            "too many concurrent changes to the import settings; retry",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> ImportSettingsUpdated {
        ImportSettingsUpdated {
            unknown_buyer: Some(DebtorKind::Business),
            default_term_days: Some(30),
            default_account: Some(BankAccount {
                iban: "DE89370400440532013000".parse().unwrap(),
                bic: None,
                holder: Some("Tenant GmbH".into()),
            }),
            request_id: "s-1".into(),
        }
    }

    #[test]
    fn unset_request_fields_take_the_stored_settings_and_set_ones_win() {
        let p = merge(&pb::ImportEInvoiceRequest::default(), &stored()).unwrap();
        assert_eq!(p.unknown_buyer, DebtorKind::Business);
        assert_eq!(p.default_term_days, 30);
        assert_eq!(p.default_account, stored().default_account);
        let req = pb::ImportEInvoiceRequest {
            unknown_buyer_kind: pb::DebtorKind::Consumer as i32,
            default_term_days: 7,
            default_creditor_account: Some(pb::BankAccount {
                iban: "DE02120300000000202051".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = merge(&req, &stored()).unwrap();
        assert_eq!(p.unknown_buyer, DebtorKind::Consumer);
        assert_eq!(p.default_term_days, 7);
        assert_eq!(
            p.default_account.unwrap().iban.to_string(),
            "DE02120300000000202051"
        );
        // Nothing stored, nothing sent: the built-in defaults.
        let p = merge(
            &pb::ImportEInvoiceRequest::default(),
            &ImportSettingsUpdated::default(),
        )
        .unwrap();
        assert_eq!(p, ImportPolicy::default());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let s = pb::ImportSettings {
            default_term_days: 400,
            default_creditor_account: Some(pb::BankAccount {
                iban: "DE00".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let errs = settings_from_proto(&s, "").unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "settings.default_term_days",
                "settings.default_creditor_account.iban",
                "request_id"
            ]
        );
        let back = settings_from_proto(&settings_to_proto(&stored()), "s-1").unwrap();
        assert_eq!(back, stored());
    }
}
