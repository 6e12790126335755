//! Kafka clients of the bid service: the idempotent producer that writes bids, the topic set-up at
//! start, and the consumer configuration the log tailer uses.

use std::time::Duration;

use auction_process::kafka_startup::{
    ErrorRecordingContext, check_connection, check_topic, wait_for_metadata,
};
use auction_schemas::Bid;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaProperties;

/// Start-up failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct KafkaSetupError(pub String);

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

/// Sets a property unless the user set it.
fn set_default(config: &mut ClientConfig, name: &str, value: &str) {
    if config.get(name).is_none() {
        config.set(name, value);
    }
}

/// Where an acknowledged record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acknowledged {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A record whose delivery failed.
#[derive(Debug)]
pub(crate) struct Undelivered {
    /// librdkafka's reason.
    pub reason: String,
    /// The partition it was for, when known.
    pub partition: Option<i32>,
    /// The delivery timed out: a produce request may have been in flight, so the record may be
    /// in the log although it was not acknowledged.
    pub possibly_written: bool,
}

/// Why a bid could not be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnqueueError {
    /// The producer's queue is full: the service is overloaded.
    #[error("the producer queue is full")]
    QueueFull,
    /// Any other refusal.
    #[error("the producer refused the bid: {0}")]
    Refused(KafkaError),
}

/// Writes bid events with the idempotent producer (`enable.idempotence=true`, `acks=all`).
#[derive(Clone)]
pub(crate) struct KafkaBidProducer {
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
    pub(crate) fn new(
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
        // Partitions added to the topic are written to within seconds, not librdkafka's 5 min.
        set_default(&mut config, "topic.metadata.refresh.interval.ms", "10000");
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
    pub(crate) fn enqueue(
        &self,
        bid: &Bid,
        payload: &[u8],
    ) -> Result<DeliveryFuture, EnqueueError> {
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
    pub(crate) async fn acknowledged(
        delivery: DeliveryFuture,
    ) -> Result<Acknowledged, Undelivered> {
        match delivery.await {
            Ok(Ok(delivered)) => Ok(Acknowledged {
                partition: delivered.partition,
                offset: delivered.offset,
            }),
            Ok(Err((error, message))) => Err(Undelivered {
                possibly_written: matches!(
                    error,
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
                ),
                partition: Some(message.partition()),
                reason: error.to_string(),
            }),
            Err(_) => Err(Undelivered {
                reason: "the producer was shut down before the record was acknowledged".to_owned(),
                partition: None,
                possibly_written: true,
            }),
        }
    }

    /// The producer's fatal error, if it has had one: it can then deliver nothing more, and the
    /// service must be restarted with a new producer.
    pub(crate) fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{reason} ({code})"))
    }

    /// Sends everything queued, waiting at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.producer.flush(timeout).map_err(|e| e.to_string())
    }
}

/// Creates the topic if it does not exist yet (replication `0`: 3 on three or more brokers, else
/// one per broker; `min.insync.replicas` 2 from replication 3; unclean leader election off),
/// checks that its settings keep the guarantees (refusing it otherwise, unless `allow_unsafe`),
/// and returns its partition count.
pub(crate) async fn ensure_topic(
    properties: &KafkaProperties,
    topic: &str,
    create: bool,
    partitions: i32,
    replication: i32,
    allow_unsafe: bool,
) -> Result<i32, KafkaSetupError> {
    // Start-up is not cancelled by a signal (it is bounded by the connect timeout).
    check_connection(&client_config(properties), &CancellationToken::new())
        .await
        .map_err(KafkaSetupError)?;
    if create {
        let admin: AdminClient<ErrorRecordingContext> = client_config(properties)
            .create_with_context(ErrorRecordingContext::default())
            .map_err(|e| KafkaSetupError(format!("cannot create the Kafka admin client: {e}")))?;
        let context = std::sync::Arc::clone(admin.inner().context());
        // Replication 0 means as the cluster allows: 3 on three or more brokers.
        let replication = if replication > 0 {
            replication
        } else {
            let brokers = wait_for_metadata(
                &client_config(properties),
                &CancellationToken::new(),
                None,
                |metadata| Some(metadata.brokers().len()),
                "the cluster lists no broker".to_owned(),
            )
            .await
            .map_err(KafkaSetupError)?;
            i32::try_from(brokers.clamp(1, 3)).unwrap_or(1)
        };
        let min_insync = if replication >= 3 { "2" } else { "1" };
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
            .set("min.insync.replicas", min_insync)
            .set("unclean.leader.election.enable", "false")
            .set("cleanup.policy", "delete");
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
                Ok(_) => tracing::info!(topic, partitions, replication, "topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(KafkaSetupError(format!(
                        "cannot create topic {topic}: {code}"
                    )));
                }
            }
        }
    }
    let partitions = partition_count(properties, topic).await?;
    check_topic(&client_config(properties), topic, allow_unsafe)
        .await
        .map_err(KafkaSetupError)?;
    Ok(partitions)
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
    wait_for_metadata(
        &client_config(properties),
        &CancellationToken::new(),
        Some(topic.to_owned()),
        partitions,
        missing,
    )
    .await
    .map_err(KafkaSetupError)
}

/// The consumer configuration of the log tailer: no group membership and no commits (every
/// replica reads the whole log itself), short fetch waits for low latency.
pub(crate) fn tailer_config(properties: &KafkaProperties) -> ClientConfig {
    let mut config = client_config(properties);
    config
        .set(
            "group.id",
            format!("bid-service-tailer-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // The tailer learns that it has caught up from the end-of-partition events.
        .set("enable.partition.eof", "true")
        // Records deleted under a reading tailer are an error it reports, never a silent jump
        // to the end of the log.
        .set("auto.offset.reset", "error");
    set_default(&mut config, "fetch.wait.max.ms", "1");
    set_default(&mut config, "fetch.min.bytes", "1");
    config
}
