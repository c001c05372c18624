//! `DunningService` over gRPC. Each call: authenticate, take the tenant from the key, convert at
//! the edge, act through [`Dunning`], answer. Interventions are idempotent by `request_id`.

use crate::assignments::{self, Target};
use crate::engine::{Dunning, status_name};
use crate::error::{Error, invalid_field};
use crate::{policies, projection};
use chrono::NaiveDate;
use mahnwerk_auth::{Caller, KeyStore};
use mahnwerk_domain::{CaseId, Currency, Money};
use mahnwerk_dunning::dunning_case::{
    DunningCommand, HoldScope, Instalment, Pause, next_action_at,
};
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::Metadata;
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_server::DunningService;
use tonic::{Request, Response, Status};

/// The gRPC face of the dunning service.
#[derive(Clone)]
pub struct DunningApi {
    pub dunning: Dunning,
    pub keys: KeyStore,
}

mod idempotent;

type Rpc<T> = Result<Response<T>, Status>;

fn metadata<T>(req: &Request<T>, caller: &Caller, request_id: &str) -> Metadata {
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Metadata {
        correlation_id: Some(header("x-correlation-id").unwrap_or_else(|| request_id.to_owned())),
        causation_id: Some(format!("request:{request_id}")),
        actor: caller.actor(),
        traceparent: header("traceparent"),
    }
}

#[allow(clippy::result_large_err)]
fn parse_date(field: &str, value: &str) -> Result<NaiveDate, Status> {
    value
        .parse()
        .map_err(|_| invalid_field(field, "must be a date YYYY-MM-DD"))
}

/// A free text of an intervention (a reason): at most 1000 characters, no control characters
/// (CR, LF, NUL, ...), and not empty when `required`.
#[allow(clippy::result_large_err)]
fn reason_text(field: &str, value: &str, required: bool) -> Result<String, Status> {
    if required && value.trim().is_empty() {
        return Err(invalid_field(field, "required"));
    }
    if value.chars().count() > 1000 {
        return Err(invalid_field(field, "must be at most 1000 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid_field(
            field,
            "must not contain control characters (CR, LF, NUL, ...)",
        ));
    }
    Ok(value.to_owned())
}

#[allow(clippy::result_large_err)]
fn parse_money(field: &str, m: Option<&pb::Money>) -> Result<Money, Status> {
    let m = m.ok_or_else(|| invalid_field(field, "required"))?;
    let currency: Currency = m
        .currency
        .parse()
        .map_err(|_| invalid_field(&format!("{field}.currency"), "unknown ISO 4217 code"))?;
    Ok(Money::new(m.minor, currency))
}

fn money_pb(m: Money) -> pb::Money {
    pb::Money {
        minor: m.minor,
        currency: m.currency.to_string(),
    }
}

#[allow(clippy::result_large_err)]
fn parse_case(value: &str) -> Result<CaseId, Status> {
    value
        .parse()
        .map_err(|_| invalid_field("case_id", "must be a case id (UUID)"))
}

#[allow(clippy::result_large_err)]
fn parse_policy(json: &str) -> Result<Policy, Status> {
    serde_json::from_str(json).map_err(|e| invalid_field("policy_json", &e.to_string()))
}

fn policy_pb(p: &Policy, builtin: bool) -> pb::PutPolicyResponse {
    pb::PutPolicyResponse {
        policy_id: p.id.clone(),
        version: p.version,
        policy_json: serde_json::to_string(p).unwrap_or_default(),
        builtin,
    }
}

/// One response message per RPC (buf lint), the same fields.
fn get_policy_response(p: pb::PutPolicyResponse) -> pb::GetPolicyResponse {
    pb::GetPolicyResponse {
        policy_id: p.policy_id,
        version: p.version,
        policy_json: p.policy_json,
        builtin: p.builtin,
    }
}

impl DunningApi {
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        self.keys.authenticate_request(req).await
    }
}

