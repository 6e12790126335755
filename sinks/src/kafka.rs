//! Kafka clients of a sink: the group consumer (with its rebalance hooks and lag gauges) and the
//! dead-letter producer.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use auction_process::KafkaProperties;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;

use crate::metrics as m;

/// How to reach Kafka and which names to use.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// librdkafka properties (at least `bootstrap.servers`: `security.protocol`, `sasl.password`,
    /// ...), applied to the consumer and the dead-letter producer after the sink's own defaults,
    /// so they can override them. Secret values never print.
    pub properties: KafkaProperties,
    /// The topic of bid events.
    pub topic: String,
    /// The consumer group; one per sink kind, shared by the instances of that kind.
    pub group_id: String,
    /// Where records that can never be written go.
    pub dead_letter_topic: String,
    /// Run on a bid topic whose settings break the guarantees, with a warning instead of refusing.
    pub allow_unsafe_topic: bool,
}

impl KafkaSettings {
    /// Settings with the product's defaults for `kind`: topic `auction`, group
    /// `auction-sink-<kind>`, dead letters to `auction.dlq`.
    pub fn new(properties: KafkaProperties, kind: &str) -> Self {
        Self {
            properties,
            topic: "auction".to_owned(),
            group_id: format!("auction-sink-{kind}"),
            dead_letter_topic: "auction.dlq".to_owned(),
            allow_unsafe_topic: false,
        }
    }

    /// `bootstrap.servers`, for logs.
    pub fn bootstrap_servers(&self) -> &str {
        self.properties.get("bootstrap.servers").unwrap_or_default()
    }

    fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set_log_level(RDKafkaLogLevel::Warning);
        config
    }

    fn apply_properties(&self, config: &mut ClientConfig) {
        for (key, value) in self.properties.iter() {
            config.set(key, value);
        }
    }

    /// The consumer's configuration: offsets are stored by the runtime only after a batch is
    /// durable (`enable.auto.offset.store=false`) and committed in the background from that store.
    pub(crate) fn consumer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("group.id", &self.group_id)
            .set("client.id", client_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            // A sink started after bids were produced must still land them.
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Feeds the consumer-lag gauge.
            .set("statistics.interval.ms", "5000")
            // A subscribed topic created after the sink started (the results topic, which the
            // bid service creates) is found within 10 s instead of librdkafka's 5 minutes.
            .set("topic.metadata.refresh.interval.ms", "10000");
        self.apply_properties(&mut config);
        config
    }

    /// The dead-letter producer's configuration: idempotent and acknowledged by all replicas, with
    /// a bounded delivery time so that a broker outage becomes a retried error, not a hang.
    pub(crate) fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000");
        self.apply_properties(&mut config);
        config
    }
}

/// The consumer's hooks: a synchronous commit before partitions are taken away, and the list of
/// revoked partitions so the runtime can drop records of a batch it no longer owns.
pub(crate) struct SinkContext {
    kind: &'static str,
    revoked: Mutex<HashSet<(String, i32)>>,
}

impl SinkContext {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            revoked: Mutex::new(HashSet::new()),
        }
    }

    /// The partitions revoked since the last call.
    pub(crate) fn take_revoked(&self) -> HashSet<(String, i32)> {
        std::mem::take(
            &mut *self
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 means unknown (not assigned here, or no fetch yet); the internal partition -1
                // is librdkafka's bookkeeping.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(m::CONSUMER_LAG, "sink" => self.kind, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                // Offsets in the store belong to durably written batches only, so committing them
                // now lets the next owner start exactly after what this instance wrote.
                commit_stored(consumer, "partitions revoked");
                let mut revoked = self
                    .revoked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for element in partitions.elements() {
                    revoked.insert((element.topic().to_owned(), element.partition()));
                }
                tracing::info!(
                    sink = self.kind,
                    partitions = partitions.count(),
                    "partitions revoked"
                );
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(
                    sink = self.kind,
                    partitions = partitions.count(),
                    "partitions assigned"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(sink = self.kind, error = %e, "rebalance failed");
            }
        }
    }
}

/// Commits the stored offsets synchronously; "nothing to commit" is not an error.
pub(crate) fn commit_stored<C: ConsumerContext>(consumer: &impl Consumer<C>, why: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::debug!(why, "offsets committed"),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(why, error = %e, "cannot commit offsets; the next owner of these partitions re-reads from the last commit and writes idempotently")
        }
    }
}

/// A record as it was read, kept whole so that a dead letter carries the original bytes.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The source topic.
    pub topic: String,
    /// The source partition.
    pub partition: i32,
    /// The source offset.
    pub offset: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawRecord {
    /// Copies a consumed message.
    pub fn from_message(message: &impl Message) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// Why a record is a dead letter.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterReason {
    /// A short stable name (`DecodeError::kind`, or `target_rejected`).
    pub kind: String,
    /// A sentence for the people who read the dead-letter topic.
    pub message: String,
}

/// Header names of a dead letter, beside the original record's own headers.
pub mod dead_letter_headers {
    /// The sink kind that gave up on the record (`mysql`, `csv`, `odbc`).
    pub const SINK: &str = "dlq.sink";
    /// The consumer group of that sink.
    pub const GROUP: &str = "dlq.group";
    /// A short stable name of the reason (`schema_violation`, `invalid_bid`, ...).
    pub const ERROR_KIND: &str = "dlq.error.kind";
    /// The reason as a sentence.
    pub const ERROR_MESSAGE: &str = "dlq.error.message";
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    /// The partition it was read from (decimal).
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    /// The offset it was read from (decimal).
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
}

/// Produces dead letters and waits for the broker's acknowledgement.
pub(crate) struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
    group: String,
    sink: &'static str,
}

impl DeadLetterProducer {
    pub(crate) fn new(settings: &KafkaSettings, sink: &'static str) -> Result<Self, KafkaError> {
        let producer = settings
            .producer_config(&format!("auction-sink-{sink}-dlq"))
            .create()?;
        Ok(Self {
            producer,
            topic: settings.dead_letter_topic.clone(),
            group: settings.group_id.clone(),
            sink,
        })
    }

    /// Sends one dead letter: the original key, value and headers, plus the `dlq.*` headers.
    pub(crate) async fn send(
        &self,
        record: &RawRecord,
        reason: &DeadLetterReason,
    ) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 7);
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        for (key, value) in [
            (dead_letter_headers::SINK, self.sink),
            (dead_letter_headers::GROUP, self.group.as_str()),
            (dead_letter_headers::ERROR_KIND, reason.kind.as_str()),
            (dead_letter_headers::ERROR_MESSAGE, reason.message.as_str()),
            (dead_letter_headers::SOURCE_TOPIC, record.topic.as_str()),
            (dead_letter_headers::SOURCE_PARTITION, partition.as_str()),
            (dead_letter_headers::SOURCE_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        self.producer
            .send(out, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}
