//! `LetterService` over gRPC. Each call authenticates, takes the tenant from the key, and maps
//! errors to codes in one place ([`crate::error`]).

use crate::documents::Documents;
use crate::error::{Error, Result};
use crate::mapping;
use crate::store::{self, NewRow, state};
use crate::tenant::{self, LETTERHEAD_UPDATED, Renderers, TEMPLATE_UPLOADED};
use mahnwerk_auth::KeyStore;
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_letters::events::{LetterResendRequested, LetterSettings, TemplateUploaded};
use mahnwerk_proto::v1 as pb;
use pb::letter_service_server::LetterService;
use sqlx::AnyPool;
use std::sync::Arc;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

/// The service's shared state.
#[derive(Clone)]
pub struct Letters {
    pub log: EventLog,
    pub keys: KeyStore,
    pub pool: AnyPool,
    pub docs: Documents,
    pub renderers: Renderers,
    pub wake: Arc<Notify>,
}

fn case_id(s: &str) -> Result<CaseId> {
    s.parse()
        .map_err(|_| Error::invalid("case_id", "must be a case id (UUID)"))
}

fn metadata<T>(req: &Request<T>, actor: String) -> Metadata {
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Metadata {
        correlation_id: header("x-correlation-id"),
        causation_id: header("x-request-id").map(|r| format!("request:{r}")),
        actor,
        traceparent: header("traceparent"),
    }
}

impl Letters {
    async fn caller<T>(
        &self,
        req: &Request<T>,
        tenant: &str,
    ) -> Result<(TenantId, String), Status> {
        let caller = self.keys.authenticate_request(req).await?;
        Ok((caller.tenant(tenant)?, caller.actor()))
    }

    /// Append to the tenant's letterhead stream with the version just read (retry on conflict).
    async fn append_config<F>(
        &self,
        tenant: &TenantId,
        meta: &Metadata,
        mut decide: F,
    ) -> Result<u64>
    where
        F: FnMut(&tenant::TenantConfig) -> Result<Option<(&'static str, serde_json::Value)>>,
    {
        let stream = tenant::stream(tenant);
        for _ in 0..10 {
            let cfg = tenant::load(&self.log, tenant).await?;
            let Some((event_type, payload)) = decide(&cfg)? else {
                return Ok(cfg.version);
            };
            let expected = if cfg.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(cfg.version)
            };
            let res = self
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected,
                    events: vec![NewEvent {
                        event_id: event_id_now(),
                        event_type: event_type.into(),
                        payload,
                        occurred_at: chrono::Utc::now(),
                        metadata: meta.clone(),
                    }],
                })
                .await;
            match res {
                Ok(a) => return Ok(a.last_version),
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }

    async fn preview(&self, tenant: &TenantId, case: CaseId, step: u32) -> Result<pb::Document> {
        let case_s = case.0.to_string();
        let (_, json) = store::step(&self.pool, tenant.as_str(), &case_s, step, "")
            .await?
            .ok_or_else(|| Error::NotFound(format!("step {step} of the case")))?;
        let step: StepReached =
            serde_json::from_str(&json).map_err(|e| Error::invalid("step", e.to_string()))?;
        let invoice = store::invoice(&self.pool, tenant.as_str(), &case_s)
            .await?
            .ok_or_else(|| Error::NotFound("case".into()))?;
        let cfg = tenant::load(&self.log, tenant).await?;
        let settings = cfg.settings.as_ref().ok_or_else(|| {
            Error::Precondition("no letterhead configured: PutLetterhead first".into())
        })?;
        let model = mapping::letter_model(&step, &invoice, case, settings, None)?;
        let renderer = self.renderers.for_tenant(tenant, &cfg)?;
        let letter = tokio::task::spawn_blocking(move || renderer.render(&model))
            .await
            .map_err(|e| Error::Precondition(format!("render task: {e}")))??;
        Ok(pb::Document {
            sha256: letter.sha256,
            content_type: "application/pdf".into(),
            content: letter.pdf,
        })
    }
}

fn info(r: store::LedgerRow) -> pb::LetterInfo {
    pb::LetterInfo {
        review_required: r.state == state::UNKNOWN,
        letter_id: r.letter_id,
        step: r.step,
        channel: r.channel,
        recipient: r.recipient,
        state: r.state,
        document_sha256: r.document.unwrap_or_default(),
        provider_id: r.provider_id.unwrap_or_default(),
        reason: r.reason.unwrap_or_default(),
        repetition: store::repetition_of_seq(&r.seq).unwrap_or(0),
        resend_request_id: if store::is_repeat_seq(&r.seq) {
            String::new()
        } else {
            r.seq
        },
    }
}

