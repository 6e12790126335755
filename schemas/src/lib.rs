//! The bid contract: what a bid is, how it is written as JSON, and how it is framed on Kafka.
//!
//! - [`domain`] - validated types (`AuctionId`, `BidderName`, `Price`, `BidId`, `BidTimestamp`,
//!   `Bid`). A value of these types satisfies the bid rules; nothing downstream checks again.
//! - [`event`] - the JSON body of subject `auction-value` (v1 = the original demo's schema byte for
//!   byte, v2 = v1 plus optional `auction_id` and `bid_id`).
//! - [`state`] - the records of the compacted topic `auction.state` (the bid service's internal
//!   state, subject `<state topic>-value`).
//! - [`wire`] - the Confluent framing (`0x00`, 4-byte big-endian schema id, payload).
//! - `codec` (feature `codec`, on by default) - encode and decode through a schema registry,
//!   validating both ways.
//!
//! The registry server is `auction-schema-registry` (in `schemas/registry/`); process plumbing is
//! `auction-process`; test support is `auction-testkit`.

#[cfg(feature = "codec")]
pub mod codec;
pub mod domain;
#[cfg(feature = "codec")]
pub mod draft;
pub mod event;
pub mod result;
pub mod state;
pub mod wire;

#[cfg(feature = "codec")]
pub use codec::{
    BidDecoder, BidEncoder, BidForm, DecodeError, DecodedBid, EncodeError, RecordCodec,
    RegistrySettings,
};
pub use domain::{
    AuctionId, Bid, BidId, BidInput, BidTimestamp, BidderName, FieldViolation, InvalidBid, Price,
};
pub use event::{AUCTION_ID_HEADER, BID_ID_HEADER, HeaderIds, LogPosition};
