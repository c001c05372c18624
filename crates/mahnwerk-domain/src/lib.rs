//! # Mahnwerk domain types
//!
//! The vocabulary every other crate speaks: [`Money`] in integer minor units, validated identifier
//! newtypes, [`Iban`]/[`Bic`], the [`Debtor`] with its personal data masked in `Debug`, the
//! [`Invoice`] and the events of an invoice case ([`CaseEvent`]) with the pure `decide`/`evolve`
//! functions of the case aggregate.
//!
//! ## Layout
//! - [`money`]: currencies (ISO 4217) and money arithmetic that refuses to mix currencies.
//! - [`ids`]: tenant, invoice number, case, event and stream identifiers.
//! - [`bank`]: IBAN and BIC.
//! - [`personal`]: the [`Personal`] wrapper for personal data.
//! - [`debtor`], [`invoice`]: the invoice model the ingest API, the e-invoice parsers and the
//!   dunning core share.
//! - [`lifecycle`]: the invoice lifecycle ingest decides (the invoice case aggregate: commands,
//!   events, `decide`, `evolve`); not the dunning state (`mahnwerk_dunning::dunning_case`).
//! - [`payment`]: the payment facts the matching service writes on a case stream
//!   (`payment.applied.v1`, `payment.reversed.v1`, `invoice.settled.v1`, …).
//!
//! ## Invariants
//! This crate never depends on prost, tonic, sqlx or async-nats, never reads the clock and never
//! does IO. Money is never a float.

pub mod bank;
pub mod codes;
pub mod debtor;
pub mod error;
pub mod ids;
pub mod invoice;
pub mod lifecycle;
pub mod money;
pub mod payment;
pub mod personal;
pub mod subdivision;

pub use bank::{Bic, Iban};
pub use debtor::{Debtor, DebtorKind, PostalAddress};
pub use error::{FieldError, FieldErrors};
pub use ids::{CaseId, EventId, InvoiceNumber, StreamId, TenantId};
pub use invoice::{BankAccount, CashDiscountTerm, DirectDebit, Invoice, SourceDocument};
pub use lifecycle::{CaseCommand, CaseEvent, CaseState, CaseStatus};
pub use money::{Currency, Money, MoneyError};
pub use payment::PaymentEvent;
pub use personal::Personal;
