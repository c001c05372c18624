//! # Mahnwerk formats
//!
//! Reads the files a receivables system receives and writes the payment data its letters carry:
//!
//! - bank statements — camt.052/053/054 (every version from .001.02, German DK variants), MT940 and
//!   MT942 (with the German structured `:86:`), CSV with a declared mapping — into one statement
//!   model, **streamed**: entries are yielded one at a time so a 1 GB statement needs flat memory;
//! - e-invoices — EN 16931 in UBL 2.1 and UN/CEFACT CII, XRechnung, ZUGFeRD / Factur-X (also the
//!   XML embedded in a PDF/A-3) — into an invoice model compatible with
//!   [`mahnwerk_domain::Invoice`];
//! - ISO 11649 RF creditor references ([`rf`]) and EPC069-12 QR payloads ([`epc`]).
//!
//! # Layout
//! - [`error`]: the one error enum; every parse error names the line and/or element and the reason.
//! - [`statement`]: the statement model ([`statement::StatementItem`] stream, [`statement::Statement`]),
//!   balance and currency checks.
//! - [`xml`]: the guarded XML pull reader (encodings, no DTD, limits, line numbers).
//! - [`camt`]: camt.052/053/054 streaming reader.
//! - [`mt940`]: MT940/MT942 streaming reader with the German structured `:86:`.
//! - [`csv`]: CSV statements read with a declared [`csv::CsvMapping`] (JSON).
//! - [`einvoice`]: UBL/CII/ZUGFeRD/Factur-X/XRechnung into [`einvoice::EInvoice`]; [`pdf`] finds
//!   the XML inside a PDF/A-3.
//! - [`zip`]: members of ZIP archives holding several statements.
//! - [`cli`]: `mahnwerk inspect statement|invoice` for operators, with the `--json` contract.
//! - [`rf`], [`epc`]: generation and validation of payment references and QR payloads.
//!
//! # Invariants
//! - Pure: no IO beyond reading the bytes or `Read`/`BufRead` given by the caller; no clock.
//! - Money is integer minor units ([`mahnwerk_domain::Money`]), never a float; debits are negative.
//! - XML is read with a pull parser; DTDs and entities other than the predefined five are refused,
//!   nesting depth and the size of one element are bounded.

pub mod camt;
pub mod cli;
pub mod csv;
pub mod einvoice;
pub mod epc;
pub mod error;
pub mod mt940;
pub mod pdf;
pub mod rf;
pub mod statement;
pub mod xml;
pub mod zip;

pub use error::{Error, Position, Result};
