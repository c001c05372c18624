//! gRPC handlers. Each call: authenticate, resolve the tenant, convert at the edge, run the pure
//! `decide` on the case folded from the log, append with the expected version, answer.
//!
//! Here: the shared request context and the single-invoice `InvoiceService` calls. The rest of
//! `InvoiceService` delegates to `import` (`ImportInvoices`, the chunked stream) and `einvoice`
//! (`ImportEInvoice(s)` and the import settings); `case_file` is `CaseService`.

use crate::convert::{invoice_from_proto, invoice_to_proto, parse_date, status_from_proto};
use crate::error::{case_error, db_error, invalid, invalid_field, log_error};
use mahnwerk_auth::{Caller, KeyStore};
use mahnwerk_domain::lifecycle::{
    CaseCommand, CaseEvent, CaseState, DisputeOutcome, decide_request,
};
use mahnwerk_domain::{CaseId, FieldErrors, InvoiceNumber, Money, TenantId};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use mahnwerk_proto::v1 as pb;
use pb::case_service_server::CaseService;
use pb::invoice_service_server::InvoiceService;
use sqlx::AnyPool;
use tonic::{Request, Response, Status, Streaming};

mod case_file;
mod einvoice;
mod import;

/// Shared state of both services.
#[derive(Clone)]
pub struct Ingest {
    pub log: EventLog,
    pub keys: KeyStore,
    pub pool: AnyPool,
    /// Where imported e-invoice files are kept.
    pub docs: mahnwerk_docstore::Documents,
}

pub(crate) struct RequestCtx {
    pub(crate) caller: Caller,
    pub(crate) metadata: Metadata,
}

/// Longest `x-request-id` / `x-correlation-id` accepted.
const MAX_ID_HEADER: usize = 128;
/// Longest `traceparent` accepted (version 00 is 55 characters; later versions may add fields).
const MAX_TRACEPARENT: usize = 256;

/// The event metadata of a request. Oversized tracing headers are the caller's problem
/// (`INVALID_ARGUMENT` naming the header), never a log write that fails later.
#[allow(clippy::result_large_err)]
fn request_metadata<T>(req: &Request<T>, caller: &Caller) -> Result<Metadata, Status> {
    let header = |name: &str, max: usize| -> Result<Option<String>, Status> {
        let Some(v) = req.metadata().get(name) else {
            return Ok(None);
        };
        let v = v
            .to_str()
            .map_err(|_| invalid_field(name, "must be printable ASCII (a request header)"))?;
        if v.len() > max {
            return Err(invalid_field(
                name,
                &format!("must be at most {max} characters"),
            ));
        }
        Ok(Some(v.to_owned()))
    };
    let request_id =
        header("x-request-id", MAX_ID_HEADER)?.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    Ok(Metadata {
        correlation_id: Some(
            header("x-correlation-id", MAX_ID_HEADER)?.unwrap_or_else(|| request_id.clone()),
        ),
        causation_id: Some(format!("request:{request_id}")),
        actor: caller.actor(),
        traceparent: header("traceparent", MAX_TRACEPARENT)?,
    })
}

fn new_event(event: &CaseEvent, metadata: &Metadata) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: event.event_type().to_owned(),
        payload: event.to_payload(),
        occurred_at: chrono::Utc::now(),
        metadata: metadata.clone(),
    }
}

#[allow(clippy::result_large_err)]
fn invoice_number(field: &str, value: &str) -> Result<InvoiceNumber, Status> {
    value
        .parse::<InvoiceNumber>()
        .map_err(|e| invalid(&FieldErrors::from(e.under(field))))
}

impl Ingest {
    async fn ctx<T>(&self, req: &Request<T>) -> Result<RequestCtx, Status> {
        let caller = self.keys.authenticate_request(req).await?;
        let metadata = request_metadata(req, &caller)?;
        Ok(RequestCtx { caller, metadata })
    }

