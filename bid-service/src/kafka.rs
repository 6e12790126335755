//! Kafka set-up of the bid service: the topics (checked, or created with safe settings), the
//! partition of an auction, and the configuration of each client: the transactional producers of
//! the partition owners, the group consumer that hands out ownership, and the plain consumers
//! that read the state topic.

use std::time::Duration;

use auction_process::kafka_startup::{
    ErrorRecordingContext, check_connection, check_state_topic, check_topic, wait_for_metadata,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaProperties;

/// A blocking client call ended without an answer: its thread could not start or panicked.
#[derive(Debug, thiserror::Error)]
#[error("the Kafka client call's thread ended without an answer")]
pub(crate) struct CallLost;

/// Runs a blocking Kafka client call (transactions, committed offsets, metadata) on a thread of
/// its own and waits for its answer without blocking the runtime.
///
/// Not tokio's blocking pool: a runtime waits for its blocking tasks when it shuts down, and a
/// transaction call whose brokers are gone can run far past its own timeout (a commit's
/// `send_offsets_to_transaction` against a stopped cluster held a test process for 20 minutes).
/// A thread of its own is left behind at shutdown instead; its outcome is settled by the next
/// owner's fencing like any other interrupted transaction. One thread per call: the calls take
/// milliseconds, starting a thread microseconds.
pub(crate) async fn off_runtime<T, F>(call: F) -> Result<T, CallLost>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kafka-call".to_owned())
        .spawn(move || {
            let _ = answer.send(call());
        })
        .map_err(|_| CallLost)?;
    answered.await.map_err(|_| CallLost)
}

/// Start-up failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct KafkaSetupError(pub String);

/// The client configuration the user's properties describe.
pub(crate) fn client_config(properties: &KafkaProperties) -> ClientConfig {
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

/// The partition of the bid topic that holds `auction_id`'s bids: librdkafka's default
/// partitioner for a keyed record (CRC-32 of the key, modulo the partition count), so that the
/// product and any librdkafka-based producer keying by auction id agree.
pub fn partition_for(auction_id: &str, partitions: i32) -> i32 {
    let partitions = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(crc32fast::hash(auction_id.as_bytes()) % partitions).unwrap_or(0)
}

/// A topic the service needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Partitions when the service creates it.
    pub partitions: i32,
    /// Replication when the service creates it (0: 3 on three or more brokers, else one per
    /// broker).
    pub replication: i32,
    /// The compacted state topic rather than a topic of bids.
    pub compacted: bool,
}

/// Creates the topic if it does not exist yet and `create` (replication `0`: 3 on three or more
/// brokers, else one per broker; `min.insync.replicas` 2 from replication 3; unclean leader
/// election off; the bid topic deletes, the state topic compacts and never deletes), checks that
/// its settings keep the guarantees (refusing it otherwise, unless `allow_unsafe`), and returns
/// its partition count.
pub(crate) async fn ensure_topic(
    properties: &KafkaProperties,
    spec: TopicSpec<'_>,
    create: bool,
    allow_unsafe: bool,
) -> Result<i32, KafkaSetupError> {
    let topic = spec.name;
    // Start-up is not cancelled by a signal (it is bounded by the connect timeout).
    check_connection(&client_config(properties), &CancellationToken::new())
        .await
        .map_err(KafkaSetupError)?;
    if create && !topic_exists(properties, topic).await? {
        create_topic(properties, spec).await?;
    }
    let partitions = partition_count(properties, topic).await?;
    if spec.compacted {
        check_state_topic(&client_config(properties), topic, allow_unsafe).await
    } else {
        check_topic(&client_config(properties), topic, allow_unsafe).await
    }
    .map_err(KafkaSetupError)?;
    Ok(partitions)
}

