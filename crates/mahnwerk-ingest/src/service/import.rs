//! `ImportInvoices`: a stream of invoices validated as it arrives and appended in chunks, up to
//! [`IMPORT_DEPTH`] chunks in flight, committed in stream order.

use super::*;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// One parsed import item: the invoice, or why it was rejected.
type ImportItem = Result<mahnwerk_domain::Invoice, pb::ImportResult>;

/// Rejected items an import reports in its response (each is counted beyond that).
const IMPORT_REPORTED_REJECTIONS: usize = 10_000;

/// The rejection of one import item that failed validation.
fn invalid_item(index: u64, number: String, errs: FieldErrors) -> pb::ImportResult {
    pb::ImportResult {
        index,
        invoice_number: number,
        violations: errs
            .0
            .into_iter()
            .map(|e| pb::FieldViolation {
                field: e.field,
                description: e.reason,
            })
            .collect(),
        error_code: "INVALID_ARGUMENT".into(),
        error_message: "invalid invoice".into(),
        ..Default::default()
    }
}

/// Items of an import stream appended per group commit.
const IMPORT_CHUNK: usize = 1000;

impl Ingest {
    /// `ImportInvoices`: the stream in chunks through an [`ImportPipeline`].
    pub(super) async fn import_stream(
        &self,
        req: Request<Streaming<pb::ImportInvoicesRequest>>,
    ) -> Result<Response<pb::ImportInvoicesResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let mut stream = req.into_inner();
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
        let mut tenant: Option<TenantId> = None;
        let mut index = 0_u64;
        let mut pipeline = ImportPipeline::default();
        while let Some(item) = stream.message().await? {
            let parsed = match ctx.caller.tenant(&item.tenant) {
                // Another tenant (or an ambiguous one) is this item's rejection only.
                Err(status) => Err(pb::ImportResult {
                    index,
                    invoice_number: item
                        .invoice
                        .as_ref()
                        .map(|p| p.invoice_number.clone())
                        .unwrap_or_default(),
                    violations: vec![pb::FieldViolation {
                        field: "tenant".into(),
                        description: status.message().to_owned(),
                    }],
                    error_code: code_name(status.code()).into(),
                    error_message: status.message().to_owned(),
                    ..Default::default()
                }),
                Ok(t) => {
                    if let Some(prev) = &tenant
                        && *prev != t
                    {
                        let full = std::mem::take(&mut chunk);
                        pipeline
                            .submit(self, Some(prev), &ctx.metadata, full)
                            .await?;
                    }
                    tenant = Some(t);
                    match &item.invoice {
                        None => Err(invalid_item(
                            index,
                            String::new(),
                            FieldErrors::from(mahnwerk_domain::FieldError::new(
                                "invoice", "required",
                            )),
                        )),
                        Some(p) => invoice_from_proto(p, "invoice")
                            .map_err(|e| invalid_item(index, p.invoice_number.clone(), e)),
                    }
                }
            };
            chunk.push((index, parsed));
            index += 1;
            if chunk.len() >= IMPORT_CHUNK {
                let full = std::mem::take(&mut chunk);
                pipeline
                    .submit(self, tenant.as_ref(), &ctx.metadata, full)
                    .await?;
            }
        }
        pipeline
            .submit(self, tenant.as_ref(), &ctx.metadata, chunk)
            .await?;
        let done = pipeline.finish().await?;
        let (accepted, rejected, created) = (done.accepted, done.rejected, done.created);
        tracing::info!(accepted, rejected, created, "invoice import finished");
        metrics::counter!("mahnwerk_invoices_recorded_total").increment(created);
        metrics::counter!("mahnwerk_import_items_rejected_total").increment(rejected);
        let unreported = rejected - done.reported.len() as u64;
        Ok(Response::new(pb::ImportInvoicesResponse {
            results: done.reported,
            accepted,
            rejected,
            created,
            rejected_unreported: unreported,
        }))
    }

    /// Import one chunk: new invoices by one group commit, the rest (retries, conflicts) one by one.
    /// The events are built here, in parallel with other chunks; they are queued with the log
    /// only after the previous chunk's (`after` resolves), so chunks commit in stream order.
    async fn import_chunk(
        self,
        tenant: Option<TenantId>,
        metadata: Metadata,
        chunk: Vec<(u64, ImportItem)>,
        after: Option<oneshot::Receiver<()>>,
        queued: oneshot::Sender<()>,
    ) -> Result<Vec<pb::ImportResult>, Status> {
        let metadata = &metadata;
        let mut batches = Vec::new();
        let mut pending = Vec::new();
        let mut out: Vec<pb::ImportResult> = Vec::with_capacity(chunk.len());
        for (index, item) in chunk {
            match (item, &tenant) {
                (Err(rejected), _) => out.push(rejected),
                (Ok(_), None) => unreachable!("a valid import item always has its tenant"),
                (Ok(invoice), Some(tenant)) => {
                    let case = CaseId::for_invoice(tenant, &invoice.number);
                    let event =
                        CaseEvent::InvoiceIssued(mahnwerk_domain::lifecycle::InvoiceIssued {
                            invoice: invoice.clone(),
                        });
                    batches.push(AppendBatch {
                        stream: case.stream(tenant),
                        expected: ExpectedVersion::NoStream,
                        events: vec![new_event(&event, metadata)],
                    });
                    pending.push((out.len(), invoice));
                    out.push(pb::ImportResult {
                        index,
                        case_id: case.to_string(),
                        ..Default::default()
                    });
                }
            }
        }
        if let Some(previous) = after {
            // Err: the previous chunk's task ended without queueing (it failed); the import
            // fails with it, so order no longer matters.
            let _ = previous.await;
        }
        let appended = self.log.enqueue_many(batches).await;
        let _ = queued.send(());
        let appended = appended.outcome().await.map_err(log_error)?;
        let Some(tenant) = &tenant else {
            return Ok(out);
        };
        for ((slot, invoice), result) in pending.into_iter().zip(appended) {
            let r = &mut out[slot];
            r.invoice_number = invoice.number.to_string();
            match result {
                Ok(_) => r.created = true,
                Err(
                    mahnwerk_eventlog::Error::Conflict { .. }
                    | mahnwerk_eventlog::Error::DuplicateEvent(_),
                ) => {
                    // Already recorded (a retried import) or a second item with the same number.
                    match self
                        .execute(
                            tenant,
                            &invoice.number,
                            &CaseCommand::Issue(invoice.clone()),
                            None,
                            metadata,
                        )
                        .await
                    {
                        Ok((_, created)) => r.created = created,
                        Err(status) => {
                            r.case_id.clear();
                            r.error_code = code_name(status.code()).into();
                            r.error_message = status.message().to_owned();
                        }
                    }
                }
                Err(e) => return Err(log_error(e)),
            }
        }
        Ok(out)
    }
}

