//! The records of the compacted topic `auction.state` (subject `<state topic>-value`, schema
//! `schemas/json/auction.state-value.v1.json`): what an owner of a bid-topic partition writes, in
//! the same Kafka transaction as the bids, so that the next owner can resume deciding without
//! reading the bid history.
//!
//! An auction's record also carries `revision` and `lifecycle` (definition, current end, close,
//! cancellation, proxy maxima): optional properties that the schema's open content model admits
//! without naming them. A version 2 of the schema naming them would be a `oneOf` and
//! `definitions` change, which registries that check compatibility conservatively (the
//! product's own among them) refuse to call compatible, so an upgraded service could not
//! register it over version 1; the Rust types below are the reference.
//!
//! Three kinds of record share a partition with the bids they describe:
//! - key = auction id: the auction's state as of the bid-topic offset it reflects;
//! - key = `request:<uuid>`: a request id within the idempotency window and the bid it placed
//!   (a tombstone once the window has passed); one record each, so that a hot auction's state
//!   stays small however many retriable requests it took;
//! - key = `#owner`: which replica owns the partition and where it takes forwarded calls.
//!
//! The keys cannot collide: `:` and `#` are not allowed in auction ids. The topic is internal: it
//! is never exported by a sink.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The JSON Schema of the records, registered under `<state topic>-value`.
pub const STATE_SCHEMA_V1: &str = include_str!("../json/auction.state-value.v1.json");

/// The key of a partition's owner record.
pub const OWNER_KEY: &str = "#owner";

/// The key prefix of a remembered request.
pub const REQUEST_KEY_PREFIX: &str = "request:";

/// The key of the record remembering `request_id`.
pub fn request_key(request_id: Uuid) -> String {
    format!("{REQUEST_KEY_PREFIX}{request_id}")
}

/// A bid as the state remembers it (its auction and partition are the record's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedBid {
    /// The bid id.
    pub bid_id: Uuid,
    /// The bidder.
    pub name: String,
    /// The amount.
    pub price: i32,
    /// When it was placed (RFC 3339).
    pub bid_ts: String,
    /// Its offset in the bid topic.
    pub offset: i64,
}

/// One auction's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionRecord {
    /// The auction.
    pub auction_id: String,
    /// The partition of the bid topic whose bids it reflects.
    pub partition: i32,
    /// The offset of the last bid it reflects (-1: none).
    pub offset: i64,
    /// Bids applied.
    pub bid_count: u64,
    /// The highest bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest: Option<RecordedBid>,
    /// The most recent bids, newest first.
    pub recent: Vec<RecordedBid>,
    /// Counts every change of the state (bids and lifecycle alike), so that a reader can tell a
    /// newer state of the same offset (a close, a cancellation, a new maximum) from an older one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u64,
    /// The auction's definition, status, end and proxy maxima; absent for an auction nobody
    /// created that has no maximum (the demo's kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Box<LifecycleRecord>>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One band of an increment table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandRecord {
    /// The lowest current price the band applies to.
    pub from_price: i64,
    /// The increment within the band.
    pub increment: i64,
}

/// What `CreateAuction` defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionRecord {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Seller.
    pub seller: String,
    /// The lowest first bid.
    pub starting_price: i64,
    /// The secret reserve price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_price: Option<i64>,
    /// The increment table (one band: a fixed increment).
    pub increments: Vec<BandRecord>,
    /// When bidding opens (RFC 3339).
    pub start_time: String,
    /// The end set at creation (RFC 3339).
    pub end_time: String,
    /// The soft-close window, in milliseconds (0: none).
    pub soft_close_window_ms: u64,
    /// How far past a bid in the window the end moves, in milliseconds.
    pub extension_ms: u64,
    /// SHA-256 of the seller key, hex.
    pub seller_key_sha256: String,
}

/// A bidder's secret proxy maximum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaximumRecord {
    /// The bidder.
    pub name: String,
    /// The most the service may bid for them.
    pub max_price: i64,
    /// Registration order (equal maxima: the earlier wins).
    pub seq: u64,
    /// The bid that set it.
    pub bid_id: Uuid,
}

/// How a closed auction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedRecord {
    /// When the owner closed it (RFC 3339).
    pub closed_at: String,
    /// The winning bid, when the reserve was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<RecordedBid>,
}

