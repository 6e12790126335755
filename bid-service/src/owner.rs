//! The owner of one partition of the bid topic: the only place that decides for the auctions of
//! that partition.
//!
//! A replica runs one [`PartitionOwner`] for each partition the consumer group gives it. The
//! owner:
//! 1. creates a transactional producer with the partition's `transactional.id` and calls
//!    `init_transactions`: Kafka fences every earlier producer of that id (a previous owner that is
//!    paused, cut off or slow can never commit again) and aborts its open transaction;
//! 2. restores the partition's state from `auction.state` (read to its end, now final), then
//!    lets the group consumer feed it the bid records after the group's committed offset;
//! 3. decides `PlaceBid` calls one after another against the state plus the bids it has written
//!    but not yet read back, and writes the accepted ones inside a transaction that groups the
//!    calls of a few milliseconds;
//! 4. applies every committed record of its partition in log order (its own and other
//!    producers'), and answers each call once its bid is applied: OK if the bid is valid at its
//!    position, never before the commit;
//! 5. writes, in each transaction, the state of the auctions changed by the records it applied,
//!    the request ids within the idempotency window, and the group offset after them
//!    (`send_offsets_to_transaction`), so that the state and the offset move together.
//!
//! A commit that fails with an abortable error is aborted and its calls answer UNAVAILABLE (the
//! bids are not in the log). A fenced owner stops. A commit whose outcome is unknown (a timeout)
//! first gives the group consumer a few heartbeats to learn whether this replica lost the
//! partition (paused or cut off past its session: it then stops, so as not to fence the new
//! owner), and otherwise replaces the producer: the new instance's `init_transactions` bumps the epoch, which settles the
//! old transaction and fences any request of the old instance still in flight (librdkafka does
//! not implement the client side of KIP-890, so a timed-out request could otherwise land in a
//! later transaction); the doubtful bids then wait for the read-back like committed ones, and
//! those not read back in time are looked for in the log (absent: UNAVAILABLE, not placed).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use auction_process::Backoff;
use auction_schemas::state::{OwnerRecord, Refusal, RequestRecord, StateRecord, request_key};
use auction_schemas::{
    AUCTION_ID_HEADER, AuctionId, BID_ID_HEADER, Bid, BidDecoder, BidEncoder, BidForm, BidId,
    DecodeError, HeaderIds, LogPosition, RecordCodec,
};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auction::{Applied, AuctionState, BidRules, LoggedBid};
use crate::config::KafkaProperties;
use crate::kafka::{self, KafkaSetupError};
use crate::lifecycle::{self, Definition, NotOpen, PROXY_HEADER, Refused};
use crate::limits::{ImplicitAuctions, ImplicitRefusal};
use crate::metrics as m;
use crate::ownership::GroupContext;
use crate::read_copy::ReadCopy;
use crate::state_log;

/// The header that marks a bid placed with a client's `request_id` (its bid id): such bids are
/// remembered for the idempotency window.
pub(crate) const REQUEST_HEADER: &str = "auction-request-id";

/// How long a stopping owner with no bid in flight may take to commit the state it reached.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an owner still catching up on the log commits the state and offsets it has reached.
const CATCH_UP_COMMIT_INTERVAL: Duration = Duration::from_secs(10);

/// Time limit of a transactional operation (init, offsets, commit, abort).
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an owner whose transaction timed out waits for the group consumer to learn whether
/// the partition is still its own before it replaces its producer (a few heartbeats).
const OWNERSHIP_CHECK_DELAY: Duration = Duration::from_secs(3);

/// How long a committed bid may take to be read back before the owner checks that the log
/// holds it (a partition leader's failover stalls reading for about 10 s).
const READ_BACK_WAIT: Duration = Duration::from_secs(12);

/// How long a bid whose commit succeeded may go unread before the owner looks for it in the log
/// with a reader of its own (a leader failover included).
const READ_BACK_CHECK_AFTER: Duration = Duration::from_secs(30);

/// How long the group consumer may fail to deliver a bid that the log holds (a reader of the
/// owner's own found it) before the owner ends so that the partition is taken over again and
/// read from the group's committed offset: a group consumer whose fetching of the partition
/// stalled (seen once after a partition leader was killed) would otherwise hold the bid's call
/// unanswered for good.
const READ_BACK_STALL: Duration = Duration::from_secs(20);

/// How many transactions a bid is written in before its call gives up (an abortable error, such
/// as a group generation that moved during a rebalance, aborts a transaction).
const WRITE_ATTEMPTS: u8 = 3;

/// How often an owner looks for auctions whose end has passed.
const CLOSE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Calls waiting for a partition owner at most.
pub(crate) const COMMAND_QUEUE: usize = 4096;

/// Records handed to a partition owner ahead of it.
pub(crate) const RECORD_QUEUE: usize = 4096;

/// Why a bid was not placed.
#[derive(Debug, Clone)]
pub(crate) enum PlaceError {
    /// The price does not beat the current state.
    TooLow {
        /// The highest price, counting bids written and not yet read back.
        current_highest: Option<i64>,
        /// The lowest acceptable price.
        minimum_next_bid: i64,
    },
    /// The bid was written, but a record of another producer before it in the log beat it.
    OutbidInLog {
        /// Where the bid is.
        offset: i64,
        /// The price it needed there.
        minimum_next_bid: i64,
    },
    /// The auction takes no bid now (not started, ended, closed or cancelled).
    NotOpen(NotOpen),
    /// The bidder leads already with a maximum at least as high.
    AlreadyLeading {
        /// Their standing maximum.
        maximum: i64,
    },
    /// The auction does not exist where one must.
    NotFound(String),
    /// An auction with that id exists already.
    AlreadyExists(String),
    /// The seller key does not match.
    PermissionDenied(String),
    /// The auction cannot be cancelled (it has a bid, or has ended).
    CannotCancel(String),
    /// Too much work queued.
    Overloaded,
    /// The bid would open an auction beyond the cap or rate of auctions opened by a first bid.
    TooManyAuctions(ImplicitRefusal),
    /// Kafka, the registry or the owner cannot take the bid now; the bid is not placed.
    Unavailable(String),
}

/// A placed bid.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    /// The bid, where the log holds it.
    pub logged: Arc<LoggedBid>,
    /// An earlier call with the same request id placed it.
    pub replayed: bool,
    /// Another bidder's maximum outbid it at once.
    pub outbid: bool,
}

/// The outcome of one call.
pub(crate) type PlaceOutcome = Result<Placed, PlaceError>;

/// What the group consumer hands an owner.
#[derive(Debug)]
pub(crate) enum Feed {
    /// The partition's next committed record.
    Record(OwnedMessage),
    /// The consumer has reached the partition's end.
    End,
}

/// A bid for the owner.
#[derive(Debug)]
pub(crate) struct PlaceCommand {
    /// The validated bid (its id is the request id when `request` is set); its price is the
    /// amount, or the maximum when the amount is left to the service.
    pub bid: Bid,
    /// The amount asked for (0: as little as needed, with a maximum).
    pub amount: i64,
    /// The proxy maximum.
    pub maximum: Option<i64>,
    /// The client gave a request id: remember the outcome for retries.
    pub request: bool,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<PlaceOutcome>,
}

/// Where the outcome of a lifecycle call goes: the auction as committed.
pub(crate) type AuctionReply = oneshot::Sender<Result<Arc<AuctionState>, PlaceError>>;

/// A call for the owner of an auction's partition.
#[derive(Debug)]
pub(crate) enum OwnerCommand {
    /// Place a bid.
    Place(PlaceCommand),
    /// Create an auction with a definition.
    Create {
        /// Its id.
        auction: AuctionId,
        /// What it is.
        definition: Box<Definition>,
        /// The outcome.
        reply: AuctionReply,
    },
    /// Cancel an auction that has no bid.
    Cancel {
        /// Its id.
        auction: AuctionId,
        /// SHA-256 of the key given.
        seller_key_sha256: String,
        /// The outcome.
        reply: AuctionReply,
    },
}

