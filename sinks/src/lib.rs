//! The bid sinks: Kafka topic `auction` into MySQL or SQLite, a CSV file, and any ODBC data
//! source (Hive), each bid exactly once.
//!
//! - [`runtime`]: the one consumer loop every sink runs (batching, decoding through the schema
//!   registry, retries with backoff, dead letters, offsets stored only after a durable write,
//!   synchronous commits on revocation and shutdown).
//! - [`kafka`]: the group consumer with its rebalance hooks, and the dead-letter producer.
//! - [`target`]: the [`target::Target`] trait and its implementations: [`target::sql`] (SeaORM,
//!   MySQL and SQLite), [`target::csv_file`], [`target::odbc`].
//! - [`retry`]: capped exponential backoff with jitter.
//! - [`metrics`]: metric names.
//! - [`config`]: the command line and environment of the `auction-sink` binary.
//!
//! The invariant all of this serves: a bid read from Kafka ends up in the target exactly once.
//! Offsets move only past records that are durably written or acknowledged as dead letters, and
//! every target's write is idempotent, keyed by `bid_id` (the CSV file by its offsets checkpoint).

pub mod config;
pub mod kafka;
pub mod metrics;
pub mod retry;
pub mod runtime;
pub mod target;

pub use kafka::{KafkaSettings, RawRecord};
pub use runtime::{RunSummary, RuntimeSettings, SinkError, run};
pub use target::{SinkRecord, SourcePosition, Target, WriteOutcome};