async fn create_topic(
    properties: &KafkaProperties,
    spec: TopicSpec<'_>,
) -> Result<(), KafkaSetupError> {
    let topic = spec.name;
    let admin: AdminClient<ErrorRecordingContext> = client_config(properties)
        .create_with_context(ErrorRecordingContext::default())
        .map_err(|e| KafkaSetupError(format!("cannot create the Kafka admin client: {e}")))?;
    let context = std::sync::Arc::clone(admin.inner().context());
    let replication = if spec.replication > 0 {
        spec.replication
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
    let mut new_topic = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(replication))
        .set("min.insync.replicas", min_insync)
        .set("unclean.leader.election.enable", "false");
    new_topic = if spec.compacted {
        // Segments roll every 10 minutes or 16 MiB and are cleaned once a fifth of them is
        // superseded, so that a restore reads about one record per auction, not one per bid
        // (the active segment, never cleaned, stays small).
        new_topic
            .set("cleanup.policy", "compact")
            .set("segment.ms", "600000")
            .set("segment.bytes", "16777216")
            .set("min.cleanable.dirty.ratio", "0.2")
    } else {
        new_topic.set("cleanup.policy", "delete")
    };
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
            Ok(_) => tracing::info!(
                topic,
                partitions = spec.partitions,
                replication,
                "topic created"
            ),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(KafkaSetupError(format!(
                    "cannot create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether the cluster has `topic`.
async fn topic_exists(properties: &KafkaProperties, topic: &str) -> Result<bool, KafkaSetupError> {
    let name = topic.to_owned();
    wait_for_metadata(
        &client_config(properties),
        &CancellationToken::new(),
        Some(topic.to_owned()),
        move |metadata| {
            Some(
                metadata
                    .topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty()),
            )
        },
        format!("the cluster does not describe topic {topic}"),
    )
    .await
    .map_err(KafkaSetupError)
}

/// The partition count of `topic`, waiting for it to appear in the metadata.
pub(crate) async fn partition_count(
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

/// Gives the state topic as many partitions as the bid topic has, when partitions were added to
/// the bid topic while the service ran (the owner of a new partition needs its state
/// partition), and waits until the metadata shows them.
pub(crate) async fn match_state_partitions(
    properties: &KafkaProperties,
    topic: &str,
    state_topic: &str,
) -> Result<(), KafkaSetupError> {
    let wanted = partition_count(properties, topic).await?;
    if partition_count(properties, state_topic).await? >= wanted {
        return Ok(());
    }
    let admin: AdminClient<ErrorRecordingContext> = client_config(properties)
        .create_with_context(ErrorRecordingContext::default())
        .map_err(|e| KafkaSetupError(format!("cannot create the Kafka admin client: {e}")))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let added = admin
        .create_partitions(
            [&NewPartitions::new(
                state_topic,
                usize::try_from(wanted).unwrap_or(1),
            )],
            &options,
        )
        .await
        .map_err(|e| KafkaSetupError(format!("cannot add partitions to {state_topic}: {e}")))?;
    for result in added {
        // Another replica may have added them first.
        if let Err((_, code)) = result
            && code != RDKafkaErrorCode::InvalidPartitions
        {
            return Err(KafkaSetupError(format!(
                "cannot add partitions to {state_topic}: {code}"
            )));
        }
    }
    tracing::info!(
        state_topic,
        partitions = wanted,
        "state topic partitions added to match the bid topic"
    );
    for _ in 0..100 {
        if partition_count(properties, state_topic).await? >= wanted {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(KafkaSetupError(format!(
        "{state_topic} does not show its new partitions"
    )))
}

/// The producer of the owner of one partition: transactional (`transactional.id` per partition,
/// so that a new owner's `init_transactions` fences every earlier one), idempotent, `acks=all`.
pub(crate) fn producer_config(
    properties: &KafkaProperties,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> ClientConfig {
    let mut config = client_config(properties);
    config
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        );
    set_default(&mut config, "linger.ms", "1");
    set_default(&mut config, "queue.buffering.max.messages", "100000");
    // Right after a commit the coordinator may still be completing it and answers the next
    // transaction's offsets request CONCURRENT_TRANSACTIONS; librdkafka retries that after
    // `retry.backoff.ms` (default 100 ms). 20 ms, as Kafka's own Java client waits in that case;
    // other retries back off exponentially from there up to `retry.backoff.max.ms`.
    set_default(&mut config, "retry.backoff.ms", "20");
    config
}

/// The group consumer that gives each replica its partitions of the bid topic and feeds their
/// owners the committed records. Offsets are committed only inside the owners' transactions.
pub(crate) fn group_consumer_config(
    properties: &KafkaProperties,
    group_id: &str,
    client_id: &str,
) -> ClientConfig {
    let mut config = client_config(properties);
    config
        .set("group.id", group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        // An owner decides only once it has read its partition to the end.
        .set("enable.partition.eof", "true")
        // A group without committed offsets (the first owner ever) starts with the first bid.
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky");
    // Longer than a group coordinator's failover (a broker's own session is 9 s, then an
    // election): with 10 s, a coordinator paused or killed cost every member its whole
    // assignment, every owner restoring again. A killed replica's partitions move after this.
    set_default(&mut config, "session.timeout.ms", "20000");
    set_default(&mut config, "heartbeat.interval.ms", "1000");
    // The group consumer's thread polls every 50 ms; only a revocation holds it, while the
    // revoked owners stop (at most 20 s). A rebalance waits for every member up to this long.
    set_default(&mut config, "max.poll.interval.ms", "45000");
    set_default(&mut config, "fetch.wait.max.ms", "1");
    set_default(&mut config, "fetch.min.bytes", "1");
    set_default(&mut config, "topic.metadata.refresh.interval.ms", "10000");
    config
}

/// A consumer without group membership or commits (the read copy, a restore, a read-back):
/// `read_committed`, end-of-partition events on.
pub(crate) fn reader_config(properties: &KafkaProperties) -> ClientConfig {
    let mut config = client_config(properties);
    config
        .set(
            "group.id",
            format!("bid-service-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // Records removed under a reader (compaction) are skipped by the broker, never an error.
        .set("auto.offset.reset", "earliest");
    set_default(&mut config, "fetch.wait.max.ms", "1");
    set_default(&mut config, "fetch.min.bytes", "1");
    // A reader works through each record as it arrives, so a small read-ahead keeps up: at a
    // restore seven readers take the state topic at once, and librdkafka's default read-ahead
    // (64 MiB each, in memory its allocator keeps after the read) held most of a restored
    // replica's memory. A full read-ahead waits 5 ms, not librdkafka's 1 s, before fetching
    // again. (Restore of 100,000 auctions with 10 recent bids each: 440 MB and 4.7 s with the
    // defaults, 277 MB and 3.9 s with these; system/BENCHMARKS.md.)
    set_default(&mut config, "queued.max.messages.kbytes", "1024");
    set_default(&mut config, "fetch.queue.backoff.ms", "5");
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_of_an_auction_is_librdkafkas_crc32_of_the_key() {
        // CRC-32 (IEEE, as zlib and librdkafka compute it) of "default" is 0xe35e00df.
        assert_eq!(crc32fast::hash(b"default"), 0xe35e_00df);
        assert_eq!(partition_for("default", 6), (0xe35e_00df_u32 % 6) as i32);
        assert!((0..6).contains(&partition_for("anything", 6)));
        assert_eq!(partition_for("x", 1), 0);
    }
}
