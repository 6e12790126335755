//! Metric names of the bid service, served at `/metrics`.

/// Counter: bids answered OK (read back from the log).
pub const BIDS_ACCEPTED: &str = "bid_service_bids_accepted_total";
/// Counter: bids not accepted, by `reason` (`invalid`, `too_low`, `overloaded`,
/// `kafka_unavailable`, `registry_unavailable`, `not_readable`).
pub const BIDS_REJECTED: &str = "bid_service_bids_rejected_total";
/// Histogram: seconds from handing a bid to the producer to Kafka's acknowledgement.
pub const PRODUCE_SECONDS: &str = "bid_service_produce_seconds";
/// Histogram: seconds from Kafka's acknowledgement to the tailer reading the bid back.
pub const APPLY_WAIT_SECONDS: &str = "bid_service_apply_wait_seconds";
/// Counter: records the tailer read from the log, by `outcome` (`applied`, or why it was skipped).
pub const LOG_RECORDS: &str = "bid_service_log_records_total";
