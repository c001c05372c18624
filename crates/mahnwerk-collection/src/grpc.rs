//! `CollectionService` over gRPC. Each call: authenticate (tenant key or partner key), take the
//! tenant from the key, convert at the edge, act through [`Collection`], answer. Mutating calls
//! are idempotent by `request_id`.

use crate::engine::{Command, HandoverMode, Partner, Report};
use crate::error::{Error, invalid_field};
use crate::service::{Collection, phase_name, select};
use crate::{engine, store};
use chrono::NaiveDate;
use mahnwerk_auth::partner::{PartnerCaller, PartnerKeys};
use mahnwerk_auth::{Caller, KeyStore};
use mahnwerk_domain::{CaseId, Currency, DebtorKind, Money, TenantId};
use mahnwerk_eventlog::Metadata;
use mahnwerk_proto::v1 as pb;
use pb::collection_service_server::CollectionService;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

/// The gRPC face of the collection service.
#[derive(Clone)]
pub struct CollectionApi {
    pub collection: Collection,
    pub keys: KeyStore,
    pub partner_keys: PartnerKeys,
}

type Rpc<T> = Result<Response<T>, Status>;

/// Who calls.
enum Who {
    Tenant(Caller),
    Partner(PartnerCaller),
}

fn metadata<T>(req: &Request<T>, actor: String, request_id: &str) -> Metadata {
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Metadata {
        correlation_id: Some(header("x-correlation-id").unwrap_or_else(|| request_id.to_owned())),
        causation_id: Some(format!("request:{request_id}")),
        actor,
        traceparent: header("traceparent"),
    }
}

#[allow(clippy::result_large_err)]
fn parse_case(value: &str) -> Result<CaseId, Status> {
    value
        .parse()
        .map_err(|_| invalid_field("case_id", "must be a case id (UUID)"))
}

