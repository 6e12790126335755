//! Partition ownership through Kafka's consumer group protocol.
//!
//! Every replica joins one consumer group over the bid topic (`cooperative-sticky` assignment).
//! The group gives each partition to exactly one member at a time; that member runs the
//! partition's [`owner`](crate::owner) and feeds it the partition's committed records. The group
//! consumer runs on a thread of its own, because librdkafka calls the rebalance callbacks from
//! its poll, and a revocation must wait until the partition's owner has stopped (its open
//! transaction aborted) before the partition goes to another member.
//!
//! A newly assigned partition is paused until its owner has fenced the previous one and restored
//! the state; then the group consumer resumes it from the group's committed offset, which the
//! owners commit inside their transactions.
//!
//! The group consumer's thread never waits for an owner: a rebalance callback that does not run
//! holds up the whole group (every member waits for this one to rejoin). Records an owner cannot
//! take yet wait in a backlog, their partition paused, until it can; owners revoked together are
//! stopped together.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::kafka::{self, KafkaSetupError};
use crate::owner::{self, Feed, OwnerCommand, OwnerContext, OwnerHandle, PlaceError};

/// How long leaving the group at shutdown may take.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a revocation waits for a partition's owner to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The partitions this replica owns.
#[derive(Debug)]
pub(crate) struct Ownership {
    owners: RwLock<HashMap<i32, OwnerHandle>>,
    /// Partitions of the bid topic, as the group consumer last saw them.
    pub partitions: Arc<AtomicI32>,
    context: Arc<OwnerContext>,
    runtime: tokio::runtime::Handle,
    ready: Arc<Mutex<Vec<i32>>>,
    /// Records (in order) that a busy owner could not take yet; their partitions are paused.
    /// Only the group consumer's thread touches it.
    backlog: Mutex<HashMap<i32, VecDeque<Feed>>>,
    /// The group has given this replica its first assignment (possibly empty).
    assigned: AtomicBool,
    /// Partitions whose owner here has taken over.
    taken_over: Arc<Mutex<std::collections::HashSet<i32>>>,
    /// When each partition's owner was last started again after it ended by itself.
    restarted: Mutex<HashMap<i32, std::time::Instant>>,
}

/// Why a call could not be handed to a local owner.
#[derive(Debug)]
pub(crate) enum Submit {
    /// This replica does not own the partition; the command comes back.
    NotOwner(OwnerCommand),
    /// The owner's queue is full.
    Overloaded,
}

