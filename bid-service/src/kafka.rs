//! Kafka clients of the bid service: the idempotent producer that writes bids, the topic set-up at
//! start, and the consumer configuration the log tailer uses.

use std::time::Duration;

use auction_schemas::Bid;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaProperties;

/// Start-up failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KafkaSetupError(pub String);

fn client_config(properties: &KafkaProperties) -> ClientConfig {
    let mut config = ClientConfig::new();
    // rdkafka takes librdkafka's log level from the `log` crate, which is silent under `tracing`;
    // warnings carry the reasons of connection failures, so they must come through.
    config.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    for (name, value) in properties.iter() {
        config.set(name, value);
    }
    config
}

/// Remembers the last error librdkafka reported, so that a start-up failure can say why (an
/// untrusted certificate, failed authentication, an unknown host) instead of only timing out.
#[derive(Debug, Default)]
pub struct ErrorRecordingContext {
    last_error: std::sync::Mutex<Option<String>>,
}

impl ErrorRecordingContext {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An error that waiting will not cure: TLS or authentication.
    fn fatal_error(&self) -> Option<String> {
        self.last_error().filter(|e| {
            let e = e.to_ascii_lowercase();
            ["ssl", "certificate", "sasl", "authentication"]
                .iter()
                .any(|word| e.contains(word))
        })
    }

    fn explain(&self, what: &str) -> String {
        match self.last_error() {
            Some(error) => format!("{what}; Kafka said: {error}"),
            None => format!("{what}; is Kafka reachable?"),
        }
    }
}

impl ErrorRecordingContext {
    fn record(&self, message: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_owned());
    }
}

impl ClientContext for ErrorRecordingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
        self.record(reason);
    }

    // librdkafka reports connection failures (TLS handshakes, authentication) through its log,
    // from its own threads; errors reach `error` only when the main queue is polled.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel;
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(facility, message, "Kafka client");
            self.record(message);
        } else {
            tracing::debug!(facility, message, "Kafka client");
        }
    }
}

impl ConsumerContext for ErrorRecordingContext {}

/// Sets a property unless the user set it.
fn set_default(config: &mut ClientConfig, name: &str, value: &str) {
    if config.get(name).is_none() {
        config.set(name, value);
    }
}

/// Where an acknowledged record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// Why a bid could not be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The producer's queue is full: the service is overloaded.
    #[error("the producer queue is full")]
    QueueFull,
    /// Any other refusal.
    #[error("the producer refused the bid: {0}")]
    Refused(KafkaError),
}

/// Writes bid events with the idempotent producer (`enable.idempotence=true`, `acks=all`).
#[derive(Clone)]
pub struct KafkaBidProducer {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for KafkaBidProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBidProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaBidProducer {
    /// A producer for `topic`. `delivery_timeout` bounds how long a record may wait for an
    /// acknowledgement before its delivery fails.
    pub fn new(
        properties: &KafkaProperties,
        topic: &str,
        delivery_timeout: Duration,
    ) -> Result<Self, KafkaSetupError> {
        let mut config = client_config(properties);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                delivery_timeout.as_millis().to_string(),
            );
        set_default(&mut config, "linger.ms", "1");
        set_default(&mut config, "queue.buffering.max.messages", "100000");
        let producer = config
            .create()
            .map_err(|e| KafkaSetupError(format!("cannot create the Kafka producer: {e}")))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Hands the record to the producer without waiting; the future resolves on acknowledgement.
    /// The key is the auction id, so that the bids of one auction keep their order in one partition.
    pub fn enqueue(&self, bid: &Bid, payload: &[u8]) -> Result<DeliveryFuture, EnqueueError> {
        let record = FutureRecord::to(&self.topic)
            .key(bid.auction_id.as_str())
            .payload(payload);
        self.producer
            .send_result(record)
            .map_err(|(error, _)| match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    EnqueueError::QueueFull
                }
                other => EnqueueError::Refused(other),
            })
    }

    /// Waits for an enqueued record's acknowledgement.
    pub async fn acknowledged(delivery: DeliveryFuture) -> Result<Acknowledged, String> {
        match delivery.await {
            Ok(Ok(delivered)) => Ok(Acknowledged {
                partition: delivered.partition,
                offset: delivered.offset,
            }),
            Ok(Err((error, _))) => Err(error.to_string()),
            Err(_) => {
                Err("the producer was shut down before the record was acknowledged".to_owned())
            }
        }
    }

    /// The producer's fatal error, if it has had one: it can then deliver nothing more, and the
    /// service must be restarted with a new producer.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{reason} ({code})"))
    }

    /// Sends everything queued, waiting at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout).map_err(|e| e.to_string())
    }
}