fn describe_pause(p: &Pause) -> String {
    match p {
        Pause::Dispute { .. } => "dispute open".into(),
        Pause::DisputeUpheld => "dispute upheld: waiting for a credit note or cancellation".into(),
        Pause::PromiseToPay { until, amount, .. } => {
            format!("promise to pay {amount} by {until}")
        }
        Pause::PaymentPlan { instalments, .. } => {
            format!("payment plan with {} instalments", instalments.len())
        }
        Pause::Hold { scope, until, .. } => match (scope, until) {
            (HoldScope::Case, Some(u)) => format!("case on hold until {u}"),
            (HoldScope::Case, None) => "case on hold".into(),
            (HoldScope::Debtor, Some(u)) => format!("debtor on hold until {u}"),
            (HoldScope::Debtor, None) => "debtor on hold".into(),
        },
        Pause::DirectDebit => {
            "collected by direct debit: dunned only if the debit comes back".into()
        }
        Pause::Settlement { amount, pay_by, .. } => {
            format!("settlement: {amount} to pay by {pay_by}, the rest waived once paid")
        }
    }
}

#[tonic::async_trait]
impl DunningService for DunningApi {
    async fn put_policy(&self, req: Request<pb::PutPolicyRequest>) -> Rpc<pb::PutPolicyResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let policy = parse_policy(&b.policy_json)?;
        let meta = metadata(&req, &caller, &format!("policy:{}", policy.id));
        let stored = policies::put(self.dunning.log(), &tenant, policy, &meta).await?;
        projection::add_policy_id(self.dunning.pool(), tenant.as_str(), &stored.id)
            .await
            .map_err(|e| Status::from(Error::Database(e)))?;
        Ok(Response::new(policy_pb(&stored, false)))
    }

    async fn get_policy(&self, req: Request<pb::GetPolicyRequest>) -> Rpc<pb::GetPolicyResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let state = self.dunning.default_state();
        let versions = policies::versions(self.dunning.log(), &tenant, &b.policy_id).await?;
        let found = match (b.version, versions.is_empty()) {
            (0, true) | (1, true) => policies::builtin(&b.policy_id, state).map(|p| (p, true)),
            (0, false) => versions.last().cloned().map(|p| (p, false)),
            (v, false) => versions
                .into_iter()
                .find(|p| p.version == v)
                .map(|p| (p, false)),
            (_, true) => None,
        };
        let (policy, builtin) = found.ok_or_else(|| Status::not_found("policy not found"))?;
        Ok(Response::new(get_policy_response(policy_pb(
            &policy, builtin,
        ))))
    }

    async fn list_policies(
        &self,
        req: Request<pb::ListPoliciesRequest>,
    ) -> Rpc<pb::ListPoliciesResponse> {
        let caller = self.caller(&req).await?;
        let tenant = caller.tenant(&req.get_ref().tenant)?;
        let mut ids = projection::policy_ids(self.dunning.pool(), tenant.as_str())
            .await
            .map_err(|e| Status::from(Error::Database(e)))?;
        for builtin in [policies::DEFAULT_BUSINESS, policies::DEFAULT_CONSUMER] {
            if !ids.iter().any(|i| i == builtin) {
                ids.push(builtin.to_owned());
            }
        }
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            let versions = policies::versions(self.dunning.log(), &tenant, &id).await?;
            let summary = match versions.last() {
                Some(last) => pb::PolicySummary {
                    policy_id: id.clone(),
                    name: last.name.clone(),
                    current_version: last.version,
                    versions: versions.iter().map(|p| p.version).collect(),
                    builtin: false,
                },
                None => match policies::builtin(&id, self.dunning.default_state()) {
                    Some(p) => pb::PolicySummary {
                        policy_id: id.clone(),
                        name: p.name,
                        current_version: 1,
                        versions: vec![1],
                        builtin: true,
                    },
                    None => continue,
                },
            };
            out.push(summary);
        }
        Ok(Response::new(pb::ListPoliciesResponse { policies: out }))
    }

    async fn validate_policy(
        &self,
        req: Request<pb::ValidatePolicyRequest>,
    ) -> Rpc<pb::ValidatePolicyResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        caller.tenant(&b.tenant)?;
        let violations = match serde_json::from_str::<Policy>(&b.policy_json) {
            Ok(p) => p
                .check()
                .0
                .into_iter()
                .map(|e| pb::PolicyViolation {
                    field: e.field,
                    reason: e.reason,
                })
                .collect(),
            Err(e) => vec![pb::PolicyViolation {
                field: "policy_json".into(),
                reason: e.to_string(),
            }],
        };
        Ok(Response::new(pb::ValidatePolicyResponse {
            valid: violations.is_empty(),
            violations,
        }))
    }

    async fn explain_case(
        &self,
        req: Request<pb::ExplainCaseRequest>,
    ) -> Rpc<pb::ExplainCaseResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let case = parse_case(&b.case_id)?;
        let folded = self.dunning.read_case(&case.stream(&tenant)).await?;
        let Some(state) = folded.state.as_ref() else {
            return Err(Status::not_found(if folded.version == 0 {
                "case not found"
            } else {
                "dunning has not opened this case yet"
            }));
        };
        let today = self.dunning.clock().today();
        let next = next_action_at(state);
        let next_action = if state.phase.is_end() {
            String::new()
        } else if state.is_paused() {
            "resume when the pause ends".into()
        } else if state.awaits_approval()
            && state.approval != mahnwerk_dunning::dunning_case::ApprovalState::None
        {
            "waiting for the creditor to approve or decline (ApproveDunning, DeclineDunning)".into()
        } else if let Some(step) = state.policy.steps.get(state.steps.len()) {
            let draft = if state.declined() {
                " (draft for the creditor)"
            } else {
                ""
            };
            format!("step {} \"{}\"{draft}", state.steps.len() + 1, step.title)
        } else if state.escalation_date().is_some() {
            "hand-over to collection".into()
        } else {
            String::new()
        };
        let detail = serde_json::json!({ "state": state, "pending_facts": folded.pending.len() });
        Ok(Response::new(pb::ExplainCaseResponse {
            case_id: case.to_string(),
            status: status_name(Some(state), today),
            policy_id: state.policy.id.clone(),
            policy_version: state.policy.version,
            steps: state
                .steps
                .iter()
                .map(|(n, d)| pb::ReachedStep {
                    number: *n,
                    date: d.to_string(),
                })
                .collect(),
            next_action_on: next.map(|d| d.to_string()).unwrap_or_default(),
            next_action,
            balance: Some(money_pb(state.balance())),
            principal_open: Some(money_pb(state.principal_open())),
            pauses: state.pauses.iter().map(describe_pause).collect(),
            detail_json: detail.to_string(),
        }))
    }

    async fn pause_case(&self, req: Request<pb::PauseCaseRequest>) -> Rpc<pb::PauseCaseResponse> {
        let b = req.get_ref().clone();
        let until = if b.until.is_empty() {
            None
        } else {
            Some(parse_date("until", &b.until)?)
        };
        let command = DunningCommand::Hold {
            scope: HoldScope::Case,
            reason: reason_text("reason", &b.reason, false)?,
            until,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn pause_debtor(
        &self,
        req: Request<pb::PauseDebtorRequest>,
    ) -> Rpc<pb::PauseDebtorResponse> {
        let b = req.get_ref().clone();
        let until = if b.until.is_empty() {
            None
        } else {
            Some(parse_date("until", &b.until)?)
        };
        let command = DunningCommand::Hold {
            scope: HoldScope::Debtor,
            reason: reason_text("reason", &b.reason, false)?,
            until,
        };
        self.intervene_debtor(&req, &b.tenant, &b.request_id, &b.debtor_key, command)
            .await
    }

    async fn resume_debtor(
        &self,
        req: Request<pb::ResumeDebtorRequest>,
    ) -> Rpc<pb::ResumeDebtorResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::Release {
            scope: HoldScope::Debtor,
        };
        self.intervene_debtor(&req, &b.tenant, &b.request_id, &b.debtor_key, command)
            .await
    }

    async fn resume_case(
        &self,
        req: Request<pb::ResumeCaseRequest>,
    ) -> Rpc<pb::ResumeCaseResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::Release {
            scope: HoldScope::Case,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn record_promise_to_pay(
        &self,
        req: Request<pb::RecordPromiseToPayRequest>,
    ) -> Rpc<pb::RecordPromiseToPayResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::PromiseToPay {
            until: parse_date("until", &b.until)?,
            amount: parse_money("amount", b.amount.as_ref())?,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn agree_payment_plan(
        &self,
        req: Request<pb::AgreePaymentPlanRequest>,
    ) -> Rpc<pb::AgreePaymentPlanResponse> {
        let b = req.get_ref().clone();
        let mut instalments = Vec::new();
        for (i, inst) in b.instalments.iter().enumerate() {
            instalments.push(Instalment {
                date: parse_date(&format!("instalments[{i}].date"), &inst.date)?,
                amount: parse_money(&format!("instalments[{i}].amount"), inst.amount.as_ref())?,
            });
        }
        let command = DunningCommand::AgreePaymentPlan { instalments };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn write_off(&self, req: Request<pb::WriteOffRequest>) -> Rpc<pb::WriteOffResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::WriteOff {
            reason: reason_text("reason", &b.reason, false)?,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn agree_settlement(
        &self,
        req: Request<pb::AgreeSettlementRequest>,
    ) -> Rpc<pb::AgreeSettlementResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::AgreeSettlement {
            amount: parse_money("amount", b.amount.as_ref())?,
            pay_by: parse_date("pay_by", &b.pay_by)?,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn skip_step(&self, req: Request<pb::SkipStepRequest>) -> Rpc<pb::SkipStepResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::SkipStep {
            reason: reason_text("reason", &b.reason, true)?,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn repeat_step(
        &self,
        req: Request<pb::RepeatStepRequest>,
    ) -> Rpc<pb::RepeatStepResponse> {
        let b = req.get_ref().clone();
        let command = DunningCommand::RepeatStep {
            reason: reason_text("reason", &b.reason, true)?,
        };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn assign_policy(
        &self,
        req: Request<pb::AssignPolicyRequest>,
    ) -> Rpc<pb::AssignPolicyResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let target = match (b.debtor_key.is_empty(), b.group.is_empty()) {
            (false, true) => Target::Debtor(b.debtor_key.clone()),
            (true, false) => Target::Group(b.group.clone()),
            _ => {
                return Err(invalid_field(
                    "debtor_key",
                    "give exactly one of debtor_key and group",
                ));
            }
        };
        let policy_id = (!b.policy_id.is_empty()).then_some(b.policy_id.as_str());
        if let Some(id) = policy_id
            && policies::current(
                self.dunning.log(),
                &tenant,
                id,
                self.dunning.default_state(),
            )
            .await?
            .is_none()
        {
            return Err(Status::not_found(format!("policy_id: no policy {id:?}")));
        }
        let meta = metadata(&req, &caller, "policy:assign");
        let stream_version =
            assignments::assign(self.dunning.log(), &tenant, &target, policy_id, &meta).await?;
        Ok(Response::new(pb::AssignPolicyResponse { stream_version }))
    }

    async fn set_debtor_group(
        &self,
        req: Request<pb::SetDebtorGroupRequest>,
    ) -> Rpc<pb::SetDebtorGroupResponse> {
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let group = (!b.group.is_empty()).then_some(b.group.as_str());
        let meta = metadata(&req, &caller, "policy:group");
        let stream_version =
            assignments::set_group(self.dunning.log(), &tenant, &b.debtor_key, group, &meta)
                .await?;
        Ok(Response::new(pb::SetDebtorGroupResponse { stream_version }))
    }

    async fn move_case_policy(
        &self,
        req: Request<pb::MoveCasePolicyRequest>,
    ) -> Rpc<pb::MoveCasePolicyResponse> {
        let b = req.get_ref().clone();
        let caller = self.caller(&req).await?;
        let tenant = caller.tenant(&b.tenant)?;
        let log = self.dunning.log();
        let state = self.dunning.default_state();
        let policy = if b.version == 0 {
            policies::current(log, &tenant, &b.policy_id, state)
                .await?
                .map(|(p, _)| p)
        } else {
            let versions = policies::versions(log, &tenant, &b.policy_id).await?;
            if versions.is_empty() && b.version == 1 {
                policies::builtin(&b.policy_id, state)
            } else {
                versions.into_iter().find(|p| p.version == b.version)
            }
        }
        .ok_or_else(|| Status::not_found("policy_id: no such policy or version"))?;
        let command = DunningCommand::MovePolicy { policy };
        self.intervene(&req, &b.tenant, &b.request_id, &b.case_id, command)
            .await
    }

    async fn approve_dunning(
        &self,
        req: Request<pb::ApproveDunningRequest>,
    ) -> Rpc<pb::ApproveDunningResponse> {
        let b = req.get_ref().clone();
        self.intervene(
            &req,
            &b.tenant,
            &b.request_id,
            &b.case_id,
            DunningCommand::Approve,
        )
        .await
    }

    async fn decline_dunning(
        &self,
        req: Request<pb::DeclineDunningRequest>,
    ) -> Rpc<pb::DeclineDunningResponse> {
        let b = req.get_ref().clone();
        self.intervene(
            &req,
            &b.tenant,
            &b.request_id,
            &b.case_id,
            DunningCommand::Decline,
        )
        .await
    }

    async fn preview_policy(
        &self,
        req: Request<pb::PreviewPolicyRequest>,
    ) -> Rpc<pb::PreviewPolicyResponse> {
        use mahnwerk_dunning::preview::{PreviewCase, Scheduled, preview};
        let caller = self.caller(&req).await?;
        let b = req.get_ref();
        let tenant = caller.tenant(&b.tenant)?;
        let until = parse_date("until", &b.until)?;
        let policy = if b.policy_json.is_empty() {
            policies::current(
                self.dunning.log(),
                &tenant,
                &b.policy_id,
                self.dunning.default_state(),
            )
            .await?
            .map(|(p, _)| p)
            .ok_or_else(|| Status::not_found("policy not found"))?
        } else {
            parse_policy(&b.policy_json)?
        };
        policy.validate().map_err(Error::from)?;
        let states = projection::open_states(self.dunning.pool(), tenant.as_str())
            .await
            .map_err(|e| Status::from(Error::Database(e)))?;
        // Each case from its issue date, with the payments it has had.
        let cases: Vec<PreviewCase> = states
            .into_iter()
            .filter(|(_, s)| s.currency() == policy.currency)
            .map(|(case_id, s)| PreviewCase {
                case_id,
                events: s
                    .payments
                    .iter()
                    .filter(|p| !p.reversed)
                    .map(|p| Scheduled {
                        date: p.date,
                        command: DunningCommand::RecordPayment {
                            payment_id: p.payment_id.clone(),
                            amount: p.amount,
                            date: p.date,
                        },
                    })
                    .collect(),
                facts: s.facts,
            })
            .collect();
        let report = preview(&policy, &cases, until).map_err(Error::from)?;
        Ok(Response::new(pb::PreviewPolicyResponse {
            cases: u64::try_from(cases.len()).unwrap_or(u64::MAX),
            steps: report.steps,
            escalations: report.escalations,
            fees: Some(money_pb(report.fees)),
            lump_sums: Some(money_pb(report.lump_sums)),
            interest: Some(money_pb(report.interest)),
            report_json: serde_json::to_string(&report).unwrap_or_default(),
        }))
    }

    async fn advance_clock(
        &self,
        req: Request<pb::AdvanceClockRequest>,
    ) -> Rpc<pb::AdvanceClockResponse> {
        self.caller(&req).await?;
        let days = req.get_ref().days;
        if days == 0 || days > 3660 {
            return Err(invalid_field("days", "must be between 1 and 3660"));
        }
        match self.dunning.advance_clock(days).await {
            None => Err(Status::failed_precondition(
                "the clock is not simulated: start the server with --simulated-clock START_DATE",
            )),
            Some(Err(e)) => Err(e.into()),
            Some(Ok((today, acted))) => Ok(Response::new(pb::AdvanceClockResponse {
                today: today.to_string(),
                cases_advanced: acted,
            })),
        }
    }
}
