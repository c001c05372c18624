//! E-invoice import (`ImportEInvoice`, `ImportEInvoices`): a file's bytes become a case, a
//! credit or a correction, through the pure [`mahnwerk_formats::einvoice`] reader and claim
//! mapping and the case `decide`.
//!
//! Order of effects, so a failure leaves nothing half-written: read and map the file (pure;
//! a rejection appends nothing and stores nothing); for a correction (384) check the replaced
//! case can be cancelled; store the original file (content-addressed, so storing it again is a
//! no-op and an orphan is harmless); append. A retry of the same file finds its events already
//! there and reports `unchanged`.

use crate::service::{Ingest, RequestCtx};
use mahnwerk_docstore::sha256_hex;
use mahnwerk_domain::lifecycle::{CaseCommand, CaseStatus, decide};
use mahnwerk_domain::{CaseId, FieldErrors, InvoiceNumber, TenantId};
use mahnwerk_formats::einvoice::claim::OriginalFile;
use mahnwerk_formats::einvoice::{Claim, read_einvoice};
use mahnwerk_proto::v1 as pb;
use tonic::{Code, Status};

/// Largest e-invoice file accepted.
pub const MAX_FILE_BYTES: usize = 15 << 20;

/// The result of a rejection: the code, the reason and the terms at fault.
fn rejected(
    mut r: pb::EInvoiceImportResult,
    code: Code,
    reason: String,
) -> pb::EInvoiceImportResult {
    r.outcome = "rejected".into();
    r.error_code = crate::service::code_name(code).into();
    r.reason = reason;
    r
}

fn violations(errs: &FieldErrors) -> Vec<pb::FieldViolation> {
    errs.0
        .iter()
        .map(|e| pb::FieldViolation {
            field: e.field.clone(),
            description: e.reason.clone(),
        })
        .collect()
}

/// The rejection of a file the reader refused: the element (or line) and the reason.
fn unreadable(
    r: pb::EInvoiceImportResult,
    e: &mahnwerk_formats::Error,
) -> pb::EInvoiceImportResult {
    use mahnwerk_formats::Error as E;
    let field = match e {
        E::Syntax { position, .. } | E::Check { position, .. } | E::Limit { position, .. } => {
            position.to_string()
        }
        E::Invalid { field, .. } => field.clone(),
        E::Unsupported(_) | E::Io(_) => "content".into(),
    };
    let mut r = rejected(r, Code::InvalidArgument, e.to_string());
    r.violations = vec![pb::FieldViolation {
        field,
        description: e.to_string(),
    }];
    r
}

impl Ingest {
    /// Import one file for the tenant `req.tenant` names; never fails as a call: every problem
    /// is the file's result.
    pub(crate) async fn import_einvoice(
        &self,
        ctx: &RequestCtx,
        index: u64,
        req: &pb::ImportEInvoiceRequest,
    ) -> pb::EInvoiceImportResult {
        let mut r = pb::EInvoiceImportResult {
            index,
            file_name: req.file_name.clone(),
            ..Default::default()
        };
        let tenant = match ctx.caller.tenant(&req.tenant) {
            Ok(t) => t,
            Err(s) => return rejected(r, s.code(), s.message().to_owned()),
        };
        if req.content.len() > MAX_FILE_BYTES {
            return rejected(
                r,
                Code::InvalidArgument,
                format!("content: the file is larger than {MAX_FILE_BYTES} bytes"),
            );
        }
        let e = match read_einvoice(&req.content) {
            Ok(e) => e,
            Err(err) => return unreadable(r, &err),
        };
        r.document_number = e.invoice_number.clone();
        let sha256 = sha256_hex(&req.content);
        r.document_sha256 = sha256.clone();
        let file = OriginalFile {
            sha256,
            media_type: if req.content.starts_with(b"%PDF") {
                "application/pdf".into()
            } else {
                "application/xml".into()
            },
            size: req.content.len() as u64,
        };
        let stored = match self.import_settings(&tenant).await {
            Ok((s, _, _)) => s,
            Err(s) => return rejected(r, s.code(), s.message().to_owned()),
        };
        let policy = match crate::import_settings::merge(req, &stored) {
            Ok(p) => p,
            Err(errs) => {
                let mut r = rejected(r, Code::InvalidArgument, errs.to_string());
                r.violations = violations(&errs);
                return r;
            }
        };
        let claim = match e.to_domain(&policy, &file) {
            Ok(c) => c,
            Err(errs) => {
                let mut r = rejected(r, Code::InvalidArgument, errs.to_string());
                r.violations = violations(&errs);
                return r;
            }
        };
        match self
            .apply_claim(ctx, &tenant, &req.content, claim, &mut r)
            .await
        {
            Ok(()) => r,
            Err(s) => rejected(r, s.code(), s.message().to_owned()),
        }
    }

