//! The `auction.v1` gRPC contract, generated at build time from `proto/auction/v1/*.proto`.
//!
//! - [`v1`]: messages, the `BidService` server trait and its client.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors (with their imports) for server reflection.
//!
//! The `.proto` files are the contract; this crate adds nothing to them.

/// Messages and services of the `auction.v1` package.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("auction.v1");
}

/// Encoded `google.protobuf.FileDescriptorSet` of the contract, including imported files.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/auction_descriptor.bin"));