#[allow(clippy::result_large_err)]
fn parse_date(field: &str, value: &str) -> Result<NaiveDate, Status> {
    value
        .parse()
        .map_err(|_| invalid_field(field, "must be a date YYYY-MM-DD"))
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

#[allow(clippy::result_large_err)]
fn check_request_id(id: &str) -> Result<(), Status> {
    if id.is_empty() || id.chars().count() > 100 {
        return Err(invalid_field("request_id", "must be 1–100 characters"));
    }
    Ok(())
}

#[allow(clippy::result_large_err)]
fn partner_from_pb(p: Option<&pb::Partner>) -> Result<Partner, Status> {
    let p = p.ok_or_else(|| invalid_field("partner", "required"))?;
    let mode = match pb::HandoverMode::try_from(p.mode) {
        Ok(pb::HandoverMode::Auto) => HandoverMode::Auto,
        Ok(pb::HandoverMode::Approval) => HandoverMode::Approval,
        _ => return Err(invalid_field("partner.mode", "must be AUTO or APPROVAL")),
    };
    let mut kinds = Vec::new();
    for (i, k) in p.debtor_kinds.iter().enumerate() {
        kinds.push(match pb::DebtorKind::try_from(*k) {
            Ok(pb::DebtorKind::Consumer) => DebtorKind::Consumer,
            Ok(pb::DebtorKind::Business) => DebtorKind::Business,
            _ => {
                return Err(invalid_field(
                    &format!("partner.debtor_kinds[{i}]"),
                    "must be CONSUMER or BUSINESS",
                ));
            }
        });
    }
    Ok(Partner {
        id: p.partner_id.clone(),
        name: p.name.clone(),
        subject_token: p.subject_token.clone(),
        min_amount_minor: p.min_amount_minor,
        debtor_kinds: kinds,
        countries: p.countries.clone(),
        mode,
        waive_costs_if_principal_paid: p.waive_costs_if_principal_paid,
        active: p.active,
    })
}

fn partner_pb(p: &Partner) -> pb::Partner {
    pb::Partner {
        partner_id: p.id.clone(),
        name: p.name.clone(),
        subject_token: p.subject_token.clone(),
        min_amount_minor: p.min_amount_minor,
        debtor_kinds: p
            .debtor_kinds
            .iter()
            .map(|k| match k {
                DebtorKind::Consumer => pb::DebtorKind::Consumer as i32,
                DebtorKind::Business => pb::DebtorKind::Business as i32,
            })
            .collect(),
        countries: p.countries.clone(),
        mode: match p.mode {
            HandoverMode::Auto => pb::HandoverMode::Auto as i32,
            HandoverMode::Approval => pb::HandoverMode::Approval as i32,
        },
        waive_costs_if_principal_paid: p.waive_costs_if_principal_paid,
        active: p.active,
    }
}

/// The stored answer of a mutating call.
#[derive(Serialize, Deserialize)]
struct Stored {
    case_id: String,
    event_types: Vec<String>,
    stream_version: u64,
    phase: String,
}

fn db(e: sqlx::Error) -> Status {
    Status::from(Error::Database(e))
}

impl CollectionApi {
    async fn who<T>(&self, req: &Request<T>) -> Result<Who, Status> {
        if let Some(p) = self.partner_keys.authenticate_request(req).await? {
            return Ok(Who::Partner(p));
        }
        Ok(Who::Tenant(self.keys.authenticate_request(req).await?))
    }

    /// A tenant key's tenant; partner keys are refused.
    async fn tenant<T>(
        &self,
        req: &Request<T>,
        requested: &str,
    ) -> Result<(Caller, TenantId), Status> {
        match self.who(req).await? {
            Who::Tenant(c) => {
                let t = c.tenant(requested)?;
                Ok((c, t))
            }
            Who::Partner(_) => Err(Status::permission_denied(
                "a partner key may only read handed-over cases and report on them",
            )),
        }
    }

    /// Run a case action once per `(tenant, request key)`.
    #[allow(clippy::too_many_arguments)]
    async fn once(
        &self,
        tenant: &TenantId,
        request_key: &str,
        case: CaseId,
        fingerprint_of: &str,
        meta: Metadata,
        mut command: impl FnMut(
            &crate::casefile::CaseView,
            &[Partner],
        ) -> Result<Option<Command>, Error>,
        partner_check: Option<&str>,
    ) -> Rpc<pb::CaseActionResponse> {
        let fingerprint = hex::encode(Sha256::digest(
            format!("{case}\u{1f}{fingerprint_of}").as_bytes(),
        ));
        let pool = self.collection.pool();
        if !store::claim_request(pool, tenant.as_str(), request_key, &fingerprint)
            .await
            .map_err(db)?
        {
            let Some((fp, response)) = store::request(pool, tenant.as_str(), request_key)
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
            if let Some(s) = response.and_then(|r| serde_json::from_str::<Stored>(&r).ok()) {
                return Ok(Response::new(pb::CaseActionResponse {
                    case_id: s.case_id,
                    event_types: Vec::new(),
                    stream_version: s.stream_version,
                    phase: s.phase,
                }));
            }
            // An earlier attempt stopped before it answered: act again (the engine decides on
            // the case state, so what it did is not done twice).
        }
        let today = self.collection.today();
        let result = self
            .collection
            .act(tenant, case, today, &meta, |view, partners| {
                if let Some(p) = partner_check
                    && !view.handed_to(p)
                {
                    return Err(Error::NotFound("case"));
                }
                command(view, partners)
            })
            .await;
        let acted = match result {
            Ok(a) => a,
            Err(e) => {
                // Refused: forget the id so a corrected request may use it.
                let _ = store::drop_request(pool, tenant.as_str(), request_key).await;
                return Err(e.into());
            }
        };
        let stored = Stored {
            case_id: case.to_string(),
            event_types: acted.appended.iter().map(|t| (*t).to_owned()).collect(),
            stream_version: acted.version,
            phase: phase_name(&acted.view.collection),
        };
        store::finish_request(
            pool,
            tenant.as_str(),
            request_key,
            &serde_json::to_string(&stored).unwrap_or_default(),
        )
        .await
        .map_err(db)?;
        Ok(Response::new(pb::CaseActionResponse {
            case_id: stored.case_id,
            event_types: stored.event_types,
            stream_version: stored.stream_version,
            phase: stored.phase,
        }))
    }

    async fn note_action(
        &self,
        req: Request<pb::CaseNoteRequest>,
        what: &str,
        make: fn(String) -> Command,
    ) -> Rpc<pb::CaseActionResponse> {
        let (caller, tenant) = self.tenant(&req, &req.get_ref().tenant).await?;
        let b = req.get_ref();
        check_request_id(&b.request_id)?;
        let case = parse_case(&b.case_id)?;
        let meta = metadata(&req, caller.actor(), &b.request_id);
        let reason = b.reason.clone();
        self.once(
            &tenant,
            &b.request_id,
            case,
            &format!("{what}\u{1f}{reason}"),
            meta,
            |_, _| Ok(Some(make(reason.clone()))),
            None,
        )
        .await
    }

    /// The case view for a reader: a partner sees only cases handed over to it.
    async fn readable<T>(
        &self,
        req: &Request<T>,
        requested_tenant: &str,
        case_id: &str,
    ) -> Result<(crate::casefile::CaseView, Option<String>), Status> {
        let (tenant, partner) = match self.who(req).await? {
            Who::Tenant(c) => (c.tenant(requested_tenant)?, None),
            Who::Partner(p) => {
                if !requested_tenant.is_empty() && requested_tenant != p.tenant.as_str() {
                    return Err(Status::not_found("case not found"));
                }
                (p.tenant.clone(), Some(p.partner_id))
            }
        };
        let case = parse_case(case_id)?;
        let view = self
            .collection
            .read_case(&case.stream(&tenant))
            .await
            .map_err(Status::from)?;
        let visible = match &partner {
            None => view.version() > 0,
            Some(p) => view.handed_to(p),
        };
        if !visible {
            return Err(Status::not_found("case not found"));
        }
        Ok((view, partner))
    }
}

#[tonic::async_trait]
impl CollectionService for CollectionApi {
    async fn put_partner(&self, req: Request<pb::PutPartnerRequest>) -> Rpc<pb::PartnerInfo> {
        let (caller, tenant) = self.tenant(&req, &req.get_ref().tenant).await?;
        let partner = partner_from_pb(req.get_ref().partner.as_ref())?;
        let meta = metadata(&req, caller.actor(), &format!("partner:{}", partner.id));
        let version = self
            .collection
            .put_partner(&tenant, partner.clone(), &meta)
            .await?;
        Ok(Response::new(pb::PartnerInfo {
            partner: Some(partner_pb(&partner)),
            version,
        }))
    }

    async fn list_partners(
        &self,
        req: Request<pb::ListPartnersRequest>,
    ) -> Rpc<pb::ListPartnersResponse> {
        let (_, tenant) = self.tenant(&req, &req.get_ref().tenant).await?;
        let partners = self.collection.partners(&tenant).await?;
        Ok(Response::new(pb::ListPartnersResponse {
            partners: partners
                .iter()
                .map(|(v, p)| pb::PartnerInfo {
                    partner: Some(partner_pb(p)),
                    version: *v,
                })
                .collect(),
        }))
    }

    async fn create_partner_key(
        &self,
        req: Request<pb::CreatePartnerKeyRequest>,
    ) -> Rpc<pb::CreatePartnerKeyResponse> {
        let (_, tenant) = self.tenant(&req, &req.get_ref().tenant).await?;
        let b = req.get_ref();
        check_request_id(&b.request_id)?;
        if self
            .collection
            .partner(&tenant, &b.partner_id)
            .await?
            .is_none()
        {
            return Err(Status::not_found("partner not found"));
        }
        // The caller's own credential seals the token for its repeats (never stored in clear).
        let credential = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let created = self
            .partner_keys
            .create_once(&tenant, &b.partner_id, &b.label, &b.request_id, &credential)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "partner key creation failed");
                Status::unavailable("authentication store unavailable")
            })?;
        let key = match created {
            mahnwerk_auth::partner::CreatedOnce::Key(key) => key,
            mahnwerk_auth::partner::CreatedOnce::OtherRequest => {
                return Err(Status::already_exists(format!(
                    "request_id {:?} was used for another CreatePartnerKey request",
                    b.request_id
                )));
            }
        };
        Ok(Response::new(pb::CreatePartnerKeyResponse {
            key_id: key.key_id,
            token: key.token,
        }))
    }

    async fn approve_handover(
        &self,
        req: Request<pb::ApproveHandoverRequest>,
    ) -> Rpc<pb::CaseActionResponse> {
        let (caller, tenant) = self.tenant(&req, &req.get_ref().tenant).await?;
        let b = req.get_ref();
        check_request_id(&b.request_id)?;
        let case = parse_case(&b.case_id)?;
        let meta = metadata(&req, caller.actor(), &b.request_id);
        let wanted = b.partner_id.clone();
        let today = self.collection.today();
        self.once(
            &tenant,
            &b.request_id,
            case,
            &format!("approve\u{1f}{wanted}"),
            meta,
            |view, partners| {
                let d = view.dunning.as_ref().ok_or_else(|| {
                    engine::Refused::Precondition("the dunning case is not open".into())
                })?;
                let open = engine::claim(d, today)?.principal_open;
                let waiting = match &view.collection.phase {
                    engine::Phase::AwaitingApproval { partner_id }
                    | engine::Phase::Held { partner_id } => Some(partner_id.clone()),
                    _ => None,
                };
                let id = if !wanted.is_empty() {
                    Some(wanted.clone())
                } else {
                    waiting.or_else(|| {
                        select(partners, d.facts.debtor, &view.debtor_country(), open)
                            .map(|p| p.id.clone())
                    })
                };
                let partner = id
                    .and_then(|id| partners.iter().find(|p| p.id == id).cloned())
                    .ok_or_else(|| engine::Refused::Invalid {
                        field: "partner_id".into(),
                        reason: "no such partner (and none of the tenant's takes the case)".into(),
                    })?;
                Ok(Some(Command::Approve {
                    partner,
                    principal_open: open,
                }))
            },
            None,
        )
        .await
    }

    async fn hold_handover(
        &self,
        req: Request<pb::CaseNoteRequest>,
    ) -> Rpc<pb::CaseActionResponse> {
        self.note_action(req, "hold", |reason| Command::Hold { reason })
            .await
    }

    async fn write_off(&self, req: Request<pb::CaseNoteRequest>) -> Rpc<pb::CaseActionResponse> {
        self.note_action(req, "write_off", |reason| Command::WriteOff { reason })
            .await
    }

    async fn recall(&self, req: Request<pb::CaseNoteRequest>) -> Rpc<pb::CaseActionResponse> {
        self.note_action(req, "recall", |reason| Command::Recall { reason })
            .await
    }

    async fn waive_costs(&self, req: Request<pb::CaseNoteRequest>) -> Rpc<pb::CaseActionResponse> {
        self.note_action(req, "waive_costs", |reason| Command::WaiveCosts { reason })
            .await
    }

    async fn get_handed_over_case(
        &self,
        req: Request<pb::GetHandedOverCaseRequest>,
    ) -> Rpc<pb::HandedOverCase> {
        let b = req.get_ref();
        let (view, partner) = self.readable(&req, &b.tenant, &b.case_id).await?;
        let handover = view
            .events
            .iter()
            .rev()
            .filter(|e| e.event_type == "case.handed_over.v1")
            .find(|e| {
                partner
                    .as_deref()
                    .is_none_or(|p| e.payload.get("partner_id").and_then(|v| v.as_str()) == Some(p))
            })
            .ok_or_else(|| Status::not_found("the case was not handed over"))?;
        let since: Vec<mahnwerk_bus::Envelope> = view
            .events
            .iter()
            .filter(|e| e.version > handover.version)
            .filter(|e| e.event_type.starts_with("collection.") || e.event_type == "case.closed.v1")
            .map(mahnwerk_bus::Envelope::from)
            .collect();
        Ok(Response::new(pb::HandedOverCase {
            case_id: b.case_id.clone(),
            partner_id: handover
                .payload
                .get("partner_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            case_file_json: handover.payload.to_string(),
            handover_event_id: handover.event_id.to_string(),
            handover_version: handover.version,
            phase: phase_name(&view.collection),
            events_json: serde_json::to_string(&since).unwrap_or_default(),
        }))
    }

    async fn get_partner_document(
        &self,
        req: Request<pb::GetPartnerDocumentRequest>,
    ) -> Rpc<pb::GetPartnerDocumentResponse> {
        let b = req.get_ref();
        let sha = b.sha256.clone();
        if sha.len() != 64
            || !sha
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid_field("sha256", "must be 64 lowercase hex digits"));
        }
        let (view, _) = self.readable(&req, &b.tenant, &b.case_id).await?;
        if !view.names_document(&sha) {
            return Err(Status::not_found("document not found"));
        }
        let bytes = self
            .collection
            .document(&sha)
            .await?
            .ok_or_else(|| Status::not_found("document not found"))?;
        Ok(Response::new(pb::GetPartnerDocumentResponse {
            sha256: sha,
            content_type: "application/pdf".into(),
            content: bytes,
        }))
    }

    async fn report(&self, req: Request<pb::ReportRequest>) -> Rpc<pb::CaseActionResponse> {
        let Who::Partner(partner) = self.who(&req).await? else {
            return Err(Status::permission_denied("reports need a partner API key"));
        };
        let b = req.get_ref();
        check_request_id(&b.request_id)?;
        let case = parse_case(&b.case_id)?;
        use pb::report_request::Report as R;
        let report = match b.report.as_ref() {
            None => return Err(invalid_field("report", "required")),
            Some(R::Accepted(_)) => Report::Accepted,
            Some(R::Rejected(r)) => Report::Rejected {
                reason: r.reason.clone(),
            },
            Some(R::PaymentCollected(p)) => Report::PaymentCollected {
                principal: parse_money("payment_collected.principal", p.principal.as_ref())?,
                costs: parse_money("payment_collected.costs", p.costs.as_ref())?,
                collected_on: parse_date("payment_collected.collected_on", &p.collected_on)?,
            },
            Some(R::InstalmentAgreement(i)) => Report::InstalmentAgreement {
                instalments: i.instalments,
                first_due: parse_date("instalment_agreement.first_due", &i.first_due)?,
                note: i.note.clone(),
            },
            Some(R::CourtProcedureStarted(c)) => Report::CourtProcedureStarted {
                reference: c.reference.clone(),
                court: c.court.clone(),
            },
            Some(R::Uncollectible(u)) => Report::Uncollectible {
                reason: u.reason.clone(),
            },
            Some(R::Closed(c)) => Report::Closed {
                note: c.note.clone(),
            },
        };
        let waive = self
            .collection
            .partner(&partner.tenant, &partner.partner_id)
            .await?
            .is_some_and(|p| p.waive_costs_if_principal_paid);
        let meta = metadata(&req, partner.actor(), &b.request_id);
        let key = format!("partner:{}:{}", partner.partner_id, b.request_id);
        let fp = serde_json::to_string(&report).unwrap_or_default();
        let pid = partner.partner_id.clone();
        self.once(
            &partner.tenant,
            &key,
            case,
            &fp,
            meta,
            |_, _| {
                Ok(Some(Command::Report {
                    partner_id: pid.clone(),
                    report: report.clone(),
                    waive_costs_if_principal_paid: waive,
                }))
            },
            Some(&partner.partner_id),
        )
        .await
    }
}