    async fn apply_claim(
        &self,
        ctx: &RequestCtx,
        tenant: &TenantId,
        content: &[u8],
        claim: Claim,
        r: &mut pb::EInvoiceImportResult,
    ) -> Result<(), Status> {
        match claim {
            Claim::NoClaim { reason } => {
                r.outcome = "no_claim".into();
                r.reason = reason;
                Ok(())
            }
            Claim::Credit {
                credit_note_number,
                invoice,
                amount,
            } => {
                let case = CaseId::for_invoice(tenant, &invoice);
                let (state, _) = self
                    .load(tenant, case)
                    .await
                    .map_err(crate::error::log_error)?;
                let Some(state) = state else {
                    return Err(Status::failed_precondition(format!(
                        "credit note {credit_note_number} credits invoice {invoice} (BT-25), which is not known"
                    )));
                };
                self.store(tenant, case, &state.invoice.debtor, content)
                    .await?;
                let command = CaseCommand::Credit {
                    reason: format!(
                        "e-invoice credit note {credit_note_number} (document {})",
                        r.document_sha256
                    ),
                    credit_note_number,
                    amount,
                };
                let (_, appended) = self
                    .execute(tenant, &invoice, &command, None, &ctx.metadata)
                    .await?;
                r.case_id = case.to_string();
                r.outcome = if appended { "credited" } else { "unchanged" }.into();
                r.reason = format!("credits invoice {invoice}");
                Ok(())
            }
            Claim::Invoice { invoice, replaces } => {
                let number = invoice.number.clone();
                let incomplete = !invoice.has_postal_address();
                let cancel = match &replaces {
                    Some(old) => self.replaceable(tenant, old, &number).await?,
                    None => None,
                };
                self.store(
                    tenant,
                    CaseId::for_invoice(tenant, &number),
                    &invoice.debtor,
                    content,
                )
                .await?;
                let (_, created) = self
                    .execute(
                        tenant,
                        &number,
                        &CaseCommand::Issue(invoice),
                        None,
                        &ctx.metadata,
                    )
                    .await?;
                r.case_id = CaseId::for_invoice(tenant, &number).to_string();
                r.outcome = if created { "created" } else { "unchanged" }.into();
                if let Some(old) = &replaces {
                    match cancel {
                        Some(command) => {
                            let (_, cancelled) = self
                                .execute(tenant, old, &command, None, &ctx.metadata)
                                .await?;
                            if cancelled {
                                r.outcome = "replaced".into();
                            }
                            r.reason = format!("replaces invoice {old}, now cancelled");
                        }
                        None => {
                            r.reason = format!("replaces invoice {old}, which is not known here");
                        }
                    }
                }
                if incomplete {
                    let note = "the buyer's postal address is incomplete (the document names only \
                                the country): letters go by email, or wait until the address is \
                                given (UpdateDebtorAddress)";
                    r.reason = if r.reason.is_empty() {
                        note.into()
                    } else {
                        format!("{}; {note}", r.reason)
                    };
                }
                if created {
                    metrics::counter!("mahnwerk_invoices_recorded_total").increment(1);
                }
                Ok(())
            }
        }
    }

    /// The cancel of the invoice a correction replaces, checked against its case now so the
    /// correction is refused before anything is written; `None` when that invoice is unknown.
    async fn replaceable(
        &self,
        tenant: &TenantId,
        old: &InvoiceNumber,
        new: &InvoiceNumber,
    ) -> Result<Option<CaseCommand>, Status> {
        let (state, _) = self
            .load(tenant, CaseId::for_invoice(tenant, old))
            .await
            .map_err(crate::error::log_error)?;
        let Some(state) = state else { return Ok(None) };
        let command = CaseCommand::Cancel {
            reason: format!("replaced by corrected invoice {new}"),
        };
        if state.status == CaseStatus::Credited {
            return Err(Status::failed_precondition(format!(
                "corrected invoice {new} replaces invoice {old}, which is fully credited"
            )));
        }
        decide(Some(&state), &command).map_err(|e| {
            Status::failed_precondition(format!(
                "corrected invoice {new} cannot replace invoice {old}: {e}"
            ))
        })?;
        Ok(Some(command))
    }

    /// Keep the original file, sealed under the debtor's data key (it names them; ADR 006).
    async fn store(
        &self,
        tenant: &TenantId,
        case: CaseId,
        debtor: &mahnwerk_domain::Debtor,
        content: &[u8],
    ) -> Result<(), Status> {
        let owner = mahnwerk_docstore::Owner {
            tenant: tenant.to_string(),
            subject: mahnwerk_eventlog::privacy::Keyring::debtor_subject(
                debtor.customer_number.as_deref(),
                case.stream(tenant).as_str(),
            ),
        };
        self.docs
            .put_owned(&owner, bytes::Bytes::copy_from_slice(content))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                mahnwerk_docstore::Error::Erased { subject, .. } => Status::failed_precondition(
                    format!("the debtor was erased ({subject}): nothing can be stored for them"),
                ),
                e => {
                    tracing::error!(error = %e, "document store failure");
                    Status::unavailable("document store unavailable")
                }
            })
    }
}

/// The status of a rejected single import (`ImportEInvoice`), with the terms as BadRequest
/// details.
pub(crate) fn status_of(r: &pb::EInvoiceImportResult) -> Option<Status> {
    if r.outcome != "rejected" {
        return None;
    }
    if r.violations.is_empty() {
        let code = match r.error_code.as_str() {
            "FAILED_PRECONDITION" => Code::FailedPrecondition,
            "ALREADY_EXISTS" => Code::AlreadyExists,
            "PERMISSION_DENIED" => Code::PermissionDenied,
            "NOT_FOUND" => Code::NotFound,
            "ABORTED" => Code::Aborted,
            "UNAVAILABLE" => Code::Unavailable,
            _ => Code::InvalidArgument,
        };
        return Some(Status::new(code, r.reason.clone()));
    }
    let errs = FieldErrors(
        r.violations
            .iter()
            .map(|v| mahnwerk_domain::FieldError::new(v.field.clone(), v.description.clone()))
            .collect(),
    );
    Some(crate::error::invalid(&errs))
}
