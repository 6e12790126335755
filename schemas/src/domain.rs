//! Validated domain types: a value of these types has passed the bid rules (README.md, "Bid
//! events"), so code that receives one never checks again.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The auction a bid belongs to when the producer does not name one (the original demo's bids).
pub const DEFAULT_AUCTION: &str = "default";

/// Longest bidder name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 100;

/// Longest auction id, in characters.
pub const MAX_AUCTION_ID_CHARS: usize = 64;

/// The namespace of bid ids derived from a record's position in the log (UUID v5).
const DERIVED_BID_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1d_3c02_8f4e_4b8a_9d57_52a0_c1e3_f9b4);

/// One field that broke a rule, named as the API and the JSON event name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field, as named in the gRPC request and the JSON event (`name`, `price`, ...).
    pub field: &'static str,
    /// What was expected, as a sentence a user can act on.
    pub description: String,
}

impl FieldViolation {
    fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Every rule a bid broke, so that a user can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bid: {}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidBid {
    /// One entry per field, in field order.
    pub violations: Vec<FieldViolation>,
}

impl From<FieldViolation> for InvalidBid {
    fn from(violation: FieldViolation) -> Self {
        Self {
            violations: vec![violation],
        }
    }
}

/// An auction id: `[A-Za-z0-9._-]{1,64}`. Its text is shared: a clone (one for every bid an
/// auction keeps in memory) copies a pointer, not the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuctionId(Arc<str>);

impl AuctionId {
    /// Parses an auction id that must be present.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if raw.is_empty() || raw.len() > MAX_AUCTION_ID_CHARS || !valid_chars {
            return Err(FieldViolation::new(
                "auction_id",
                format!(
                    "must be 1 to {MAX_AUCTION_ID_CHARS} characters of A-Z, a-z, 0-9, '.', '_' or '-'"
                ),
            ));
        }
        Ok(Self(raw.into()))
    }

    /// Parses an optional auction id: absent or empty means [`DEFAULT_AUCTION`].
    pub fn parse_optional(raw: Option<&str>) -> Result<Self, FieldViolation> {
        match raw {
            None | Some("") => Ok(Self::default_auction()),
            Some(raw) => Self::parse(raw),
        }
    }

    /// The auction of bids that name none.
    pub fn default_auction() -> Self {
        Self(DEFAULT_AUCTION.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AuctionId {
    type Error = FieldViolation;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AuctionId> for String {
    fn from(value: AuctionId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for AuctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bidder's name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct BidderName(String);

impl BidderName {
    /// Trims surrounding whitespace, then checks length and characters.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(FieldViolation::new("name", "must not be empty"));
        }
        if chars > MAX_NAME_CHARS {
            return Err(FieldViolation::new(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters, got {chars}"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                "name",
                "must not contain control characters (such as newlines or tabs)",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<BidderName> for String {
    fn from(value: BidderName) -> Self {
        value.0
    }
}

impl fmt::Display for BidderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A price: a whole number from 1 to 2,147,483,647 (MySQL `INT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Price(i32);

impl Price {
    /// The highest price a bid may offer.
    pub const MAX: i64 = i32::MAX as i64;

    /// Checks the range.
    pub fn parse(raw: i64) -> Result<Self, FieldViolation> {
        match i32::try_from(raw) {
            Ok(value) if value >= 1 => Ok(Self(value)),
            _ => Err(FieldViolation::new(
                "price",
                format!("must be a whole number from 1 to {}, got {raw}", Self::MAX),
            )),
        }
    }

    /// The amount.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The idempotency key of a bid: a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BidId(Uuid);

impl BidId {
    /// Parses a UUID in any of its usual text forms.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        Uuid::parse_str(raw).map(Self).map_err(|_| {
            FieldViolation::new(
                "bid_id",
                "must be a UUID such as 0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95",
            )
        })
    }

    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id of a record that carries none: derived from where it is in the log, so that reading
    /// the same record again always yields the same id and a replay never duplicates it.
    pub fn derived(topic: &str, partition: i32, offset: i64) -> Self {
        let name = format!("{topic}/{partition}/{offset}");
        Self(Uuid::new_v5(&DERIVED_BID_ID_NAMESPACE, name.as_bytes()))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for BidId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl fmt::Display for BidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// When a bid was placed, in UTC.
///
/// Written as RFC 3339 (`2026-11-23T10:15:30.123456Z`). Read as RFC 3339 with any offset, or as
/// the original demo's `YYYY-MM-DD HH:MM:SS[.ffffff]`, which carries no zone and is taken as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BidTimestamp(DateTime<Utc>);

impl BidTimestamp {
    /// Parses either accepted form. Years outside 1000 to 9999 are refused: they cannot be stored
    /// in a MySQL `DATETIME` nor written back as RFC 3339.
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        let raw = raw.trim();
        let parsed = DateTime::parse_from_rfc3339(raw)
            .map(|with_zone| with_zone.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                    .into_iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
                    .map(|naive| naive.and_utc())
            });
        match parsed {
            Some(time) if (1000..=9999).contains(&time.year()) => Ok(Self::from(time)),
            Some(_) => Err(FieldViolation::new(
                "bid_ts",
                "must be a time between the years 1000 and 9999",
            )),
            None => Err(FieldViolation::new(
                "bid_ts",
                "must be an RFC 3339 time (2026-11-23T10:15:30Z) or YYYY-MM-DD HH:MM:SS[.ffffff]",
            )),
        }
    }

    /// The current time, to the microsecond (the precision the event carries).
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// The time.
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }

    /// RFC 3339 in UTC with microseconds, the form the product writes.
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// The original demo's form in UTC with microseconds (`2026-11-23 10:15:30.123456`), which
    /// its MySQL writer can insert into a `DATETIME` column (a zone suffix would be refused).
    pub fn to_demo_form(self) -> String {
        self.0.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

impl From<DateTime<Utc>> for BidTimestamp {
    /// Truncates to microseconds, so that a timestamp equals itself after a trip through JSON.
    fn from(value: DateTime<Utc>) -> Self {
        Self(value.trunc_subsecs(6))
    }
}

impl fmt::Display for BidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A valid bid, as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bid {
    /// The idempotency key.
    pub bid_id: BidId,
    /// The auction.
    pub auction_id: AuctionId,
    /// The bidder.
    pub name: BidderName,
    /// The amount.
    pub price: Price,
    /// When it was placed.
    pub bid_ts: BidTimestamp,
}

/// Unvalidated input for a new bid, as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct BidInput<'a> {
    /// Optional auction id; empty means [`DEFAULT_AUCTION`].
    pub auction_id: Option<&'a str>,
    /// The bidder's name.
    pub name: &'a str,
    /// The amount.
    pub price: i64,
}

impl Bid {
    /// Validates client input into a new bid with a fresh id, timestamped now. Reports every
    /// broken rule, not only the first.
    pub fn new(input: &BidInput<'_>, bid_id: BidId) -> Result<Self, InvalidBid> {
        let auction_id = AuctionId::parse_optional(input.auction_id);
        let name = BidderName::parse(input.name);
        let price = Price::parse(input.price);
        match (auction_id, name, price) {
            (Ok(auction_id), Ok(name), Ok(price)) => Ok(Self {
                bid_id,
                auction_id,
                name,
                price,
                bid_ts: BidTimestamp::now(),
            }),
            (auction_id, name, price) => Err(InvalidBid {
                violations: [auction_id.err(), name.err(), price.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_are_accepted_exactly_when_the_rules_hold(raw in ".{0,120}") {
            let trimmed = raw.trim();
            let valid = (1..=MAX_NAME_CHARS).contains(&trimmed.chars().count()) && !trimmed.chars().any(char::is_control);
            match BidderName::parse(&raw) {
                Ok(name) => {
                    prop_assert!(valid);
                    prop_assert_eq!(name.as_str(), trimmed);
                }
                Err(violation) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(violation.field, "name");
                }
            }
        }

        #[test]
        fn prices_are_accepted_exactly_in_range(raw in any::<i64>()) {
            prop_assert_eq!(Price::parse(raw).is_ok(), (1..=Price::MAX).contains(&raw));
        }

        #[test]
        fn auction_ids_are_accepted_exactly_when_they_match_the_pattern(raw in "[A-Za-z0-9._ /é-]{0,70}") {
            let valid = (1..=MAX_AUCTION_ID_CHARS).contains(&raw.len())
                && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            prop_assert_eq!(AuctionId::parse(&raw).is_ok(), valid);
        }

        #[test]
        fn timestamps_never_panic_and_round_trip(raw in ".{0,40}") {
            if let Ok(ts) = BidTimestamp::parse(&raw) {
                prop_assert_eq!(BidTimestamp::parse(&ts.to_rfc3339()).unwrap(), ts);
            }
        }
    }

    #[test]
    fn auction_id_accepts_the_documented_alphabet_and_length() {
        assert!(AuctionId::parse("lot-42_a.b").is_ok());
        assert!(AuctionId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            AuctionId::parse(&"a".repeat(65)).unwrap_err().field,
            "auction_id"
        );
        assert!(AuctionId::parse("lot 42").is_err());
        assert!(AuctionId::parse("lot/42").is_err());
        assert!(AuctionId::parse("").is_err());
        assert!(AuctionId::parse("é").is_err());
        assert_eq!(AuctionId::parse_optional(None).unwrap().as_str(), "default");
        assert_eq!(
            AuctionId::parse_optional(Some("")).unwrap().as_str(),
            "default"
        );
    }

    #[test]
    fn bidder_name_is_trimmed_and_bounded_in_characters() {
        assert_eq!(BidderName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(BidderName::parse("   ").is_err());
        // 100 multi-byte characters are fine: the limit counts characters, not bytes.
        assert!(BidderName::parse(&"é".repeat(100)).is_ok());
        let too_long = BidderName::parse(&"é".repeat(101)).unwrap_err();
        assert!(too_long.description.contains("at most 100"), "{too_long}");
        assert!(BidderName::parse("a\nb").is_err());
        assert!(BidderName::parse("a\u{7}b").is_err());
        assert_eq!(
            BidderName::parse("'); DROP TABLE bid;--").unwrap().as_str(),
            "'); DROP TABLE bid;--"
        );
    }

    #[test]
    fn price_is_a_positive_int32() {
        assert_eq!(Price::parse(1).unwrap().get(), 1);
        assert_eq!(Price::parse(2_147_483_647).unwrap().get(), i32::MAX);
        assert!(Price::parse(0).is_err());
        assert!(Price::parse(-5).is_err());
        let overflow = Price::parse(2_147_483_648).unwrap_err();
        assert!(overflow.description.contains("2147483648"), "{overflow}");
    }

    #[test]
    fn derived_bid_ids_are_deterministic_and_distinct() {
        let a = BidId::derived("auction", 0, 7);
        assert_eq!(a, BidId::derived("auction", 0, 7));
        assert_ne!(a, BidId::derived("auction", 1, 7));
        assert_ne!(a, BidId::derived("auction", 0, 8));
        assert_ne!(a, BidId::derived("other", 0, 7));
        assert!(BidId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn timestamps_accept_rfc3339_and_the_demo_form() {
        let rfc = BidTimestamp::parse("2026-11-23T10:15:30.5+01:00").unwrap();
        assert_eq!(rfc.to_rfc3339(), "2026-11-23T09:15:30.500000Z");
        let demo = BidTimestamp::parse("2026-11-23 10:15:30.123456").unwrap();
        assert_eq!(demo.to_rfc3339(), "2026-11-23T10:15:30.123456Z");
        let demo_whole = BidTimestamp::parse("2026-11-23 10:15:30").unwrap();
        assert_eq!(demo_whole.to_rfc3339(), "2026-11-23T10:15:30.000000Z");
        assert_eq!(demo.to_demo_form(), "2026-11-23 10:15:30.123456");
        assert_eq!(BidTimestamp::parse(&rfc.to_demo_form()).unwrap(), rfc);
        assert_eq!(
            BidTimestamp::parse("yesterday").unwrap_err().field,
            "bid_ts"
        );
    }

    #[test]
    fn new_bid_reports_every_broken_rule() {
        let input = BidInput {
            auction_id: Some("bad id"),
            name: "",
            price: 0,
        };
        let err = Bid::new(&input, BidId::new_random()).unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["auction_id", "name", "price"]);
    }
}
