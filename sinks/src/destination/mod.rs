//! What a sink writes to. A target implements only "write this batch, idempotently, keyed by
//! `bid_id`" and "is this error worth retrying"; the runtime owns everything else. Targets that
//! export closed auctions' results also write those, idempotently by auction id.

pub mod csv_file;
mod demo_csv;
pub mod odbc;
pub mod results_csv;
pub mod results_sql;
pub mod sql;

use std::future::Future;

use auction_schemas::Bid;
use auction_schemas::result::AuctionResult;

/// Where a record was read from, owned (the runtime keeps records across awaits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourcePosition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// One decoded bid and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// The bid, valid by construction.
    pub bid: Bid,
    /// Its position in the log (written beside the bid, and used by the CSV checkpoint).
    pub position: SourcePosition,
}

/// One closed auction's result and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRecord {
    /// How the auction ended.
    pub result: AuctionResult,
    /// Its position in the results topic.
    pub position: SourcePosition,
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Records that are new in the target.
    pub written: usize,
    /// Records the target already had (a redelivery): left as they were.
    pub duplicates: usize,
}

impl WriteOutcome {
    /// Adds another outcome to this one.
    pub fn add(&mut self, other: WriteOutcome) {
        self.written += other.written;
        self.duplicates += other.duplicates;
    }
}

/// A destination for bids.
///
/// `write` must be idempotent by `bid_id`: writing a batch that was (partly) written before adds
/// only what is missing. When it returns `Ok`, the batch is durable (committed, fsynced): the
/// runtime stores the Kafka offsets right after.
pub trait Destination: Send + Sync + 'static {
    /// Why a write failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The sink kind, for metrics, logs and dead-letter headers (`mysql`, `sqlite`, `csv`, `odbc`).
    fn kind(&self) -> &'static str;

    /// Writes `batch` durably. An empty batch is a no-op.
    fn write(
        &mut self,
        batch: &[SinkRecord],
    ) -> impl Future<Output = Result<WriteOutcome, Self::Error>> + Send;

    /// True when the same write may succeed later (the database is down, a lock timed out);
    /// false when the records themselves are at fault, so retrying can never help.
    fn is_retriable(&self, error: &Self::Error) -> bool;

    /// How many rows the target holds that no sink wrote (the original demo's, kept by the
    /// upgrade of its table or file): a consumer group that has never read the topic must not
    /// start at its beginning over them. Asked once at start, before any write.
    fn rows_from_elsewhere(&mut self) -> impl Future<Output = Result<u64, Self::Error>> + Send {
        async { Ok(0) }
    }

    /// Whether the target exports closed auctions' results (the runtime then reads the results
    /// topic too).
    fn takes_results(&self) -> bool {
        false
    }

    /// Writes closed auctions' results durably, idempotent by auction id.
    fn write_results(
        &mut self,
        results: &[ResultRecord],
    ) -> impl Future<Output = Result<WriteOutcome, Self::Error>> + Send {
        let outcome = WriteOutcome {
            written: 0,
            duplicates: results.len(),
        };
        async move { Ok(outcome) }
    }
}
