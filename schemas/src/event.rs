//! The JSON body of a bid event (subject `auction-value`) and the embedded schema texts.
//!
//! Version 1 is the original demo's schema byte for byte; version 2 adds the optional `auction_id`
//! and `bid_id` and is BACKWARD compatible with it, so v1 messages from the demo's Python producer
//! still decode. The product writes version 2, or version 1 in the demo-compatible form (for a
//! cut-over while the demo's consumers still read the topic): the bid id and auction id then
//! travel in record headers ([`BID_ID_HEADER`], [`AUCTION_ID_HEADER`]) and readers take them
//! from there.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{
    AuctionId, Bid, BidId, BidTimestamp, BidderName, FieldViolation, InvalidBid, Price,
};

/// The original demo's schema, byte for byte.
pub const SCHEMA_V1: &str = include_str!("../json/auction-value.v1.json");

/// The product's schema: v1 plus optional `auction_id` and `bid_id`.
pub const SCHEMA_V2: &str = include_str!("../json/auction-value.v2.json");

/// The header carrying the bid id of a bid written in the demo-compatible form.
pub const BID_ID_HEADER: &str = "auction-bid-id";

/// The header carrying the auction id of a bid written in the demo-compatible form.
pub const AUCTION_ID_HEADER: &str = "auction-id";

/// The ids a record carries in its headers (bids written in the demo-compatible form). A value's
/// own `bid_id` or `auction_id` takes precedence over its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderIds<'a> {
    /// The [`BID_ID_HEADER`] value.
    pub bid_id: Option<&'a str>,
    /// The [`AUCTION_ID_HEADER`] value.
    pub auction_id: Option<&'a str>,
}

impl<'a> HeaderIds<'a> {
    /// No ids in headers (a record of the product's own form, or the demo's).
    pub const NONE: HeaderIds<'static> = HeaderIds {
        bid_id: None,
        auction_id: None,
    };

    /// Picks the id headers out of `(key, value)` pairs; a value that is not UTF-8 counts as
    /// present and fails the id's rule.
    pub fn from_pairs<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut ids = HeaderIds::default();
        for (key, value) in headers {
            let text = || value.map(|v| std::str::from_utf8(v).unwrap_or("\u{fffd}"));
            match key {
                BID_ID_HEADER => ids.bid_id = text(),
                AUCTION_ID_HEADER => ids.auction_id = text(),
                _ => {}
            }
        }
        ids
    }
}

/// Where a record was read from; a record without `bid_id` gets one derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// The event's fields, before the bid rules are applied.
#[derive(Debug, Serialize, Deserialize)]
struct BidEventJson {
    name: String,
    price: i64,
    bid_ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bid_id: Option<String>,
}

/// The version 2 JSON of a bid (always with `auction_id` and `bid_id`).
pub fn to_json(bid: &Bid) -> Value {
    serde_json::json!({
        "name": bid.name.as_str(),
        "price": bid.price.get(),
        "bid_ts": bid.bid_ts.to_rfc3339(),
        "auction_id": bid.auction_id.as_str(),
        "bid_id": bid.bid_id.to_string(),
    })
}

/// The version 1 JSON of a bid (the demo's three fields; `bid_ts` in the demo's form): the value
/// of the demo-compatible form, whose ids go into headers.
pub fn to_demo_json(bid: &Bid) -> Value {
    serde_json::json!({
        "name": bid.name.as_str(),
        "price": bid.price.get(),
        "bid_ts": bid.bid_ts.to_demo_form(),
    })
}

