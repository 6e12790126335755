//! Any bytes as a Kafka record value: framing, JSON, schema validation (v1 or v2 by the schema id
//! in the header) and the bid rules must classify them without panicking, and whatever decodes
//! must be a valid bid that survives a round trip.
#![no_main]

use std::sync::OnceLock;

use auction_schemas::codec::decode_payload;
use auction_schemas::event::{self, HeaderIds, LogPosition, SCHEMA_V1, SCHEMA_V2};
use auction_schemas::wire;
use libfuzzer_sys::fuzz_target;

fn validators() -> &'static [jsonschema::Validator; 2] {
    static VALIDATORS: OnceLock<[jsonschema::Validator; 2]> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let compile = |text: &str| {
            let schema = serde_json::from_str(text).expect("the bid schemas are JSON");
            jsonschema::validator_for(&schema).expect("the bid schemas compile")
        };
        [compile(SCHEMA_V1), compile(SCHEMA_V2)]
    })
}

const POSITION: LogPosition<'static> = LogPosition {
    topic: "auction",
    partition: 0,
    offset: 7,
};

fuzz_target!(|value: &[u8]| {
    let Ok((schema_id, payload)) = wire::unframe(Some(value)) else {
        return;
    };
    let validator = &validators()[(schema_id % 2) as usize];
    match decode_payload(validator, schema_id, payload, POSITION, HeaderIds::NONE) {
        Ok(decoded) => {
            let bid = decoded.bid;
            assert!(bid.price.get() >= 1);
            assert!(!bid.name.as_str().is_empty());
            let again = event::from_json(&event::to_json(&bid), POSITION, HeaderIds::NONE).expect("a decoded bid re-encodes");
            assert_eq!(again, bid);
        }
        Err(error) => assert!(!error.is_retriable(), "{error}"),
    }
});
