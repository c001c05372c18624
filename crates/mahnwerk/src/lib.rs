//! # mahnwerk: the all-in-one binary
//!
//! Runs every service in one process for a single machine (`mahnwerk serve`) and carries the
//! operator CLI. Each service stays a library with its own `run`; this crate only wires them.
//!
//! ## Layout
//! - [`config`]: typed configuration from `MAHNWERK_*` environment variables and flags.
//! - [`config_check`]: the optional configuration file, checks naming the bad key, and
//!   `mahnwerk config check`.
//! - [`server`]: starts the chosen services and stops them in order on shutdown.
//! - [`client`]: CLI commands that call the gRPC API.
//! - [`demo`]: `mahnwerk demo` (the seeds' process on a simulated clock) and `serve --demo`'s tenant.
//! - [`deadletter`]: `mahnwerk deadletter list|show|replay`.
//! - [`einvoice_import`]: `mahnwerk import invoices FILE|DIR…`.
//! - [`debtor`]: `mahnwerk debtor erase` (GDPR Art. 17).
//! - [`spool`]: `mahnwerk spool pickup` (a print shop takes the sealed post spool in clear).
//! - [`migrate`]: `mahnwerk migrate` (and the services' database role on PostgreSQL).
//! - [`dunning_cli`]: `mahnwerk dunning approve|decline|assign|group|move`.
//! - [`telemetry`]: logs and OTLP traces.
//! - [`rpc_metrics`]: the gRPC server's request counts and latencies.

pub mod client;
pub mod config;
pub mod config_check;
pub mod deadletter;
pub mod debtor;
pub mod demo;
pub mod dunning_cli;
pub mod einvoice_import;
pub mod letters_cli;
pub mod migrate;
pub mod rpc_metrics;
pub mod server;
pub mod spool;
pub mod telemetry;