impl Ownership {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i32, OwnerHandle>> {
        self.owners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `command` to the owner of `partition` if it runs here; the outcome arrives on the
    /// command's reply channel.
    pub(crate) fn submit(&self, partition: i32, command: OwnerCommand) -> Result<(), Submit> {
        let sender = match self.read().get(&partition) {
            Some(owner) if !owner.deciding.load(std::sync::atomic::Ordering::Relaxed) => {
                command.fail(PlaceError::Unavailable(
                    "the owner of the auction's partition is replacing its Kafka producer after a failure"
                        .to_owned(),
                ));
                return Ok(());
            }
            Some(owner) => owner.commands.clone(),
            None => return Err(Submit::NotOwner(command)),
        };
        match sender.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Submit::Overloaded),
            // The owner here has stopped by itself (fenced: another replica took over) before
            // the group revoked the partition: the caller looks for the new owner.
            Err(mpsc::error::TrySendError::Closed(command)) => Err(Submit::NotOwner(command)),
        }
    }

    /// The partitions whose owner runs here.
    pub(crate) fn owned(&self) -> Vec<i32> {
        self.read().keys().copied().collect()
    }

    /// Whether this replica has joined the group and every partition the group gave it has an
    /// owner that took it over (restored, deciding): the replica's own part of being SERVING.
    pub(crate) fn settled(&self) -> bool {
        if !self.assigned.load(Ordering::Acquire) {
            return false;
        }
        let taking_over = self.read().keys().copied().collect::<Vec<i32>>();
        let ready = self
            .taken_over
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        taking_over.iter().all(|p| ready.contains(p))
    }

    fn start_owner(&self, partition: i32) {
        let mut owners = self
            .owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if owners.contains_key(&partition) {
            return;
        }
        let ready = Arc::clone(&self.ready);
        let taken_over = Arc::clone(&self.taken_over);
        let handle = owner::start(
            Arc::clone(&self.context),
            partition,
            &self.runtime,
            move || {
                ready
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(partition);
                taken_over
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(partition);
            },
        );
        owners.insert(partition, handle);
        tracing::info!(partition, "assigned a partition; taking it over");
    }

    /// Stops the owners of `partitions` at once and waits until they have stopped; with
    /// `commit_reached` (shutdown), each first commits the state it reached if no bid is in
    /// flight.
    fn stop_owners(&self, partitions: &[i32], commit_reached: bool) {
        let handles: Vec<OwnerHandle> = {
            let mut owners = self
                .owners
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            partitions.iter().filter_map(|p| owners.remove(p)).collect()
        };
        {
            let mut backlog = self.backlog();
            let mut taken_over = self
                .taken_over
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for partition in partitions {
                backlog.remove(partition);
                taken_over.remove(partition);
            }
        }
        if !handles.is_empty() {
            tracing::info!(?partitions, "partitions revoked; stopping their owners");
            OwnerHandle::stop_all_and_wait(handles, STOP_TIMEOUT, commit_reached);
        }
    }

    /// Stops every owner at shutdown.
    fn stop_all(&self) {
        let partitions: Vec<i32> = self.read().keys().copied().collect();
        self.stop_owners(&partitions, true);
    }

    /// Takes over again each partition whose owner ended by itself while the group still gives
    /// the partition to this replica: fenced (a paused replica that woke up replaced its
    /// producer, and its new epoch fenced this owner's) or a takeover that failed. Without it the
    /// partition has no owner until the next rebalance. The group consumer reads the partition
    /// again from the offset the last owner committed (what the ended owner was fed is gone with
    /// it); at most once per partition every [`RESTART_BACKOFF`].
    fn restart_ended_owners(&self, consumer: &BaseConsumer<GroupContext>) {
        let now = std::time::Instant::now();
        let due: Vec<i32> = {
            let restarted = self
                .restarted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.read()
                .iter()
                .filter(|(_, owner)| owner.commands.is_closed())
                .map(|(partition, _)| *partition)
                .filter(|p| {
                    restarted
                        .get(p)
                        .is_none_or(|at| now.duration_since(*at) >= RESTART_BACKOFF)
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let list = self.partition_list(&due);
        let committed = match consumer.committed_offsets(list.clone(), Duration::from_secs(5)) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(partitions = ?due, error = %e, "an owner here has stopped, but the group's committed offsets cannot be read; trying again");
                return;
            }
        };
        tracing::warn!(partitions = ?due, "an owner stopped by itself while the group still gives this replica its partition; taking it over again");
        {
            let mut restarted = self
                .restarted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for partition in &due {
                restarted.insert(*partition, now);
            }
        }
        self.stop_owners(&due, false);
        if let Err(e) = consumer.pause(&list) {
            tracing::error!(partitions = ?due, error = %e, "cannot pause partitions to take them over again");
        }
        for element in committed.elements() {
            let from = match element.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                _ => Offset::Beginning,
            };
            if let Err(e) = consumer.seek(
                &self.context.topic,
                element.partition(),
                from,
                Duration::from_secs(5),
            ) {
                tracing::error!(partition = element.partition(), error = %e, "cannot read a partition again from its committed offset");
            }
        }
        for partition in due {
            self.start_owner(partition);
        }
    }

    fn backlog(&self) -> std::sync::MutexGuard<'_, HashMap<i32, VecDeque<Feed>>> {
        self.backlog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `feed` to the owner of `partition` without waiting: behind the partition's backlog
    /// if it has one; into a new backlog, the partition paused, if the owner's queue is full.
    fn deliver(&self, consumer: &BaseConsumer<GroupContext>, partition: i32, feed: Feed) {
        let Some(records) = self.records_for(partition) else {
            return;
        };
        let mut backlog = self.backlog();
        if let Some(waiting) = backlog.get_mut(&partition) {
            waiting.push_back(feed);
            return;
        }
        match records.try_send(feed) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(feed)) => {
                backlog.insert(partition, VecDeque::from([feed]));
                if let Err(e) = consumer.pause(&self.partition_list(&[partition])) {
                    tracing::error!(partition, error = %e, "cannot pause a partition whose owner is busy");
                }
            }
        }
    }

    /// Hands on what the backlogs hold, as far as the owners take it; resumes the partitions
    /// whose backlog is empty again.
    fn drain_backlog(&self, consumer: &BaseConsumer<GroupContext>) {
        let mut backlog = self.backlog();
        if backlog.is_empty() {
            return;
        }
        let mut emptied = Vec::new();
        for (partition, waiting) in backlog.iter_mut() {
            let Some(records) = self.records_for(*partition) else {
                waiting.clear();
                emptied.push(*partition);
                continue;
            };
            while let Some(feed) = waiting.pop_front() {
                match records.try_send(feed) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(feed)) => {
                        waiting.push_front(feed);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => waiting.clear(),
                }
            }
            if waiting.is_empty() {
                emptied.push(*partition);
            }
        }
        for partition in &emptied {
            backlog.remove(partition);
        }
        drop(backlog);
        let owned: Vec<i32> = emptied
            .into_iter()
            .filter(|p| self.read().contains_key(p))
            .collect();
        if !owned.is_empty()
            && let Err(e) = consumer.resume(&self.partition_list(&owned))
        {
            tracing::error!(partitions = ?owned, error = %e, "cannot resume partitions");
        }
    }

    fn partition_list(&self, partitions: &[i32]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition(&self.context.topic, *partition);
        }
        list
    }

    fn records_for(&self, partition: i32) -> Option<mpsc::Sender<Feed>> {
        self.read()
            .get(&partition)
            .map(|owner| owner.records.clone())
    }
}

