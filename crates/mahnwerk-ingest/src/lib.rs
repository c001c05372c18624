//! # Ingest service
//!
//! Billing platforms call `InvoiceService` to record invoices and what happens to them, and
//! `CaseService` to read a case file. Writes go to the case's stream in the event log through
//! the pure `mahnwerk_domain::lifecycle::decide`; reads of one invoice fold its stream (always
//! current); `ListInvoices` reads this service's own projection, built from the log.
//!
//! ## Layout
//! - [`service`]: the gRPC handlers.
//! - [`convert`]: protobuf ⇄ domain, naming every rejected field.
//! - [`error`]: the one mapping of errors to gRPC status codes.
//! - [`projection`]: the `ingest_invoices` read model and its log follower.
//! - [`einvoice`]: `ImportEInvoice(s)`: e-invoice files into cases, the original kept in the
//!   document store ([`docstore`]).
//! - [`import_settings`]: the tenant's e-invoice import settings (`PutImportSettings`,
//!   `GetImportSettings`), versioned as events, merged into each import.
//!
//! ## Invariants
//! A rejected request appends nothing. A key never reaches another tenant's stream: the stream id
//! is derived from the tenant the key is bound to. Personal data never reaches a log line.

pub mod convert;
pub mod einvoice;
pub mod erasure;
pub mod error;
pub mod import_settings;
pub mod projection;
pub mod service;

pub use mahnwerk_docstore as docstore;
pub use service::Ingest;

use mahnwerk_proto::v1::case_service_server::CaseServiceServer;
use mahnwerk_proto::v1::invoice_service_server::InvoiceServiceServer;

/// The two gRPC services of ingest, ready to add to a tonic router.
pub fn services(ingest: Ingest) -> (InvoiceServiceServer<Ingest>, CaseServiceServer<Ingest>) {
    (
        InvoiceServiceServer::new(ingest.clone()).max_decoding_message_size(16 * 1024 * 1024),
        CaseServiceServer::new(ingest),
    )
}
