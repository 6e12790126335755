//! Metric names. Every metric carries a `sink` label (`mysql`, `csv`, `odbc`).

/// Histogram: records per batch.
pub const BATCH_RECORDS: &str = "sink_batch_records";
/// Histogram: seconds to write a batch, retries included.
pub const WRITE_SECONDS: &str = "sink_write_seconds";
/// Counter: records written as new.
pub const RECORDS_WRITTEN: &str = "sink_records_written_total";
/// Counter: records the target already had (redeliveries), left unchanged.
pub const RECORDS_DUPLICATE: &str = "sink_records_duplicate_total";
/// Counter: failed write attempts that were retried.
pub const WRITE_RETRIES: &str = "sink_write_retries_total";
/// Counter: records sent to the dead-letter topic, by `reason`.
pub const DEAD_LETTERS: &str = "sink_dead_letters_total";
/// Gauge: records behind the end of each partition (`topic`, `partition` labels), from the
/// consumer's statistics every 5 s.
pub const CONSUMER_LAG: &str = "sink_consumer_lag";
/// Gauge: 1 while the sink is ready, 0 while it retries a failing dependency.
pub const READY: &str = "sink_ready";
/// Gauge: 1 while a batch in hand has waited longer than `SINK_STUCK_AFTER_MS`, else 0.
pub const STUCK: &str = "sink_stuck";
/// Gauge: the schema id the sink waits for the registry to know (0: none).
pub const WAITING_FOR_SCHEMA_ID: &str = "sink_waiting_for_schema_id";