/// The group consumer's context: starts and stops partition owners as the group assigns and
/// revokes partitions.
#[derive(Debug)]
pub(crate) struct GroupContext {
    ownership: Arc<Ownership>,
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // Reaching a partition's end is how an owner learns it has caught up, not an error.
        if error.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(reason, "end of a partition of the bid topic");
        } else {
            tracing::error!(error = %error, reason, "librdkafka reported an error");
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list
                .elements()
                .iter()
                .filter(|element| element.topic() == self.ownership.context.topic)
                .map(|element| element.partition())
                .collect();
            self.ownership.stop_owners(&partitions, false);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                self.ownership.assigned.store(true, Ordering::Release);
                // Nothing is read from a new partition before its owner has restored.
                if let Err(e) = consumer.pause(list) {
                    tracing::error!(error = %e, "cannot pause newly assigned partitions");
                }
                for element in list.elements() {
                    if element.topic() == self.ownership.context.topic {
                        self.ownership.start_owner(element.partition());
                    }
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "the consumer group's rebalance failed")
            }
        }
    }
}

/// Joins the group and runs the group consumer's thread until `shutdown`; on shutdown the
/// owners stop and the consumer leaves the group, so that the others take over at once. The
/// returned receiver completes when the thread has ended.
pub(crate) fn start(
    context: Arc<OwnerContext>,
    partitions: i32,
    group_id: &str,
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
) -> Result<(Arc<Ownership>, oneshot::Receiver<()>), KafkaSetupError> {
    let ownership = Arc::new(Ownership {
        owners: RwLock::new(HashMap::new()),
        partitions: Arc::new(AtomicI32::new(partitions)),
        context: Arc::clone(&context),
        runtime,
        ready: Arc::new(Mutex::new(Vec::new())),
        backlog: Mutex::new(HashMap::new()),
        assigned: AtomicBool::new(false),
        taken_over: Arc::new(Mutex::new(std::collections::HashSet::new())),
        restarted: Mutex::new(HashMap::new()),
    });
    let client_id = format!("bid-service@{}", context.address);
    let consumer: BaseConsumer<GroupContext> =
        kafka::group_consumer_config(&context.kafka, group_id, &client_id)
            .create_with_context(GroupContext {
                ownership: Arc::clone(&ownership),
            })
            .map_err(|e| KafkaSetupError(format!("cannot create the group consumer: {e}")))?;
    consumer
        .subscribe(&[context.topic.as_str()])
        .map_err(|e| KafkaSetupError(format!("cannot join the group {group_id}: {e}")))?;
    let consumer = Arc::new(consumer);
    let _ = context.group.set(Arc::clone(&consumer));
    let (ended, ended_receiver) = oneshot::channel();
    let runner = Arc::clone(&ownership);
    std::thread::Builder::new()
        .name("bid-service-group".to_owned())
        .spawn(move || {
            poll(&consumer, &runner, &shutdown);
            runner.stop_all();
            leave_group(&consumer);
            drop(consumer);
            let _ = ended.send(());
        })
        .map_err(|e| KafkaSetupError(format!("cannot start the group consumer's thread: {e}")))?;
    Ok((ownership, ended_receiver))
}

