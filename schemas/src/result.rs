//! The records of the topic `auction.results` (subject `<results topic>-value`, schema
//! `schemas/json/auction.results-value.v1.json`): how each closed auction ended, written by the
//! owner of its partition in the transaction that closes it (key: the auction id), for the sinks
//! to export. Unlike `auction.state` it is public: no reserve price, proxy maximum or seller key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The JSON Schema of the records, registered under `<results topic>-value`.
pub const RESULT_SCHEMA_V1: &str = include_str!("../json/auction.results-value.v1.json");

/// How a closed auction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionResult {
    /// The auction.
    pub auction_id: String,
    /// Its title.
    pub title: String,
    /// Its seller.
    pub seller: String,
    /// Whether the leader met the reserve (or there was none).
    pub sold: bool,
    /// The winning bidder, when sold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// The winning price, when sold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_price: Option<i64>,
    /// The winning bid, when sold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winning_bid_id: Option<Uuid>,
    /// Bids the auction took.
    pub bid_count: u64,
    /// When the owner closed it (RFC 3339).
    pub closed_at: String,
}

#[cfg(all(test, feature = "codec"))]
mod tests {
    use super::*;

    #[test]
    fn a_result_round_trips_and_validates_against_its_schema() {
        let result = AuctionResult {
            auction_id: "lamp-1".into(),
            title: "Brass lamp".into(),
            seller: "Sam".into(),
            sold: true,
            winner: Some("Ada".into()),
            final_price: Some(41),
            winning_bid_id: Some(Uuid::new_v4()),
            bid_count: 4,
            closed_at: "2026-11-30T16:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&result).unwrap();
        let schema: serde_json::Value = serde_json::from_str(RESULT_SCHEMA_V1).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&json), "{json}");
        assert_eq!(
            serde_json::from_value::<AuctionResult>(json).unwrap(),
            result
        );
    }
}
