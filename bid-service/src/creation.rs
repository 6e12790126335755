//! Reading a `CreateAuctionRequest` into an auction's [`Definition`], every field's violation
//! reported at once (INVALID_ARGUMENT with `google.rpc.BadRequest`).

use auction_proto::v1::CreateAuctionRequest;
use auction_schemas::{AuctionId, BidderName, FieldViolation};
use chrono::{DateTime, Utc};

use crate::auction::BidRules;
use crate::lifecycle::{Definition, IncrementTable};

/// The longest title.
const TITLE_CHARS: usize = 200;
/// The longest description.
const DESCRIPTION_CHARS: usize = 5_000;
/// How far ahead an auction may end.
const LONGEST_AHEAD: chrono::Duration = chrono::Duration::days(366);
/// The longest soft-close window or extension.
const LONGEST_WINDOW: chrono::Duration = chrono::Duration::days(1);

fn violation(field: &'static str, description: impl Into<String>) -> FieldViolation {
    FieldViolation {
        field,
        description: description.into(),
    }
}

fn time(raw: Option<&prost_types::Timestamp>) -> Option<Option<DateTime<Utc>>> {
    match raw {
        None => Some(None),
        Some(t) => DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?).map(Some),
    }
}

fn span(raw: Option<&prost_types::Duration>) -> Option<chrono::Duration> {
    match raw {
        None => Some(chrono::Duration::zero()),
        Some(d) if d.seconds < 0 || d.nanos < 0 => None,
        Some(d) => chrono::Duration::try_seconds(d.seconds)?
            .checked_add(&chrono::Duration::nanoseconds(i64::from(d.nanos))),
    }
}