    /// Fold a case from its stream: the state and the stream's version.
    pub async fn load(
        &self,
        tenant: &TenantId,
        case: CaseId,
    ) -> Result<(Option<CaseState>, Option<u64>), mahnwerk_eventlog::Error> {
        let stream = case.stream(tenant);
        let mut state = None;
        let mut version = None;
        let mut from = 1;
        loop {
            let events = self.log.read_stream(&stream, from, 1000).await?;
            let Some(last) = events.last() else { break };
            from = last.version + 1;
            version = Some(last.version);
            for e in &events {
                if let Ok(Some(ev)) = CaseEvent::from_parts(&e.event_type, &e.payload) {
                    state = mahnwerk_domain::lifecycle::evolve(state, &ev);
                }
            }
            if events.len() < 1000 {
                break;
            }
        }
        Ok((state, version))
    }

    /// Decide and append, retrying on a concurrent writer. Returns the new state and whether
    /// anything was appended.
    pub(crate) async fn execute(
        &self,
        tenant: &TenantId,
        number: &InvoiceNumber,
        command: &CaseCommand,
        request_id: Option<&str>,
        metadata: &Metadata,
    ) -> Result<(CaseState, bool), Status> {
        let case = CaseId::for_invoice(tenant, number);
        for _ in 0..5 {
            let (state, version) = self.load(tenant, case).await.map_err(log_error)?;
            let events = decide_request(state.as_ref(), command, request_id).map_err(case_error)?;
            if events.is_empty() {
                return state
                    .map(|s| (s, false))
                    .ok_or_else(|| Status::not_found("invoice not found"));
            }
            let batch = AppendBatch {
                stream: case.stream(tenant),
                expected: version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact),
                events: events.iter().map(|e| new_event(e, metadata)).collect(),
            };
            match self.log.append(batch).await {
                Ok(_) => {
                    let state = events
                        .iter()
                        .fold(state, mahnwerk_domain::lifecycle::evolve);
                    return state
                        .map(|s| (s, true))
                        .ok_or_else(|| Status::internal("case vanished"));
                }
                Err(mahnwerk_eventlog::Error::Conflict { .. }) => continue,
                Err(e) => return Err(log_error(e)),
            }
        }
        Err(Status::aborted(
            "too many concurrent changes to this case; retry",
        ))
    }

    async fn mutate(
        &self,
        ctx: &RequestCtx,
        tenant_field: &str,
        number_field: &str,
        command: CaseCommand,
        request_id: &str,
    ) -> Result<Option<pb::Invoice>, Status> {
        let tenant = ctx.caller.tenant(tenant_field)?;
        let number = invoice_number("invoice_number", number_field)?;
        let (state, _) = self
            .execute(&tenant, &number, &command, Some(request_id), &ctx.metadata)
            .await?;
        Ok(Some(invoice_to_proto(&tenant, &state)))
    }
}

pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        _ => "UNAVAILABLE",
    }
}

