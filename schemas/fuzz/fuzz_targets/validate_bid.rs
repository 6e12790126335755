//! Any input as the fields of a PlaceBid request: validation accepts exactly the bids that keep
//! the rules, names every broken field, and never panics.
#![no_main]

use auction_schemas::{Bid, BidId, BidInput, BidTimestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Fields separated by 0xFF bytes: auction id, name, price (decimal text), timestamp.
    let mut fields = data.split(|b| *b == 0xFF).map(String::from_utf8_lossy);
    let auction = fields.next().unwrap_or_default();
    let name = fields.next().unwrap_or_default();
    let price = fields.next().and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(0);
    let timestamp = fields.next().unwrap_or_default();
    let input = BidInput {
        auction_id: Some(&auction),
        name: &name,
        price,
    };
    match Bid::new(&input, BidId::new_random()) {
        Ok(bid) => {
            assert!((1..=i64::from(i32::MAX)).contains(&i64::from(bid.price.get())));
            let trimmed = bid.name.as_str();
            assert_eq!(trimmed, trimmed.trim());
            assert!(!trimmed.is_empty() && trimmed.chars().count() <= 100);
            assert!(!trimmed.chars().any(char::is_control));
        }
        Err(invalid) => assert!(!invalid.violations.is_empty()),
    }
    if let Ok(ts) = BidTimestamp::parse(&timestamp) {
        assert_eq!(BidTimestamp::parse(&ts.to_rfc3339()).expect("re-parses"), ts);
    }
});
