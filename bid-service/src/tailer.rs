//! The log tailer: reads the bid topic from the beginning, then follows it, and applies every
//! bid to the [`AuctionBook`] in log order. It is the only writer of auction state, so every
//! replica (and every restart) computes the same state from the same log.
//!
//! It reports when it has caught up with the end of the log as it was at start (the service is
//! NOT_SERVING until then), and how far it has applied each partition, so that `PlaceBid` can
//! answer with the state that includes its own bid.

use auction_process::Backoff;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use auction_schemas::{BidDecoder, BidId, LogPosition};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::book::{AuctionBook, LoggedBid};
use crate::kafka::KafkaSetupError;
use crate::metrics as m;

/// Per partition, the next offset the tailer will apply. Grows when partitions are added to the
/// topic.
#[derive(Debug)]
pub(crate) struct AppliedOffsets {
    partitions: RwLock<Vec<watch::Sender<i64>>>,
}

impl AppliedOffsets {
    /// Offsets for `partitions` partitions, all at 0.
    pub(crate) fn new(partitions: i32) -> Self {
        let offsets = Self {
            partitions: RwLock::new(Vec::new()),
        };
        offsets.grow(partitions);
        offsets
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<watch::Sender<i64>>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many partitions it follows.
    pub(crate) fn len(&self) -> i32 {
        i32::try_from(self.read().len()).unwrap_or(i32::MAX)
    }

    /// Follows `partitions` partitions (new ones at 0).
    fn grow(&self, partitions: i32) {
        let mut all = self
            .partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wanted = usize::try_from(partitions).unwrap_or(0);
        while all.len() < wanted {
            all.push(watch::channel(0).0);
        }
    }

    fn advance(&self, partition: i32, next: i64) {
        let all = self.read();
        if let Some(sender) = usize::try_from(partition).ok().and_then(|p| all.get(p)) {
            sender.send_if_modified(|current| {
                let moved = next > *current;
                if moved {
                    *current = next;
                }
                moved
            });
        }
    }

    fn next(&self, partition: usize) -> i64 {
        self.read().get(partition).map_or(0, |p| *p.borrow())
    }

    fn subscribe(&self, partition: i32) -> Option<watch::Receiver<i64>> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.read().get(p).map(watch::Sender::subscribe))
    }

    /// Waits, at most `timeout`, until the tailer has read the bid `bid_id` from `partition`, and
    /// returns it as read: at the position where the log holds it. `acknowledged_offset` is where
    /// the broker said it wrote the bid (negative when the acknowledgement carried no position):
    /// once the tailer has applied that offset without finding the bid, waiting longer is
    /// pointless and the answer is `None`, as it is when the time is up.
    ///
    /// This is what makes an OK trustworthy: the position a `PlaceBid` answer reports is the one
    /// the tailer read the bid at, never only the broker's word for it.
    pub(crate) async fn wait_for_bid(
        &self,
        book: &AuctionBook,
        bid_id: &BidId,
        partition: i32,
        acknowledged_offset: i64,
        timeout: Duration,
    ) -> Option<Arc<LoggedBid>> {
        // Subscribed before the first look, so that a bid applied right after it still wakes us.
        let mut receiver = self.subscribe(partition)?;
        let search = async {
            loop {
                // The offset first, then the bid: the tailer applies a record before it advances
                // the offset past it, so once the offset is past the acknowledged one, a look
                // made after it sees the bid if the log holds it there. (The other order raced:
                // the bid applied and the offset advanced between the two looks answered "not
                // in the log" for a bid that was.)
                let applied_past =
                    acknowledged_offset >= 0 && *receiver.borrow_and_update() > acknowledged_offset;
                if let Some(found) = book.find_bid(bid_id) {
                    return Some(found);
                }
                if applied_past {
                    return None;
                }
                if receiver.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, search).await.ok().flatten()
    }
}

/// The tailer's Kafka consumer.
type LogConsumer = StreamConsumer<TailerContext>;

/// The tailer's client context. Reaching the end of a partition is how the tailer sees that the
/// replay is done (`enable.partition.eof`), not an error: librdkafka's report of it is logged at
/// debug level instead of as an error once per partition and catch-up.
#[derive(Debug)]
struct TailerContext;

impl ClientContext for TailerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(reason, "end of a partition of the bid log");
        } else {
            tracing::error!(error = %error, reason, "librdkafka reported an error");
        }
    }
}

impl ConsumerContext for TailerContext {}

/// What the tailer needs.
#[derive(Debug)]
pub(crate) struct Tailer {
    /// The consumer configuration (see [`crate::kafka::tailer_config`]).
    pub config: ClientConfig,
    /// The bid topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Reads records.
    pub decoder: Arc<BidDecoder>,
    /// Receives bids.
    pub book: Arc<AuctionBook>,
    /// Reports progress.
    pub applied: Arc<AppliedOffsets>,
}