#[tonic::async_trait]
impl InvoiceService for Ingest {
    async fn create_invoice(
        &self,
        req: Request<pb::CreateInvoiceRequest>,
    ) -> Result<Response<pb::CreateInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let body = req.get_ref();
        let tenant = ctx.caller.tenant(&body.tenant)?;
        let Some(p) = &body.invoice else {
            return Err(invalid_field("invoice", "required"));
        };
        let invoice = invoice_from_proto(p, "invoice").map_err(|e| invalid(&e))?;
        let number = invoice.number.clone();
        let (state, created) = self
            .execute(
                &tenant,
                &number,
                &CaseCommand::Issue(invoice),
                None,
                &ctx.metadata,
            )
            .await?;
        tracing::info!(tenant = %tenant, created, "invoice recorded");
        if created {
            metrics::counter!("mahnwerk_invoices_recorded_total").increment(1);
        }
        Ok(Response::new(pb::CreateInvoiceResponse {
            invoice: Some(invoice_to_proto(&tenant, &state)),
            created,
        }))
    }

    async fn import_invoices(
        &self,
        req: Request<Streaming<pb::ImportInvoicesRequest>>,
    ) -> Result<Response<pb::ImportInvoicesResponse>, Status> {
        self.import_stream(req).await
    }

    async fn get_invoice(
        &self,
        req: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<pb::GetInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let body = req.get_ref();
        let tenant = ctx.caller.tenant(&body.tenant)?;
        let number = invoice_number("invoice_number", &body.invoice_number)?;
        let (state, _) = self
            .load(&tenant, CaseId::for_invoice(&tenant, &number))
            .await
            .map_err(log_error)?;
        let state = state.ok_or_else(|| Status::not_found("invoice not found"))?;
        Ok(Response::new(pb::GetInvoiceResponse {
            invoice: Some(invoice_to_proto(&tenant, &state)),
        }))
    }

    async fn list_invoices(
        &self,
        req: Request<pb::ListInvoicesRequest>,
    ) -> Result<Response<pb::ListInvoicesResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let body = req.get_ref();
        let tenant = ctx.caller.tenant(&body.tenant)?;
        let mut errs = FieldErrors::default();
        let mut statuses = Vec::new();
        for (i, s) in body.statuses.iter().enumerate() {
            match status_from_proto(*s) {
                Some(s) => statuses.push(s.as_str()),
                None => errs.push(format!("statuses[{i}]"), "unknown or unspecified status"),
            }
        }
        let overdue = if body.overdue_as_of.is_empty() {
            None
        } else {
            parse_date(&mut errs, "overdue_as_of", &body.overdue_as_of)
        };
        if !(0..=1000).contains(&body.page_size) {
            errs.push("page_size", "must be between 0 and 1000");
        }
        let after = if body.page_token.is_empty() {
            String::new()
        } else {
            match hex::decode(&body.page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(s) => s,
                None => {
                    errs.push("page_token", "not a token from a previous response");
                    String::new()
                }
            }
        };
        errs.clone().into_result().map_err(|e| invalid(&e))?;
        let limit = if body.page_size == 0 {
            100
        } else {
            body.page_size
        } as i64;
        // Portable SQL with optional filters: each is "unset OR matches".
        let status_list = statuses.join(",");
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT state_json FROM ingest_invoices WHERE tenant = $1 AND invoice_number > $2 \
             AND ($3 = '' OR (',' || $3 || ',') LIKE ('%,' || status || ',%')) \
             AND ($4 = '' OR customer_number = $4) \
             AND ($5 = '' OR (status = 'open' AND open_minor > 0 AND due_date < $5)) \
             ORDER BY invoice_number LIMIT $6",
        )
        .bind(tenant.to_string())
        .bind(after)
        .bind(status_list)
        .bind(body.debtor_customer_number.clone())
        .bind(overdue.map(|d| d.to_string()).unwrap_or_default())
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut invoices = Vec::with_capacity(rows.len());
        for (json,) in rows.iter().take(limit as usize) {
            let mut value: serde_json::Value = serde_json::from_str(json)
                .map_err(|_| Status::internal("corrupt projection row"))?;
            mahnwerk_eventlog::privacy::open_json(tenant.as_str(), &mut value)
                .await
                .map_err(|_| Status::unavailable("personal data cannot be opened now"))?;
            let state: CaseState = serde_json::from_value(value)
                .map_err(|_| Status::internal("corrupt projection row"))?;
            invoices.push(invoice_to_proto(&tenant, &state));
        }
        let next_page_token = if rows.len() as i64 > limit {
            invoices
                .last()
                .map(|i| hex::encode(&i.invoice_number))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListInvoicesResponse {
            invoices,
            next_page_token,
        }))
    }

    async fn cancel_invoice(
        &self,
        req: Request<pb::CancelInvoiceRequest>,
    ) -> Result<Response<pb::CancelInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        self.mutate(
            &ctx,
            &b.tenant,
            &b.invoice_number,
            CaseCommand::Cancel { reason: b.reason },
            &b.request_id,
        )
        .await
        .map(|invoice| Response::new(pb::CancelInvoiceResponse { invoice }))
    }

    async fn credit_invoice(
        &self,
        req: Request<pb::CreditInvoiceRequest>,
    ) -> Result<Response<pb::CreditInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        let Some(amount) = b.amount else {
            return Err(invalid_field("amount", "required"));
        };
        let currency = amount
            .currency
            .parse()
            .map_err(|e: mahnwerk_domain::FieldError| {
                invalid(&FieldErrors::from(e.under("amount.currency")))
            })?;
        let command = CaseCommand::Credit {
            credit_note_number: b.credit_note_number,
            amount: Money::new(amount.minor, currency),
            reason: b.reason,
        };
        self.mutate(&ctx, &b.tenant, &b.invoice_number, command, "")
            .await
            .map(|invoice| Response::new(pb::CreditInvoiceResponse { invoice }))
    }

    async fn dispute_invoice(
        &self,
        req: Request<pb::DisputeInvoiceRequest>,
    ) -> Result<Response<pb::DisputeInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        self.mutate(
            &ctx,
            &b.tenant,
            &b.invoice_number,
            CaseCommand::Dispute { reason: b.reason },
            &b.request_id,
        )
        .await
        .map(|invoice| Response::new(pb::DisputeInvoiceResponse { invoice }))
    }

    async fn resolve_dispute(
        &self,
        req: Request<pb::ResolveDisputeRequest>,
    ) -> Result<Response<pb::ResolveDisputeResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        let outcome = match pb::DisputeOutcome::try_from(b.outcome) {
            Ok(pb::DisputeOutcome::Upheld) => DisputeOutcome::Upheld,
            Ok(pb::DisputeOutcome::Rejected) => DisputeOutcome::Rejected,
            _ => {
                return Err(invalid_field(
                    "outcome",
                    "required: DISPUTE_OUTCOME_UPHELD or DISPUTE_OUTCOME_REJECTED",
                ));
            }
        };
        self.mutate(
            &ctx,
            &b.tenant,
            &b.invoice_number,
            CaseCommand::ResolveDispute {
                outcome,
                note: b.note,
            },
            &b.request_id,
        )
        .await
        .map(|invoice| Response::new(pb::ResolveDisputeResponse { invoice }))
    }

    async fn extend_due_date(
        &self,
        req: Request<pb::ExtendDueDateRequest>,
    ) -> Result<Response<pb::ExtendDueDateResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        let mut errs = FieldErrors::default();
        let date = parse_date(&mut errs, "new_due_date", &b.new_due_date);
        let Some(new_due_date) = date else {
            return Err(invalid(&errs));
        };
        self.mutate(
            &ctx,
            &b.tenant,
            &b.invoice_number,
            CaseCommand::ExtendDueDate {
                new_due_date,
                reason: b.reason,
            },
            &b.request_id,
        )
        .await
        .map(|invoice| Response::new(pb::ExtendDueDateResponse { invoice }))
    }

    async fn import_e_invoice(
        &self,
        req: Request<pb::ImportEInvoiceRequest>,
    ) -> Result<Response<pb::ImportEInvoiceResponse>, Status> {
        self.import_one_einvoice(req).await
    }

    async fn import_e_invoices(
        &self,
        req: Request<Streaming<pb::ImportEInvoicesRequest>>,
    ) -> Result<Response<pb::ImportEInvoicesResponse>, Status> {
        self.import_einvoice_stream(req).await
    }

    async fn update_debtor_address(
        &self,
        req: Request<pb::UpdateDebtorAddressRequest>,
    ) -> Result<Response<pb::UpdateDebtorAddressResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        let Some(a) = b.address else {
            return Err(invalid_field("address", "required"));
        };
        let address = mahnwerk_domain::PostalAddress {
            street: a.street.iter().map(|s| s.trim().to_owned()).collect(),
            postal_code: a.postal_code.trim().to_owned(),
            city: a.city.trim().to_owned(),
            country: a.country.trim().to_owned(),
            region: Some(a.region.trim().to_owned()).filter(|r| !r.is_empty()),
        };
        self.mutate(
            &ctx,
            &b.tenant,
            &b.invoice_number,
            CaseCommand::UpdateDebtorAddress { address },
            &b.request_id,
        )
        .await
        .map(|invoice| Response::new(pb::UpdateDebtorAddressResponse { invoice }))
    }

    async fn put_import_settings(
        &self,
        req: Request<pb::PutImportSettingsRequest>,
    ) -> Result<Response<pb::PutImportSettingsResponse>, Status> {
        self.put_settings(req).await
    }

    async fn get_import_settings(
        &self,
        req: Request<pb::GetImportSettingsRequest>,
    ) -> Result<Response<pb::GetImportSettingsResponse>, Status> {
        self.get_settings(req).await
    }
}
