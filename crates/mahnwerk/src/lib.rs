//! # mahnwerk: the all-in-one binary
//!
//! Runs every service in one process for a single machine (`mahnwerk serve`) and carries the
//! operator CLI. Each service stays a library with its own `run`; this crate only wires them.
//!
//! ## Layout
//! - [`config`]: typed configuration from `MAHNWERK_*` environment variables and flags.
//! - [`server`]: starts the chosen services and stops them in order on shutdown.
//! - [`client`]: CLI commands that call the gRPC API.
//! - [`demo`]: `mahnwerk demo` (the seeds' process on a simulated clock) and `serve --demo`'s tenant.
//! - [`deadletter`]: `mahnwerk deadletter list|show|replay`.
//! - [`telemetry`]: logs and OTLP traces.

pub mod client;
pub mod config;
pub mod deadletter;
pub mod demo;
pub mod server;
pub mod telemetry;