/// An auction's life: its definition, its status and its proxy maxima.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRecord {
    /// The definition; absent for an auction nobody created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<DefinitionRecord>,
    /// The current end (RFC 3339), moved by soft close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// How many times soft close moved the end.
    #[serde(default)]
    pub extensions: u32,
    /// Set once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedRecord>,
    /// When it was cancelled (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// The proxy maxima, in registration order.
    #[serde(default)]
    pub maxima: Vec<MaximumRecord>,
    /// The next registration number.
    #[serde(default)]
    pub next_seq: u64,
}

/// A request id within the idempotency window and its final outcome: the bid it placed (whose
/// id is the request id), or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id.
    pub request_id: Uuid,
    /// The auction of the request.
    pub auction_id: String,
    /// The partition of the bid topic.
    pub partition: i32,
    /// When it was decided (RFC 3339); the window counts from it.
    pub at: String,
    /// The bid it placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<RecordedBid>,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// Why a request's bid did not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The highest price when it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_highest: Option<i64>,
    /// The lowest price that would have counted.
    pub minimum_next_bid: i64,
    /// Where the bid is, when it was written and then beaten by an earlier record of another
    /// producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// Which replica owns a partition of the bid topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The partition.
    pub partition: i32,
    /// Where the owner takes forwarded calls (`http://host:port` or `https://...`).
    pub address: String,
    /// The owner's identity for this ownership (new at every takeover).
    pub owner_id: Uuid,
}

/// A record of `auction.state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StateRecord {
    /// An auction's state.
    Auction(AuctionRecord),
    /// A remembered request.
    Request(RequestRecord),
    /// A partition's owner.
    Owner(OwnerRecord),
}

impl StateRecord {
    /// The record's key.
    pub fn key(&self) -> String {
        match self {
            Self::Auction(auction) => auction.auction_id.clone(),
            Self::Request(request) => request_key(request.request_id),
            Self::Owner(_) => OWNER_KEY.to_owned(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data to JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keys_cannot_be_auction_ids() {
        let bid = RecordedBid {
            bid_id: Uuid::new_v4(),
            name: "ada".into(),
            price: 10,
            bid_ts: "2026-11-30T07:00:00Z".into(),
            offset: 4,
        };
        let records = [
            StateRecord::Auction(AuctionRecord {
                auction_id: "a-1".into(),
                partition: 2,
                offset: 4,
                bid_count: 1,
                highest: Some(bid.clone()),
                recent: vec![bid.clone()],
                revision: 3,
                lifecycle: Some(Box::new(LifecycleRecord {
                    definition: Some(DefinitionRecord {
                        title: "A lamp".into(),
                        description: String::new(),
                        seller: "sam".into(),
                        starting_price: 5,
                        reserve_price: Some(50),
                        increments: vec![BandRecord {
                            from_price: 0,
                            increment: 1,
                        }],
                        start_time: "2026-11-30T07:00:00Z".into(),
                        end_time: "2026-11-30T08:00:00Z".into(),
                        soft_close_window_ms: 2000,
                        extension_ms: 2000,
                        seller_key_sha256: "00".into(),
                    }),
                    end_time: Some("2026-11-30T08:00:01Z".into()),
                    extensions: 1,
                    closed: None,
                    cancelled_at: None,
                    maxima: vec![MaximumRecord {
                        name: "ada".into(),
                        max_price: 70,
                        seq: 0,
                        bid_id: bid.bid_id,
                    }],
                    next_seq: 1,
                })),
            }),
            StateRecord::Request(RequestRecord {
                request_id: bid.bid_id,
                auction_id: "a-1".into(),
                partition: 2,
                at: "2026-11-30T07:00:00Z".into(),
                bid: Some(bid),
                refused: None,
            }),
            StateRecord::Request(RequestRecord {
                request_id: Uuid::new_v4(),
                auction_id: "a-1".into(),
                partition: 2,
                at: "2026-11-30T07:00:01Z".into(),
                bid: None,
                refused: Some(Refusal {
                    current_highest: Some(10),
                    minimum_next_bid: 11,
                    offset: None,
                }),
            }),
            StateRecord::Owner(OwnerRecord {
                partition: 2,
                address: "http://127.0.0.1:50051".into(),
                owner_id: Uuid::new_v4(),
            }),
        ];
        for record in records {
            assert_eq!(StateRecord::from_json(&record.to_json()).unwrap(), record);
            let key = record.key();
            assert!(
                matches!(record, StateRecord::Auction(_)) || crate::AuctionId::parse(&key).is_err(),
                "{key}"
            );
        }
    }
}