type ChunkTask = tokio::task::JoinHandle<Result<Vec<pb::ImportResult>, Status>>;

/// Chunks in flight in one import: one being received and validated by the stream loop, up
/// to this many being encoded, queued or committed.
const IMPORT_DEPTH: usize = 3;

/// Keeps up to [`IMPORT_DEPTH`] chunks in flight while the next is received and validated.
/// Chunks are queued with the log strictly in stream order (each waits for the previous one
/// to be queued), so the log applies them in order and may commit several in one group;
/// results are collected in order.
/// Only counts and the first [`IMPORT_REPORTED_REJECTIONS`] rejected items are kept, so an
/// import of any size holds flat memory and answers in one small message.
#[derive(Default)]
struct ImportPipeline {
    pending: VecDeque<ChunkTask>,
    last_queued: Option<oneshot::Receiver<()>>,
    accepted: u64,
    created: u64,
    rejected: u64,
    reported: Vec<pb::ImportResult>,
}

impl ImportPipeline {
    async fn settle_oldest(&mut self) -> Result<(), Status> {
        if let Some(task) = self.pending.pop_front() {
            let done = task
                .await
                .map_err(|_| Status::internal("import task failed"))??;
            for r in done {
                if r.error_code.is_empty() {
                    self.accepted += 1;
                    self.created += u64::from(r.created);
                } else {
                    self.rejected += 1;
                    if self.reported.len() < IMPORT_REPORTED_REJECTIONS {
                        self.reported.push(r);
                    }
                }
            }
        }
        Ok(())
    }

    async fn submit(
        &mut self,
        ingest: &Ingest,
        tenant: Option<&TenantId>,
        metadata: &Metadata,
        chunk: Vec<(u64, ImportItem)>,
    ) -> Result<(), Status> {
        if chunk.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= IMPORT_DEPTH {
            self.settle_oldest().await?;
        }
        let (queued, next) = oneshot::channel();
        let after = self.last_queued.replace(next);
        let task =
            ingest
                .clone()
                .import_chunk(tenant.cloned(), metadata.clone(), chunk, after, queued);
        self.pending.push_back(tokio::spawn(task));
        Ok(())
    }

    async fn finish(mut self) -> Result<Self, Status> {
        while !self.pending.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(self)
    }
}
