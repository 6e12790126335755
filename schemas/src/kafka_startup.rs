//! Connecting to Kafka at start (feature `kafka`): a metadata round trip that fails fast with
//! librdkafka's own reason (an untrusted certificate, failed SASL authentication, a mechanism the
//! broker does not offer, an unreachable host) instead of retrying forever. The bid service and
//! every sink call it before they serve, so that a wrong setting stops the process at start with
//! a sentence saying why; the settings' secrets never appear in that sentence (librdkafka does
//! not print them, and the reason is all that is reported).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

/// How long start-up waits for the cluster before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Remembers the last error librdkafka reported, so that a start-up failure can say why instead
/// of only timing out.
#[derive(Debug, Default)]
pub struct ErrorRecordingContext {
    last_error: Mutex<Option<String>>,
}

impl ErrorRecordingContext {
    /// The last error librdkafka reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An error that waiting will not cure: TLS or authentication.
    pub fn fatal_error(&self) -> Option<String> {
        self.last_error().filter(|e| {
            let e = e.to_ascii_lowercase();
            ["ssl", "certificate", "sasl", "authentication"]
                .iter()
                .any(|word| e.contains(word))
        })
    }

    /// `what`, with librdkafka's last error as the reason.
    pub fn explain(&self, what: &str) -> String {
        match self.last_error() {
            Some(error) => format!("{what}; Kafka said: {error}"),
            None => format!("{what}; is Kafka reachable?"),
        }
    }

    fn record(&self, message: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
    }
}

impl ClientContext for ErrorRecordingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
        self.record(reason);
    }

    // librdkafka reports connection failures (TLS handshakes, authentication) through its log,
    // from its own threads; errors reach `error` only when the main queue is polled.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(facility, message, "Kafka client");
            self.record(message);
        } else {
            tracing::debug!(facility, message, "Kafka client");
        }
    }
}

impl ConsumerContext for ErrorRecordingContext {}

/// Connects to the cluster of `config` once; an unreachable broker, an untrusted certificate,
/// failed authentication or a SASL mechanism the broker does not offer is an error with
/// librdkafka's reason. Gives up (with an error) as soon as `stop` is cancelled.
pub async fn check_connection(
    config: &ClientConfig,
    stop: &CancellationToken,
) -> Result<(), String> {
    wait_for_metadata(
        config,
        stop,
        None,
        |_| Some(()),
        format!("cannot reach Kafka within {} s", CONNECT_TIMEOUT.as_secs()),
    )
    .await
}

/// Asks the cluster for metadata (of one topic, or of the cluster) until `pick` finds what it
/// needs, for at most [`CONNECT_TIMEOUT`]. Stops early, with librdkafka's reason, on an error
/// that waiting will not cure (TLS, authentication), or when `stop` is cancelled; says `missing`
/// when the cluster answers without what `pick` looks for.
pub async fn wait_for_metadata<T: Send + 'static>(
    config: &ClientConfig,
    stop: &CancellationToken,
    topic: Option<String>,
    pick: impl Fn(&rdkafka::metadata::Metadata) -> Option<T> + Send + 'static,
    missing: String,
) -> Result<T, String> {
    let mut config = config.clone();
    config.set_log_level(RDKafkaLogLevel::Warning);
    if config.get("group.id").is_none() {
        config.set("group.id", "auction-metadata");
    }
    let consumer: BaseConsumer<ErrorRecordingContext> = config
        .create_with_context(ErrorRecordingContext::default())
        .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
    // The blocking task must end on `stop`: a runtime waits for its blocking tasks before the
    // process can exit.
    let stop = stop.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if stop.is_cancelled() {
                return Err("stopped while connecting to Kafka".to_owned());
            }
            let outcome = consumer.fetch_metadata(topic.as_deref(), Duration::from_secs(1));
            if let Some(found) = outcome.as_ref().ok().and_then(&pick) {
                return Ok(found);
            }
            // Polling delivers librdkafka's logs and errors to the context (and paces the loop).
            let _ = consumer.poll(Duration::from_millis(200));
            if let Some(error) = consumer.context().fatal_error() {
                return Err(format!("cannot connect to Kafka: {error}"));
            }
            if Instant::now() > deadline {
                return Err(match outcome {
                    Err(e) => consumer.context().explain(&format!("{missing}: {e}")),
                    Ok(_) => missing,
                });
            }
        }
    })
    .await
    .map_err(|e| format!("the metadata task failed: {e}"))?
}
