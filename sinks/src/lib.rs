//! The bid sinks: Kafka topic `auction` into MySQL or SQLite, a CSV file, and any ODBC data
//! source (Hive), each bid exactly once.
//!
//! - `start`: the one way to start a sink, [`SinkSettings`] in, [`RunningSink`] out.
//! - `runtime`: the one consumer loop every sink runs (batching, decoding through the schema
//!   registry, retries with backoff, dead letters, offsets stored only after a durable write,
//!   synchronous commits on revocation and shutdown).
//! - `kafka`: the group consumer with its rebalance hooks, the dead-letter producer (headers
//!   bounded), and the check that the dead-letter topic exists (created when allowed).
//! - `health`: readiness and why the sink is not ready (the registry, the target, the
//!   dead-letter topic, or a batch stuck past `SINK_STUCK_AFTER_MS`).
//! - `starting`: where the group starts on partitions it has never committed (the beginning,
//!   the demo's consumer group's offsets, or offsets given by hand), and the refusal to start
//!   at the beginning over the demo's rows.
//! - [`destination`]: the [`Destination`] trait and its implementations:
//!   [`destination::sql`] (SeaORM, MySQL and SQLite, by the URL's scheme),
//!   [`destination::csv_file`], [`destination::odbc`].
//! - [`metrics`]: metric names.
//! - [`config`]: the command line and environment of the `auction-sink` binary.
//!
//! The invariant all of this serves: a bid read from Kafka ends up in the destination exactly
//! once. Offsets move only past records that are durably written or acknowledged as dead
//! letters, and every destination's write is idempotent, keyed by `bid_id` (the CSV file by its
//! offsets checkpoint).

pub mod config;
pub mod destination;
mod health;
mod kafka;
pub mod metrics;
mod runtime;
mod start;
mod starting;

pub use destination::{Destination, SinkRecord, SourcePosition, WriteOutcome};
pub use health::{Progress, RunSummary};
pub use kafka::{
    KafkaSettings, MAX_COPIED_HEADER_BYTES, MAX_COPIED_HEADERS, MAX_ERROR_MESSAGE_BYTES, RawRecord,
    dead_letter_headers,
};
pub use runtime::{RuntimeSettings, SinkError, run};
pub use start::{DestinationSettings, RunningSink, SinkSettings, spawn};
pub use starting::StartFrom;
