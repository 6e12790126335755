//! The `auction.v1` gRPC contract, generated at build time from `proto/auction/v1/*.proto`.
//!
//! - [`v1`]: messages, the `BidService` server trait and its client.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors (with their imports) for server reflection.
//! - [`error_details`]: the keys of the `google.rpc.ErrorInfo` the service attaches to a refusal.
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

/// The `google.rpc.ErrorInfo` of a refused bid: reason, domain and metadata keys, as the service
/// writes them and clients (the gateway, the Python and TypeScript examples) read them.
pub mod error_details {
    /// The domain of every `ErrorInfo` the service sends.
    pub const DOMAIN: &str = "auction.v1";
    /// Reason of a FAILED_PRECONDITION: the price does not beat the minimum next bid.
    pub const BID_TOO_LOW: &str = "BID_TOO_LOW";
    /// Metadata key: the lowest price the auction accepts now.
    pub const MINIMUM_NEXT_BID: &str = "minimum_next_bid";
    /// Metadata key: the current highest price (absent while the auction has no bid).
    pub const CURRENT_HIGHEST: &str = "current_highest";
    /// `ErrorInfo.reason` of a bid on an auction that takes no bid now (not started, ended,
    /// closed or cancelled).
    pub const AUCTION_NOT_OPEN: &str = "AUCTION_NOT_OPEN";
    /// `ErrorInfo.metadata` key of [`AUCTION_NOT_OPEN`]: `scheduled`, `closed` or `cancelled`.
    pub const STATUS: &str = "status";
    /// `ErrorInfo.reason` of a maximum from the leader that does not raise their own.
    pub const ALREADY_LEADING: &str = "ALREADY_LEADING";
}