/// Closes the group consumer, which leaves the group, so that the other replicas take the
/// partitions over at once instead of after the session timeout (20 s). Explicitly: the owners'
/// context holds another handle to the consumer, so dropping this one would not close it.
fn leave_group(consumer: &BaseConsumer<GroupContext>) {
    if let Err(e) = consumer.close_queue() {
        tracing::warn!(error = %e, "cannot leave the group; the others take over after the session timeout");
        return;
    }
    let deadline = std::time::Instant::now() + LEAVE_TIMEOUT;
    while !consumer.closed() {
        if std::time::Instant::now() > deadline {
            tracing::warn!(
                "leaving the group took too long; the others take over after the session timeout"
            );
            return;
        }
        // Serves the final revocation (the owners have stopped already) and the leave.
        let _ = consumer.poll(Duration::from_millis(100));
    }
    tracing::info!("left the group");
}

fn poll(
    consumer: &BaseConsumer<GroupContext>,
    ownership: &Ownership,
    shutdown: &CancellationToken,
) {
    let mut partition_check = std::time::Instant::now();
    let mut owner_check = std::time::Instant::now();
    while !shutdown.is_cancelled() {
        if partition_check.elapsed() >= PARTITION_CHECK {
            partition_check = std::time::Instant::now();
            follow_partition_count(consumer, ownership);
        }
        if owner_check.elapsed() >= OWNER_CHECK {
            owner_check = std::time::Instant::now();
            ownership.restart_ended_owners(consumer);
        }
        let ready: Vec<i32> = std::mem::take(
            &mut *ownership
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        ownership.drain_backlog(consumer);
        if !ready.is_empty() {
            match consumer.resume(&ownership.partition_list(&ready)) {
                Ok(()) => {
                    tracing::info!(partitions = ?ready, "owners ready; reading their partitions")
                }
                Err(e) => tracing::error!(error = %e, "cannot resume partitions"),
            }
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                ownership.deliver(
                    consumer,
                    message.partition(),
                    Feed::Record(message.detach()),
                );
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ownership.deliver(consumer, partition, Feed::End);
            }
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the group consumer reported an error");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// How often the group consumer's thread reads the bid topic's partition count.
const PARTITION_CHECK: Duration = Duration::from_secs(5);

/// How often the group consumer's thread looks for owners that ended by themselves.
const OWNER_CHECK: Duration = Duration::from_millis(500);

/// The least time between two restarts of one partition's owner.
const RESTART_BACKOFF: Duration = Duration::from_secs(2);

/// Takes partitions added to the bid topic into account for routing (the group assigns them by
/// itself).
fn follow_partition_count(consumer: &BaseConsumer<GroupContext>, ownership: &Ownership) {
    let topic = &ownership.context.topic;
    let count = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(1))
        .ok()
        .and_then(|metadata| metadata.topics().first().map(|t| t.partitions().len()))
        .and_then(|count| i32::try_from(count).ok());
    if let Some(count) = count {
        let known = ownership.partitions.swap(count.max(1), Ordering::Relaxed);
        if count != known && count > 0 {
            tracing::info!(
                topic,
                from = known,
                to = count,
                "the bid topic's partition count changed"
            );
        }
    }
}

/// Waits for a call's outcome.
pub(crate) async fn outcome<T>(
    reply: oneshot::Receiver<Result<T, PlaceError>>,
) -> Result<T, PlaceError> {
    reply.await.unwrap_or_else(|_| {
        Err(PlaceError::Unavailable(
            "the owner of the auction's partition stopped".to_owned(),
        ))
    })
}
