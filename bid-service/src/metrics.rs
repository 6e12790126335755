//! Metric names of the bid service, served at `/metrics`.

/// Counter: bids answered OK (committed and read back from the log).
pub const BIDS_ACCEPTED: &str = "bid_service_bids_accepted_total";
/// Counter: bids not accepted, by `reason` (`invalid`, `too_low`, `outbid_in_log`, `overloaded`,
/// `kafka_unavailable`, `registry_unavailable`, `no_owner`, `not_in_log`, `not_open`,
/// `already_leading`, `no_such_auction`, `implicit_auctions_cap`,
/// `implicit_auctions_rate`, `client_rate`).
pub const BIDS_REJECTED: &str = "bid_service_bids_rejected_total";
/// Counter: `PlaceBid` calls forwarded to the owner of the auction's partition, by `outcome`.
pub const BIDS_FORWARDED: &str = "bid_service_bids_forwarded_total";
/// Histogram: seconds one transaction's commit took (offsets and `EndTxn`).
pub const COMMIT_SECONDS: &str = "bid_service_commit_seconds";
/// Histogram: bids written per transaction.
pub const BIDS_PER_TRANSACTION: &str = "bid_service_bids_per_transaction";
/// Counter: transactions that did not commit, by `outcome` (`aborted`, `fenced`, `replaced`).
pub const TRANSACTIONS_FAILED: &str = "bid_service_transactions_failed_total";
/// Counter: bids written in a transaction that was aborted (each is written again, or its call
/// answers UNAVAILABLE). Kafka hides an aborted transaction's records from `read_committed`
/// readers; librdkafka's mock cluster does not (it ignores the abort), so there each is in the
/// log once more.
pub const BIDS_IN_ABORTED_TRANSACTIONS: &str = "bid_service_bids_in_aborted_transactions_total";
/// Gauge: partitions of the bid topic this replica owns.
pub const OWNED_PARTITIONS: &str = "bid_service_owned_partitions";
/// Histogram: seconds a takeover took, from assignment to deciding (fencing and restore).
pub const TAKEOVER_SECONDS: &str = "bid_service_takeover_seconds";
/// Counter: records the owners read from the bid log, by `outcome` (`applied`, or why it was
/// skipped).
pub const LOG_RECORDS: &str = "bid_service_log_records_total";
/// Counter: automatic bids that proxy maxima made, by `valid` (whether they counted in the log).
pub const AUTOMATIC_BIDS: &str = "bid_service_automatic_bids_total";
/// Counter: auctions the owners closed at their end.
pub const AUCTIONS_CLOSED: &str = "bid_service_auctions_closed_total";
/// Gauge: auctions this replica keeps in memory (with bids or a definition, or watched by id
/// while someone watches).
pub const AUCTION_ENTRIES: &str = "bid_service_auction_entries";
/// Gauge: open `WatchAuction` subscriptions.
pub const WATCHERS: &str = "bid_service_watchers";
/// Gauge: `PlaceBid` tasks running now (each holds its in-flight slot until its work ends,
/// whatever the client's deadline).
pub const BIDS_IN_FLIGHT: &str = "bid_service_bids_in_flight";
/// Gauge: the most `PlaceBid` tasks that ran at once since the start (at most
/// `BID_SERVICE_MAX_IN_FLIGHT`).
pub const BIDS_IN_FLIGHT_PEAK: &str = "bid_service_bids_in_flight_peak";
/// Gauge: auctions nobody created (opened by a first bid) in the partitions this replica owns,
/// counted against `AUCTION_MAX_IMPLICIT_AUCTIONS`.
pub const IMPLICIT_AUCTIONS: &str = "bid_service_implicit_auctions";
/// Gauge: open `WatchAuction` streams.
pub const WATCH_STREAMS: &str = "bid_service_watch_streams";
/// Counter: `WatchAuction` calls refused, by `reason` (`total`, `per_client`).
pub const WATCH_STREAMS_REFUSED: &str = "bid_service_watch_streams_refused_total";