impl Tailer {
    /// Starts following the log. `caught_up` is set to true once the log as it was at start has
    /// been applied. Stops on `shutdown`.
    pub(crate) async fn spawn(
        self,
        caught_up: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, KafkaSetupError> {
        let consumer: LogConsumer = self
            .config
            .create_with_context(TailerContext)
            .map_err(|e| KafkaSetupError(format!("cannot create the log consumer: {e}")))?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..self.partitions {
            assignment
                .add_partition_offset(&self.topic, partition, Offset::Beginning)
                .map_err(|e| {
                    KafkaSetupError(format!("cannot assign partition {partition}: {e}"))
                })?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| KafkaSetupError(format!("cannot assign the bid topic: {e}")))?;
        let consumer = Arc::new(consumer);
        let watermarks = watermarks(Arc::clone(&consumer), &self.topic, self.partitions).await?;
        // A partition emptied by retention or DeleteRecords starts above offset 0: what is
        // before its log start is gone, so the tailer counts from there (else it would wait
        // forever for records that cannot come, and the service would never serve).
        for (partition, (low, _)) in (0..).zip(&watermarks) {
            self.applied.advance(partition, *low);
        }
        let targets: Vec<i64> = watermarks.iter().map(|(_, high)| *high).collect();
        tracing::info!(topic = %self.topic, records = watermarks.iter().map(|(low, high)| high - low).sum::<i64>(), "replaying the bid log");
        Ok(tokio::spawn(
            self.run(consumer, targets, caught_up, shutdown),
        ))
    }

    async fn run(
        self,
        consumer: Arc<LogConsumer>,
        targets: Vec<i64>,
        caught_up: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) {
        let started = std::time::Instant::now();
        let mut replaying = true;
        let mut replayed: u64 = 0;
        // A partition is caught up once the consumer has reached its end (librdkafka reports
        // `PartitionEOF`) and everything up to the end at start is applied. Waiting for the end
        // to be reported, also on an empty log, means the consumer is really fetching before the
        // service says it is ready: the first bids do not wait for it to start.
        let mut reached_end = vec![false; targets.len()];
        let is_caught_up = |applied: &AppliedOffsets, reached_end: &[bool]| {
            targets.iter().enumerate().all(|(partition, target)| {
                reached_end[partition] && applied.next(partition) >= *target
            })
        };
        let mut partition_check = tokio::time::interval(PARTITION_CHECK);
        partition_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = partition_check.tick() => {
                    self.pick_up_new_partitions(&consumer).await;
                    continue;
                }
                received = consumer.recv() => received,
            };
            let message = match message {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(partition)) => {
                    if let Some(end) = usize::try_from(partition)
                        .ok()
                        .and_then(|p| reached_end.get_mut(p))
                    {
                        *end = true;
                    }
                    if replaying && is_caught_up(&self.applied, &reached_end) {
                        replaying = false;
                        caught_up.send_replace(true);
                        tracing::info!(
                            records = replayed,
                            seconds = started.elapsed().as_secs_f64(),
                            "bid log replayed; serving"
                        );
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the bid log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let position = LogPosition {
                topic: &self.topic,
                partition: message.partition(),
                offset: message.offset(),
            };
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                match self.decoder.decode(message.payload(), position).await {
                    Ok(decoded) => {
                        self.book.apply(LoggedBid {
                            bid: decoded.bid,
                            partition: position.partition,
                            offset: position.offset,
                        });
                        metrics::counter!(m::LOG_RECORDS, "outcome" => "applied").increment(1);
                        break;
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(error = %e, partition = position.partition, offset = position.offset,
                            "cannot decode a bid yet; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff.next_delay()) => {}
                        }
                    }
                    Err(e) => {
                        // Not a bid (the sinks dead-letter it); it changes no auction.
                        tracing::warn!(error = %e, partition = position.partition, offset = position.offset,
                            "skipping a record that is not a valid bid");
                        metrics::counter!(m::LOG_RECORDS, "outcome" => e.kind()).increment(1);
                        break;
                    }
                }
            }
            self.applied
                .advance(position.partition, position.offset + 1);
            if replaying {
                replayed += 1;
            }
        }
    }
}

impl Tailer {
    /// Follows the partitions added to the topic since the tailer started (from their start),
    /// so that their bids are applied without a restart.
    async fn pick_up_new_partitions(&self, consumer: &Arc<LogConsumer>) {
        let known = self.applied.len();
        let (reader, topic) = (Arc::clone(consumer), self.topic.clone());
        let count = tokio::task::spawn_blocking(move || {
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
            return;
        };
        let mut added = TopicPartitionList::new();
        for partition in known..count {
            if let Err(e) = added.add_partition_offset(&self.topic, partition, Offset::Beginning) {
                tracing::warn!(error = %e, partition, "cannot follow a new partition");
                return;
            }
        }
        self.applied.grow(count);
        match consumer.incremental_assign(&added) {
            Ok(()) => {
                tracing::info!(topic = %self.topic, from = known, to = count, "following new partitions")
            }
            Err(e) => tracing::warn!(error = %e, "cannot follow the new partitions"),
        }
    }
}

/// How often the tailer looks for partitions added to the topic.
const PARTITION_CHECK: Duration = Duration::from_secs(5);

/// (log start, end) of every partition.
async fn watermarks(
    consumer: Arc<LogConsumer>,
    topic: &str,
    partitions: i32,
) -> Result<Vec<(i64, i64)>, KafkaSetupError> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        (0..partitions)
            .map(|partition| {
                consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .map_err(|e| {
                        KafkaSetupError(format!(
                            "cannot read the bounds of partition {partition} of {topic}: {e}"
                        ))
                    })
            })
            .collect()
    })
    .await
    .map_err(|e| KafkaSetupError(format!("the watermark task failed: {e}")))?
}
