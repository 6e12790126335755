//! Process plumbing shared by every binary of the product, so each concern exists once:
//!
//! - [`logging`]: logs to stderr, text or JSON lines, filtered by `RUST_LOG`;
//! - [`ops`]: the `/healthz`, `/readyz`, `/metrics` endpoints, readiness and the process-wide
//!   Prometheus recorder;
//! - [`signals`]: a cancellation token cancelled by SIGINT or SIGTERM;
//! - [`KafkaProperties`]: librdkafka properties from `KAFKA_*` variables and `--kafka-property`
//!   flags, with one rule for which values are secret;
//! - [`Secret`]: a string that never prints its value;
//! - [`Backoff`]: the one retry delay policy (capped exponential, with jitter);
//! - [`StartError`]: what every component's start function returns, and [`exit_with`]: how
//!   every binary reports it;
//! - [`kafka_startup`] (feature `kafka`): connecting to Kafka at start with librdkafka's reason
//!   on failure, and the check of the bid topic's settings.
//!
//! It must not know about bids, auctions or any one component.

mod backoff;
mod exit;
mod kafka_properties;
#[cfg(feature = "kafka")]
pub mod kafka_startup;
pub mod logging;
pub mod ops;
mod secret;
pub mod signals;
mod start_error;

pub use backoff::Backoff;
pub use exit::exit_with;
pub use kafka_properties::{KafkaArgs, KafkaProperties, is_secret_property, parse_property};
pub use logging::init_logging;
pub use ops::{Readiness, metric_sum, metric_sum_in, metrics_handle, ops_router, spawn_ops_server};
pub use secret::Secret;
pub use signals::shutdown_on_signal;
pub use start_error::StartError;
