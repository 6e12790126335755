//! Kafka clients of a sink: the group consumer (with its rebalance hooks and lag gauges), the
//! dead-letter producer (headers bounded, failures explained), and the check at start that the
//! dead-letter topic exists (creating it when allowed).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use auction_process::KafkaProperties;
use auction_process::kafka_startup::{CONNECT_TIMEOUT, wait_for_metadata};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use tokio_util::sync::CancellationToken;

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
    /// Create the dead-letter topic at start when it is missing; when false, a missing
    /// dead-letter topic stops the sink at start with a sentence.
    pub create_dead_letter_topic: bool,
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
            create_dead_letter_topic: true,
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

    /// The configuration of the admin client that creates the dead-letter topic.
    fn admin_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.base_config();
        config.set("client.id", client_id);
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
            .set("message.timeout.ms", "30000")
            // The topic is checked (or created) at start; a topic deleted later must fail the
            // send with a reason, not be re-created by a broker that auto-creates topics.
            .set("allow.auto.create.topics", "false");
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
    /// The reason as a sentence (at most [`super::MAX_ERROR_MESSAGE_BYTES`]).
    pub const ERROR_MESSAGE: &str = "dlq.error.message";
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    /// The partition it was read from (decimal).
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    /// The offset it was read from (decimal).
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    /// How many of the original record's headers were left off (decimal), present only when
    /// some were: beyond [`super::MAX_COPIED_HEADERS`] headers or
    /// [`super::MAX_COPIED_HEADER_BYTES`] bytes.
    pub const HEADERS_DROPPED: &str = "dlq.headers.dropped";
}

/// At most this many of the original record's headers are copied onto its dead letter (in
/// order; the rest are counted in [`dead_letter_headers::HEADERS_DROPPED`]).
pub const MAX_COPIED_HEADERS: usize = 64;
/// At most this many bytes (names and values together) of the original record's headers are
/// copied onto its dead letter; the first header that would pass the bound and every one after
/// it are left off.
pub const MAX_COPIED_HEADER_BYTES: usize = 16 * 1024;
/// The reason sentence of a dead letter is cut to this many bytes (a schema violation lists
/// every violation of a record, which a hostile record can make long).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4 * 1024;

/// A record header as read: its name and value.
type HeaderPair = (String, Option<Vec<u8>>);

/// The original headers a dead letter carries: a prefix of `headers` within
/// [`MAX_COPIED_HEADERS`] and [`MAX_COPIED_HEADER_BYTES`], and how many were left off.
fn bounded_headers(headers: &[HeaderPair]) -> (&[HeaderPair], usize) {
    let mut bytes = 0;
    let mut kept = 0;
    for (key, value) in headers.iter().take(MAX_COPIED_HEADERS) {
        bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        if bytes > MAX_COPIED_HEADER_BYTES {
            break;
        }
        kept += 1;
    }
    (&headers[..kept], headers.len() - kept)
}

