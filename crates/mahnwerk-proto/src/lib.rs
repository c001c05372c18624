//! # Mahnwerk gRPC types
//!
//! Generated from `proto/mahnwerk/v1/*.proto` (package `mahnwerk.v1`) at build time with protox,
//! so no system `protoc` is needed. The protos are the public API for billing platforms.
//!
//! Invariant: only generated code and the descriptor set live here; conversions to domain types
//! live in the service crates, at their edge.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("mahnwerk.v1");
}

/// Encoded `FileDescriptorSet` of all Mahnwerk protos, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mahnwerk_descriptor.bin"));
