//! Reading the state topic (`auction.state`, `read_committed`):
//! - [`StateFollower`] replays every partition from the start into the [`ReadCopy`] and then
//!   follows it (new partitions included); the service serves once the replay is done;
//! - [`read_partition`] reads one partition from the start to its current end, for an owner
//!   that takes the partition over.
//!
//! Both read what compaction left: about one record per auction and per remembered request, not
//! one per bid.

use std::sync::Arc;
use std::time::Duration;

use auction_schemas::RecordCodec;
use auction_schemas::state::StateRecord;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auction::AuctionState;
use crate::kafka::KafkaSetupError;
use crate::read_copy::ReadCopy;

/// The client context of the state readers: reaching the end of a partition is how they see
/// that a replay is done (`enable.partition.eof`), so librdkafka's report of it is logged at
/// debug level instead of as an error.
#[derive(Debug)]
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(reason, "end of a partition of the state topic");
        } else {
            tracing::error!(error = %error, reason, "librdkafka reported an error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

type Reader = StreamConsumer<ReaderContext>;

/// A reader of `partitions` of `topic`, each from `start`.
fn reader(
    config: &ClientConfig,
    topic: &str,
    partitions: std::ops::Range<i32>,
    start: Offset,
) -> Result<Reader, KafkaSetupError> {
    let consumer: Reader = config
        .create_with_context(ReaderContext)
        .map_err(|e| KafkaSetupError(format!("cannot create a reader of {topic}: {e}")))?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(topic, partition, start)
            .map_err(|e| {
                KafkaSetupError(format!(
                    "cannot assign partition {partition} of {topic}: {e}"
                ))
            })?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| KafkaSetupError(format!("cannot assign {topic}: {e}")))?;
    Ok(consumer)
}

/// Reads partition `partition` of `topic` from `start` to its end as it is now (read
/// committed), handing every record to `each`. Call it only once the partition's writers are
/// fenced, so that its end is final.
pub(crate) async fn read_raw(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    start: Offset,
    shutdown: &CancellationToken,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<u64, KafkaSetupError> {
    let consumer = reader(config, topic, partition..partition + 1, start)?;
    let mut records = 0_u64;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Err(KafkaSetupError("stopped".to_owned())),
            received = consumer.recv() => received,
        };
        match message {
            Ok(message) => {
                records += 1;
                each(&message);
            }
            // The first end a fresh reader reaches is the end as it was when it started.
            Err(KafkaError::PartitionEOF(_)) => return Ok(records),
            Err(e) => {
                tracing::warn!(error = %e, topic, partition, "reading a partition failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Reads partition `partition` of the state topic from the start to its end, handing every
/// record (`None` for a tombstone) to `each` with its key.
pub(crate) async fn read_partition(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    shutdown: &CancellationToken,
    mut each: impl FnMut(&str, Option<StateRecord>),
) -> Result<u64, KafkaSetupError> {
    read_raw(
        config,
        topic,
        partition,
        Offset::Beginning,
        shutdown,
        |message| {
            let key = message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or("");
            match message.payload() {
                None => each(key, None),
                Some(value) => match RecordCodec::decode(Some(value)) {
                    Ok(record) => each(key, Some(record)),
                    Err(e) => tracing::warn!(error = %e, partition, offset = message.offset(),
                    "skipping a state record that cannot be read"),
                },
            }
        },
    )
    .await
}

/// Follows the whole state topic into the read copy.
#[derive(Debug)]
pub(crate) struct StateFollower {
    /// The consumer configuration (see [`crate::kafka::reader_config`]).
    pub config: ClientConfig,
    /// The state topic.
    pub topic: String,
    /// Its partition count at start.
    pub partitions: i32,
    /// Receives the states.
    pub read_copy: Arc<ReadCopy>,
}

/// How often the follower looks for partitions added to the state topic.
const PARTITION_CHECK: Duration = Duration::from_secs(5);

impl StateFollower {
    /// Starts following. `caught_up` turns true once every partition has been read to its end
    /// once. Stops on `shutdown`.
    pub(crate) fn spawn(
        self,
        caught_up: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, KafkaSetupError> {
        let consumer = Arc::new(reader(
            &self.config,
            &self.topic,
            0..self.partitions,
            Offset::Beginning,
        )?);
        Ok(tokio::spawn(self.run(consumer, caught_up, shutdown)))
    }

    async fn run(
        self,
        consumer: Arc<Reader>,
        caught_up: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) {
        let started = std::time::Instant::now();
        let mut known = self.partitions;
        let mut reached_end = vec![false; usize::try_from(known).unwrap_or(0)];
        let mut replaying = true;
        let mut records = 0_u64;
        let mut partition_check = tokio::time::interval(PARTITION_CHECK);
        partition_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = partition_check.tick() => {
                    known = self.pick_up_new_partitions(&consumer, known).await;
                    continue;
                }
                received = consumer.recv() => received,
            };
            match message {
                Ok(message) => {
                    records += 1;
                    let Some(value) = message.payload() else {
                        continue;
                    };
                    match RecordCodec::decode(Some(value)) {
                        Ok(StateRecord::Auction(record)) => {
                            if let Some(state) = AuctionState::from_record(&record) {
                                self.read_copy.update(Arc::new(state));
                            }
                        }
                        Ok(StateRecord::Owner(owner)) => self.read_copy.set_owner(owner),
                        Ok(StateRecord::Request(_)) => {}
                        Err(e) => tracing::warn!(error = %e, partition = message.partition(),
                            offset = message.offset(), "skipping a state record that cannot be read"),
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    if let Some(end) = usize::try_from(partition)
                        .ok()
                        .and_then(|p| reached_end.get_mut(p))
                    {
                        *end = true;
                    }
                    if replaying && reached_end.iter().all(|end| *end) {
                        replaying = false;
                        caught_up.send_replace(true);
                        tracing::info!(
                            records,
                            auctions = self.read_copy.len(),
                            seconds = started.elapsed().as_secs_f64(),
                            "auction state read; serving"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the state topic failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Follows the partitions added to the state topic since the follower started.
    async fn pick_up_new_partitions(&self, consumer: &Arc<Reader>, known: i32) -> i32 {
        let (reader, topic) = (Arc::clone(consumer), self.topic.clone());
        let count = crate::kafka::off_runtime(move || {
            reader
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()
                .and_then(|metadata| metadata.topics().first().map(|t| t.partitions().len()))
        })
        .await
        .ok()
        .flatten()
        .and_then(|count| i32::try_from(count).ok());
        let Some(count) = count.filter(|count| *count > known) else {
            return known;
        };
        let mut added = TopicPartitionList::new();
        for partition in known..count {
            if added
                .add_partition_offset(&self.topic, partition, Offset::Beginning)
                .is_err()
            {
                return known;
            }
        }
        match consumer.incremental_assign(&added) {
            Ok(()) => {
                tracing::info!(topic = %self.topic, from = known, to = count, "following new state partitions");
                count
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the new state partitions");
                known
            }
        }
    }
}