/// `message` cut to at most `max` bytes at a character boundary, marked when cut.
fn truncated(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let marker = " [cut]";
    let mut end = max.saturating_sub(marker.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &message[..end]).into()
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

    /// Sends one dead letter: the original key and value, the original headers within their
    /// bounds, plus the `dlq.*` headers. An error is a sentence saying what is wrong.
    pub(crate) async fn send(
        &self,
        record: &RawRecord,
        reason: &DeadLetterReason,
    ) -> Result<(), String> {
        let (copied, dropped) = bounded_headers(&record.headers);
        let mut headers = OwnedHeaders::new_with_capacity(copied.len() + 8);
        for (key, value) in copied {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let message = truncated(&reason.message, MAX_ERROR_MESSAGE_BYTES);
        for (key, value) in [
            (dead_letter_headers::SINK, self.sink),
            (dead_letter_headers::GROUP, self.group.as_str()),
            (dead_letter_headers::ERROR_KIND, reason.kind.as_str()),
            (dead_letter_headers::ERROR_MESSAGE, message.as_ref()),
            (dead_letter_headers::SOURCE_TOPIC, record.topic.as_str()),
            (dead_letter_headers::SOURCE_PARTITION, partition.as_str()),
            (dead_letter_headers::SOURCE_OFFSET, offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        if dropped > 0 {
            let dropped = dropped.to_string();
            headers = headers.insert(Header {
                key: dead_letter_headers::HEADERS_DROPPED,
                value: Some(dropped.as_str()),
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
            .map_err(|(e, _)| self.explain(record, &e))
    }

    /// Why a dead letter could not be written, as a sentence naming the record, the topic and
    /// what to do.
    fn explain(&self, record: &RawRecord, error: &KafkaError) -> String {
        let topic = &self.topic;
        let what = format!(
            "cannot write the dead letter of {}/{} offset {} to topic {topic}",
            record.topic, record.partition, record.offset
        );
        let size =
            record.value.as_ref().map_or(0, Vec::len) + record.key.as_ref().map_or(0, Vec::len);
        let why = match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge,
            ) => format!(
                "the record ({size} bytes of key and value, plus headers) is larger than the topic \
                 accepts; raise {topic}'s max.message.bytes (and the producer's message.max.bytes, \
                 KAFKA_MESSAGE_MAX_BYTES, if it is the smaller)"
            ),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                "the topic does not exist (deleted after the sink started?); create it or set \
                 SINK_DEAD_LETTER_TOPIC to one that exists"
                    .to_owned()
            }
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => {
                "this sink's Kafka user may not write to it; grant it WRITE on the topic".to_owned()
            }
            _ => "Kafka did not acknowledge it".to_owned(),
        };
        format!(
            "{what}: {why} ({error}); the record's partition waits, nothing after it is committed, \
             and the sink retries"
        )
    }
}

/// Whether the dead-letter topic is there, as the cluster's metadata says.
enum TopicPresence {
    Present,
    Missing,
    Denied,
}

/// Checks at start that the dead-letter topic exists and creates it when it is missing and
/// [`KafkaSettings::create_dead_letter_topic`] allows; otherwise an error sentence naming the
/// topic and the setting. Does not rely on the broker's `auto.create.topics.enable`: the check
/// asks for the topic's metadata without auto-creation.
pub(crate) async fn ensure_dead_letter_topic(
    settings: &KafkaSettings,
    kind: &str,
    stop: &CancellationToken,
) -> Result<(), String> {
    let topic = settings.dead_letter_topic.clone();
    let mut config = settings.consumer_config(&format!("auction-sink-{kind}-setup"));
    config.set("allow.auto.create.topics", "false");
    let (presence, brokers) = presence(&config, &topic, stop).await?;
    match presence {
        TopicPresence::Present => Ok(()),
        TopicPresence::Denied => Err(format!(
            "the dead-letter topic {topic} cannot be described: this sink's Kafka user is not \
             authorized for it (SINK_DEAD_LETTER_TOPIC); grant it DESCRIBE and WRITE on the topic"
        )),
        TopicPresence::Missing if !settings.create_dead_letter_topic => Err(format!(
            "the dead-letter topic {topic} does not exist and SINK_DEAD_LETTER_NO_CREATE forbids \
             creating it; create it (or unset SINK_DEAD_LETTER_NO_CREATE, or point \
             SINK_DEAD_LETTER_TOPIC at an existing topic)"
        )),
        TopicPresence::Missing => {
            create_dead_letter_topic(settings, &topic, brokers).await?;
            match presence_within(&config, &topic, stop).await? {
                TopicPresence::Present => Ok(()),
                _ => Err(format!(
                    "the dead-letter topic {topic} was created but the cluster does not list it \
                     within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )),
            }
        }
    }
}

/// The topic's presence and the number of brokers, from one metadata answer.
async fn presence(
    config: &ClientConfig,
    topic: &str,
    stop: &CancellationToken,
) -> Result<(TopicPresence, usize), String> {
    let name = topic.to_owned();
    wait_for_metadata(
        config,
        stop,
        Some(topic.to_owned()),
        move |metadata| {
            let found = metadata.topics().iter().find(|t| t.name() == name)?;
            let presence = match found.error().map(RDKafkaErrorCode::from) {
                None if !found.partitions().is_empty() => TopicPresence::Present,
                Some(RDKafkaErrorCode::UnknownTopicOrPartition) => TopicPresence::Missing,
                Some(RDKafkaErrorCode::TopicAuthorizationFailed) => TopicPresence::Denied,
                // Being created, or a leader election: ask again.
                _ => return None,
            };
            Some((presence, metadata.brokers().len()))
        },
        format!("the cluster does not describe the dead-letter topic {topic}"),
    )
    .await
}

/// Asks until the topic is listed (a topic just created takes a moment to appear).
async fn presence_within(
    config: &ClientConfig,
    topic: &str,
    stop: &CancellationToken,
) -> Result<TopicPresence, String> {
    let name = topic.to_owned();
    wait_for_metadata(
        config,
        stop,
        Some(topic.to_owned()),
        move |metadata| {
            metadata
                .topics()
                .iter()
                .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                .then_some(TopicPresence::Present)
        },
        format!("the cluster does not list the dead-letter topic {topic}"),
    )
    .await
}

/// Creates the dead-letter topic: one partition (dead letters are few and read in order),
/// replicated on up to three brokers with `min.insync.replicas=2` when on three.
async fn create_dead_letter_topic(
    settings: &KafkaSettings,
    topic: &str,
    brokers: usize,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = settings
        .admin_config("auction-sink-admin")
        .create()
        .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
    let replication = i32::try_from(brokers.clamp(1, 3)).unwrap_or(1);
    let min_insync = if replication >= 3 { "2" } else { "1" };
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(replication))
        .set("min.insync.replicas", min_insync)
        .set("cleanup.policy", "delete");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let refused = |reason: String| {
        format!(
            "the dead-letter topic {topic} does not exist and creating it failed: {reason}; \
             create it yourself, or set SINK_DEAD_LETTER_TOPIC to an existing topic \
             (SINK_DEAD_LETTER_NO_CREATE=true makes a missing topic a refusal without trying)"
        )
    };
    let results =
        tokio::time::timeout(CONNECT_TIMEOUT, admin.create_topics([&new_topic], &options))
            .await
            .map_err(|_| refused(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| refused(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, replication, "dead-letter topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(refused(code.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, bytes: usize) -> (String, Option<Vec<u8>>) {
        (key.to_owned(), Some(vec![b'x'; bytes]))
    }

    #[test]
    fn dead_letters_copy_at_most_the_bounded_headers() {
        let few: Vec<_> = (0..3).map(|i| header(&format!("h{i}"), 10)).collect();
        assert_eq!(bounded_headers(&few), (&few[..], 0));

        let many: Vec<_> = (0..100).map(|i| header(&format!("h{i}"), 1)).collect();
        let (kept, dropped) = bounded_headers(&many);
        assert_eq!(
            (kept.len(), dropped),
            (MAX_COPIED_HEADERS, 100 - MAX_COPIED_HEADERS)
        );

        let big = vec![
            header("a", 100),
            header("b", MAX_COPIED_HEADER_BYTES),
            header("c", 1),
        ];
        let (kept, dropped) = bounded_headers(&big);
        assert_eq!((kept.len(), dropped), (1, 2));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        let long = "é".repeat(5000);
        let cut = truncated(&long, MAX_ERROR_MESSAGE_BYTES);
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(cut.ends_with("[cut]"));
    }
}
