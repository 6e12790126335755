//! Bid events: their schemas, the domain types they carry, their wire format, and the product's
//! own Confluent-compatible schema registry.
//!
//! - [`domain`] - validated types (`AuctionId`, `BidderName`, `Price`, `BidId`, `BidTimestamp`,
//!   `Bid`). A value of these types satisfies the bid rules; nothing downstream checks again.
//! - [`event`] - the JSON body of subject `auction-value` (v1 = the original demo's schema byte for
//!   byte, v2 = v1 plus optional `auction_id` and `bid_id`).
//! - [`wire`] - the Confluent framing (`0x00`, 4-byte big-endian schema id, payload).
//! - [`codec`] - encode and decode through a registry, validating both ways.
//! - [`registry`] - the schema registry server (the REST subset Confluent clients use).
//! - [`secret`] - a string type that never prints its value.
//! - [`service`] - process plumbing of every binary: logs, metrics, signals, readiness, and the
//!   `KAFKA_*` environment as librdkafka properties.
//! - `kafka_startup` (feature `kafka`) - connecting to Kafka at start, failing with librdkafka's
//!   reason (TLS, SASL) instead of retrying forever.
//! - `testing` (feature `testing`) - the integration tests' kit: Apache Kafka on free ports (with a
//!   SASL_SSL listener when asked), a registry, the demo's Python producer.

pub mod codec;
pub mod domain;
pub mod event;
#[cfg(feature = "kafka")]
pub mod kafka_startup;
pub mod registry;
pub mod secret;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use codec::{BidDecoder, BidEncoder, DecodeError, DecodedBid, EncodeError, RegistrySettings};
pub use domain::{
    AuctionId, Bid, BidId, BidInput, BidTimestamp, BidderName, FieldViolation, InvalidBid, Price,
};
pub use event::LogPosition;
pub use secret::Secret;