#[tonic::async_trait]
impl LetterService for Letters {
    async fn preview_letter(
        &self,
        req: Request<pb::PreviewLetterRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        let (tenant, _) = self.caller(&req, &req.get_ref().tenant).await?;
        let body = req.into_inner();
        let case = case_id(&body.case_id)?;
        Ok(Response::new(self.preview(&tenant, case, body.step).await?))
    }

    async fn list_letters(
        &self,
        req: Request<pb::ListLettersRequest>,
    ) -> Result<Response<pb::ListLettersResponse>, Status> {
        let (tenant, _) = self.caller(&req, &req.get_ref().tenant).await?;
        let case = case_id(&req.get_ref().case_id)?;
        // With the consolidated letters it is in, keyed on another member case.
        let rows = store::letters_of_case(&self.pool, tenant.as_str(), &case.0.to_string())
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListLettersResponse {
            letters: rows.into_iter().map(info).collect(),
        }))
    }

    async fn get_document(
        &self,
        req: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        let (tenant, _) = self.caller(&req, &req.get_ref().tenant).await?;
        let sha = req.get_ref().sha256.to_ascii_lowercase();
        // Content-addressed objects are shared; a tenant sees only its own letters' documents.
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM letters_ledger WHERE tenant = $1 AND document = $2",
        )
        .bind(tenant.as_str().to_owned())
        .bind(sha.clone())
        .fetch_one(&self.pool)
        .await
        .map_err(Error::from)?;
        if n == 0 {
            return Err(Error::NotFound("document".into()).into());
        }
        let bytes = self
            .docs
            .get(&sha)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound("document".into()))?;
        Ok(Response::new(pb::Document {
            sha256: sha,
            content_type: "application/pdf".into(),
            content: bytes.to_vec(),
        }))
    }

    async fn put_letterhead(
        &self,
        req: Request<pb::PutLetterheadRequest>,
    ) -> Result<Response<pb::LetterheadVersion>, Status> {
        let (tenant, actor) = self.caller(&req, &req.get_ref().tenant).await?;
        let meta = metadata(&req, actor);
        let settings: LetterSettings = serde_json::from_str(&req.get_ref().settings_json)
            .map_err(|e| Error::invalid("settings_json", e.to_string()))?;
        // A trial render with these settings: a letterhead that cannot be printed is refused now.
        let mut sample = mahnwerk_letters::model::sample();
        sample.letterhead = settings.letterhead.clone();
        sample.signature = settings.signature.clone();
        sample.validate().map_err(|e| match Error::from(e) {
            Error::Invalid { field, reason } => Error::Invalid {
                field: format!("settings_json.{field}"),
                reason,
            },
            other => other,
        })?;
        for (field, addr) in [
            ("email_from", Some(&settings.email_from)),
            ("reply_to", settings.reply_to.as_ref()),
        ] {
            if let Some(a) = addr
                && a.parse::<lettre::message::Mailbox>().is_err()
            {
                return Err(Error::invalid(
                    format!("settings_json.{field}"),
                    "not an email address",
                )
                .into());
            }
        }
        let payload = serde_json::to_value(&settings)
            .map_err(|e| Error::invalid("settings_json", e.to_string()))?;
        let version = self
            .append_config(&tenant, &meta, |cfg| {
                Ok((cfg.settings.as_ref() != Some(&settings))
                    .then(|| (LETTERHEAD_UPDATED, payload.clone())))
            })
            .await?;
        Ok(Response::new(pb::LetterheadVersion { version }))
    }

    async fn get_letterhead(
        &self,
        req: Request<pb::GetLetterheadRequest>,
    ) -> Result<Response<pb::Letterhead>, Status> {
        let (tenant, _) = self.caller(&req, &req.get_ref().tenant).await?;
        let cfg = tenant::load(&self.log, &tenant).await?;
        Ok(Response::new(pb::Letterhead {
            version: cfg.version,
            settings_json: cfg
                .settings
                .map(|s| serde_json::to_string(&s).unwrap_or_default())
                .unwrap_or_default(),
            templates: cfg.templates.into_keys().collect(),
        }))
    }

    async fn put_template(
        &self,
        req: Request<pb::PutTemplateRequest>,
    ) -> Result<Response<pb::LetterheadVersion>, Status> {
        let (tenant, actor) = self.caller(&req, &req.get_ref().tenant).await?;
        let meta = metadata(&req, actor);
        let body = req.into_inner();
        mahnwerk_letters::check_template(&body.name, &body.source).map_err(Error::from)?;
        let payload = serde_json::to_value(TemplateUploaded {
            name: body.name.clone(),
            source: body.source.clone(),
        })
        .map_err(|e| Error::invalid("source", e.to_string()))?;
        let version = self
            .append_config(&tenant, &meta, |cfg| {
                Ok((cfg.templates.get(&body.name) != Some(&body.source))
                    .then(|| (TEMPLATE_UPLOADED, payload.clone())))
            })
            .await?;
        Ok(Response::new(pb::LetterheadVersion { version }))
    }

    async fn resend(
        &self,
        req: Request<pb::ResendRequest>,
    ) -> Result<Response<pb::ResendResponse>, Status> {
        let (tenant, actor) = self.caller(&req, &req.get_ref().tenant).await?;
        let meta = metadata(&req, actor.clone());
        let body = req.into_inner();
        let case = case_id(&body.case_id)?;
        let case_s = case.0.to_string();
        if body.request_id.trim().is_empty() || body.request_id.len() > 100 {
            return Err(Error::invalid("request_id", "required, at most 100 characters").into());
        }
        // The ledger keys of consolidated letters and of repeated steps are not a resend's.
        if body.request_id.starts_with("c:") || store::is_repeat_seq(&body.request_id) {
            return Err(Error::invalid(
                "request_id",
                "must not start with \"c:\" or \"repeat:\" (reserved)",
            )
            .into());
        }
        let rows = store::rows_of_case(&self.pool, tenant.as_str(), &case_s)
            .await
            .map_err(Error::from)?;
        let original = rows
            .iter()
            .filter(|r| r.step == body.step && r.recipient == "debtor" && r.seq.is_empty())
            .find(|r| r.state == state::SENT)
            .or_else(|| {
                rows.iter()
                    .find(|r| r.step == body.step && r.recipient == "debtor")
            })
            .ok_or_else(|| Error::NotFound(format!("letter of step {}", body.step)))?;
        let channel = match body.channel.as_str() {
            "" => original.channel.clone(),
            "email" | "post" => body.channel.clone(),
            _ => return Err(Error::invalid("channel", "must be email or post").into()),
        };
        let letter_id = store::letter_id(
            tenant.as_str(),
            &case_s,
            body.step,
            "debtor",
            &body.request_id,
        );
        let fingerprint = format!(
            "{case_s}\u{1f}{}\u{1f}{channel}\u{1f}{}",
            body.step, body.note
        );
        if let Some((same, id)) = store::claim_request(
            &self.pool,
            tenant.as_str(),
            &body.request_id,
            &fingerprint,
            &letter_id,
        )
        .await
        .map_err(Error::from)?
        {
            if !same {
                return Err(Error::AlreadyExists(format!(
                    "request_id {} was used for a different resend",
                    body.request_id
                ))
                .into());
            }
            if rows.iter().any(|r| r.letter_id == id) {
                return Ok(Response::new(pb::ResendResponse { letter_id: id }));
            }
        }
        let step_event = store::step(&self.pool, tenant.as_str(), &case_s, body.step, "")
            .await
            .map_err(Error::from)?
            .map(|(id, _)| id)
            .unwrap_or_default();
        let step_event = uuid::Uuid::parse_str(&step_event)
            .map(mahnwerk_domain::EventId)
            .map_err(|_| Error::NotFound("step".into()))?;
        let payload = serde_json::to_value(LetterResendRequested {
            request_id: body.request_id.clone(),
            step: body.step,
            letter_id: letter_id.clone(),
            actor,
            note: body.note.clone(),
        })
        .map_err(|e| Error::invalid("note", e.to_string()))?;
        let stream = case.stream(&tenant);
        let event = NewEvent {
            event_id: mahnwerk_eventlog::derived_event_id(
                step_event,
                &format!("letters:resend:{}", body.request_id),
                0,
            ),
            event_type: "letter.resend_requested.v1".into(),
            payload,
            occurred_at: chrono::Utc::now(),
            metadata: meta,
        };
        for attempt in 0.. {
            let v = self
                .log
                .stream_version(&stream)
                .await
                .map_err(Error::from)?;
            let expected = v.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .log
                .append(AppendBatch {
                    stream: stream.clone(),
                    expected,
                    events: vec![event.clone()],
                })
                .await
            {
                Ok(_) | Err(mahnwerk_eventlog::Error::DuplicateEvent(_)) => break,
                Err(mahnwerk_eventlog::Error::Conflict { .. }) if attempt < 10 => continue,
                Err(e) => return Err(Error::from(e).into()),
            }
        }
        store::insert_row(
            &self.pool,
            &NewRow {
                tenant: tenant.as_str(),
                case_id: &case_s,
                step: body.step,
                channel: &channel,
                recipient: "debtor",
                seq: &body.request_id,
                letter_id: &letter_id,
                state: state::INTENT,
                document: None,
            },
        )
        .await
        .map_err(Error::from)?;
        self.wake.notify_one();
        Ok(Response::new(pb::ResendResponse { letter_id }))
    }
}
