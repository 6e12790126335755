//! A sink run in this process whose readiness, reason for not being ready and outcome a test
//! watches, and Kafka look-ups the runtime tests share: a group's committed offsets, a topic's
//! records and whether a topic exists.

use std::time::Duration;

use auction_process::Readiness;
use auction_sinks::{Destination, Progress, RunSummary, RuntimeSettings, SinkError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A sink started with [`auction_sinks::run`], watched from the outside.
pub(crate) struct WatchedSink {
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
    pub progress: Progress,
    pub handle: JoinHandle<Result<RunSummary, SinkError>>,
}

impl WatchedSink {
    pub(crate) fn spawn<T: Destination>(settings: RuntimeSettings, target: T) -> Self {
        auction_process::init_logging(false);
        let shutdown = CancellationToken::new();
        let readiness = Readiness::default();
        let progress = Progress::default();
        let handle = tokio::spawn(auction_sinks::run(
            settings,
            target,
            readiness.clone(),
            progress.clone(),
            shutdown.clone(),
        ));
        Self {
            shutdown,
            readiness,
            progress,
            handle,
        }
    }

    /// Why it is not ready, or "" when nothing holds it up.
    pub(crate) fn reason(&self) -> String {
        self.progress.not_ready_reason().unwrap_or_default()
    }

    /// Stops it as SIGTERM would and returns what it did (20 s at most).
    pub(crate) async fn stop(self) -> RunSummary {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the sink stops within 20 s")
            .expect("the sink task")
            .expect("the sink ran without an error")
    }
}

fn client(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a Kafka client")
}

/// The offsets `group` has committed on each of `partitions` partitions of `topic` (`None`:
/// nothing committed).
pub(crate) fn committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<Option<i64>> {
    let consumer = client(bootstrap, group);
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("the group's committed offsets");
    (0..partitions)
        .map(
            |partition| match committed.find_partition(topic, partition)?.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            },
        )
        .collect()
}

/// The end offset (high watermark) of each of `partitions` partitions of `topic`.
pub(crate) fn end_offsets(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer = client(bootstrap, "watermarks");
    (0..partitions)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Whether the cluster lists `topic` (asked without creating it).
pub(crate) fn topic_exists(bootstrap: &str, topic: &str) -> bool {
    let consumer = client(bootstrap, "metadata");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
}

/// A record of a topic as read back: its value and headers.
pub(crate) struct ReadBack {
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Every record of partition 0 of `topic`, from the beginning up to its end now.
pub(crate) fn read_all(bootstrap: &str, topic: &str) -> Vec<ReadBack> {
    let end = end_offsets(bootstrap, topic, 1)[0];
    let consumer = client(bootstrap, "read-back");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&list).expect("assign");
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (records.len() as i64) < end && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            records.push(ReadBack {
                value: message.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
    records
}
