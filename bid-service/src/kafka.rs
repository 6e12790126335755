//! Kafka clients of the bid service: the idempotent producer that writes bids, the topic set-up at
//! start, and the consumer configuration the log tailer uses.

use std::time::Duration;

use auction_schemas::Bid;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaProperties;

/// Start-up failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KafkaSetupError(pub String);

fn client_config(properties: &KafkaProperties) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in properties.iter() {
        config.set(name, value);
    }
    config
}

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
    if create {
        let admin: AdminClient<DefaultClientContext> = client_config(properties)
            .create()
            .map_err(|e| KafkaSetupError(format!("cannot create the Kafka admin client: {e}")))?;
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = tokio::time::timeout(
            Duration::from_secs(30),
            admin.create_topics([&new_topic], &options),
        )
        .await
        .map_err(|_| {
            KafkaSetupError(format!(
                "creating topic {topic} took more than 30 s; is Kafka reachable?"
            ))
        })?
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

async fn partition_count(
    properties: &KafkaProperties,
    topic: &str,
) -> Result<i32, KafkaSetupError> {
    let consumer = metadata_consumer(properties)?;
    let topic_name = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let outcome = consumer.fetch_metadata(Some(&topic_name), Duration::from_secs(5));
            if let Ok(metadata) = &outcome
                && let Some(found) = metadata.topics().iter().find(|t| t.name() == topic_name)
                && found.error().is_none()
                && !found.partitions().is_empty()
            {
                return Ok(i32::try_from(found.partitions().len()).unwrap_or(i32::MAX));
            }
            if std::time::Instant::now() > deadline {
                return Err(KafkaSetupError(match outcome {
                    Err(e) => format!("cannot read the metadata of topic {topic_name}: {e}; is Kafka reachable?"),
                    Ok(_) => format!("topic {topic_name} does not exist (create it, or let the service create it)"),
                }));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .map_err(|e| KafkaSetupError(format!("the metadata task failed: {e}")))?
}

fn metadata_consumer(properties: &KafkaProperties) -> Result<BaseConsumer, KafkaSetupError> {
    client_config(properties)
        .set("group.id", "bid-service-metadata")
        .create()
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
        .set("enable.auto.offset.store", "false");
    set_default(&mut config, "fetch.wait.max.ms", "10");
    set_default(&mut config, "fetch.min.bytes", "1");
    config
}
