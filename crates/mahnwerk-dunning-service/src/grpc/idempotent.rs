//! Interventions once per `request_id`: the claim on the key (the same key and request give
//! the same answer, another request under the key is ALREADY_EXISTS, a refused request
//! releases its key), and running a command on one case or on every case of a debtor.

use super::{DunningApi, Rpc, metadata, parse_case};
use crate::error::{Error, invalid_field};
use crate::projection;
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_dunning::dunning_case::DunningCommand;
use mahnwerk_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

/// The stored answer of an intervention.
#[derive(Serialize, Deserialize)]
pub(super) struct Stored {
    case_id: String,
    event_types: Vec<String>,
    stream_version: u64,
}

/// The intervention RPCs answer with messages of the same fields (one per RPC, buf lint).
macro_rules! intervention_response {
    ($($t:ident),*) => {$(
        impl From<Stored> for pb::$t {
            fn from(s: Stored) -> Self {
                Self {
                    case_id: s.case_id,
                    event_types: s.event_types,
                    stream_version: s.stream_version,
                }
            }
        }
    )*};
}
intervention_response!(
    PauseCaseResponse,
    ResumeCaseResponse,
    RecordPromiseToPayResponse,
    AgreePaymentPlanResponse,
    WriteOffResponse,
    AgreeSettlementResponse,
    SkipStepResponse,
    RepeatStepResponse,
    ApproveDunningResponse,
    DeclineDunningResponse,
    MoveCasePolicyResponse
);

/// What a debtor-wide intervention did: cases changed, cases looked at.
pub(super) struct DebtorAnswer(u64, u64);

/// The debtor-wide interventions answer with messages of the same fields (one per RPC).
macro_rules! debtor_response {
    ($($t:ident),*) => {$(
        impl From<DebtorAnswer> for pb::$t {
            fn from(DebtorAnswer(cases_changed, cases): DebtorAnswer) -> Self {
                Self { cases_changed, cases }
            }
        }
    )*};
}
debtor_response!(PauseDebtorResponse, ResumeDebtorResponse);