/// Applies the bid rules to an event body that already passed its schema. Missing ids come from
/// the record's `headers`; a body with no `bid_id` at all gets the id derived from `position`.
pub fn from_json(
    value: &Value,
    position: LogPosition<'_>,
    headers: HeaderIds<'_>,
) -> Result<Bid, InvalidBid> {
    let event = BidEventJson::deserialize(value).map_err(|e| {
        InvalidBid::from(FieldViolation {
            field: field_of_serde_error(&e),
            description: format!("does not have the expected form: {e}"),
        })
    })?;
    let auction_id = AuctionId::parse_optional(event.auction_id.as_deref().or(headers.auction_id));
    let name = BidderName::parse(&event.name);
    let price = Price::parse(event.price);
    let bid_ts = BidTimestamp::parse(&event.bid_ts);
    let bid_id = match event.bid_id.as_deref().or(headers.bid_id) {
        Some(raw) => BidId::parse(raw),
        None => Ok(BidId::derived(
            position.topic,
            position.partition,
            position.offset,
        )),
    };
    match (bid_id, auction_id, name, price, bid_ts) {
        (Ok(bid_id), Ok(auction_id), Ok(name), Ok(price), Ok(bid_ts)) => Ok(Bid {
            bid_id,
            auction_id,
            name,
            price,
            bid_ts,
        }),
        (bid_id, auction_id, name, price, bid_ts) => Err(InvalidBid {
            violations: [
                auction_id.err(),
                name.err(),
                price.err(),
                bid_ts.err(),
                bid_id.err(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }),
    }
}

fn field_of_serde_error(error: &serde_json::Error) -> &'static str {
    let text = error.to_string();
    ["name", "price", "bid_ts", "auction_id", "bid_id"]
        .into_iter()
        .find(|field| text.contains(&format!("`{field}`")))
        .unwrap_or("price")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POSITION: LogPosition<'static> = LogPosition {
        topic: "auction",
        partition: 2,
        offset: 41,
    };

    #[test]
    fn v1_schema_is_the_demo_schema_byte_for_byte() {
        let demo = "{\n  \"$schema\": \"http://json-schema.org/draft-07/schema#\",\n  \"title\": \"Bid\",\n  \"type\": \"object\",\n  \"properties\": {\n    \"name\": { \"type\": \"string\" },\n    \"price\": { \"type\": \"integer\" },\n    \"bid_ts\": { \"type\": \"string\" }\n  },\n  \"required\": [\"name\", \"price\", \"bid_ts\"],\n  \"additionalProperties\": false\n}\n";
        assert_eq!(SCHEMA_V1, demo);
    }

    #[test]
    fn a_demo_message_gets_the_default_auction_and_a_derived_id() {
        let bid = from_json(
            &json!({"name": "Ada", "price": 10, "bid_ts": "2026-11-23 10:00:00.250000"}),
            POSITION,
            HeaderIds::NONE,
        )
        .unwrap();
        assert_eq!(bid.auction_id.as_str(), "default");
        assert_eq!(bid.bid_id, BidId::derived("auction", 2, 41));
        assert_eq!(bid.bid_ts.to_rfc3339(), "2026-11-23T10:00:00.250000Z");
    }

    #[test]
    fn round_trip_through_v2_json_keeps_every_field() {
        let bid = from_json(
            &json!({"name": " Grace ", "price": 12, "bid_ts": "2026-11-23T10:00:00Z",
                    "auction_id": "lot-1", "bid_id": "0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95"}),
            POSITION,
            HeaderIds::NONE,
        )
        .unwrap();
        assert_eq!(bid.name.as_str(), "Grace");
        assert_eq!(
            from_json(&to_json(&bid), POSITION, HeaderIds::NONE).unwrap(),
            bid
        );
    }

    #[test]
    fn rule_violations_name_their_fields() {
        let err = from_json(
            &json!({"name": "", "price": 0, "bid_ts": "soon", "bid_id": "x"}),
            POSITION,
            HeaderIds::NONE,
        )
        .unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["name", "price", "bid_ts", "bid_id"]);
        let huge = from_json(
            &json!({"name": "a", "price": 1e30, "bid_ts": "2026-11-23 10:00:00"}),
            POSITION,
            HeaderIds::NONE,
        )
        .unwrap_err();
        assert_eq!(huge.violations[0].field, "price");
    }

    #[test]
    fn the_demo_compatible_form_round_trips_through_its_headers() {
        let bid = from_json(
            &json!({"name": "Ada", "price": 12, "bid_ts": "2026-11-23T10:00:00.5Z",
                    "auction_id": "lot-1", "bid_id": "0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95"}),
            POSITION,
            HeaderIds::NONE,
        )
        .unwrap();
        let value = to_demo_json(&bid);
        assert_eq!(
            value,
            json!({"name": "Ada", "price": 12, "bid_ts": "2026-11-23 10:00:00.500000"})
        );
        let bid_id = bid.bid_id.to_string();
        let headers = HeaderIds::from_pairs([
            ("auction-proxy", None),
            (BID_ID_HEADER, Some(bid_id.as_bytes())),
            (AUCTION_ID_HEADER, Some(b"lot-1".as_slice())),
        ]);
        assert_eq!(from_json(&value, POSITION, headers).unwrap(), bid);
        // Without its headers it is a demo bid: the default auction, an id from its position.
        let demo = from_json(&value, POSITION, HeaderIds::NONE).unwrap();
        assert_eq!(demo.auction_id.as_str(), "default");
        assert_eq!(demo.bid_id, BidId::derived("auction", 2, 41));
    }

    #[test]
    fn a_bad_id_header_is_refused_by_the_ids_rules() {
        let headers = HeaderIds::from_pairs([(AUCTION_ID_HEADER, Some(b"no spaces".as_slice()))]);
        let err = from_json(
            &json!({"name": "Ada", "price": 12, "bid_ts": "2026-11-23 10:00:00"}),
            POSITION,
            headers,
        )
        .unwrap_err();
        assert_eq!(err.violations[0].field, "auction_id");
    }
}