/// Creates the topic if it does not exist yet, and returns its partition count.
pub async fn ensure_topic(
    properties: &KafkaProperties,
    topic: &str,
    create: bool,
    partitions: i32,
    replication: i32,
) -> Result<i32, KafkaSetupError> {
    check_connection(properties).await?;
    if create {
        let admin: AdminClient<ErrorRecordingContext> = client_config(properties)
            .create_with_context(ErrorRecordingContext::default())
            .map_err(|e| KafkaSetupError(format!("cannot create the Kafka admin client: {e}")))?;
        let context = std::sync::Arc::clone(admin.inner().context());
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let create_topics = admin.create_topics([&new_topic], &options);
        tokio::pin!(create_topics);
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        let results = loop {
            tokio::select! {
                results = &mut create_topics => break results,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some(error) = context.fatal_error() {
                        return Err(KafkaSetupError(format!("cannot connect to Kafka: {error}")));
                    }
                }
                () = &mut deadline => {
                    return Err(KafkaSetupError(context.explain(&format!(
                        "creating topic {topic} took more than 30 s (create the topic yourself and set \
                         AUCTION_TOPIC_NO_CREATE=true if this Kafka does not allow creating topics)"
                    ))));
                }
            }
        }
        .map_err(|e| KafkaSetupError(format!("cannot create topic {topic}: {e}")))?;
        for result in results {
            match result {
                Ok(_) => tracing::info!(topic, partitions, "topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(KafkaSetupError(format!(
                        "cannot create topic {topic}: {code}"
                    )));
                }
            }
        }
    }
    partition_count(properties, topic).await
}

/// Connects to the cluster once, so that an unreachable broker, an untrusted certificate or failed
/// authentication is reported at start with librdkafka's reason.
async fn check_connection(properties: &KafkaProperties) -> Result<(), KafkaSetupError> {
    wait_for_metadata(
        properties,
        None,
        |_| Some(()),
        "cannot reach Kafka within 30 s".to_owned(),
    )
    .await
}

async fn partition_count(
    properties: &KafkaProperties,
    topic: &str,
) -> Result<i32, KafkaSetupError> {
    let name = topic.to_owned();
    let partitions = move |metadata: &rdkafka::metadata::Metadata| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
    };
    let missing = format!("topic {topic} does not exist (create it, or let the service create it)");
    wait_for_metadata(properties, Some(topic.to_owned()), partitions, missing).await
}

/// Asks the cluster for metadata (of one topic, or of the cluster) until `pick` finds what it
/// needs, for at most 30 s. Stops early, with librdkafka's reason, on an error that waiting will
/// not cure (TLS, authentication); says `missing` when the cluster answers without it.
async fn wait_for_metadata<T: Send + 'static>(
    properties: &KafkaProperties,
    topic: Option<String>,
    pick: impl Fn(&rdkafka::metadata::Metadata) -> Option<T> + Send + 'static,
    missing: String,
) -> Result<T, KafkaSetupError> {
    let consumer = metadata_consumer(properties)?;
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let outcome = consumer.fetch_metadata(topic.as_deref(), Duration::from_secs(1));
            if let Some(found) = outcome.as_ref().ok().and_then(&pick) {
                return Ok(found);
            }
            // Polling delivers librdkafka's logs and errors to the context (and paces the loop).
            let _ = consumer.poll(Duration::from_millis(200));
            if let Some(error) = consumer.context().fatal_error() {
                return Err(KafkaSetupError(format!("cannot connect to Kafka: {error}")));
            }
            if std::time::Instant::now() > deadline {
                return Err(KafkaSetupError(match outcome {
                    Err(e) => consumer.context().explain(&format!("{missing}: {e}")),
                    Ok(_) => missing,
                }));
            }
        }
    })
    .await
    .map_err(|e| KafkaSetupError(format!("the metadata task failed: {e}")))?
}

fn metadata_consumer(
    properties: &KafkaProperties,
) -> Result<BaseConsumer<ErrorRecordingContext>, KafkaSetupError> {
    client_config(properties)
        .set("group.id", "bid-service-metadata")
        .create_with_context(ErrorRecordingContext::default())
        .map_err(|e| KafkaSetupError(format!("cannot create a Kafka consumer: {e}")))
}

/// The consumer configuration of the log tailer: no group membership and no commits (every
/// replica reads the whole log itself), short fetch waits for low latency.
pub fn tailer_config(properties: &KafkaProperties) -> ClientConfig {
    let mut config = client_config(properties);
    config
        .set(
            "group.id",
            format!("bid-service-tailer-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // The tailer learns that it has caught up from the end-of-partition events.
        .set("enable.partition.eof", "true");
    set_default(&mut config, "fetch.wait.max.ms", "1");
    set_default(&mut config, "fetch.min.bytes", "1");
    config
}