impl DunningApi {
    /// Claim `request_id` for a request with this fingerprint. `Some(answer)` when it was
    /// answered before; ALREADY_EXISTS when the id was used for another request. An earlier
    /// attempt that stopped before answering is run again (the core's commands are idempotent
    /// on the case state).
    pub(super) async fn claim(
        &self,
        tenant: &TenantId,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<String>, Status> {
        if request_id.is_empty() || request_id.chars().count() > 100 {
            return Err(invalid_field("request_id", "must be 1–100 characters"));
        }
        let pool = self.dunning.pool();
        let db = |e: sqlx::Error| Status::from(Error::Database(e));
        if projection::claim_request(pool, tenant.as_str(), request_id, fingerprint)
            .await
            .map_err(db)?
        {
            return Ok(None);
        }
        let Some((fp, response)) = projection::request(pool, tenant.as_str(), request_id)
            .await
            .map_err(db)?
        else {
            return Err(Status::aborted("request in progress; retry"));
        };
        if fp != fingerprint {
            return Err(Status::already_exists(
                "request_id was used for a different request",
            ));
        }
        Ok(response)
    }

    /// The outcome of a claimed request; a failure releases the claim (the request took no
    /// effect: retried, or corrected under the same key, it runs again).
    pub(super) async fn unless_refused<A>(
        &self,
        tenant: &TenantId,
        request_id: &str,
        done: Result<A, Status>,
    ) -> Result<A, Status> {
        if done.is_err()
            && let Err(e) =
                projection::release_request(self.dunning.pool(), tenant.as_str(), request_id).await
        {
            tracing::warn!(error = %e, request_id, "a refused request's claim was not released");
        }
        done
    }

    /// Hold or release every case of a debtor, once per `request_id`.
    pub(super) async fn intervene_debtor<T, R: From<DebtorAnswer>>(
        &self,
        req: &Request<T>,
        tenant: &str,
        request_id: &str,
        debtor_key: &str,
        command: DunningCommand,
    ) -> Rpc<R> {
        let caller = self.caller(req).await?;
        let tenant: TenantId = caller.tenant(tenant)?;
        if debtor_key.is_empty() {
            return Err(invalid_field("debtor_key", "required"));
        }
        let command_json = serde_json::to_string(&command).unwrap_or_default();
        let fingerprint = hex::encode(Sha256::digest(
            format!("debtor:{debtor_key}\u{1f}{command_json}").as_bytes(),
        ));
        let answer = |changed: u64, cases: u64| R::from(DebtorAnswer(changed, cases));
        if let Some(stored) = self.claim(&tenant, request_id, &fingerprint).await?
            && let Ok((changed, cases)) = serde_json::from_str::<(u64, u64)>(&stored)
        {
            return Ok(Response::new(answer(changed, cases)));
        }
        let done = async {
            let pool = self.dunning.pool();
            let db = |e: sqlx::Error| Status::from(Error::Database(e));
            let cases = projection::debtor_cases(pool, tenant.as_str(), debtor_key)
                .await
                .map_err(db)?;
            let meta = metadata(req, &caller, request_id);
            let today = self.dunning.clock().today();
            let mut changed = 0;
            for case in &cases {
                let Ok(case) = case.parse::<CaseId>() else {
                    continue;
                };
                match self
                    .dunning
                    .reconcile(&tenant, case, Some((&command, &meta)), false, today)
                    .await
                {
                    Ok(done) if !done.appended.is_empty() => changed += 1,
                    Ok(_) => {}
                    // A closed case takes no hold: the rules refused, nothing to do.
                    Err(Error::Rule(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let cases = u64::try_from(cases.len()).unwrap_or(u64::MAX);
            Ok::<_, Status>((changed, cases))
        }
        .await;
        let (changed, cases) = self.unless_refused(&tenant, request_id, done).await?;
        projection::finish_request(
            self.dunning.pool(),
            tenant.as_str(),
            request_id,
            &serde_json::to_string(&(changed, cases)).unwrap_or_default(),
        )
        .await
        .map_err(|e| Status::from(Error::Database(e)))?;
        Ok(Response::new(answer(changed, cases)))
    }

    /// Run an intervention once per `request_id`.
    pub(super) async fn intervene<T, R: From<Stored>>(
        &self,
        req: &Request<T>,
        tenant: &str,
        request_id: &str,
        case_id: &str,
        command: DunningCommand,
    ) -> Rpc<R> {
        let caller = self.caller(req).await?;
        let tenant: TenantId = caller.tenant(tenant)?;
        if request_id.is_empty() || request_id.chars().count() > 100 {
            return Err(invalid_field("request_id", "must be 1–100 characters"));
        }
        let case = parse_case(case_id)?;
        let command_json = serde_json::to_string(&command).unwrap_or_default();
        let fingerprint = hex::encode(Sha256::digest(
            format!("{case}\u{1f}{command_json}").as_bytes(),
        ));
        if let Some(answer) = self.claim(&tenant, request_id, &fingerprint).await?
            && let Ok(stored) = serde_json::from_str::<Stored>(&answer)
        {
            return Ok(Response::new(R::from(Stored {
                case_id: stored.case_id,
                event_types: Vec::new(),
                stream_version: stored.stream_version,
            })));
        }
        // A refused request leaves no claim: the caller may correct it and use the key again.
        let done = async {
            let folded = self
                .dunning
                .read_case(&case.stream(&tenant))
                .await
                .map_err(Status::from)?;
            if folded.version == 0 {
                return Err(Status::not_found("case not found"));
            }
            let meta = metadata(req, &caller, request_id);
            let today = self.dunning.clock().today();
            let done = self
                .dunning
                .reconcile(&tenant, case, Some((&command, &meta)), false, today)
                .await?;
            let stored = Stored {
                case_id: case.to_string(),
                event_types: done.appended.iter().map(|t| (*t).to_owned()).collect(),
                stream_version: done.version,
            };
            Ok::<_, Status>(stored)
        }
        .await;
        let stored = self.unless_refused(&tenant, request_id, done).await?;
        // Appended: from here on the claim stays, whatever happens.
        projection::finish_request(
            self.dunning.pool(),
            tenant.as_str(),
            request_id,
            &serde_json::to_string(&stored).unwrap_or_default(),
        )
        .await
        .map_err(|e| Status::from(Error::Database(e)))?;
        Ok(Response::new(R::from(stored)))
    }
}
