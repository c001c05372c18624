//! CaseService: the case file as the log holds it, and the erasure of a debtor.

use super::*;

#[tonic::async_trait]
impl CaseService for Ingest {
    async fn get_case_file(
        &self,
        req: Request<pb::GetCaseFileRequest>,
    ) -> Result<Response<pb::GetCaseFileResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let b = req.get_ref();
        let tenant = ctx.caller.tenant(&b.tenant)?;
        let case = match (b.case_id.is_empty(), b.invoice_number.is_empty()) {
            (false, number_empty) => {
                let case = b
                    .case_id
                    .parse::<CaseId>()
                    .map_err(|e| invalid(&FieldErrors::from(e.under("case_id"))))?;
                // Both given: they must name the same case, or the caller reads a case it did
                // not mean.
                if !number_empty
                    && CaseId::for_invoice(
                        &tenant,
                        &invoice_number("invoice_number", &b.invoice_number)?,
                    ) != case
                {
                    return Err(invalid_field(
                        "invoice_number",
                        "names another case than case_id",
                    ));
                }
                case
            }
            (true, false) => CaseId::for_invoice(
                &tenant,
                &invoice_number("invoice_number", &b.invoice_number)?,
            ),
            (true, true) => {
                return Err(invalid_field(
                    "case_id",
                    "case_id or invoice_number is required",
                ));
            }
        };
        let stream = case.stream(&tenant);
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = self
                .log
                .read_stream(&stream, from, 1000)
                .await
                .map_err(log_error)?;
            let done = page.len() < 1000;
            for e in page {
                from = e.version + 1;
                events.push(pb::CaseEvent {
                    position: e.position,
                    event_id: e.event_id.to_string(),
                    version: e.version,
                    r#type: e.event_type,
                    payload_json: e.payload.to_string(),
                    occurred_at: e.occurred_at.to_rfc3339(),
                    recorded_at: e.recorded_at.to_rfc3339(),
                    metadata: Some(pb::EventMetadata {
                        correlation_id: e.metadata.correlation_id.unwrap_or_default(),
                        causation_id: e.metadata.causation_id.unwrap_or_default(),
                        actor: e.metadata.actor,
                        traceparent: e.metadata.traceparent.unwrap_or_default(),
                    }),
                    hash: e.hash,
                });
            }
            if done {
                break;
            }
        }
        if events.is_empty() {
            return Err(Status::not_found("case not found"));
        }
        Ok(Response::new(pb::GetCaseFileResponse {
            tenant: tenant.to_string(),
            case_id: case.to_string(),
            stream: stream.to_string(),
            events,
        }))
    }

    async fn erase_debtor(
        &self,
        req: Request<pb::EraseDebtorRequest>,
    ) -> Result<Response<pb::EraseDebtorResponse>, Status> {
        use crate::erasure::{EraseRequest, ErasureError};
        let ctx = self.ctx(&req).await?;
        let b = req.into_inner();
        let tenant = ctx.caller.tenant(&b.tenant)?;
        let erased = crate::erasure::erase_debtor(
            &self.log,
            &self.pool,
            &EraseRequest {
                tenant: tenant.to_string(),
                customer_number: Some(b.customer_number).filter(|c| !c.trim().is_empty()),
                invoice_numbers: b.invoice_numbers,
                ibans: b.ibans,
                reason: b.reason,
                actor: ctx.caller.actor(),
            },
        )
        .await
        .map_err(|e| match e {
            ErasureError::Invalid { field, reason } => invalid_field(field, &reason),
            ErasureError::NoMasterKey => Status::failed_precondition(e.to_string()),
            ErasureError::Log(e) => log_error(e),
            ErasureError::Database(e) => db_error(e),
        })?;
        Ok(Response::new(pb::EraseDebtorResponse {
            keys_erased: u32::try_from(erased.keys_erased).unwrap_or(u32::MAX),
            case_ids: erased.cases,
            erasure_stream: erased.stream,
        }))
    }
}
