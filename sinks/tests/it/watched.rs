//! Kafka look-ups the runtime tests share: a group's committed offsets, a topic's records and
//! whether a topic exists.

use std::time::Duration;

use auction_sinks::RawRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

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

/// Every record of partition 0 of `topic`, from the beginning up to its end now.
pub(crate) fn read_all(bootstrap: &str, topic: &str) -> Vec<RawRecord> {
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
            records.push(RawRecord::from_message(&message));
        }
    }
    records
}