impl OwnerCommand {
    /// Answers the call with `error`.
    pub(crate) fn fail(self, error: PlaceError) {
        match self {
            Self::Place(command) => {
                let _ = command.reply.send(Err(error));
            }
            Self::Create { reply, .. } | Self::Cancel { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What every partition owner of a replica shares.
pub(crate) struct OwnerContext {
    /// Kafka client properties.
    pub kafka: KafkaProperties,
    /// The bid topic.
    pub topic: String,
    /// The state topic.
    pub state_topic: String,
    /// `transactional.id` prefix; the partition number is appended.
    pub transactional_id_prefix: String,
    /// The bid rules.
    pub rules: BidRules,
    /// How long a request id is remembered after its bid's timestamp.
    pub idempotency_window: Duration,
    /// How long calls are gathered into one transaction.
    pub commit_interval: Duration,
    /// `transaction.timeout.ms`.
    pub transaction_timeout: Duration,
    /// Writes bids.
    pub encoder: Arc<BidEncoder>,
    /// Reads bids.
    pub decoder: Arc<BidDecoder>,
    /// Writes state records.
    pub state_codec: Arc<RecordCodec>,
    /// This replica's view, which owners update as they apply bids.
    pub read_copy: Arc<ReadCopy>,
    /// Where this replica takes forwarded calls.
    pub address: String,
    /// The group consumer, for the group metadata that fences offset commits (KIP-447).
    pub group: OnceLock<Arc<BaseConsumer<GroupContext>>>,
    /// A bid on an auction nobody created opens it.
    pub implicit_auctions: bool,
    /// The cap and rate of auctions opened by a first bid, shared by this replica's owners.
    pub implicit_limit: ImplicitAuctions,
    /// The topic of closed auctions' results.
    pub results_topic: String,
    /// Writes results.
    pub results_codec: Arc<RecordCodec>,
}

impl std::fmt::Debug for OwnerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerContext")
            .field("topic", &self.topic)
            .field("state_topic", &self.state_topic)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The running owner of one partition, as the group consumer's thread sees it.
#[derive(Debug)]
pub(crate) struct OwnerHandle {
    /// Calls for the owner.
    pub commands: mpsc::Sender<OwnerCommand>,
    /// Committed records of the partition, in order, and its ends.
    pub records: mpsc::Sender<Feed>,
    /// False while the owner replaces its producer: new calls then answer UNAVAILABLE at once
    /// instead of waiting out their deadline in the queue.
    pub deciding: Arc<std::sync::atomic::AtomicBool>,
    /// Set before `stop` when the replica shuts down: the owner then commits the state it
    /// reached (if no bid is in flight) instead of only aborting.
    commit_on_stop: Arc<std::sync::atomic::AtomicBool>,
    stop: CancellationToken,
    stopped: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl OwnerHandle {
    /// Stops every owner of `handles` at once (open transactions aborted, waiting calls answered
    /// UNAVAILABLE), then waits until all have stopped (at most
    /// `timeout` in all): partitions revoked together are released together. With
    /// `commit_reached` (the replica shuts down), an owner with no bid in flight first commits
    /// the state and offsets it reached, so that the next owner need not replay them.
    pub(crate) fn stop_all_and_wait(handles: Vec<Self>, timeout: Duration, commit_reached: bool) {
        for handle in &handles {
            handle
                .commit_on_stop
                .store(commit_reached, std::sync::atomic::Ordering::Relaxed);
            handle.stop.cancel();
        }
        let deadline = Instant::now() + timeout;
        for handle in handles {
            drop(handle.records);
            let stopped = handle
                .stopped
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = stopped.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

/// Sends on drop, so that the handle learns the owner stopped however it ended.
struct StoppedSignal(std::sync::mpsc::SyncSender<()>);

impl Drop for StoppedSignal {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the owner of `partition` on `runtime`; `ready` is called once it has restored and
/// takes records.
pub(crate) fn start(
    context: Arc<OwnerContext>,
    partition: i32,
    runtime: &tokio::runtime::Handle,
    ready: impl FnOnce() + Send + 'static,
) -> OwnerHandle {
    let (commands, command_receiver) = mpsc::channel(COMMAND_QUEUE);
    let (records, record_receiver) = mpsc::channel(RECORD_QUEUE);
    let stop = CancellationToken::new();
    let (stopped_sender, stopped) = std::sync::mpsc::sync_channel(1);
    let token = stop.clone();
    let deciding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = Arc::clone(&deciding);
    let commit_on_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let commit_flag = Arc::clone(&commit_on_stop);
    runtime.spawn(async move {
        let _signal = StoppedSignal(stopped_sender);
        let started = Instant::now();
        let owner = match PartitionOwner::take_over(context, partition, flag, &token).await {
            Ok(owner) => owner,
            Err(e) => {
                tracing::error!(partition, error = %e, "cannot take over the partition");
                return;
            }
        };
        metrics::histogram!(m::TAKEOVER_SECONDS).record(started.elapsed().as_secs_f64());
        ready();
        owner
            .run(command_receiver, record_receiver, token, commit_flag)
            .await;
    });
    OwnerHandle {
        commands,
        records,
        deciding,
        commit_on_stop,
        stop,
        stopped: std::sync::Mutex::new(stopped),
    }
}

/// A bid waiting to be read back (an automatic bid has no caller).
#[derive(Debug)]
struct Waiter {
    replies: Vec<(oneshot::Sender<PlaceOutcome>, bool)>,
    auction: AuctionId,
    /// Another bidder's maximum outbids it at once (its answer is written after it).
    outbid: bool,
    /// An automatic bid for a maximum.
    automatic: bool,
    /// The bid and its framed value, to write again after an aborted transaction.
    bid: Bid,
    request: bool,
    payload: Vec<u8>,
    /// Transactions it was written in.
    attempts: u8,
    /// Its transaction's outcome was unknown (a replaced producer settled it): if it is not
    /// read back in time, the log is checked for it.
    doubtful: bool,
    /// Since when its transaction is committed, and the partition's applied position then (the
    /// bid is after it).
    committed: Option<(Instant, Option<i64>)>,
    /// Since when a reader of its own found the bid in the log while the group consumer had
    /// not delivered it yet.
    in_log_since: Option<Instant>,
}

/// The final outcome of a request id within the window.
#[derive(Debug, Clone)]
enum Outcome {
    /// It placed this bid.
    Placed(Arc<LoggedBid>),
    /// It was refused.
    Refused(Refusal),
}

/// A request id within the window.
#[derive(Debug)]
struct Remembered {
    auction: AuctionId,
    at: DateTime<Utc>,
    outcome: Outcome,
}

impl Remembered {
    fn record(&self, request_id: Uuid, partition: i32) -> RequestRecord {
        let (bid, refused) = match &self.outcome {
            Outcome::Placed(logged) => (Some(crate::auction::recorded(logged)), None),
            Outcome::Refused(refusal) => (None, Some(refusal.clone())),
        };
        RequestRecord {
            request_id,
            auction_id: self.auction.to_string(),
            partition,
            at: self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            bid,
            refused,
        }
    }

    fn from_record(record: &RequestRecord) -> Option<Self> {
        let auction = AuctionId::parse(&record.auction_id).ok()?;
        let at = DateTime::parse_from_rfc3339(&record.at)
            .ok()?
            .with_timezone(&Utc);
        let outcome = match (&record.bid, &record.refused) {
            (Some(bid), _) => Outcome::Placed(Arc::new(crate::auction::logged_from(
                &auction,
                record.partition,
                bid,
            )?)),
            (None, Some(refusal)) => Outcome::Refused(refusal.clone()),
            (None, None) => return None,
        };
        Some(Self {
            auction,
            at,
            outcome,
        })
    }

    fn answer(&self) -> PlaceOutcome {
        match &self.outcome {
            Outcome::Placed(logged) => Ok(Placed {
                logged: Arc::clone(logged),
                replayed: true,
                outbid: false,
            }),
            Outcome::Refused(refusal) => Err(match refusal.offset {
                Some(offset) => PlaceError::OutbidInLog {
                    offset,
                    minimum_next_bid: refusal.minimum_next_bid,
                },
                None => PlaceError::TooLow {
                    current_highest: refusal.current_highest,
                    minimum_next_bid: refusal.minimum_next_bid,
                },
            }),
        }
    }
}

/// The transaction being filled.
#[derive(Debug, Default)]
struct Transaction {
    open: bool,
    bids: Vec<BidId>,
    due: Option<tokio::time::Instant>,
}

/// A bid written and not yet read back, as the owner's projection of its auction counts it.
#[derive(Debug)]
struct PendingBid {
    logged: Arc<LoggedBid>,
    automatic: bool,
}

/// A call answered once the state it changed is committed.
#[derive(Debug)]
enum AfterCommit {
    /// A bid that only raised the leader's own maximum: the answer is their leading bid (and
    /// the request id, if any, remembers it).
    Place(oneshot::Sender<PlaceOutcome>, AuctionId, Option<Uuid>),
    /// A creation or cancellation.
    Auction(AuctionReply, AuctionId),
}

/// How an owner's run ends early.
#[derive(Debug)]
enum Ended {
    /// Another owner fenced this one.
    Fenced,
    /// Shutting down.
    Stopped,
    /// The group consumer stopped delivering records that the log holds: the partition is
    /// taken over again (see [`READ_BACK_STALL`]).
    ReadBackStalled,
}

/// The owner of one partition.
struct PartitionOwner {
    context: Arc<OwnerContext>,
    partition: i32,
    owner_id: Uuid,
    producer: FutureProducer,
    /// Shared with the read copy (copy on write): one copy of each auction in memory.
    auctions: HashMap<AuctionId, Arc<AuctionState>>,
    requests: HashMap<Uuid, Remembered>,
    request_expiry: VecDeque<(DateTime<Utc>, Uuid)>,
    position: Option<i64>,
    committed_position: Option<i64>,
    waiting: HashMap<BidId, Waiter>,
    pending: HashMap<AuctionId, Vec<PendingBid>>,
    /// Open auctions with an end, which the owner closes once it has passed.
    timed: HashSet<AuctionId>,
    /// Calls answered at the next successful commit.
    after_commit: Vec<AfterCommit>,
    /// Results of auctions closed since the last commit (key, framed value).
    results: Vec<(String, Vec<u8>)>,
    /// Auctions created, cancelled or closed since the last commit: their state reaches this
    /// replica's read copy once committed (applied bids reach it as they are applied).
    lifecycle_changed: HashSet<AuctionId>,
    transaction: Transaction,
    dirty_auctions: HashSet<AuctionId>,
    dirty_requests: Vec<Uuid>,
    announce: bool,
    /// The partition has been read to its end since the takeover.
    caught_up: bool,
    /// Without an end event: the offset after the partition's last record, found by a fresh read.
    catch_up_target: Option<i64>,
    /// Shared with the handle: false while the producer is being replaced.
    deciding: Arc<std::sync::atomic::AtomicBool>,
    /// Auctions without a definition this owner holds (in `auctions`, or reserved), counted in
    /// the replica's [`ImplicitAuctions`] until the owner stops.
    implicit_held: usize,
    /// Auctions a first bid is being written for, not yet in `auctions`: counted in
    /// `implicit_held` already.
    implicit_reserved: HashSet<AuctionId>,
}

fn transactional_id(context: &OwnerContext, partition: i32) -> String {
    format!("{}-{partition}", context.transactional_id_prefix)
}

/// A transactional producer for `partition`, initialised: every earlier producer of the
/// partition is fenced when this returns.
async fn fenced_producer(
    context: &OwnerContext,
    partition: i32,
    stop: &CancellationToken,
) -> Result<FutureProducer, KafkaSetupError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let producer: FutureProducer = kafka::producer_config(
            &context.kafka,
            &transactional_id(context, partition),
            context.transaction_timeout,
        )
        .create()
        .map_err(|e| KafkaSetupError(format!("cannot create the transactional producer: {e}")))?;
        let init = producer.clone();
        match crate::kafka::off_runtime(move || init.init_transactions(TRANSACTION_CALL_TIMEOUT))
            .await
        {
            Ok(Ok(())) => return Ok(producer),
            Ok(Err(e)) => {
                tracing::warn!(partition, error = %e, "cannot initialise transactions yet; retrying")
            }
            Err(e) => return Err(KafkaSetupError(format!("the init task failed: {e}"))),
        }
        tokio::select! {
            () = stop.cancelled() => return Err(KafkaSetupError("stopped while taking over".to_owned())),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

impl PartitionOwner {
    /// Fences the previous owner, then restores the partition's state from the state topic.
    async fn take_over(
        context: Arc<OwnerContext>,
        partition: i32,
        deciding: Arc<std::sync::atomic::AtomicBool>,
        stop: &CancellationToken,
    ) -> Result<Self, KafkaSetupError> {
        let started = Instant::now();
        kafka::match_state_partitions(&context.kafka, &context.topic, &context.state_topic).await?;
        let producer = fenced_producer(&context, partition, stop).await?;
        let fenced_in = started.elapsed();
        let mut auctions = HashMap::new();
        let mut requests = HashMap::new();
        let window =
            chrono::Duration::from_std(context.idempotency_window).unwrap_or(chrono::Duration::MAX);
        let records = state_log::read_partition(
            &kafka::reader_config(&context.kafka),
            &context.state_topic,
            partition,
            stop,
            |key, record| match record {
                Some(StateRecord::Auction(record)) => {
                    if let Some(state) = AuctionState::from_record(&record) {
                        auctions.insert(state.id.clone(), Arc::new(state));
                    }
                }
                Some(StateRecord::Request(record)) => {
                    if let Some(remembered) = Remembered::from_record(&record) {
                        requests.insert(record.request_id, remembered);
                    }
                }
                Some(StateRecord::Owner(_)) => {}
                None => {
                    if let Some(id) = key.strip_prefix(auction_schemas::state::REQUEST_KEY_PREFIX)
                        && let Ok(id) = id.parse::<Uuid>()
                    {
                        requests.remove(&id);
                    }
                }
            },
        )
        .await?;
        let mut request_expiry: Vec<(DateTime<Utc>, Uuid)> = requests
            .iter()
            .map(|(id, remembered)| (remembered.at + window, *id))
            .collect();
        request_expiry.sort();
        for state in auctions.values() {
            context.read_copy.update_from_owner(Arc::clone(state));
        }
        let timed = auctions
            .values()
            .filter(|state| {
                state.life.end.is_some() && state.life.status == lifecycle::Status::Open
            })
            .map(|state| state.id.clone())
            .collect();
        tracing::info!(
            partition,
            auctions = auctions.len(),
            requests = requests.len(),
            state_records = records,
            fenced_ms = fenced_in.as_millis() as u64,
            seconds = started.elapsed().as_secs_f64(),
            "took over the partition"
        );
        metrics::gauge!(m::OWNED_PARTITIONS).increment(1.0);
        let implicit_held = auctions
            .values()
            .filter(|state| state.life.definition.is_none())
            .count();
        context.implicit_limit.add(implicit_held);
        Ok(Self {
            partition,
            owner_id: Uuid::new_v4(),
            producer,
            auctions,
            requests,
            request_expiry: request_expiry.into(),
            position: None,
            committed_position: None,
            waiting: HashMap::new(),
            pending: HashMap::new(),
            timed,
            after_commit: Vec::new(),
            results: Vec::new(),
            lifecycle_changed: HashSet::new(),
            // The owner record goes out with the first transaction, right away.
            transaction: Transaction {
                due: Some(tokio::time::Instant::now()),
                ..Transaction::default()
            },
            dirty_auctions: HashSet::new(),
            dirty_requests: Vec::new(),
            announce: true,
            caught_up: false,
            catch_up_target: None,
            deciding,
            implicit_held,
            implicit_reserved: HashSet::new(),
            context,
        })
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<OwnerCommand>,
        mut records: mpsc::Receiver<Feed>,
        stop: CancellationToken,
        commit_on_stop: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let started = Instant::now();
        let mut overdue_check = tokio::time::interval(READ_BACK_WAIT / 4);
        overdue_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut close_check = tokio::time::interval(CLOSE_CHECK_INTERVAL);
        close_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            let due = self.transaction.due;
            tokio::select! {
                biased;
                () = stop.cancelled() => break Ended::Stopped,
                Some(feed) = records.recv() => match feed {
                    Feed::Record(record) => self.apply(record, &stop).await,
                    Feed::End => {
                        if !self.caught_up {
                            tracing::info!(partition = self.partition, "read the partition to its end; deciding");
                            self.became_caught_up().await;
                        }
                    }
                },
                _ = overdue_check.tick() => {
                    if self.check_overdue(&stop).await.is_err() {
                        break Ended::ReadBackStalled;
                    }
                    if !self.caught_up && started.elapsed() >= READ_BACK_WAIT / 4 {
                        self.catch_up_without_end_event(&stop).await;
                    }
                }
                () = sleep_until(due), if due.is_some() => {
                    if let Err(ended) = self.commit(&stop).await {
                        break ended;
                    }
                }
                _ = close_check.tick(), if self.caught_up => self.close_due_auctions(),
                // Nothing is decided before the bids committed by earlier owners are applied:
                // a retry must find the request id its first call placed.
                Some(command) = commands.recv(), if self.caught_up => match command {
                    OwnerCommand::Place(command) => self.decide(command).await,
                    OwnerCommand::Create { auction, definition, reply } => self.create(auction, definition, reply),
                    OwnerCommand::Cancel { auction, seller_key_sha256, reply } => self.cancel(&auction, &seller_key_sha256, reply),
                },
                else => break Ended::Stopped,
            }
        };
        metrics::gauge!(m::OWNED_PARTITIONS).decrement(1.0);
        // The partition's auctions go with it: the next owner counts them.
        self.context.implicit_limit.release(self.implicit_held);
        self.implicit_held = 0;
        self.implicit_reserved.clear();
        if matches!(ended, Ended::Stopped)
            && commit_on_stop.load(std::sync::atomic::Ordering::Relaxed)
            && self.transaction.bids.is_empty()
        {
            // The replica shuts down and no bid is in flight: the state and offsets this owner
            // reached go out, so that the next owner restores them instead of replaying the
            // bids again (after a catch-up on a long history, that is most of the partition).
            let unstoppable = CancellationToken::new();
            let _ = tokio::time::timeout(FINAL_COMMIT_TIMEOUT, self.commit(&unstoppable)).await;
        }
        if self.transaction.open && !matches!(ended, Ended::Fenced) {
            let producer = self.producer.clone();
            let _ = crate::kafka::off_runtime(move || {
                producer.abort_transaction(Duration::from_secs(5))
            })
            .await;
        }
        let reason = match ended {
            Ended::Fenced => "another replica took over the auction's partition",
            Ended::Stopped => "the auction's partition moved to another replica",
            Ended::ReadBackStalled => {
                "the owner of the auction's partition is taking it over again (its reading of the log stalled)"
            }
        };
        self.fail_waiting(|_| true, reason);
        for call in self.after_commit.drain(..) {
            let error = PlaceError::Unavailable(format!("{reason}; the change was not made"));
            match call {
                AfterCommit::Place(reply, _, _) => {
                    let _ = reply.send(Err(error));
                }
                AfterCommit::Auction(reply, _) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        commands.close();
        while let Ok(command) = commands.try_recv() {
            command.fail(PlaceError::Unavailable(reason.to_owned()));
        }
        tracing::info!(
            partition = self.partition,
            ?ended,
            "no longer the owner of the partition"
        );
    }

    /// Answers UNAVAILABLE to the waiting calls `which` selects.
    fn fail_waiting(&mut self, which: impl Fn(&Waiter) -> bool, reason: &str) {
        let failed: Vec<BidId> = self
            .waiting
            .iter()
            .filter(|(_, w)| which(w))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some(waiter) = self.waiting.remove(&id) {
                self.release(&waiter.auction, id);
                // A maximum its call set goes with the bid that was never placed.
                if let Some(state) = self.auctions.get_mut(&waiter.auction)
                    && state.life.maxima.iter().any(|m| m.bid_id == id)
                {
                    Arc::make_mut(state).forget_maximum(id);
                    self.dirty_auctions.insert(waiter.auction.clone());
                }
                metrics::counter!(m::BIDS_REJECTED, "reason" => "kafka_unavailable")
                    .increment(waiter.replies.len() as u64);
                // A committed bid may be in the log: its outcome is for a retry to learn.
                let outcome = if waiter.committed.is_some() {
                    "the bid's outcome is not known yet"
                } else {
                    "the bid was not placed"
                };
                for (reply, _) in waiter.replies {
                    let _ =
                        reply.send(Err(PlaceError::Unavailable(format!("{reason}; {outcome}"))));
                }
            }
        }
    }

    fn release(&mut self, auction: &AuctionId, bid_id: BidId) {
        if let Some(bids) = self.pending.get_mut(auction) {
            bids.retain(|pending| pending.logged.bid.bid_id != bid_id);
            if bids.is_empty() {
                self.pending.remove(auction);
            }
        }
        self.settle_reservation(auction);
    }

    /// Counts a new entry of `auctions` (before it is inserted) in the implicit auctions held
    /// when it has no definition; one reserved by its first bid is counted already.
    fn counting_new_auction(&mut self, auction: &AuctionId) {
        if !self.auctions.contains_key(auction) && !self.implicit_reserved.remove(auction) {
            self.context.implicit_limit.add(1);
            self.implicit_held += 1;
        }
    }

    /// Frees the room reserved for an auction whose first bid was never written (it has
    /// neither state nor bids in flight).
    fn settle_reservation(&mut self, auction: &AuctionId) {
        if !self.auctions.contains_key(auction)
            && !self.pending.contains_key(auction)
            && self.implicit_reserved.remove(auction)
        {
            self.implicit_held = self.implicit_held.saturating_sub(1);
            self.context.implicit_limit.release(1);
        }
    }

    /// The auction as it will be once the bids written for it are applied (`None` when it has
    /// neither state nor bids in flight); borrowed when no bid of it is in flight.
    fn projected(&self, auction: &AuctionId) -> Option<std::borrow::Cow<'_, AuctionState>> {
        let applied = self.auctions.get(auction);
        let pending = self.pending.get(auction);
        match (applied, pending) {
            (None, None) => return None,
            (Some(applied), None) => return Some(std::borrow::Cow::Borrowed(applied)),
            _ => {}
        }
        let mut state = applied.map_or_else(
            || AuctionState::new(auction.clone(), self.partition),
            |state| (**state).clone(),
        );
        for bid in pending.into_iter().flatten() {
            let logged = Arc::new(LoggedBid {
                offset: state.offset + 1,
                ..(*bid.logged).clone()
            });
            state.apply(&logged, bid.automatic, &self.context.rules);
        }
        Some(std::borrow::Cow::Owned(state))
    }

    /// Remembers a request's final outcome for the window (written with the next commit).
    fn remember(&mut self, request_id: Uuid, auction: AuctionId, outcome: Outcome) {
        let at = Utc::now();
        let window = chrono::Duration::from_std(self.context.idempotency_window)
            .unwrap_or(chrono::Duration::MAX);
        self.request_expiry.push_back((at + window, request_id));
        self.requests.insert(
            request_id,
            Remembered {
                auction,
                at,
                outcome,
            },
        );
        self.dirty_requests.push(request_id);
        self.schedule();
    }

    /// Sets when the next transaction commits: within the commit interval once the owner
    /// decides; while it is still catching up on the log (no call decided yet), every
    /// [`CATCH_UP_COMMIT_INTERVAL`], so that an auction with many bids in the history has its
    /// state written a few times, not once per bid.
    fn schedule(&mut self) {
        let interval = if self.caught_up {
            self.context.commit_interval
        } else {
            CATCH_UP_COMMIT_INTERVAL
        };
        let due = tokio::time::Instant::now() + interval;
        if self.transaction.due.is_none_or(|at| at > due) {
            self.transaction.due = Some(due);
        }
    }

    /// Decides a bid; room reserved for a new auction that its bid did not open is freed.
    async fn decide(&mut self, command: PlaceCommand) {
        let auction = command.bid.auction_id.clone();
        self.decide_bid(command).await;
        self.settle_reservation(&auction);
    }

    async fn decide_bid(&mut self, command: PlaceCommand) {
        let PlaceCommand {
            bid,
            amount,
            maximum,
            request,
            reply,
        } = command;
        if request {
            if let Some(remembered) = self.requests.get(&bid.bid_id.as_uuid()) {
                let _ = reply.send(remembered.answer());
                return;
            }
            if let Some(waiter) = self.waiting.get_mut(&bid.bid_id) {
                waiter.replies.push((reply, true));
                return;
            }
        }
        let opens = self.context.implicit_auctions && self.projected(&bid.auction_id).is_none();
        if opens {
            // A new auction nobody created: within the cap and rate, or refused before any
            // state exists.
            if let Err(refusal) = self.context.implicit_limit.try_open() {
                let reason = match refusal {
                    ImplicitRefusal::Cap(_) => "implicit_auctions_cap",
                    ImplicitRefusal::Rate(_) => "implicit_auctions_rate",
                };
                metrics::counter!(m::BIDS_REJECTED, "reason" => reason).increment(1);
                let _ = reply.send(Err(PlaceError::TooManyAuctions(refusal)));
                return;
            }
            self.implicit_held += 1;
            self.implicit_reserved.insert(bid.auction_id.clone());
        }
        let Some(state) = self.projected(&bid.auction_id).or_else(|| {
            opens.then(|| {
                std::borrow::Cow::Owned(AuctionState::new(bid.auction_id.clone(), self.partition))
            })
        }) else {
            metrics::counter!(m::BIDS_REJECTED, "reason" => "no_such_auction").increment(1);
            let _ = reply.send(Err(PlaceError::NotFound(format!(
                "auction {} does not exist: create it first (this service does not open auctions on a first bid)",
                bid.auction_id
            ))));
            return;
        };
        let elsewhere = self
            .context
            .read_copy
            .highest_elsewhere(&bid.auction_id, self.partition);
        let now = Utc::now();
        let plan = match state.plan(
            &bid.name,
            amount,
            maximum,
            now,
            elsewhere,
            &self.context.rules,
        ) {
            Ok(plan) => plan,
            Err(refused) => {
                let error = match refused {
                    Refused::TooLow {
                        current_highest,
                        minimum_next_bid,
                    } => {
                        metrics::counter!(m::BIDS_REJECTED, "reason" => "too_low").increment(1);
                        if request {
                            self.remember(
                                bid.bid_id.as_uuid(),
                                bid.auction_id.clone(),
                                Outcome::Refused(Refusal {
                                    current_highest,
                                    minimum_next_bid,
                                    offset: None,
                                }),
                            );
                        }
                        PlaceError::TooLow {
                            current_highest,
                            minimum_next_bid,
                        }
                    }
                    Refused::NotOpen(why) => {
                        metrics::counter!(m::BIDS_REJECTED, "reason" => "not_open").increment(1);
                        PlaceError::NotOpen(why)
                    }
                    Refused::AlreadyLeading { maximum } => {
                        metrics::counter!(m::BIDS_REJECTED, "reason" => "already_leading")
                            .increment(1);
                        PlaceError::AlreadyLeading { maximum }
                    }
                };
                let _ = reply.send(Err(error));
                return;
            }
        };
        if let Some(maximum) = plan.maximum {
            let id = bid.auction_id.clone();
            self.counting_new_auction(&id);
            let applied = self
                .auctions
                .entry(id.clone())
                .or_insert_with(|| Arc::new(AuctionState::new(id.clone(), self.partition)));
            Arc::make_mut(applied).register_maximum(&bid.name, maximum, bid.bid_id);
            self.dirty_auctions.insert(id);
            self.schedule();
        }
        if plan.bids.is_empty() {
            // The leader raised their own maximum: nothing to write but the state.
            self.after_commit.push(AfterCommit::Place(
                reply,
                bid.auction_id.clone(),
                request.then(|| bid.bid_id.as_uuid()),
            ));
            return;
        }
        let mut reply = Some(reply);
        for planned in &plan.bids {
            let caller = reply.is_some() && !planned.automatic;
            let Ok(price) = auction_schemas::Price::parse(planned.price) else {
                continue;
            };
            let written = Bid {
                bid_id: if caller {
                    bid.bid_id
                } else {
                    BidId::new_random()
                },
                auction_id: bid.auction_id.clone(),
                name: planned.name.clone(),
                price,
                bid_ts: now.into(),
            };
            let replies = if caller {
                reply.take().map(|r| vec![(r, false)]).unwrap_or_default()
            } else {
                Vec::new()
            };
            if let Err(replies) = self
                .write_decided(
                    written,
                    caller && request,
                    planned.automatic,
                    plan.outbid && caller,
                    replies,
                )
                .await
            {
                // The caller's own bid could not be written: nothing else is.
                for (reply, error) in replies {
                    let _ = reply.send(Err(error));
                }
                return;
            }
        }
    }

    /// Writes a decided bid into the open transaction and waits for its read-back; `Err` hands
    /// back the callers to answer (the bid was not written).
    async fn write_decided(
        &mut self,
        bid: Bid,
        request: bool,
        automatic: bool,
        outbid: bool,
        replies: Vec<(oneshot::Sender<PlaceOutcome>, bool)>,
    ) -> Result<(), Vec<(oneshot::Sender<PlaceOutcome>, PlaceError)>> {
        let payload = match self.context.encoder.encode(&bid).await {
            Ok(payload) => payload,
            Err(e) => {
                metrics::counter!(m::BIDS_REJECTED, "reason" => "registry_unavailable")
                    .increment(1);
                let reason = format!("the bid cannot be written now ({e})");
                return Err(replies
                    .into_iter()
                    .map(|(r, _)| (r, PlaceError::Unavailable(reason.clone())))
                    .collect());
            }
        };
        if let Err(e) = self.write_bid(&bid, request, automatic, &payload) {
            let overloaded = matches!(
                e,
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
            );
            if !overloaded {
                // The commit path sorts the producer out (replacing it if it failed fatally).
                self.transaction.due = Some(tokio::time::Instant::now());
            }
            metrics::counter!(m::BIDS_REJECTED, "reason" => if overloaded { "overloaded" } else { "kafka_unavailable" }).increment(1);
            return Err(replies
                .into_iter()
                .map(|(r, _)| {
                    (
                        r,
                        if overloaded {
                            PlaceError::Overloaded
                        } else {
                            PlaceError::Unavailable(format!("Kafka cannot take the bid ({e})"))
                        },
                    )
                })
                .collect());
        }
        let logged = Arc::new(LoggedBid {
            bid: bid.clone(),
            partition: self.partition,
            offset: -1,
        });
        self.pending
            .entry(bid.auction_id.clone())
            .or_default()
            .push(PendingBid { logged, automatic });
        let id = bid.bid_id;
        self.waiting.insert(
            id,
            Waiter {
                replies,
                auction: bid.auction_id.clone(),
                outbid,
                automatic,
                committed: None,
                in_log_since: None,
                bid,
                request,
                payload,
                attempts: 1,
                doubtful: false,
            },
        );
        self.transaction.bids.push(id);
        self.schedule();
        Ok(())
    }

    /// Writes the automatic bid that a standing maximum calls for in `auction`, if any, once
    /// no bid of the auction is in flight (stamped with the time of the bid it answers).
    async fn answer_maxima(&mut self, auction: &AuctionId) {
        if !self.caught_up || self.pending.contains_key(auction) {
            return;
        }
        let Some(state) = self.auctions.get(auction) else {
            return;
        };
        let Some(answer) = state.reaction(&self.context.rules) else {
            return;
        };
        let Some(at) = state.highest.as_ref().map(|h| h.bid.bid_ts) else {
            return;
        };
        let Ok(price) = auction_schemas::Price::parse(answer.price) else {
            return;
        };
        let bid = Bid {
            bid_id: BidId::new_random(),
            auction_id: auction.clone(),
            name: answer.name,
            price,
            bid_ts: at,
        };
        if self
            .write_decided(bid, false, true, false, Vec::new())
            .await
            .is_err()
        {
            tracing::warn!(partition = self.partition, auction = %auction,
                "cannot write an automatic bid now; it is tried again after the next bid of the auction");
        }
    }

    /// Once the partition is read to its end: the catch-up's state goes out within the commit
    /// interval, and maxima that an earlier owner had not answered yet are answered.
    async fn became_caught_up(&mut self) {
        self.caught_up = true;
        self.schedule();
        let with_maxima: Vec<AuctionId> = self
            .auctions
            .values()
            .filter(|state| !state.life.maxima.is_empty())
            .map(|state| state.id.clone())
            .collect();
        for auction in with_maxima {
            self.answer_maxima(&auction).await;
        }
    }

    /// Closes the auctions whose end has passed (by this owner's clock) and that have no bid
    /// in flight and no maximum left to answer.
    fn close_due_auctions(&mut self) {
        let now = Utc::now();
        let due: Vec<AuctionId> = self
            .timed
            .iter()
            .filter(|id| !self.pending.contains_key(*id))
            .filter(|id| {
                self.auctions.get(*id).is_some_and(|state| {
                    state.due_to_close(now) && state.reaction(&self.context.rules).is_none()
                })
            })
            .cloned()
            .collect();
        for id in due {
            self.timed.remove(&id);
            if let Some(state) = self.auctions.get_mut(&id) {
                Arc::make_mut(state).close(now);
                tracing::info!(partition = self.partition, auction = %id, sold = state.reserve_met(), "closed the auction");
                if let Some(result) = state.result() {
                    let value = self.context.results_codec.encode(&result);
                    self.results.push((id.to_string(), value));
                }
                metrics::counter!(m::AUCTIONS_CLOSED).increment(1);
                self.lifecycle_changed.insert(id.clone());
                self.dirty_auctions.insert(id);
            }
        }
        if !self.dirty_auctions.is_empty() {
            self.schedule();
        }
    }

    /// Creates an auction; the answer follows the commit.
    fn create(&mut self, auction: AuctionId, definition: Box<Definition>, reply: AuctionReply) {
        if self.auctions.contains_key(&auction) || self.pending.contains_key(&auction) {
            let _ = reply.send(Err(PlaceError::AlreadyExists(format!(
                "auction {auction} exists already; choose another id or leave it empty for a generated one"
            ))));
            return;
        }
        let mut state = AuctionState::new(auction.clone(), self.partition);
        state.life.end = Some(definition.end);
        state.life.definition = Some(Arc::from(definition));
        state.revision = 1;
        self.auctions.insert(auction.clone(), Arc::new(state));
        self.timed.insert(auction.clone());
        self.dirty_auctions.insert(auction.clone());
        self.lifecycle_changed.insert(auction.clone());
        self.after_commit.push(AfterCommit::Auction(reply, auction));
        self.schedule();
    }

    /// Cancels an auction without bids, given its seller key; the answer follows the commit.
    fn cancel(&mut self, auction: &AuctionId, seller_key_sha256: &str, reply: AuctionReply) {
        let refusal = match self.auctions.get(auction) {
            None => Some(PlaceError::NotFound(format!(
                "auction {auction} does not exist"
            ))),
            Some(state) => match state.life.definition.as_deref() {
                None => Some(PlaceError::CannotCancel(format!(
                    "auction {auction} was opened by a first bid, not created, so it has no seller who could cancel it"
                ))),
                Some(definition)
                    if !constant_time_eq(
                        definition.seller_key_sha256.as_bytes(),
                        seller_key_sha256.as_bytes(),
                    ) =>
                {
                    Some(PlaceError::PermissionDenied(
                        "the seller key does not match this auction's".to_owned(),
                    ))
                }
                Some(_) if state.bid_count > 0 || self.pending.contains_key(auction) => {
                    Some(PlaceError::CannotCancel(format!(
                        "auction {auction} has bids: only an auction without bids can be cancelled"
                    )))
                }
                Some(_) if state.life.status != lifecycle::Status::Open => {
                    Some(PlaceError::CannotCancel(format!(
                        "auction {auction} is already closed or cancelled"
                    )))
                }
                Some(_) => None,
            },
        };
        if let Some(refusal) = refusal {
            let _ = reply.send(Err(refusal));
            return;
        }
        if let Some(state) = self.auctions.get_mut(auction) {
            Arc::make_mut(state).cancel(Utc::now());
        }
        self.timed.remove(auction);
        self.dirty_auctions.insert(auction.clone());
        self.lifecycle_changed.insert(auction.clone());
        self.after_commit
            .push(AfterCommit::Auction(reply, auction.clone()));
        self.schedule();
    }

    /// Writes a bid into the open transaction (beginning one if none is open).
    fn write_bid(
        &mut self,
        bid: &Bid,
        request: bool,
        automatic: bool,
        payload: &[u8],
    ) -> Result<(), KafkaError> {
        if !self.transaction.open {
            self.producer.begin_transaction()?;
            self.transaction.open = true;
        }
        let id = bid.bid_id.to_string();
        let mut record = FutureRecord::to(&self.context.topic)
            .partition(self.partition)
            .key(bid.auction_id.as_str())
            .payload(payload);
        let mut headers = OwnedHeaders::new();
        if request {
            headers = headers.insert(Header {
                key: REQUEST_HEADER,
                value: Some(id.as_str()),
            });
        }
        if automatic {
            headers = headers.insert(Header {
                key: PROXY_HEADER,
                value: Some("answer"),
            });
        }
        // The demo-compatible form's value has no ids: they travel in headers.
        let ids_in_headers = self.context.encoder.form() == BidForm::DemoCompatible;
        if ids_in_headers {
            headers = headers
                .insert(Header {
                    key: BID_ID_HEADER,
                    value: Some(id.as_str()),
                })
                .insert(Header {
                    key: AUCTION_ID_HEADER,
                    value: Some(bid.auction_id.as_str()),
                });
        }
        if request || automatic || ids_in_headers {
            record = record.headers(headers);
        }
        self.producer
            .send_result(record)
            .map(drop)
            .map_err(|(e, _)| e)
    }

    async fn apply(&mut self, message: OwnedMessage, stop: &CancellationToken) {
        let offset = message.offset();
        self.position = Some(offset + 1);
        if !self.caught_up
            && self
                .catch_up_target
                .is_some_and(|target| offset + 1 >= target)
        {
            tracing::info!(
                partition = self.partition,
                "applied the partition's last record; deciding"
            );
            self.caught_up = true;
        }
        self.schedule();
        let position = LogPosition {
            topic: &self.context.topic,
            partition: self.partition,
            offset,
        };
        let headers = header_ids(&message);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let bid = loop {
            match self
                .context
                .decoder
                .decode(message.payload(), position, headers)
                .await
            {
                Ok(decoded) => break decoded.bid,
                // A schema id the registry does not know means an empty or wrong registry, not a
                // bad record: skipping the bid would decide later bids on a book without it.
                // The partition waits (its bids time out) until the registry knows the id.
                Err(e) if e.is_retriable() || matches!(e, DecodeError::UnknownSchemaId { .. }) => {
                    tracing::warn!(error = %e, partition = self.partition, offset,
                        "cannot decode a bid yet; the partition waits and retries");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
                Err(e) => {
                    // Not a bid (the sinks dead-letter it); it changes no auction.
                    tracing::warn!(error = %e, partition = self.partition, offset,
                        "skipping a record that is not a valid bid");
                    metrics::counter!(m::LOG_RECORDS, "outcome" => e.kind()).increment(1);
                    return;
                }
            }
        };
        let has_header = |key: &str| {
            message
                .headers()
                .is_some_and(|headers| headers.iter().any(|h| h.key == key))
        };
        let is_request = has_header(REQUEST_HEADER);
        let automatic = has_header(PROXY_HEADER);
        let logged = Arc::new(LoggedBid {
            bid,
            partition: self.partition,
            offset,
        });
        let id = logged.bid.auction_id.clone();
        self.counting_new_auction(&id);
        let state = self
            .auctions
            .entry(id.clone())
            .or_insert_with(|| Arc::new(AuctionState::new(id.clone(), self.partition)));
        let minimum_before = state.minimum_next(&self.context.rules);
        let Applied::Bid { valid } =
            Arc::make_mut(state).apply(&logged, automatic, &self.context.rules)
        else {
            metrics::counter!(m::LOG_RECORDS, "outcome" => "already_reflected").increment(1);
            return;
        };
        metrics::counter!(m::LOG_RECORDS, "outcome" => "applied").increment(1);
        self.context.read_copy.update_from_owner(Arc::clone(state));
        if state.life.end.is_some() && state.life.status == lifecycle::Status::Open {
            self.timed.insert(id.clone());
        }
        self.dirty_auctions.insert(id.clone());
        let request_id = logged.bid.bid_id.as_uuid();
        if is_request && !self.requests.contains_key(&request_id) {
            let outcome = if valid {
                Outcome::Placed(Arc::clone(&logged))
            } else {
                Outcome::Refused(Refusal {
                    current_highest: None,
                    minimum_next_bid: minimum_before,
                    offset: Some(offset),
                })
            };
            self.remember(request_id, logged.bid.auction_id.clone(), outcome);
        }
        if let Some(waiter) = self.waiting.remove(&logged.bid.bid_id) {
            self.release(&waiter.auction, logged.bid.bid_id);
            if waiter.automatic {
                metrics::counter!(m::AUTOMATIC_BIDS, "valid" => valid.to_string()).increment(1);
            } else if valid {
                metrics::counter!(m::BIDS_ACCEPTED).increment(1);
            } else {
                metrics::counter!(m::BIDS_REJECTED, "reason" => "outbid_in_log").increment(1);
            }
            for (reply, replayed) in waiter.replies {
                let _ = reply.send(if valid {
                    Ok(Placed {
                        logged: Arc::clone(&logged),
                        replayed,
                        outbid: waiter.outbid,
                    })
                } else {
                    Err(PlaceError::OutbidInLog {
                        offset,
                        minimum_next_bid: minimum_before,
                    })
                });
            }
        }
        self.answer_maxima(&id).await;
    }

    /// The records that carry the state changed since the last commit: expired requests'
    /// tombstones, auctions, requests, and the owner record after a takeover.
    fn state_records(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let now = Utc::now();
        let mut records = Vec::new();
        while let Some((expiry, id)) = self.request_expiry.front().copied() {
            if expiry > now {
                break;
            }
            self.request_expiry.pop_front();
            if self.requests.remove(&id).is_some() {
                records.push((request_key(id), None));
            }
        }
        let codec = &self.context.state_codec;
        for id in &self.dirty_auctions {
            if let Some(state) = self.auctions.get(id) {
                let record = StateRecord::Auction(state.to_record());
                records.push((record.key(), Some(codec.encode(&record))));
            }
        }
        for id in &self.dirty_requests {
            if let Some(remembered) = self.requests.get(id) {
                let record = StateRecord::Request(remembered.record(*id, self.partition));
                records.push((record.key(), Some(codec.encode(&record))));
            }
        }
        if self.announce {
            let record = StateRecord::Owner(OwnerRecord {
                partition: self.partition,
                address: self.context.address.clone(),
                owner_id: self.owner_id,
            });
            records.push((record.key(), Some(codec.encode(&record))));
        }
        records
    }

    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.context
            .group
            .get()
            .and_then(|group| group.group_metadata())
    }

    async fn commit(&mut self, stop: &CancellationToken) -> Result<(), Ended> {
        self.transaction.due = None;
        let state = self.state_records();
        let offsets_moved = self.position.is_some() && self.position != self.committed_position;
        if !self.transaction.open && state.is_empty() && !offsets_moved {
            return Ok(());
        }
        if !self.transaction.open {
            if let Err(e) = self.producer.begin_transaction() {
                return self.recover(e, stop).await;
            }
            self.transaction.open = true;
        }
        // State records go to the auction's partition of the state topic; results are keyed
        // by auction id and partitioned by the producer.
        let results = self
            .results
            .iter()
            .map(|(key, value)| (&self.context.results_topic, None, key, Some(value)));
        let records = state
            .iter()
            .map(|(key, value)| {
                (
                    &self.context.state_topic,
                    Some(self.partition),
                    key,
                    value.as_ref(),
                )
            })
            .chain(results)
            .collect::<Vec<_>>();
        for (topic, partition, key, value) in records {
            let mut record = FutureRecord::<String, Vec<u8>>::to(topic).key(key);
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            // A full producer queue drains as the broker acknowledges: wait for room.
            let deadline = Instant::now() + TRANSACTION_CALL_TIMEOUT;
            loop {
                match self.producer.send_result(record) {
                    Ok(_) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                        if Instant::now() < deadline =>
                    {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        tracing::warn!(partition = self.partition, topic, error = %e, "cannot write a record");
                        return self.recover(e, stop).await;
                    }
                }
            }
        }
        let offsets = match (self.position, self.group_metadata()) {
            (Some(position), Some(group)) => {
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(
                    &self.context.topic,
                    self.partition,
                    Offset::Offset(position),
                )
                .ok()
                .map(|()| (list, group))
            }
            _ => None,
        };
        let producer = self.producer.clone();
        let bids = self.transaction.bids.len();
        let started = Instant::now();
        let committed = crate::kafka::off_runtime(move || {
            if let Some((list, group)) = offsets {
                producer.send_offsets_to_transaction(&list, &group, TRANSACTION_CALL_TIMEOUT)?;
            }
            wait_for_deliveries(&producer, TRANSACTION_CALL_TIMEOUT);
            producer.commit_transaction(TRANSACTION_CALL_TIMEOUT)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled));
        match committed {
            Ok(()) => {
                metrics::histogram!(m::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(m::BIDS_PER_TRANSACTION).record(bids as f64);
                self.transaction.open = false;
                let now = Instant::now();
                for id in self.transaction.bids.drain(..) {
                    if let Some(waiter) = self.waiting.get_mut(&id) {
                        waiter.committed = Some((now, self.committed_position));
                    }
                }
                self.dirty_auctions.clear();
                for id in self.lifecycle_changed.drain() {
                    if let Some(state) = self.auctions.get(&id) {
                        self.context.read_copy.update_from_owner(Arc::clone(state));
                    }
                }
                for call in std::mem::take(&mut self.after_commit) {
                    match call {
                        AfterCommit::Place(reply, auction, request_id) => {
                            let leading =
                                self.auctions.get(&auction).and_then(|s| s.highest.clone());
                            if let (Some(id), Some(logged)) = (request_id, &leading) {
                                // A retry finds the same answer.
                                self.remember(
                                    id,
                                    auction.clone(),
                                    Outcome::Placed(Arc::clone(logged)),
                                );
                            }
                            let _ = reply.send(match leading {
                                Some(logged) => Ok(Placed {
                                    logged,
                                    replayed: false,
                                    outbid: false,
                                }),
                                None => Err(PlaceError::Unavailable(
                                    "the auction changed while the maximum was raised".to_owned(),
                                )),
                            });
                        }
                        AfterCommit::Auction(reply, auction) => {
                            let _ =
                                reply.send(self.auctions.get(&auction).cloned().ok_or_else(|| {
                                    PlaceError::NotFound(format!(
                                        "auction {auction} does not exist"
                                    ))
                                }));
                        }
                    }
                }
                self.dirty_requests.clear();
                self.results.clear();
                self.announce = false;
                self.committed_position = self.position;
                Ok(())
            }
            Err(e) => self.recover(e, stop).await,
        }
    }

    /// After an aborted transaction: its bids are not in the log. They are written again, in
    /// the order they were decided (so each still beats the one before), up to
    /// [`WRITE_ATTEMPTS`] times each; the state goes out with the next commit.
    fn after_abort(&mut self, reason: &str) {
        let bids: Vec<BidId> = self.transaction.bids.drain(..).collect();
        metrics::counter!(m::BIDS_IN_ABORTED_TRANSACTIONS).increment(bids.len() as u64);
        let mut failed = Vec::new();
        for id in bids {
            let Some(waiter) = self.waiting.get_mut(&id) else {
                continue;
            };
            if waiter.committed.is_some() {
                continue;
            }
            if waiter.attempts >= WRITE_ATTEMPTS {
                failed.push(id);
                continue;
            }
            waiter.attempts += 1;
            let (bid, request, automatic, payload) = (
                waiter.bid.clone(),
                waiter.request,
                waiter.automatic,
                waiter.payload.clone(),
            );
            match self.write_bid(&bid, request, automatic, &payload) {
                Ok(()) => self.transaction.bids.push(id),
                Err(_) => failed.push(id),
            }
        }
        let failed: HashSet<BidId> = failed.into_iter().collect();
        self.fail_waiting(|w| failed.contains(&w.bid.bid_id), reason);
        self.schedule();
    }

    /// Handles a failed transactional call.
    async fn recover(&mut self, error: KafkaError, stop: &CancellationToken) -> Result<(), Ended> {
        let details = match &error {
            KafkaError::Transaction(e) => Some((e.code(), e.is_fatal(), e.txn_requires_abort())),
            _ => None,
        };
        let fenced = details.is_some_and(|(code, _, _)| {
            matches!(
                code,
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        });
        if fenced {
            metrics::counter!(m::TRANSACTIONS_FAILED, "outcome" => "fenced").increment(1);
            tracing::warn!(partition = self.partition, error = %error, "fenced: another replica owns the partition now");
            return Err(Ended::Fenced);
        }
        if let Some((_, false, true)) = details {
            let producer = self.producer.clone();
            let aborted = crate::kafka::off_runtime(move || {
                producer.abort_transaction(TRANSACTION_CALL_TIMEOUT)
            })
            .await;
            if matches!(aborted, Ok(Ok(()))) {
                metrics::counter!(m::TRANSACTIONS_FAILED, "outcome" => "aborted").increment(1);
                tracing::warn!(partition = self.partition, error = %error, "a transaction was aborted");
                self.transaction.open = false;
                self.after_abort(&format!("Kafka refused the transaction ({error})"));
                return Ok(());
            }
        }
        // The outcome is unknown (a timeout) or the producer is unusable: replace it. The new
        // instance's init fences the old one and settles its transaction, committed or aborted;
        // then the read-back (or the overdue check) says which of the doubtful bids the log holds.
        self.deciding
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // A timeout may mean that this replica was paused or cut off past its group session, and
        // the group gave the partition to another replica: replacing the producer now would
        // fence that owner. The group consumer hears of it at its next heartbeat (every second)
        // and stops this owner; wait for that, and check the assignment, before replacing.
        tracing::warn!(partition = self.partition, error = %error,
            "a transaction's outcome is unknown; replacing the producer unless the partition was lost");
        tokio::select! {
            () = stop.cancelled() => return Err(Ended::Stopped),
            () = tokio::time::sleep(OWNERSHIP_CHECK_DELAY) => {}
        }
        if !self.still_assigned() {
            tracing::warn!(
                partition = self.partition,
                "the group no longer gives this replica the partition; stopping without replacing the producer"
            );
            return Err(Ended::Stopped);
        }
        metrics::counter!(m::TRANSACTIONS_FAILED, "outcome" => "replaced").increment(1);
        self.producer = match fenced_producer(&self.context, self.partition, stop).await {
            Ok(producer) => producer,
            Err(_) => return Err(Ended::Stopped),
        };
        self.deciding
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.transaction.open = false;
        // The new instance's init settled the old transaction: its bids are in the log or never
        // will be. They wait for the read-back like committed ones; the overdue check looks for
        // those that do not come.
        let now = Instant::now();
        for id in self.transaction.bids.drain(..) {
            if let Some(waiter) = self.waiting.get_mut(&id) {
                waiter.committed = Some((now, self.committed_position));
                waiter.doubtful = true;
            }
        }
        self.announce = true;
        self.schedule();
        Ok(())
    }

    /// Whether the group consumer's current assignment still holds this partition (true when
    /// the group consumer is not known yet).
    fn still_assigned(&self) -> bool {
        let Some(group) = self.context.group.get() else {
            return true;
        };
        match group.assignment() {
            Ok(list) => list.elements().iter().any(|element| {
                element.topic() == self.context.topic && element.partition() == self.partition
            }),
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "cannot read the group assignment");
                false
            }
        }
    }

    /// Looks in the log, with a reader of its own, for the bids still waiting to be read back:
    /// doubtful ones (their transaction was settled by a replaced producer's init, which
    /// completes only once that transaction's markers are written) after [`READ_BACK_WAIT`], and
    /// ones whose commit succeeded after [`READ_BACK_CHECK_AFTER`].
    ///
    /// A doubtful bid the log does not hold was in an aborted transaction: its calls answer
    /// UNAVAILABLE and the bid counts as not placed. A committed bid the log does not hold yet
    /// keeps waiting (its markers may still be on their way: a partition leader failing over),
    /// so the log's end never proves it absent. A bid the log holds that the group consumer has
    /// still not delivered [`READ_BACK_STALL`] after it was found means that the group consumer's
    /// reading of the partition stalled: `Err` ends the owner, and the partition is taken over
    /// again and read from the group's committed offset.
    async fn check_overdue(&mut self, stop: &CancellationToken) -> Result<(), ()> {
        let now = Instant::now();
        let overdue: Vec<(BidId, Option<i64>)> = self
            .waiting
            .iter()
            .filter_map(|(id, w)| {
                let after = if w.doubtful {
                    READ_BACK_WAIT
                } else {
                    READ_BACK_CHECK_AFTER
                };
                w.committed
                    .filter(|(at, _)| now.duration_since(*at) >= after)
                    .map(|(_, from)| (*id, from))
            })
            .collect();
        if overdue.is_empty() {
            return Ok(());
        }
        let from = overdue.iter().map(|(_, from)| *from).min().flatten();
        let Ok(found) =
            tokio::time::timeout(READ_BACK_WAIT, self.bids_in_log_after(from, stop)).await
        else {
            // The partition cannot be read to its end now (a leader failover): later.
            tracing::warn!(
                partition = self.partition,
                bids = overdue.len(),
                "bids are not read back yet and the partition cannot be read to its end now; looking again later"
            );
            for (id, own_from) in overdue {
                if let Some(waiter) = self.waiting.get_mut(&id) {
                    waiter.committed = Some((Instant::now(), own_from));
                }
            }
            return Ok(());
        };
        let mut stalled = 0;
        for (id, own_from) in overdue {
            if found.contains(&id) {
                if let Some(waiter) = self.waiting.get_mut(&id) {
                    let since = *waiter.in_log_since.get_or_insert(now);
                    if now.duration_since(since) >= READ_BACK_STALL {
                        stalled += 1;
                    }
                    waiter.committed = Some((Instant::now(), own_from));
                }
                continue;
            }
            if let Some(waiter) = self.waiting.get_mut(&id)
                && !waiter.doubtful
            {
                tracing::warn!(partition = self.partition, bid_id = %id,
                    "a committed bid is not in the readable log yet; waiting for it");
                // Looked for again after the same wait, not at every check.
                waiter.committed = Some((Instant::now(), own_from));
                continue;
            }
            if let Some(waiter) = self.waiting.remove(&id) {
                tracing::warn!(partition = self.partition, bid_id = %id,
                    "the log does not hold a bid whose transaction's outcome was unknown: it was not placed");
                self.release(&waiter.auction, id);
                metrics::counter!(m::BIDS_REJECTED, "reason" => "not_in_log")
                    .increment(waiter.replies.len() as u64);
                for (reply, _) in waiter.replies {
                    let _ = reply.send(Err(PlaceError::Unavailable(
                        "the bid's transaction did not commit (the log does not hold the bid), so it was not placed"
                            .to_owned(),
                    )));
                }
            }
        }
        if stalled > 0 {
            tracing::warn!(
                partition = self.partition,
                bids = stalled,
                position = ?self.position,
                stalled_seconds = READ_BACK_STALL.as_secs(),
                "the log holds bids the group consumer has not delivered; taking the partition over again"
            );
            return Err(());
        }
        Ok(())
    }

    /// The group consumer did not report the partition's end soon after the takeover: read the
    /// partition from the group's committed offset to its end with a fresh reader, and decide
    /// once the group consumer has delivered its last record (at once when there is none).
    async fn catch_up_without_end_event(&mut self, stop: &CancellationToken) {
        let Some(group) = self.context.group.get().cloned() else {
            return;
        };
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.context.topic, self.partition);
        let committed = crate::kafka::off_runtime(move || {
            group.committed_offsets(list, Duration::from_secs(5))
        })
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|list| list.elements().first().map(|e| e.offset()));
        let from = match committed {
            Some(Offset::Offset(offset)) => Offset::Offset(offset),
            _ => Offset::Beginning,
        };
        let mut last = None;
        let read = tokio::time::timeout(
            READ_BACK_WAIT,
            state_log::read_raw(
                &kafka::reader_config(&self.context.kafka),
                &self.context.topic,
                self.partition,
                from,
                stop,
                |message| last = Some(message.offset()),
            ),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            tracing::warn!(
                partition = self.partition,
                from = ?from,
                "still catching up: the partition cannot be read to its end now (calls wait); trying again"
            );
            return;
        }
        match last {
            Some(offset) if self.position.is_none_or(|p| p <= offset) => {
                tracing::info!(
                    partition = self.partition,
                    last_offset = offset,
                    "no end event from the group consumer; deciding once the last record is applied"
                );
                self.catch_up_target = Some(offset + 1);
            }
            _ => {
                tracing::info!(
                    partition = self.partition,
                    "no end event from the group consumer; every record is applied; deciding"
                );
                self.became_caught_up().await;
            }
        }
    }

    /// The ids of the bids in the partition from `from` (the start when unknown) to its end.
    async fn bids_in_log_after(
        &self,
        from: Option<i64>,
        stop: &CancellationToken,
    ) -> HashSet<BidId> {
        let mut found = HashSet::new();
        let mut payloads = Vec::new();
        let start = from.map_or(Offset::Beginning, Offset::Offset);
        let read = state_log::read_raw(
            &kafka::reader_config(&self.context.kafka),
            &self.context.topic,
            self.partition,
            start,
            stop,
            |message| {
                let ids = header_ids(message);
                let ids = (
                    ids.bid_id.map(str::to_owned),
                    ids.auction_id.map(str::to_owned),
                );
                payloads.push((message.offset(), message.payload().map(<[u8]>::to_vec), ids));
            },
        )
        .await;
        if let Err(e) = read {
            tracing::warn!(partition = self.partition, error = %e, "cannot read the partition back");
        }
        for (offset, payload, (bid_id, auction_id)) in payloads {
            let position = LogPosition {
                topic: &self.context.topic,
                partition: self.partition,
                offset,
            };
            let headers = HeaderIds {
                bid_id: bid_id.as_deref(),
                auction_id: auction_id.as_deref(),
            };
            if let Ok(decoded) = self
                .context
                .decoder
                .decode(payload.as_deref(), position, headers)
                .await
            {
                found.insert(decoded.bid.bid_id);
            }
        }
        found
    }
}

/// The ids a bid record carries in its headers (the demo-compatible form).
fn header_ids<M: Message>(message: &M) -> HeaderIds<'_> {
    message
        .headers()
        .map(|headers| HeaderIds::from_pairs(headers.iter().map(|h| (h.key, h.value))))
        .unwrap_or_default()
}

/// Waits (in a blocking thread, at most `timeout`) until every record `producer` was given has
/// its delivery report. rust-rdkafka's `commit_transaction` first flushes, and its flush waits
/// for an event on the producer's queue 100 ms at a time; the producer's own polling thread takes
/// the delivery reports first, so that flush waited out the whole 100 ms on every commit (100 ms
/// a transaction, measured). With nothing left in flight, the flush returns at once.
fn wait_for_deliveries(producer: &FutureProducer, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(250));
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