/// The auction id and definition that `request` asks for (its seller key hash left empty), at
/// `now`; `rules` give the default increment.
pub(crate) fn definition(
    request: &CreateAuctionRequest,
    rules: &BidRules,
    now: DateTime<Utc>,
) -> Result<(AuctionId, Definition), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let auction = AuctionId::parse(request.auction_id.trim()).map_err(|v| violations.push(v));
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > TITLE_CHARS {
        violations.push(violation(
            "title",
            format!("must be 1 to {TITLE_CHARS} characters after trimming"),
        ));
    } else if title.chars().any(char::is_control) {
        violations.push(violation("title", "must not contain control characters"));
    }
    if request.description.chars().count() > DESCRIPTION_CHARS {
        violations.push(violation(
            "description",
            format!("must be at most {DESCRIPTION_CHARS} characters"),
        ));
    }
    let seller = BidderName::parse(&request.seller).map_err(|v| {
        violations.push(violation("seller", v.description));
    });
    let price_range = 1..=i64::from(i32::MAX);
    if !price_range.contains(&request.starting_price) {
        violations.push(violation(
            "starting_price",
            format!(
                "must be a whole number from 1 to 2147483647; got {}",
                request.starting_price
            ),
        ));
    }
    let reserve_price = match request.reserve_price {
        0 => None,
        r if r < request.starting_price || r > i64::from(i32::MAX) => {
            violations.push(violation(
                "reserve_price",
                format!("must be 0 (none) or from the starting price to 2147483647; got {r}"),
            ));
            None
        }
        r => Some(r),
    };
    let increments = if request.increments.is_empty() {
        match request.fixed_increment {
            0 => Ok(IncrementTable::fixed(i64::from(rules.min_increment))),
            i if (1..=1_000_000_000).contains(&i) => Ok(IncrementTable::fixed(i)),
            i => Err(violation(
                "fixed_increment",
                format!("must be 0 (the service's default) or 1 to 1000000000; got {i}"),
            )),
        }
    } else {
        IncrementTable::new(
            request
                .increments
                .iter()
                .map(|b| (b.from_price, b.increment))
                .collect(),
        )
        .map_err(|e| violation("increments", format!("the increment table {e}")))
    }
    .map_err(|v| violations.push(v));
    let start = match time(request.start_time.as_ref()) {
        Some(start) => start.unwrap_or(now),
        None => {
            violations.push(violation("start_time", "is not a valid time"));
            now
        }
    };
    let end = match time(request.end_time.as_ref()) {
        Some(Some(end)) if end <= start => {
            violations.push(violation("end_time", "must be after the start time"));
            None
        }
        Some(Some(end)) if end <= now => {
            violations.push(violation("end_time", "must be in the future"));
            None
        }
        Some(Some(end)) if end > now + LONGEST_AHEAD => {
            violations.push(violation("end_time", "must be at most 366 days ahead"));
            None
        }
        Some(Some(end)) => Some(end),
        Some(None) => {
            violations.push(violation("end_time", "is required"));
            None
        }
        None => {
            violations.push(violation("end_time", "is not a valid time"));
            None
        }
    };
    let window = span(request.soft_close_window.as_ref())
        .filter(|w| *w <= LONGEST_WINDOW)
        .ok_or_else(|| {
            violations.push(violation(
                "soft_close_window",
                "must be from 0 (no soft close) to one day",
            ));
        });
    let extension = match span(request.extension.as_ref()) {
        Some(zero) if zero == chrono::Duration::zero() => window.ok(),
        Some(given) if given <= LONGEST_WINDOW => Some(given),
        _ => None,
    }
    .ok_or_else(|| {
        violations.push(violation(
            "extension",
            "must be at most one day (absent or zero: the window itself)",
        ));
    });
    match (auction, seller, increments, end, window, extension) {
        (Ok(auction), Ok(seller), Ok(increments), Some(end), Ok(window), Ok(extension))
            if violations.is_empty() =>
        {
            Ok((
                auction,
                Definition {
                    title: title.to_owned(),
                    description: request.description.clone(),
                    seller: seller.to_string(),
                    starting_price: request.starting_price,
                    reserve_price,
                    increments,
                    start,
                    end,
                    soft_close_window: window,
                    extension,
                    seller_key_sha256: String::new(),
                },
            ))
        }
        _ => Err(violations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_proto::v1::IncrementBand;

    const RULES: BidRules = BidRules {
        min_increment: 1,
        starting_price: 1,
        recent_limit: 5,
    };

    fn stamp(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: 0,
        })
    }

    #[test]
    fn a_complete_request_becomes_a_definition() {
        let now = Utc::now();
        let request = CreateAuctionRequest {
            auction_id: "lamp-1".into(),
            title: " A lamp ".into(),
            seller: "sam".into(),
            starting_price: 10,
            reserve_price: 50,
            increments: vec![
                IncrementBand {
                    from_price: 0,
                    increment: 1,
                },
                IncrementBand {
                    from_price: 100,
                    increment: 5,
                },
            ],
            end_time: stamp(now + chrono::Duration::seconds(30)),
            soft_close_window: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..Default::default()
        };
        let (id, definition) = definition(&request, &RULES, now).unwrap();
        assert_eq!(id.as_str(), "lamp-1");
        assert_eq!(definition.title, "A lamp");
        assert_eq!(definition.reserve_price, Some(50));
        assert_eq!(definition.increments.at(150), 5);
        assert_eq!(definition.start, now);
        assert_eq!(
            definition.extension,
            chrono::Duration::seconds(2),
            "the window by default"
        );
    }

    #[test]
    fn every_wrong_field_is_named_at_once() {
        let now = Utc::now();
        let request = CreateAuctionRequest {
            auction_id: "no spaces".into(),
            title: String::new(),
            seller: "\u{7}".into(),
            starting_price: 0,
            reserve_price: -1,
            fixed_increment: -3,
            end_time: stamp(now - chrono::Duration::seconds(1)),
            ..Default::default()
        };
        let fields: Vec<&str> = definition(&request, &RULES, now)
            .unwrap_err()
            .iter()
            .map(|v| v.field)
            .collect();
        for field in [
            "auction_id",
            "title",
            "seller",
            "starting_price",
            "reserve_price",
            "fixed_increment",
            "end_time",
        ] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
    }
}
