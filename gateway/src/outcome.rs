//! What a `PlaceBid` call's answer means for the person who filled in the form, in sentences.

use auction_proto::error_details::{BID_TOO_LOW, CURRENT_HIGHEST, MINIMUM_NEXT_BID};
use auction_proto::v1::PlaceBidResponse;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// How a bid ended, for the message on the page and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BidOutcome {
    /// The bid is in the log.
    Accepted {
        /// The sentence to show.
        message: String,
    },
    /// The price does not beat the current highest bid.
    TooLow {
        /// The sentence to show; it names the minimum next bid.
        message: String,
    },
    /// A field is not acceptable.
    Invalid {
        /// The sentence to show; it names each field and why.
        message: String,
    },
    /// The bid service cannot take bids now; the same request may be submitted again.
    Unavailable {
        /// The sentence to show.
        message: String,
    },
}

impl BidOutcome {
    /// The label of the outcome in metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::TooLow { .. } => "too_low",
            Self::Invalid { .. } => "invalid",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    /// The sentence to show (the page's template reads the variant's field).
    #[cfg(test)]
    fn message(&self) -> &str {
        match self {
            Self::Accepted { message }
            | Self::TooLow { message }
            | Self::Invalid { message }
            | Self::Unavailable { message } => message,
        }
    }

    /// The outcome of an accepted call.
    pub(crate) fn accepted(response: &PlaceBidResponse) -> Self {
        let message = match &response.bid {
            Some(bid) if response.replayed => format!(
                "This bid was already accepted: {} bid {} and nothing was placed twice.",
                bid.name, bid.price
            ),
            Some(bid) if response.outbid => format!(
                "Your bid of {} was placed, but another bidder's earlier maximum covers it: \
                 an automatic bid for them outbid it at once.",
                bid.price
            ),
            Some(bid) => format!("Bid accepted: {} bid {}.", bid.name, bid.price),
            None => "Bid accepted.".to_owned(),
        };
        Self::Accepted { message }
    }

    /// The outcome of a price the user typed that is not a whole number.
    pub(crate) fn maximum_not_a_number() -> Self {
        Self::Invalid {
            message:
                "The bid was not placed: the maximum must be a whole number, such as 300, or empty."
                    .to_owned(),
        }
    }

    pub(crate) fn price_not_a_number() -> Self {
        Self::Invalid {
            message: "The bid was not placed: the price must be a whole number, such as 125."
                .to_owned(),
        }
    }

    /// The outcome of a failed call.
    pub(crate) fn from_status(status: &Status) -> Self {
        match status.code() {
            Code::InvalidArgument => Self::Invalid {
                message: invalid_message(status),
            },
            Code::FailedPrecondition
                if status
                    .get_details_error_info()
                    .is_some_and(|info| info.reason != BID_TOO_LOW) =>
            {
                Self::TooLow {
                    message: format!(
                        "The bid was not placed: {}.",
                        status
                            .message()
                            .trim_start_matches("the bid was refused: ")
                            .trim_end_matches('.')
                    ),
                }
            }
            Code::FailedPrecondition => Self::TooLow {
                message: too_low_message(status),
            },
            Code::NotFound => Self::Invalid {
                message: format!(
                    "The bid was not placed: {}.",
                    status.message().trim_end_matches('.')
                ),
            },
            Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted => Self::Unavailable {
                message: "The bid service is unavailable right now, so your bid was not placed. \
                          What you typed is kept: submit again to retry."
                    .to_owned(),
            },
            _ => {
                // Anything else is a fault on our side; the details go to the log, not the page.
                tracing::warn!(code = ?status.code(), message = status.message(), "PlaceBid failed");
                Self::Unavailable {
                    message: "The bid could not be placed because of an unexpected error on our \
                              side. What you typed is kept: submit again to retry."
                        .to_owned(),
                }
            }
        }
    }
}

fn field_label(field: &str) -> String {
    match field {
        "name" => "your name".to_owned(),
        "price" => "the price".to_owned(),
        "auction_id" => "the auction id".to_owned(),
        other => other.replace('_', " "),
    }
}

fn invalid_message(status: &Status) -> String {
    let reasons: Vec<String> = status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| format!("{} {}", field_label(&v.field), v.description))
                .collect()
        })
        .unwrap_or_default();
    if reasons.is_empty() {
        format!(
            "The bid was not placed: {}.",
            status.message().trim_end_matches('.')
        )
    } else {
        format!("The bid was not placed: {}.", reasons.join("; "))
    }
}

fn too_low_message(status: &Status) -> String {
    let info = status.get_details_error_info();
    let metadata = info.as_ref().map(|i| &i.metadata);
    let minimum = metadata.and_then(|m| m.get(MINIMUM_NEXT_BID));
    let highest = metadata.and_then(|m| m.get(CURRENT_HIGHEST));
    match (minimum, highest) {
        (Some(minimum), Some(highest)) => format!(
            "Your bid is too low: the current highest bid is {highest}, so the minimum next bid is {minimum}."
        ),
        (Some(minimum), None) => format!(
            "Your bid is too low: the auction has no bid yet and starts at {minimum}, so the minimum next bid is {minimum}."
        ),
        _ => format!(
            "Your bid is too low: {}.",
            status.message().trim_end_matches('.')
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    #[test]
    fn too_low_names_the_minimum_next_bid() {
        let mut metadata = HashMap::new();
        metadata.insert(MINIMUM_NEXT_BID.to_owned(), "51".to_owned());
        metadata.insert(CURRENT_HIGHEST.to_owned(), "50".to_owned());
        let status = Status::with_error_details(
            Code::FailedPrecondition,
            "too low",
            ErrorDetails::with_error_info(
                auction_proto::error_details::BID_TOO_LOW,
                auction_proto::error_details::DOMAIN,
                metadata,
            ),
        );
        let outcome = BidOutcome::from_status(&status);
        assert_eq!(outcome.label(), "too_low");
        assert!(
            outcome.message().contains("minimum next bid is 51"),
            "{outcome:?}"
        );
        assert!(
            outcome.message().contains("highest bid is 50"),
            "{outcome:?}"
        );
    }

    #[test]
    fn invalid_names_each_field_and_why() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid bid",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("name", "must not be empty"),
                FieldViolation::new("price", "must be at least 1"),
            ]),
        );
        let outcome = BidOutcome::from_status(&status);
        assert_eq!(
            outcome.message(),
            "The bid was not placed: your name must not be empty; the price must be at least 1."
        );
    }

    #[test]
    fn unexpected_codes_do_not_leak_details() {
        let outcome = BidOutcome::from_status(&Status::internal("panic at src/x.rs:1"));
        assert_eq!(outcome.label(), "unavailable");
        assert!(!outcome.message().contains("src/x.rs"));
    }
}
