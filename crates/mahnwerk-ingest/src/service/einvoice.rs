//! The e-invoice RPCs (`ImportEInvoice`, `ImportEInvoices`) and the tenant's import settings
//! (`PutImportSettings`, `GetImportSettings`); the import itself is `crate::einvoice`, the
//! settings `crate::import_settings`.

use super::*;

impl Ingest {
    /// `ImportEInvoice`: one file, its result or the status it maps to.
    pub(super) async fn import_one_einvoice(
        &self,
        req: Request<pb::ImportEInvoiceRequest>,
    ) -> Result<Response<pb::ImportEInvoiceResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let r = self.import_einvoice(&ctx, 0, req.get_ref()).await;
        tracing::info!(outcome = %r.outcome, sha256 = %r.document_sha256, "e-invoice imported");
        if let Some(status) = crate::einvoice::status_of(&r) {
            return Err(status);
        }
        Ok(Response::new(pb::ImportEInvoiceResponse {
            result: Some(r),
        }))
    }

    /// `ImportEInvoices`: a stream of files, one result each, and the counts.
    pub(super) async fn import_einvoice_stream(
        &self,
        req: Request<Streaming<pb::ImportEInvoicesRequest>>,
    ) -> Result<Response<pb::ImportEInvoicesResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let mut stream = req.into_inner();
        let mut out = pb::ImportEInvoicesResponse::default();
        let mut index = 0;
        while let Some(item) = stream.message().await? {
            let r = match &item.file {
                Some(file) => self.import_einvoice(&ctx, index, file).await,
                None => pb::EInvoiceImportResult {
                    index,
                    outcome: "rejected".into(),
                    reason: "file: required".into(),
                    ..Default::default()
                },
            };
            match r.outcome.as_str() {
                "created" | "credited" | "replaced" => out.imported += 1,
                "unchanged" => out.unchanged += 1,
                "no_claim" => out.no_claim += 1,
                _ => out.rejected += 1,
            }
            out.results.push(r);
            index += 1;
        }
        tracing::info!(
            imported = out.imported,
            unchanged = out.unchanged,
            no_claim = out.no_claim,
            rejected = out.rejected,
            "e-invoice import finished"
        );
        Ok(Response::new(out))
    }

    /// `PutImportSettings`: a new version of the tenant's e-invoice import settings.
    pub(super) async fn put_settings(
        &self,
        req: Request<pb::PutImportSettingsRequest>,
    ) -> Result<Response<pb::PutImportSettingsResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        self.store_import_settings(&ctx, req.get_ref())
            .await
            .map(Response::new)
    }

    /// `GetImportSettings`: the current settings and their version.
    pub(super) async fn get_settings(
        &self,
        req: Request<pb::GetImportSettingsRequest>,
    ) -> Result<Response<pb::GetImportSettingsResponse>, Status> {
        let ctx = self.ctx(&req).await?;
        let tenant = ctx.caller.tenant(&req.get_ref().tenant)?;
        let (settings, version, _) = self.import_settings(&tenant).await?;
        Ok(Response::new(pb::GetImportSettingsResponse {
            settings: Some(crate::import_settings::settings_to_proto(&settings)),
            version,
        }))
    }
}
